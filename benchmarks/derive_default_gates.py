"""Derive the shipped CPU default's gate table from several sessions of the main job.

Each argument is a ``results.json`` of one ``bash scripts/main-job.sh`` session (the built-in
default, one run per level). For every case the WORST figure across sessions is kept (lowest
throughput; for latencies the highest one-sided 95% UPPER BOUND of the p99, read from the
session's request records — what a percentile gate compares with its limit), printed as the
``DEFAULT_MEASURED`` literal of
``pytest_llmperf/config/defaults.py``, together with the spread across sessions (min/max of
output tok/s) that decides how far below the worst session a floor can sit without flaking:

    .venv/bin/python benchmarks/derive_default_gates.py /tmp/derive/s{1,2,3}/results.json

The last line is a verdict against the goal the floors serve: a 30% throughput drop (x0.70)
must fall below every floor, i.e. ``FLOOR_FRACTION * worst`` must exceed ``0.70 * best`` for
each case.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FIELDS = ("total_token_throughput", "output_throughput", "p99_ttft_ms", "p99_itl_ms", "p99_e2el_ms")
DROP = 0.70


def p99_upper_bounds(records: Path) -> dict[str, float]:
    """The 95% upper bound of each latency's p99 (ms) over one run's request records; NaN
    where there are too few samples for a bound."""
    from pytest_llmperf.core.records import RequestRecord
    from pytest_llmperf.metrics.quantile_bounds import quantile_bound
    from pytest_llmperf.metrics.summary import itl_per_token

    recs = [RequestRecord.from_json(json.loads(ln)) for ln in records.read_text().splitlines()]
    ok = [r for r in recs if r.error_kind is None and r.ttft is not None]
    samples = {
        "p99_ttft_ms": [r.ttft for r in ok],
        "p99_itl_ms": [g for r in ok for g in itl_per_token(r)],
        "p99_e2el_ms": [r.e2e for r in ok],
    }
    return {k: 1000.0 * quantile_bound(v, 0.99).upper for k, v in samples.items()}


def load(path: Path) -> dict[tuple[str, str, int], dict[str, float]]:
    out = {}
    for c in json.loads(path.read_text())["cases"]:
        runs = c.get("runs") or []
        if not runs or c.get("status") in ("ERROR", "INVALID"):
            continue
        m = runs[0]["detail"]["summary"]["metrics"]
        row = {k: float(m[k]) for k in FIELDS}
        row.update(p99_upper_bounds(path.parent / "records" / f"{c['case_id']}-run1.jsonl"))
        out[(c["model"], c["workload"], int(c["concurrency"]))] = row
    return out


def main() -> int:
    from pytest_llmperf.config.defaults import FLOOR_FRACTION

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--floor-fraction", type=float, default=FLOOR_FRACTION)
    args = ap.parse_args()
    sessions = [load(p) for p in args.results]
    keys = sorted(set().union(*sessions), key=lambda k: (k[0], k[2]))
    print(f"# {len(sessions)} sessions: {', '.join(str(p) for p in args.results)}")
    print("DEFAULT_MEASURED = {")
    caught = 0
    for key in keys:
        seen = [s[key] for s in sessions if key in s]
        if len(seen) < len(sessions):
            print(f"    {key!r}: None,  # measured in {len(seen)} of {len(sessions)} sessions")
            continue
        # lowest throughput, highest latency bound; a bound missing in any session stays NaN
        worst = [
            min(v[f] for v in seen)
            if "throughput" in f
            else (math.nan if any(math.isnan(v[f]) for v in seen) else max(v[f] for v in seen))
            for f in FIELDS
        ]
        outs = [v["output_throughput"] for v in seen]
        spread = max(outs) / min(outs) - 1
        floor = args.floor_fraction * min(outs)
        ok = DROP * max(outs) < floor
        caught += ok
        vals = ", ".join("math.nan" if math.isnan(x) else f"{x:.1f}" for x in worst)
        print(f"    {key!r}: Measured({vals}),  # out tok/s spread {spread:.1%}, x0.7 caught: {ok}")
    print("}")
    n = len(keys)
    print(
        f"floor {args.floor_fraction:.2f} x worst session: a 30% drop falls below the floor in "
        f"{caught}/{n} cases -> {'MET' if caught == n else 'NOT MET'} (goal: every case)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
