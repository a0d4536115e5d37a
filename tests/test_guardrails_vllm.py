"""Server-side guardrails and the second witness against the real vLLM CPU server (the shared
``dense_server`` of tests/conftest.py; a few small runs, no new boot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from procwatch import communicate_stopped

from pytest_llmperf.core.cpu_layout import choose_layout
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
        assert seen["frontend_gap_ms"][m] is not None and 0 <= wm["max_cdf_gap"] <= 1
    assert seen["metrics"]["itl"]["server_count"] == N * 11
    assert seen["metrics"]["itl"]["comparable"]
    assert judge(first.server, fail_on=["unexpected_cache_hits"]) == [] or all(
        f.name == "client_late" for f in judge(first.server)
    )  # a loaded host may make the client late; the cache and preemption guards stay quiet

    again = run_load(ep, w, LoadSpec(concurrency=4, num_requests=N), requests=reqs)
    assert again.server is not None
    hits = again.server["guardrails"]["prefix_cache_hits"]
    assert hits == N * 256  # each 300-token prompt's first full 256 tokens (two blocks of 128)
    flags = {f.name: f for f in judge(again.server, fail_on=["unexpected_cache_hits"])}
    assert flags["unexpected_cache_hits"].fails


CLIENT = r"""
import contextlib, json, os, sys
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.workload.prompts import Workload
if sys.argv[3]:
    os.sched_setaffinity(0, {int(c) for c in sys.argv[3].split(",")})
with contextlib.suppress(PermissionError):
    os.nice(-5)  # the client's core may be shared with other work on the host
print("ready", flush=True)
r = run_load(Endpoint(sys.argv[1], sys.argv[2]),
             Workload("witness", endpoint="completions", input_tokens=64, output_tokens=64,
                      seed=int(sys.argv[4])),
             LoadSpec(concurrency=16, num_requests=48, warmup_requests=2))
print(json.dumps({"server": r.server, "health": r.health.to_json()}), flush=True)
"""


def witnessed_run(server: Any, *, stop: bool, seed: int) -> dict[str, Any]:
    """A client in its own process on the client's core (the layout the engine uses); with
    ``stop`` the OS is kept from running it 60 ms of every 80 ms (SIGSTOP/SIGCONT: a starved
    client, made exact). Returns the run's ``server`` record and client health."""
    layout = choose_layout("auto", os.sched_getaffinity(0))
    cpus = ",".join(map(str, layout.client)) if layout is not None else ""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, server.base_url, server.served_model_name, cpus, str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    # 60 ms of every 80 ms stopped
    line = communicate_stopped(proc, stop_s=0.06 if stop else None, run_s=0.02)
    doc: dict[str, Any] = json.loads(line)
    return doc


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    w = doc["server"]["witness"]
    m = w["metrics"]
    return {
        "itl_client_late_ms": m["itl"]["client_late_ms"],
        "itl_allowance_ms": m["itl"]["allowance_ms"],
        "itl_excess_ms": m["itl"]["excess_ms"],
        "frontend_gap_ms": w["frontend_gap_ms"],
        "ttft_p50_gap_ms": m["ttft"]["quantiles"]["p50"]["gap_ms"],
        "late": w["late"],
        "late_reads": doc["health"]["late_reads"],
        "loop_lag_p99_ms": doc["health"]["loop_lag_p99_ms"],
    }


def test_client_late_flags_a_stopped_client_and_not_a_fed_one(dense_server: Any) -> None:
    """The second witness on real vLLM at c=16: a client kept from running (its tokens wait in
    the socket) trails vLLM's engine-stamped ITL and is flagged ``client_late``; the same
    client left to run on its core is not, although its TTFT / E2E exceed vLLM's (the API
    server's admission, before vLLM's clock starts: 17 ms at the 1 s scale of the default
    job's c=16 levels), which is reported as the frontend gap."""
    fed = witnessed_run(dense_server, stop=False, seed=7_320)
    print("fed", json.dumps(figures(fed)))
    w = fed["server"]["witness"]
    itl = w["metrics"]["itl"]
    assert w["late"] == [] and "client_late" not in [f.name for f in judge(fed["server"])], w
    assert itl["judged"] and itl["comparable"], itl
    assert set(w["frontend_gap_ms"]) == {"ttft", "e2el"}
    assert all(v is not None for v in w["frontend_gap_ms"].values())
    assert not fed["health"]["late_reads"], fed["health"]

    stopped = witnessed_run(dense_server, stop=True, seed=7_330)
    print("stopped", json.dumps(figures(stopped)))
    w = stopped["server"]["witness"]
    itl = w["metrics"]["itl"]
    assert itl["comparable"] and w["late"] == ["itl"], itl
    assert itl["client_late_ms"] > itl["allowance_ms"]
    flags = {f.name: f for f in judge(stopped["server"], fail_on=["client_late"])}
    assert flags["client_late"].fails and "itl by at least" in flags["client_late"].message


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
