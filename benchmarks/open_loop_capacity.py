"""Open-loop load and capacity at SLO against ONE real vLLM CPU server (the dense tiny model).

What it shows (issue 15):

1. the closed-loop request throughput at concurrency 64 (a rough capacity figure);
2. open loop BELOW capacity (constant and Poisson arrivals at ``--below`` x that figure): the
   achieved send rate against the requested rate (the drawn schedule is printed too: Poisson
   gaps are scaled to the requested rate, ``loadgen/arrivals.py``), schedule lag p99, backlog;
   verdict: achieved within 2% of requested, for both arrivals;
3. open loop ABOVE capacity (``--above`` x, uncapped): completion rate, the backlog at the end
   of the schedule and the peak in flight, TTFT p50 -- the overload reported, not hidden;
4. the capacity-at-SLO search through the perf engine (each step an open-loop case written to
   ``<report>/results.json``), its steps and the capacity it finds.

    flock /tmp/llmperf-vllm.lock .venv/bin/python benchmarks/open_loop_capacity.py
    ... --base-url http://127.0.0.1:8000   # an already running server (served name "tiny")

The workload is short (128 prompt / 32 output tokens, ignore_eos) to keep vLLM time low.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

IN_TOKENS, OUT_TOKENS = 128, 32
SLO = {"ttft_ms": 250.0, "tpot_ms": 60.0}
TARGET = 0.9


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", help="an already running vLLM server (served name 'tiny')")
    ap.add_argument("--below", type=float, default=0.5, help="below-capacity rate / capacity")
    ap.add_argument("--above", type=float, default=2.0, help="above-capacity rate / capacity")
    ap.add_argument("--seconds", type=float, default=8.0, help="schedule length per open run")
    ap.add_argument("--report", default=None, help="report folder of the capacity search")
    ap.add_argument("--no-search", action="store_true")
    ap.add_argument("--only-search", action="store_true", help="skip the open-loop runs")
    ap.add_argument("--lag-limit-ms", type=float, default=250.0, help="search's client limit")
    a = ap.parse_args()

    from pytest_llmperf.core.endpoint import Endpoint
    from pytest_llmperf.loadgen.run import LoadSpec, run_load
    from pytest_llmperf.metrics.goodput import goodput, schedule_figures
    from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

    server = None
    if a.base_url:
        base_url = a.base_url
    else:
        from pytest_llmperf.server.process import VLLMServer
        from pytest_llmperf.server.tiny_models import build_tiny_model

        server = VLLMServer(
            str(build_tiny_model("dense-gqa")),
            args=("--gpu-memory-utilization", "0.2", "--max-model-len", "512"),
            env={
                "HF_HUB_OFFLINE": "1",
                "VLLM_CACHE_ROOT": "/tmp/vllm-cache-bench",
                "VLLM_CPU_KVCACHE_SPACE": "1",
            },
            served_model_name="tiny",
        ).start()
        base_url = server.base_url
    ep = Endpoint(base_url, "tiny")
    w = Workload("bench", input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS)
    lines: list[str] = []
    try:
        print(f"load average before: {load_avg()}", flush=True)
        reqs = prepare_requests_sync(ep, w, 1000)
        run_load(ep, w, LoadSpec(concurrency=32, num_requests=64), requests=reqs[:64])  # warm
        closed = run_load(ep, w, LoadSpec(concurrency=64, num_requests=256), requests=reqs[:256])
        cap = closed.summary.request_throughput
        lines.append(
            f"closed loop c=64: {cap:.1f} req/s, {closed.summary.output_throughput:.0f} out tok/s,"
            f" success {100 * closed.summary.success_rate:.1f}% (load {load_avg()})"
        )
        print(lines[-1], flush=True)

        def open_run(rate: float, arrival: str) -> tuple[Any, Any]:
            n = max(20, min(len(reqs), round(rate * a.seconds)))
            spec = LoadSpec(mode="open", rate=rate, arrival=arrival, concurrency=None,
                            num_requests=n, seed=7)  # fmt: skip
            r = run_load(ep, w, spec, requests=reqs[:n])
            return r, schedule_figures(r.records, rate)

        verdicts: list[bool] = []
        for arrival in () if a.only_search else ("constant", "poisson"):
            rate = round(a.below * cap, 2)
            r, f = open_run(rate, arrival)
            err = abs(f.achieved_rate / f.requested_rate - 1)
            ok = err <= 0.02
            verdicts.append(ok)
            lines.append(
                f"BELOW capacity, {arrival} {rate:g}/s x {len(r.records)} requests: requested "
                f"{f.requested_rate:.2f}/s, drawn schedule {f.scheduled_rate:.2f}/s, achieved "
                f"{f.achieved_rate:.2f}/s ({100 * err:.2f}% off the requested rate), completion "
                f"{f.completion_rate:.2f}/s, schedule lag p99 {r.health.schedule_lag_p99_ms:.2f}"
                f" ms, backlog at schedule end {f.backlog_at_schedule_end}, peak in flight "
                f"{f.peak_in_flight}, TTFT p50 {r.summary.latency['ttft'].p50:.0f} ms, client-"
                f"bound {r.health.client_bound} -> {'PASS' if ok else 'FAIL'} (within 2%) "
                f"(load {load_avg()})"
            )
            print(lines[-1], flush=True)
        rate = round(a.above * cap, 2)
        if a.only_search:
            lines += capacity_search(base_url, cap, a)
            return finish(server, lines, verdicts)
        r, f = open_run(rate, "constant")
        honest = f.completion_rate < 0.9 * rate and f.backlog_at_schedule_end > 0.2 * len(r.records)
        verdicts.append(honest)
        lines.append(
            f"ABOVE capacity, constant {rate:g}/s x {len(r.records)} requests: achieved send "
            f"{f.achieved_rate:.2f}/s, completion {f.completion_rate:.2f}/s "
            f"({100 * f.completion_rate / rate:.0f}% of requested), backlog at schedule end "
            f"{f.backlog_at_schedule_end}/{len(r.records)}, peak in flight {f.peak_in_flight}, "
            f"TTFT p50 {r.summary.latency['ttft'].p50:.0f} ms, goodput fraction under {SLO} "
            f"{goodput(r.records, SLO, duration_s=r.summary.duration_s).fraction:.2f}, "
            f"schedule lag p99 {r.health.schedule_lag_p99_ms:.2f} ms -> backlog "
            f"{'REPORTED' if honest else 'NOT VISIBLE (FAIL)'} (load {load_avg()})"
        )
        print(lines[-1], flush=True)

        if not a.no_search:
            lines += capacity_search(base_url, cap, a)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    finish(server, lines, verdicts)


def finish(server: Any, lines: list[str], verdicts: list[bool]) -> None:
    if server is not None:
        server.stop()
    print("\n=== open loop and capacity at SLO, dense tiny model, 128 in / 32 out ===")
    for ln in lines:
        print(ln)
    print(f"verdict: {'PASS' if all(verdicts) else 'FAIL'} (load average now {load_avg()})")


def capacity_search(base_url: str, cap: float, a: argparse.Namespace) -> list[str]:
    from pytest_llmperf.config import parse_config
    from pytest_llmperf.session.capacity import engine_capacity
    from pytest_llmperf.session.engine import EngineOptions, PerfEngine

    report = Path(a.report or tempfile.mkdtemp(prefix="llmperf-capacity-"))
    config = parse_config(
        {
            "models": [{"name": "dense-gqa", "tiny": "dense-gqa"}],
            "workloads": [
                {
                    "name": "short",
                    "preset": "text",
                    "input_tokens": IN_TOKENS,
                    "output_tokens": OUT_TOKENS,
                }
            ],
            "warmup_requests": 4,
            "load": {"rates": [1.0], "duration_s": a.seconds},
            "slo": SLO,
            # the client shares 2 cores with vLLM here: the OS runs it ~100 ms late at times
            # (see docs/examples/rates-slo.toml); each step's lag is printed below
            "client": {"schedule_lag_p99_ms": a.lag_limit_ms, "loop_lag_p99_ms": a.lag_limit_ms},
        },
        source="benchmark",
    )
    engine = PerfEngine(
        config,
        EngineOptions(
            rootdir=report, report_dir=report, external_url=base_url, external_model="tiny"
        ),
    )
    model, workload = config.models[0], config.workloads[0]
    start = max(1.0, round(cap / 4))
    res = engine_capacity(
        engine, model, workload, target=TARGET, start_rate=start, tolerance=0.15, max_steps=7
    )
    engine.finish()
    out = [f"capacity search for {model.name}/{workload.name}, SLO {SLO}, target {TARGET}:"]
    out += ["  " + ln for ln in res.lines()]
    for c in engine.results:
        load = c.details[0].get("load", {}) if c.details else {}
        out.append(
            f"  {c.case_id}: achieved {load.get('achieved_rate', float('nan')):.2f}/s, schedule "
            f"lag p99 {load.get('schedule_lag_p99_ms', float('nan')):.1f} ms, goodput fraction "
            f"{c.mean('goodput_fraction'):.3f}, TTFT p99 {c.mean('p99_ttft_ms'):.0f} ms, "
            f"client-bound {c.client_bound}"
        )
    out.append(f"  every step is a case in {report / 'results.json'}")
    (report / "capacity.json").write_text(json.dumps({model.name: res.to_json()}, indent=2))
    for ln in out:
        print(ln, flush=True)
    return out


if __name__ == "__main__":
    main()
