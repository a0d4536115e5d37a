"""Power and false alarms of the baseline gate AS THE PLUGIN GATES: simulated sessions through
``BaselineSession.check`` for every case and ``BaselineSession.family_check`` at the end, the
two calls the plugin's perf items and its final ``llmperf::baseline_comparison`` item make.

Each simulated session has ``cases`` cases with ``n`` runs per side; each run's throughput (and
latency, when latencies are gated) is lognormal with the given run-to-run CoV. A session
"fails" when ``family_check`` returns a failure, exactly when pytest's exit code would be 1.

- false alarms: no true change anywhere; FWER = share of sessions that fail (must be <= alpha);
- power, one case: the first case 10% slower (output throughput x 0.9), the others unchanged;
  the share of sessions convicting THAT case;
- power, all cases: every case 10% slower; the share of cases convicted (per-case power) and
  of sessions that fail (the nightly goes red).

Run: python benchmarks/comparator_quality.py [--sessions 400] [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytest_llmperf.session.baselines import BaselineSession
from pytest_llmperf.verdicts.baseline import from_runs
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.fingerprint import Fingerprint

ALPHA = 0.05
DROP = 0.90
TARGET_POWER = 0.80
FP = Fingerprint(platform="cpu", vllm_version="0.32.0")  # environment only: no case fields
LATENCY_GATE = ("output_throughput", "p99_ttft_ms", "p99_itl_ms", "success_rate")


@dataclass(frozen=True)
class Row:
    n: int
    cov: float
    cases: int
    metrics: tuple[str, ...] = ("output_throughput", "success_rate")
    variance: str = "moderated"
    hetero: bool = False  # CoV spread log-uniformly over [cov/5, 3 cov] across the cases

    def label(self) -> str:
        gated = "tput" if len(self.metrics) == 2 else f"{len(self.metrics) - 1} stats"
        cov = f"{self.cov / 5:.0%}-{3 * self.cov:.0%}" if self.hetero else f"{self.cov:.0%}"
        return f"{self.n:>3} {cov:>7} {self.cases:>5} {gated:>8} {self.variance:>9}"


def _runs(
    rng: np.random.Generator, n: int, sigma: float, tput: float, lat: float, gated: Sequence[str]
) -> tuple[dict[str, float], ...]:
    out = []
    for _ in range(n):
        run = {"output_throughput": tput * math.exp(rng.normal(0.0, sigma)), "success_rate": 1.0}
        for name in gated:
            if name.endswith("_ms"):
                run[name] = lat * math.exp(rng.normal(0.0, sigma))
        out.append(run)
    return tuple(out)


def session(
    row: Row, rng: np.random.Generator, drops: Sequence[float], tmp: Path
) -> tuple[bool, list[bool]]:
    """One simulated pytest session: (did it fail, was each case convicted)."""
    sigmas = [math.sqrt(math.log1p(row.cov**2))] * row.cases
    if row.hetero:
        covs = np.exp(np.linspace(math.log(row.cov / 5), math.log(3 * row.cov), row.cases))
        sigmas = [math.sqrt(math.log1p(c * c)) for c in covs]
    ids = [f"case{i:03d}" for i in range(row.cases)]
    base = {
        cid: _runs(rng, row.n, sig, 1000.0, 100.0, row.metrics)
        for cid, sig in zip(ids, sigmas, strict=True)
    }
    stored = from_runs("bench", FP, base)
    s = BaselineSession(
        tmp,
        "bench",
        save=False,
        compare=True,
        metrics=row.metrics,
        report_metrics=(),
        alpha=ALPHA,
        variance=row.variance,
        expected_cases=row.cases,
    )
    for cid, sig, drop in zip(ids, sigmas, drops, strict=True):
        runs = _runs(rng, row.n, sig, 1000.0 * drop, 100.0, row.metrics)
        s.check(CaseResult(case_id=cid, model="m", workload="w", concurrency=1, runs=runs), FP,
                stored=stored)  # fmt: skip
    verdict = s.family_check()
    convicted = s.family().convicted
    return verdict.failure is not None, [cid in convicted for cid in ids]


def measure(row: Row, sessions: int, rng: np.random.Generator, tmp: Path) -> dict[str, float]:
    null = [session(row, rng, [1.0] * row.cases, tmp)[0] for _ in range(sessions)]
    one = [session(row, rng, [DROP] + [1.0] * (row.cases - 1), tmp)[1][0] for _ in range(sessions)]
    every = [session(row, rng, [DROP] * row.cases, tmp) for _ in range(sessions)]
    return {
        "fwer": float(np.mean(null)),
        "one": float(np.mean(one)),
        "all_case": float(np.mean([np.mean(c) for _, c in every])),
        "all_fail": float(np.mean([f for f, _ in every])),
    }


def rows(quick: bool) -> list[Row]:
    out = [Row(5, 0.05, 20), Row(5, 0.05, 20, variance="welch")]
    out += [Row(5, 0.05, 20, metrics=LATENCY_GATE)]
    out += [Row(n, 0.05, 20) for n in (3, 6, 7, 8, 10)]
    out += [Row(5, 0.05, 20, hetero=True), Row(5, 0.05, 20, variance="welch", hetero=True)]
    if not quick:
        out += [Row(5, cov, 20) for cov in (0.02, 0.15)]
        out += [Row(5, 0.05, cases) for cases in (1, 5, 50)]
        out += [Row(10, 0.15, 20), Row(7, 0.05, 20, metrics=LATENCY_GATE)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=400, help="simulated sessions per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="only the rows the verdict needs")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "llmperf-bench-unused"
    start = time.perf_counter()
    print(
        f"{args.sessions} simulated sessions per row and scenario, alpha={ALPHA} (family-wise), "
        f"tolerance 5%, true drop {1 - DROP:.0%}, lognormal noise; judged by "
        "BaselineSession.check + family_check (the plugin's code path)"
    )
    header = (
        f"{'n':>3} {'CoV':>7} {'cases':>5} {'gated':>8} {'variance':>9} | {'FWER':>6} | "
        f"{'power 1 case':>12} | {'all: per case':>13} {'all: fails':>10}"
    )
    print(header)
    print("-" * len(header))
    results: dict[Row, dict[str, float]] = {}
    for row in rows(args.quick):
        r = results[row] = measure(row, args.sessions, rng, tmp)
        print(
            f"{row.label()} | {r['fwer']:>6.3f} | {r['one']:>12.3f} | "
            f"{r['all_case']:>13.3f} {r['all_fail']:>10.3f}",
            flush=True,
        )
    se = math.sqrt(ALPHA * (1 - ALPHA) / args.sessions)
    print()
    print(
        "FWER: share of sessions that fail with no true change; power 1 case: share of sessions "
        "convicting the one 10%-slower case among the others; all: every case 10% slower, share "
        "of cases convicted and of sessions failing. 'tput' gates output_throughput (+ success "
        "rate, an absolute check); '3 stats' adds p99_ttft_ms and p99_itl_ms (unchanged here)."
    )
    print(f"elapsed {time.perf_counter() - start:.0f} s; Monte Carlo SE at FWER 0.05: {se:.3f}")
    key = results[Row(5, 0.05, 20)]
    worst = max(results.items(), key=lambda kv: kv[1]["fwer"] if kv[0].variance != "welch" else 0)
    ok_fwer = worst[1]["fwer"] <= ALPHA + 2 * se
    print(
        f"worst FWER of the default (moderated) gate: {worst[1]['fwer']:.3f} at "
        f"{worst[0].label().split()} (alpha {ALPHA} + 2 SE = {ALPHA + 2 * se:.3f}): "
        f"{'OK' if ok_fwer else 'TOO HIGH'}"
    )
    print(
        f"power at n=5, CoV 5%, 20 cases, default gate: all cases 10% slower -> "
        f"{key['all_case']:.3f} per case (target {TARGET_POWER}): "
        f"{'MET' if key['all_case'] >= TARGET_POWER else 'NOT MET'}; the session fails in "
        f"{key['all_fail']:.3f}"
    )
    by_n = {row.n: r["one"] for row, r in results.items() if row == Row(row.n, 0.05, 20)}
    reach = [n for n, p in sorted(by_n.items()) if p >= TARGET_POWER]
    print(
        f"power at n=5, CoV 5%, 20 cases, default gate: ONE case 10% slower -> {key['one']:.3f} "
        f"(target {TARGET_POWER}): {'MET' if key['one'] >= TARGET_POWER else 'NOT MET'}; "
        f"by n: {', '.join(f'n={n} {p:.2f}' for n, p in sorted(by_n.items()))}; "
        + (f"n >= {reach[0]} per side reaches it" if reach else "no simulated n reaches it")
    )


if __name__ == "__main__":
    main()
