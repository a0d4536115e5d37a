"""Interleaved A/B on real vLLM CPU servers: false alarms of identical variants, and drift.

Two servers of the tiny dense model with the same launch plan (only their names differ) are
started once; then ``--sessions`` A/B sessions run back to back through ``session.ab.run_ab``
(``--blocks`` valid blocks at c=16, 48 requests of 64 in / 32 out tokens per run). Goal: no
session gives REGRESSION on any metric (identical variants: NO CHANGE or INCONCLUSIVE). For
every session it prints the verdict per metric, the excluded runs and the drift the check saw
in A's own runs (first to last block and the fitted trend). Optionally (``--degraded N``) a
third session pair compares A with a server started with ``--max-num-seqs N``; goal:
REGRESSION on total throughput.

    flock /tmp/llmperf-vllm.lock .venv/bin/python benchmarks/ab_sessions.py --sessions 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from pytest_llmperf.config import parse_config
from pytest_llmperf.session.ab import run_ab
from pytest_llmperf.session.engine import EngineOptions, PerfEngine
from pytest_llmperf.verdicts.compare import Outcome

CONFIG = {
    "models": [{"name": "dense", "tiny": "dense-gqa"}],
    "workloads": [{"name": "t", "preset": "text", "input_tokens": 64, "output_tokens": 32}],
    "concurrency": [16],
    "requests_per_level": {"16": 48},
    "warmup_requests": 4,
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument(
        "--degraded", type=int, default=0, metavar="N", help="also A vs --max-num-seqs N"
    )
    args = ap.parse_args()
    cfg = parse_config(CONFIG)
    report = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    engine = PerfEngine(cfg, EngineOptions(rootdir=Path.cwd(), report_dir=report))
    case = cfg.cases()[0]
    a = dataclasses.replace(case.model, name="dense-a")
    b = dataclasses.replace(case.model, name="dense-b")
    print(f"load before: {os.getloadavg()}")
    regressions = 0
    t0 = time.time()
    try:
        for s in range(args.sessions):
            res = run_ab(engine, case, a, b, args.blocks, seed=s, requests_for=cfg.requests_for)
            bad = [v for v in res.verdicts if v.verdict is Outcome.REGRESSION]
            regressions += bool(bad)
            cells = ", ".join(
                f"{v.metric} {v.verdict}"
                + (f" {v.ratio:.3f} [{v.ci_low:.3f}, {v.ci_high:.3f}]" if v.ci_low else "")
                for v in res.verdicts
            )
            print(f"session {s + 1}: {cells}")
            print(f"  excluded runs: {len(res.excluded)}; valid blocks {len(res.a_runs[16])}")
            for d in res.drift:
                print(f"  drift {d.message}")
        if args.degraded:
            engine.release(b)
            d = dataclasses.replace(
                case.model, name="dense-seqs", extra_args=("--max-num-seqs", str(args.degraded))
            )
            res = run_ab(engine, case, a, d, args.blocks, requests_for=cfg.requests_for)
            v = res.verdict("total_token_throughput", 16)
            print(f"degraded --max-num-seqs {args.degraded}: {v.message}")
            print(
                f"  verdict {v.verdict}: {'MET' if v.verdict is Outcome.REGRESSION else 'NOT MET'}"
            )
    finally:
        engine.finish()
    print(f"wall {time.time() - t0:.0f} s; load after: {os.getloadavg()}")
    print(
        f"identical variants: {regressions} of {args.sessions} sessions with a REGRESSION "
        f"(goal 0): {'MET' if regressions == 0 else 'NOT MET'}"
    )
    return 0 if regressions == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
