"""What sampling vLLM's /metrics gauges at 2 Hz costs the client (the load generator's
``GaugeSampler``: one GET of /metrics, a line scan that keeps the gauges and the generation
counter, and one point of the run's timeline per sample).

Measures, against a real vLLM server (the tiny dense model, booted here unless --base-url):
the client's CPU per sample (process CPU over ``--samples`` back-to-back samples, the same
aiohttp session and parser the sampler uses), the share of one core that costs at 2 Hz, the
parse alone, and the full-exposition parse (ours vs prometheus_client's) used for the
before/after scrapes. Goal: the sampler at its default 2 Hz costs at most 1% of one core
(``--interval`` prints the share at another ``[client] metrics_interval_s``).

    flock /tmp/llmperf-vllm.lock .venv/bin/python benchmarks/metrics_sampler_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

import aiohttp

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.resources import fetch_metrics_text
from pytest_llmperf.loadgen.run import GAUGE_INTERVAL_S
from pytest_llmperf.metrics.server import parse_exposition
from pytest_llmperf.metrics.timeline import SAMPLED, Timeline, sample_values

GOAL_CORE_SHARE = 0.01


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(ep: Endpoint, n: int) -> tuple[float, str]:
    async with aiohttp.ClientSession() as session:
        text = await fetch_metrics_text(session, ep)
        assert text is not None, "no /metrics"
        timeline = Timeline()
        c0 = cpu()
        for _ in range(n):
            t = await fetch_metrics_text(session, ep)
            assert t is not None
            timeline.add(time.perf_counter(), sample_values(parse_exposition(t, SAMPLED)))
        cost = (cpu() - c0) / n
        assert len(timeline.to_json(0.0, GAUGE_INTERVAL_S)["t_s"]) == n
        return cost, text


def per_call(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    c0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - c0) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", help="an already running vLLM server")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--interval", type=float, default=GAUGE_INTERVAL_S, help="seconds")
    a = ap.parse_args()
    server = None
    if a.base_url:
        ep = Endpoint(a.base_url, "tiny")
    else:
        from pytest_llmperf.server.process import VLLMServer
        from pytest_llmperf.server.tiny_models import build_tiny_model

        server = VLLMServer(
            str(build_tiny_model("dense-gqa")),
            args=("--gpu-memory-utilization", "0.2", "--max-model-len", "1024"),
            env={"HF_HUB_OFFLINE": "1", "VLLM_CACHE_ROOT": "/tmp/vllm-cache-bench",
                 "VLLM_CPU_KVCACHE_SPACE": "1"},
            served_model_name="tiny",
        ).start()  # fmt: skip
        ep = Endpoint(server.base_url, "tiny")
    try:
        per_sample, text = asyncio.run(measure(ep, a.samples))
    finally:
        if server is not None:
            server.stop()
    gauge_parse = per_call(lambda: sample_values(parse_exposition(text, SAMPLED)), 500)
    full = per_call(lambda: parse_exposition(text), 100)
    try:
        from prometheus_client.parser import text_string_to_metric_families

        prom = per_call(lambda: list(text_string_to_metric_families(text)), 30)
    except ImportError:
        prom = float("nan")
    share = per_sample / a.interval
    print(f"load average {os.getloadavg()[0]:.2f}; /metrics is {len(text):,} bytes")
    print(f"client CPU per sample (GET + scan + timeline point): {1000 * per_sample:.2f} ms")
    print(f"  of which the gauge + counter scan: {1000 * gauge_parse:.3f} ms")
    print(f"full-exposition parse (before/after scrapes): ours {1000 * full:.2f} ms, "
          f"prometheus_client {1000 * prom:.2f} ms")  # fmt: skip
    verdict = "MET" if share <= GOAL_CORE_SHARE else "NOT MET"
    print(
        f"at {1 / a.interval:g} Hz: {100 * share:.2f}% of one core "
        f"(goal <= {100 * GOAL_CORE_SHARE:.0f}%): {verdict}"
    )


if __name__ == "__main__":
    main()
