"""The client's own timing error, measured against the instrument (a scripted SSE server).

The instrument sends each stream's first chunk ``ttft`` after it receives the request and one
token every ``itl`` after that, and stamps every chunk with its ``perf_counter`` send time
(system-wide on Linux, so comparable with the client's). Reported per concurrency level:

- client TTFT error = client first-token stamp - instrument send stamp of that chunk;
- client ITL error = client gap between consecutive chunks - the instrument's send gap;
- instrument lateness = its send stamp - the scripted due time (the instrument's own fidelity,
  which is NOT the client's error: on an oversubscribed machine it dominates);
- the machine's load average, because every figure here depends on it.

    .venv/bin/python benchmarks/client_timing_error.py [--streams 1 100 1000] [--layout auto|none]
        [--workers N]   # the load generator's worker processes (loadgen/workers.py)

With ``--layout auto`` (the default, as the plugin's CPU layout) the instrument runs on every core
but the last and the client on the last one, so neither steals the other's CPU; ``none`` leaves
both to the scheduler. The last lines print a verdict against the goal: TTFT and ITL error p99
<= 1 ms at every level, and where it is not met, the synchronised-burst bound (a bound, not a
measured cause).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.loadgen.workers import LOOP_COST_PER_TOKEN_US
from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import Workload

TTFT_S, ITL_S, OUT = 0.5, 0.1, 20
GOAL_MS = 1.0


def measure(inst: Instrument, streams: int, workers: int = 1) -> dict[str, float]:
    r = run_load(
        inst.endpoint(ttft=TTFT_S, itl=ITL_S, k=1),
        Workload("timing", input_tokens=20, output_tokens=OUT),
        LoadSpec(concurrency=streams, num_requests=streams, timeout_s=300),
        keep_raw=True,
        workers=workers,
    )
    assert r.raw is not None
    ttft_err, itl_err, late = [], [], []
    for rec in r.records:
        times, chunks = r.raw[rec.index]
        sent, seen = [], []
        for t, data in zip(times, chunks, strict=True):
            for ev in data.split(b"\n\n"):
                if b"instrument_send_t" in ev:
                    obj = json.loads(ev[6:])
                    sent.append(obj["instrument_send_t"])
                    seen.append(t)
                    due = obj["instrument_recv_t"] + TTFT_S + (len(sent) - 1) * ITL_S
                    late.append(obj["instrument_send_t"] - due)
        ttft_err.append(seen[0] - sent[0])
        itl_err += [(seen[i] - seen[i - 1]) - (sent[i] - sent[i - 1]) for i in range(1, len(seen))]
    ms = 1000.0
    te, ie, la = np.array(ttft_err) * ms, np.array(itl_err) * ms, np.array(late) * ms
    return {
        "streams": streams,
        "workers": r.health.workers,
        "success": r.summary.success_rate,
        "ttft_err_p50_ms": float(np.percentile(te, 50)),
        "ttft_err_p99_ms": float(np.percentile(te, 99)),
        "itl_err_p50_ms": float(np.percentile(ie, 50)),
        "itl_err_p99_abs_ms": float(np.percentile(np.abs(ie), 99)),
        "instrument_late_p50_ms": float(np.percentile(la, 50)),
        "instrument_late_p99_ms": float(np.percentile(la, 99)),
        "client_cpu_s": r.health.cpu_s,
        "loop_lag_p99_ms": r.health.loop_lag_p99_ms,
        "load_avg_1m": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="*", default=[1, 100, 1000])
    ap.add_argument("--layout", choices=("auto", "none"), default="auto")
    ap.add_argument("--workers", type=int, default=1, help="load-generator processes")
    a = ap.parse_args()
    rows = []
    with Instrument() as inst:
        cores = sorted(os.sched_getaffinity(0))
        if a.layout == "auto" and len(cores) >= 2:
            os.sched_setaffinity(inst.pid, set(cores[:-1]))
            os.sched_setaffinity(0, {cores[-1]})
            print(f"layout: instrument on cores {cores[:-1]}, client on core {cores[-1]}")
        measure(inst, 10)  # warm up both sides
        for n in a.streams:
            rows.append(measure(inst, n, a.workers))
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n=== client timing error vs the instrument (scripted TTFT {TTFT_S * 1000:.0f} ms, "
        f"ITL {ITL_S * 1000:.0f} ms, {OUT} tokens/stream) ==="
    )
    for r in rows:
        print(
            f"{r['streams']:>5} streams: client TTFT error p50 {r['ttft_err_p50_ms']:.2f} / p99 "
            f"{r['ttft_err_p99_ms']:.2f} ms; client ITL error p50 {r['itl_err_p50_ms']:.2f} / "
            f"|p99| {r['itl_err_p99_abs_ms']:.2f} ms; instrument lateness p50 "
            f"{r['instrument_late_p50_ms']:.1f} / p99 {r['instrument_late_p99_ms']:.1f} ms; "
            f"success {100 * r['success']:.0f}%; load avg {r['load_avg_1m']:.1f} on "
            f"{os.cpu_count()} cores"
        )
    for r in rows:
        met = r["ttft_err_p99_ms"] <= GOAL_MS and r["itl_err_p99_abs_ms"] <= GOAL_MS
        print(
            f"{r['streams']:>5} streams: goal TTFT and ITL error p99 <= {GOAL_MS:.0f} ms -> "
            f"{'MET' if met else 'NOT MET'} ({r['ttft_err_p99_ms']:.2f} / "
            f"{r['itl_err_p99_abs_ms']:.2f} ms, layout {a.layout}, {r['workers']} process(es))"
        )
        if not met:
            # Every stream here starts at about the same time and has the same ITL, so their
            # chunks can fall due together (as on vLLM, whose engine step emits a token for
            # every running request) and one loop reads such a burst one chunk after another.
            # That is a bound, not a measured cause: the streams' starts spread, so the bursts
            # are smaller than all streams at once.
            bound = r["streams"] * LOOP_COST_PER_TOKEN_US / 1000 / max(1, r["workers"])
            print(
                f"       note: one loop, {r['streams']} streams: a burst of every stream's chunk "
                f"would take up to ~{bound:.1f} ms to read at {LOOP_COST_PER_TOKEN_US} us per "
                "token (loadgen.workers' planning figure); the cause of the error above is not "
                f"isolated by this benchmark (load avg {r['load_avg_1m']:.1f})"
            )


if __name__ == "__main__":
    main()
