"""Shared fixtures for this repository's own tests: real vLLM CPU servers of the tiny models.

A server start costs about a minute on 2 cores, so every test that only needs *a* server of
an architecture shares one session-scoped server; tests that kill or degrade a server ask the
factory for their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from pytest_llmperf.core.cpu_layout import choose_layout, pinned
from pytest_llmperf.server.process import VLLMServer

CPU_VLLM_VERSION_FALLBACK = "0.32.0"

try:  # hypothesis is a test extra; without it the property tests skip themselves
    from hypothesis import HealthCheck, settings

    # A per-example deadline is an absolute wall-clock bound, which a busy 2-core machine
    # breaks (a vLLM server owns the cores while property tests run): no deadline, and no
    # "too slow" health check. Tests that set their own settings keep them.
    settings.register_profile(
        "llmperf", deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile("llmperf")
except ImportError:  # pragma: no cover
    pass

# pytester's in-process runs restore sys.modules afterwards, dropping every module first
# imported inside an inner session. C-extension packages (torch above all: "Only a single
# TORCH_LIBRARY can be used...", "bad call flags") cannot be imported a second time, so the
# snapshot is told to keep them, as it already keeps zope and readline.
_KEEP_IMPORTED = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "vllm",
    "triton",
    "numpy",
    "scipy",
    "PIL",
    "matplotlib",
    "aiohttp",
    "uvloop",
    "httptools",
    "huggingface_hub",
    "yarl",
    "multidict",
    "frozenlist",
    "propcache",
)


def pytest_configure(config: pytest.Config) -> None:
    from _pytest import pytester

    original = pytester.SysModulesSnapshot.__init__
    if getattr(original, "_llmperf_patched", False):
        return

    def init(self: object, preserve: Callable[[str], bool] | None = None) -> None:
        def keep(name: str) -> bool:
            return name.startswith(_KEEP_IMPORTED) or bool(preserve and preserve(name))

        original(self, preserve=keep)  # type: ignore[arg-type]

    init._llmperf_patched = True  # type: ignore[attr-defined]
    pytester.SysModulesSnapshot.__init__ = init  # type: ignore[method-assign]


#: ``--max-model-len`` of the shared test servers: 2,048 unless a test needs more. The dense
#: server serves the 8K long-context preset (8,192 + 512 tokens, ``context_needed`` 8,960; the
#: tiny text models have 32K positions). vLLM's CPU scheduler batches 2,048 tokens whatever
#: the length (chunked prefill), and the KV cache is a fixed 1 GiB, so only the longest
#: request it accepts changes. Images per prompt: BLIP-2 takes one, Idefics3 is planned for 5.
SHARED_MAX_LEN: dict[str, int] = {"dense-gqa": 8960}
PLAN_IMAGES: dict[str, int] = {"vision": 1, "vision-multi": 5}


def tiny_plan_args(
    arch: str,
    *,
    name: str | None = None,
    extra_args: Sequence[str] = (),
    max_len: int | None = None,
) -> tuple[str, tuple[str, ...], dict[str, str]]:
    """The model folder, vLLM arguments and environment the launch planner gives a tiny model
    on this CPU machine (so the tests boot exactly what users' plans boot)."""
    if max_len is None:
        max_len = SHARED_MAX_LEN.get(arch, 2048)
    from pytest_llmperf.plan.architectures import detect
    from pytest_llmperf.plan.launch_plan import PlanOverrides, make_plan
    from pytest_llmperf.server.tiny_models import build_tiny_model
    from pytest_llmperf.session.engine import installed_vllm_version

    model = str(build_tiny_model(arch))
    plan = make_plan(
        detect(model, name=arch),
        platform="cpu",
        vllm_version=installed_vllm_version() or CPU_VLLM_VERSION_FALLBACK,
        gpus=0,
        model=model,
        served_model_name=name or arch,
        workload_max_len=max_len,
        overrides=PlanOverrides(extra_args=tuple(extra_args)),
        images_per_prompt=PLAN_IMAGES.get(arch),
    )
    return model, tuple(plan.args), dict(plan.env)


@pytest.fixture(scope="session")
def vllm_cache_root() -> str:
    """One vLLM compile cache for every test server, kept across sessions (a warm cache saves
    part of each boot); ``LLMPERF_VLLM_CACHE`` moves it."""
    import os
    from pathlib import Path

    default = Path.home() / ".cache" / "pytest-llmperf" / "vllm-cache"
    root = Path(os.environ.get("LLMPERF_VLLM_CACHE", default))
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


@pytest.fixture(scope="session")
def tiny_server_factory(
    tmp_path_factory: pytest.TempPathFactory, vllm_cache_root: str
) -> Iterator[Callable[..., VLLMServer]]:
    """``factory(arch, extra_args=(), shared=True)``: a started tiny-model server. Shared ones
    are reused for the session; ``shared=False`` gives a private one the caller may kill."""
    shared: dict[tuple[str, tuple[str, ...]], VLLMServer] = {}
    private: list[VLLMServer] = []

    def factory(
        arch: str, extra_args: Sequence[str] = (), *, shared_ok: bool = True, **kw: object
    ) -> VLLMServer:
        key = (arch, tuple(extra_args))
        if shared_ok and key in shared and shared[key].is_alive():
            return shared[key]
        model, args, env = tiny_plan_args(arch, extra_args=extra_args)
        env["VLLM_CACHE_ROOT"] = vllm_cache_root
        # The layout the engine gives a server it launches (``[client] cpu_layout = "auto"``):
        # the whole server on every core but the last, so vLLM's busy-polling EngineCore
        # cannot starve the tests' client of its core (late reads would fail the runs).
        layout = choose_layout("auto", os.sched_getaffinity(0))
        if layout is not None:
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", layout.omp_threads_bind)
        server = VLLMServer(
            model,
            args=args,
            env=env,
            served_model_name=arch,
            log_path=tmp_path_factory.mktemp("vllm-log") / f"{arch}.log",
            **kw,  # type: ignore[arg-type]
        )
        (shared.__setitem__(key, server) if shared_ok else private.append(server))
        with pinned(layout.server if layout is not None else None):
            return server.start()  # its processes inherit the server's cores

    yield factory
    for server in [*shared.values(), *private]:
        server.stop()


@pytest.fixture(scope="session")
def dense_server(tiny_server_factory: Callable[..., VLLMServer]) -> VLLMServer:
    return tiny_server_factory("dense-gqa")


@pytest.fixture(scope="session")
def vision_server(tiny_server_factory: Callable[..., VLLMServer]) -> VLLMServer:
    return tiny_server_factory("vision")


@pytest.fixture
def own_tiny_server(
    tiny_server_factory: Callable[..., VLLMServer],
) -> Iterator[Callable[..., VLLMServer]]:
    """``own_tiny_server(arch, extra_args=())``: a private server for this test alone, stopped
    when the test ends (each one holds 3-5 GB of RAM; CI must not keep idle ones around)."""
    mine: list[VLLMServer] = []

    def start(arch: str, extra_args: Sequence[str] = (), **kw: object) -> VLLMServer:
        server = tiny_server_factory(arch, extra_args, shared_ok=False, **kw)
        mine.append(server)
        return server

    yield start
    for server in mine:
        server.stop()


#: The API-key-protected tiny server shared by the fault and security tests, and the key planted
#: in it (searched for in every output, where it must never appear).
KEYED_ARGS = ("--uvicorn-log-level", "info")
PLANTED_KEY = "sk-llmperf-canary-5e1f0c9a7b3d"


@pytest.fixture
def keyed_server(tiny_server_factory: Callable[..., VLLMServer]) -> VLLMServer:
    """The session's API-key-protected tiny server (one boot for every test that needs it)."""
    return tiny_server_factory("dense-gqa", KEYED_ARGS, api_key=PLANTED_KEY)


def process_group_members(pgid: int) -> list[int]:
    """Every live process in group ``pgid`` (a server's group: API server, engine, workers)."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    out.append(int(entry))
            except OSError:
                continue
    return out
