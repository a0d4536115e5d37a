"""How well the history's change-point detection (Apache Otava's E-divisive + t-test merge, as
``pytest_llmperf.history`` calls it) finds known shifts in synthetic nightly series, and what the
drift guard adds over a pairwise comparison.

Each series: NIGHTS nights of RUNS runs, every run normal with the given CoV around the night's
level. Scenarios: no change; a step of 3%, 5% or 10% (worse) at night STEP_AT; a slow drift of
2% a night for 5 nights from STEP_AT (-9.6% in all). A change point within +-1 night of the true
change (for the drift: anywhere from the night before it starts to the night after it ends) is a
hit; a series without one is a miss; every other change point is a false alarm.

The guard part replays the cumulative-erosion case: a blessed baseline (RUNS runs), 10 flat
nights, 2% a night for 5 nights, 10 flat nights; tonight is the last. It prints how often
tonight's pairwise comparison with the baseline (the plugin's log-Welch comparator, 5%
tolerance) says REGRESSION, how often the drift guard fails the case, and the guard's false
alarms on flat 26-point histories. At high CoV a 5-vs-5 comparison cannot see -9.6%; 25 nights
can.

    python benchmarks/changepoint_quality.py [--reps 200] [--seed 1]

Goals (the verdict at the end): 10% steps found in >= 95% of series at every CoV; 5% steps in
>= 80% at CoV <= 3%; the 2%/night drift in >= 90% at every CoV; at most 0.10 false alarms per
40-night series without a change; the guard catches >= 80% of the erosion cases at every CoV up
to 10%, with <= 5% false alarms on flat histories.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from pytest_llmperf.history.changepoints import Point, detect
from pytest_llmperf.history.drift import check_drift

NIGHTS, RUNS, STEP_AT = 40, 5, 20
COVS = (0.02, 0.03, 0.05)
SCENARIOS = (("none", 0.0), ("step", 0.03), ("step", 0.05), ("step", 0.10), ("drift", 0.02))


def levels(kind: str, size: float, nights: int = NIGHTS, at: int = STEP_AT) -> np.ndarray:
    lvl = np.ones(nights)
    if kind == "step":
        lvl[at:] = 1 - size
    elif kind == "drift":
        for i in range(nights):
            lvl[i] = (1 - size) ** min(max(i - at + 1, 0), 5)
    return lvl * 1000.0


def points(rng: np.random.Generator, lvl: np.ndarray, cov: float) -> list[Point]:
    return [
        Point(i, f"2026-01-{1 + i // 28:02d}T{i % 24:02d}:00:00Z", f"c{i:03d}",
              tuple(rng.normal(m, m * cov, RUNS)))
        for i, m in enumerate(lvl)
    ]  # fmt: skip


def score(rng: np.random.Generator, kind: str, size: float, cov: float, reps: int) -> tuple:
    lo, hi = (STEP_AT - 1, STEP_AT + 1) if kind == "step" else (STEP_AT - 1, STEP_AT + 5)
    hits = false = 0
    for _ in range(reps):
        cps = detect(points(rng, levels(kind, size), cov), "higher")
        near = [c for c in cps if kind != "none" and lo <= c.index <= hi]
        hits += bool(near)
        false += len(cps) - len(near)
    return hits / reps, 1 - hits / reps, false / reps


GUARD_COVS = (0.03, 0.05, 0.10)


def erosion_levels(erosion: bool) -> np.ndarray:
    """Baseline, 10 flat nights, 2% a night for 5 nights (-9.6%), 10 flat nights (tonight is
    the last): 26 points. Flat: 26 points at one level."""
    if not erosion:
        return np.full(26, 1000.0)
    return np.r_[np.ones(11), [0.98**i for i in range(1, 6)], np.full(10, 0.98**5)] * 1000.0


def guard(rng: np.random.Generator, cov: float, reps: int, erosion: bool) -> tuple[float, float]:
    """(share of tonight's pairwise comparisons with the baseline that say REGRESSION, share of
    drift-guard failures)."""
    from pytest_llmperf.verdicts.compare import Outcome, compare_metric

    pair = fired = 0
    lvl = erosion_levels(erosion)
    for _ in range(reps):
        pts = points(rng, lvl, cov)
        v = compare_metric(pts[0].values, pts[-1].values, direction="higher", tolerance=0.05)
        pair += v.verdict is Outcome.REGRESSION
        fired += check_drift("case", "total_token_throughput", "higher", pts).failed
    return pair / reps, fired / reps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    print(f"{NIGHTS} nights x {RUNS} runs, change at night {STEP_AT}, {args.reps} series per row")
    print(f"{'CoV':>4} {'scenario':<14} {'hits':>6} {'misses':>7} {'false alarms/series':>20}")
    table: dict[tuple[float, str, float], tuple] = {}
    for cov in COVS:
        for kind, size in SCENARIOS:
            h, m, f = score(rng, kind, size, cov, args.reps)
            table[(cov, kind, size)] = (h, m, f)
            name = (
                "no change"
                if kind == "none"
                else f"{kind} {size:.0%}" + ("/night" if kind == "drift" else "")
            )
            print(f"{cov:>4.0%} {name:<14} {h if kind != 'none' else float('nan'):>6.2f} "
                  f"{m if kind != 'none' else float('nan'):>7.2f} {f:>20.3f}")  # fmt: skip
    print("\ndrift guard: baseline, 10 flat nights, 2%/night for 5 nights, 10 flat; tonight last")
    print(
        f"{'CoV':>4} {'pairwise REGRESSION':>20} {'guard fails':>12}"
        f" {'guard false alarms (flat)':>26}"
    )
    guard_rows = {}
    for cov in GUARD_COVS:
        pair, fired = guard(rng, cov, args.reps, erosion=True)
        _, false = guard(rng, cov, args.reps, erosion=False)
        guard_rows[cov] = (pair, fired, false)
        print(f"{cov:>4.0%} {pair:>20.2f} {fired:>12.2f} {false:>26.3f}")
    goals = []
    goals.append(
        (
            "10% steps found >= 0.95 at every CoV",
            min(table[(c, "step", 0.10)][0] for c in COVS) >= 0.95,
        )
    )
    goals.append(
        (
            "5% steps found >= 0.80 at CoV <= 3%",
            min(table[(c, "step", 0.05)][0] for c in COVS if c <= 0.03) >= 0.80,
        )
    )
    goals.append(
        (
            "2%/night drift found >= 0.90 at every CoV",
            min(table[(c, "drift", 0.02)][0] for c in COVS) >= 0.90,
        )
    )
    goals.append(
        (
            "false alarms <= 0.10 per series without change",
            max(table[(c, "none", 0.0)][2] for c in COVS) <= 0.10,
        )
    )
    goals.append(
        (
            "guard catches the erosion >= 0.80 at every CoV up to 10%",
            min(guard_rows[c][1] for c in GUARD_COVS) >= 0.80,
        )
    )
    worst_flat = max(guard_rows[c][2] for c in GUARD_COVS)
    goals.append(("guard false alarms <= 0.05 on flat histories", worst_flat <= 0.05))
    print()
    for text, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
