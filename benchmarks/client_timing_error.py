"""The client's own timing error, measured against the instrument (a scripted SSE server).

The instrument sends each stream's first chunk ``ttft`` after it receives the request and one
token every ``itl`` after that, and stamps every chunk with its ``perf_counter`` send time
(system-wide on Linux, so comparable with the client's). Reported per concurrency level:

- TTFT error = client TTFT - scripted TTFT (includes connection set-up and the instrument's own
  lateness; an upper bound on the client's error);
- ITL error = client per-token ITL - scripted ITL;
- delivery delay = client receive stamp - instrument send stamp, per chunk (the client and the
  kernel only: what the client adds to any timestamp).

    .venv/bin/python benchmarks/client_timing_error.py [--streams 1000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from pytest_llmperf.instrument import Instrument
from pytest_llmperf.loadgen import LoadSpec, run_load
from pytest_llmperf.metrics import itl_per_token
from pytest_llmperf.workload import Workload

TTFT_S, ITL_S, OUT = 0.5, 0.1, 20


def measure(inst: Instrument, streams: int) -> dict[str, float]:
    r = run_load(
        inst.endpoint(ttft=TTFT_S, itl=ITL_S, k=1),
        Workload("timing", input_tokens=20, output_tokens=OUT),
        LoadSpec(concurrency=streams, num_requests=streams, timeout_s=300),
        keep_raw=True,
    )
    assert r.raw is not None
    ttft_err = np.array([rec.ttft - TTFT_S for rec in r.records if rec.ttft is not None])
    itl_err = np.array([g - ITL_S for rec in r.records for g in itl_per_token(rec)])
    delivery = []
    for rec in r.records:
        times, chunks = r.raw[rec.index]
        for t, data in zip(times, chunks, strict=True):
            for ev in data.split(b"\n\n"):
                if b"instrument_send_t" in ev:
                    delivery.append(t - json.loads(ev[6:])["instrument_send_t"])
    d = np.array(delivery)
    ms = 1000.0
    return {
        "streams": streams,
        "success": r.summary.success_rate,
        "ttft_err_p50_ms": float(np.percentile(ttft_err, 50) * ms),
        "ttft_err_p99_ms": float(np.percentile(ttft_err, 99) * ms),
        "itl_err_p50_ms": float(np.percentile(itl_err, 50) * ms),
        "itl_err_p99_abs_ms": float(np.percentile(np.abs(itl_err), 99) * ms),
        "delivery_p50_ms": float(np.percentile(d, 50) * ms),
        "delivery_p99_ms": float(np.percentile(d, 99) * ms),
        "client_cpu_s": r.health.cpu_s,
        "loop_lag_p99_ms": r.health.loop_lag_p99_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="*", default=[1, 100, 1000])
    a = ap.parse_args()
    rows = []
    with Instrument() as inst:
        measure(inst, 10)  # warm up both sides
        for n in a.streams:
            rows.append(measure(inst, n))
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n=== client timing error vs the instrument (scripted TTFT {TTFT_S * 1000:.0f} ms, "
        f"ITL {ITL_S * 1000:.0f} ms, {OUT} tokens/stream) ==="
    )
    for r in rows:
        print(
            f"{r['streams']:>5} streams: TTFT error p50 {r['ttft_err_p50_ms']:.2f} / p99 "
            f"{r['ttft_err_p99_ms']:.2f} ms; ITL error p50 {r['itl_err_p50_ms']:.2f} / |p99| "
            f"{r['itl_err_p99_abs_ms']:.2f} ms; delivery delay p50 {r['delivery_p50_ms']:.2f} / "
            f"p99 {r['delivery_p99_ms']:.2f} ms; success {100 * r['success']:.0f}%"
        )


if __name__ == "__main__":
    main()
