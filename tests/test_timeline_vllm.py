"""Server timelines on the real vLLM CPU server (the shared ``dense_server``, no new boot):
the gauges and the generation-token counter sampled from ``/metrics`` during a run are kept
as a series with the run, in time order, show the batch the server ran, and the generation
tokens/s integrate to the tokens the server generated."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.metrics.timeline import integrate
from pytest_llmperf.workload.prompts import Workload

pytestmark = pytest.mark.vllm

CONCURRENCY = 8


def test_timeline_is_kept_in_order_and_integrates_to_the_generated_tokens(
    dense_server: Any,
) -> None:
    ep = dense_server.endpoint
    w = Workload("timeline", endpoint="completions", input_tokens=64, output_tokens=64, seed=9_151)
    spec = LoadSpec(
        concurrency=CONCURRENCY, num_requests=64, warmup_requests=2, metrics_interval_s=0.2
    )
    r = run_load(ep, w, spec)
    assert r.summary.success_rate == 1.0, r.summary.errors
    assert r.server is not None
    tl = r.server["timeline"]
    n = len(tl["t_s"])
    assert tl["interval_s"] == 0.2
    assert all(len(tl[k]) == n for k in ("running", "waiting", "kv_cache_usage"))
    assert len(tl["generation_tokens_per_s"]) == n
    # Sampled at 5 Hz through the run, plus one last sample after it ended.
    assert n >= 4 and n == r.server["guardrails"]["gauge_samples"]
    assert all(b > a for a, b in zip(tl["t_s"], tl["t_s"][1:], strict=False)), tl["t_s"]
    assert 0 <= tl["t_s"][0] < 1.0  # the first sample as the run starts
    assert tl["t_s"][-1] >= r.summary.duration_s * 0.9  # the last one after it ended
    running = [x for x in tl["running"] if x is not None]
    assert max(running) > 0 and max(running) <= CONCURRENCY
    assert max(running) == r.server["guardrails"]["peak_running"]
    assert all(0 <= x <= 1 for x in tl["kv_cache_usage"] if x is not None)
    generated = r.summary.total_output_tokens
    assert generated == 64 * 64
    area = integrate(tl)
    print(
        f"timeline: {n} samples over {tl['t_s'][-1]:.2f} s, peak running {max(running):g}, "
        f"generation tokens/s integrates to {area:.1f} of {generated} generated"
    )
    # The first sample is taken as the first requests are still in prefill, the last after
    # the last response was read: at each end at most one engine step's tokens (one per
    # running request) can fall outside the series. Rounding (t to 1 ms, rates to 0.01
    # tok/s) adds well under a token.
    assert abs(area - generated) <= 2 * CONCURRENCY, (area, generated, tl)
