"""A tiny-model vLLM server for the benchmarks, launched the way the engine launches one.

The launch planner's flags for the model on this CPU machine, and the engine's ``auto`` CPU
layout: the server (API frontend and EngineCore) on every core but the last, its OpenMP
threads bound there, and :func:`pin_client` for the measuring process on the last core. The
benchmarks then measure what the plugin measures, not a client and server fighting for cores.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_llmperf.core.cpu_layout import CpuLayout, choose_layout, pinned
from pytest_llmperf.server.process import VLLMServer


def layout() -> CpuLayout | None:
    return choose_layout("auto", os.sched_getaffinity(0))


def start_tiny_server(
    arch: str = "dense-gqa", *, name: str = "tiny", max_len: int = 4096, extra: tuple[str, ...] = ()
) -> tuple[VLLMServer, str]:
    """A started server of the tiny ``arch`` model and its model folder."""
    from pytest_llmperf.core.versions import installed_vllm_version
    from pytest_llmperf.plan.architectures import detect
    from pytest_llmperf.plan.launch_plan import PlanOverrides, make_plan
    from pytest_llmperf.server.tiny_models import build_tiny_model

    model = str(build_tiny_model(arch))
    plan = make_plan(
        detect(model, name=arch),
        platform="cpu",
        vllm_version=installed_vllm_version(local_label=False) or "0.32.0",
        gpus=0,
        model=model,
        served_model_name=name,
        workload_max_len=max_len,
        overrides=PlanOverrides(extra_args=extra),
        images_per_prompt=1 if arch == "vision" else None,
    )
    env = dict(plan.env)
    env.setdefault("VLLM_CACHE_ROOT", str(Path.home() / ".cache/pytest-llmperf/vllm-cache"))
    lay = layout()
    if lay is not None:
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", lay.omp_threads_bind)
    server = VLLMServer(model, args=tuple(plan.args), env=env, served_model_name=name)
    with pinned(lay.server if lay is not None else None):
        server.start()
    return server, model


def pin_client() -> str:
    """Pin this process to the layout's client core(s); returns what was done, for the log."""
    lay = layout()
    if lay is None:
        return "layout: none (one core)"
    os.sched_setaffinity(0, set(lay.client))
    return f"layout: server on cores {list(lay.server)}, client on {list(lay.client)}"
