"""Server-side guardrails and the second witness against the real vLLM CPU server (the shared
``dense_server`` of tests/conftest.py; a few small runs, no new boot)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.verdicts.guardrails import judge
from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

pytestmark = pytest.mark.vllm

N = 12


def test_fresh_prompts_show_no_cache_hits_and_resent_ones_are_flagged(dense_server: Any) -> None:
    ep = dense_server.endpoint
    # A seed no other test uses: these prompts are new to the server's prefix cache.
    w = Workload("guard", endpoint="completions", input_tokens=300, output_tokens=12, seed=7_310)
    reqs = prepare_requests_sync(ep, w, N)
    first = run_load(ep, w, LoadSpec(concurrency=4, num_requests=N), requests=reqs)
    assert first.summary.success_rate == 1.0, first.summary.errors
    assert first.server is not None
    g = first.server["guardrails"]
    assert g["source"] == "/metrics deltas"
    assert g["preemptions"] == 0
    assert g["prefix_cache_queries"] == N * 300
    assert g["prefix_cache_hits"] == 0
    assert g["gauge_samples"] >= 1  # sampled at 2 Hz from the start of the run
    assert g["peak_running"] is not None and 0 <= g["peak_running"] <= 4
    assert g["peak_waiting"] is not None and 0 <= g["peak_kv_cache_usage"] < 1
    seen = first.server["witness"]
    assert set(seen["metrics"]) == {"ttft", "itl", "e2el"}
    for m in ("ttft", "e2el"):
        wm = seen["metrics"][m]
        assert wm["matched"] and wm["server_count"] == N
        assert wm["client_late_ms"] is not None and 0 <= wm["max_cdf_gap"] <= 1
    assert seen["metrics"]["itl"]["server_count"] == N * 11
    assert judge(first.server, fail_on=["unexpected_cache_hits"]) == [] or all(
        f.name == "client_late" for f in judge(first.server)
    )  # a loaded host may make the client late; the cache and preemption guards stay quiet

    again = run_load(ep, w, LoadSpec(concurrency=4, num_requests=N), requests=reqs)
    assert again.server is not None
    hits = again.server["guardrails"]["prefix_cache_hits"]
    assert hits == N * 256  # each 300-token prompt's first full 256 tokens (two blocks of 128)
    flags = {f.name: f for f in judge(again.server, fail_on=["unexpected_cache_hits"])}
    assert flags["unexpected_cache_hits"].fails


TOML = """\
concurrency = [2]
min_requests = 8
warmup_requests = 2
[client]
loop_lag_p99_ms = 60000
[guardrails]
fail_on = ["unexpected_cache_hits"]
[[models]]
name = "dense-gqa"
tiny = "dense-gqa"
[[workloads]]
name = "guard"
preset = "text"
input_tokens = 260
output_tokens = 8
"""


def test_a_repeated_session_fails_on_the_cache_guardrail(
    pytester: pytest.Pytester, dense_server: Any
) -> None:
    """Prompts are fresh per (case, run) but the same every session: a second identical
    session re-sends them, the prefix cache serves them, and ``fail_on`` fails the case."""
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_llmperf.report import schema

    pytester.path.joinpath("llmperf.toml").write_text(TOML)
    args = [
        "-p", "no:cacheprovider", "--llmperf", "--llmperf-endpoint", dense_server.base_url,
        "--llmperf-served-model", dense_server.served_model_name,
    ]  # fmt: skip
    first = pytester.runpytest_subprocess(*args, timeout=600)
    doc = json.loads((pytester.path / ".llmperf" / "results.json").read_text())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    server = doc["cases"][0]["runs"][0]["detail"]["server"]
    assert server["guardrails"]["prefix_cache_hits"] == 0, server
    assert server["guardrails"]["preemptions"] == 0
    assert server["witness"]["metrics"]["ttft"]["matched"]
    assert "unexpected_cache_hits" not in [f["name"] for f in server["flags"]]
    html = (pytester.path / ".llmperf" / "report.html").read_text()
    assert "Server guardrails" in html
    if first.ret != 0:  # only a late client may fail it here; say so
        assert "client-bound" in first.stdout.str(), first.stdout.str()

    second = pytester.runpytest_subprocess(*args, timeout=600)
    text = second.stdout.str()
    assert second.ret != 0, text
    assert "guardrail unexpected_cache_hits" in text
    doc = json.loads((pytester.path / ".llmperf" / "results.json").read_text())
    flags = doc["cases"][0]["runs"][0]["detail"]["server"]["flags"]
    assert {"name": "unexpected_cache_hits", "fails": True}.items() <= {
        **next(f for f in flags if f["name"] == "unexpected_cache_hits")
    }.items()
