"""How good is the comparator? Simulated sessions through the library's own vectorised code.

For n runs per side and a run-to-run CoV, lognormal noise:
- false alarms: 20 cases per session, no true change anywhere; the share of sessions with at
  least one REGRESSION after Holm (family-wise error rate) must stay <= alpha;
- power: a true 10% throughput drop, judged alone (m=1) and as 1 of 20 cases under Holm;
- the share of unchanged cases the tool can positively call NO CHANGE (5% tolerance).

Run: python benchmarks/comparator_quality.py [--sessions 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from pytest_llmperf.verdicts.compare import decide, holm, log_welch, min_detectable_log_change

ALPHA = 0.05
TOLERANCE = 0.05
CASES = 20
DROP = 0.90  # current/baseline for the true regression
NS = (3, 5, 10)
COVS = (0.01, 0.05, 0.15, 0.50)
REGRESSION, NO_CHANGE = 0, 1  # codes of compare.decide


def verdicts(baseline: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Verdict codes, shape (sessions, cases), Holm across the cases of each session."""
    w = log_welch(baseline, current, alpha=ALPHA)
    return decide(
        w.log_ratio,
        w.ci_low,
        w.ci_high,
        holm(w.p_less),  # throughput: harmful = lower
        holm(w.p_greater),
        higher_is_better=True,
        tolerance=TOLERANCE,
        alpha=ALPHA,
    )


def simulate(n: int, cov: float, sessions: int, rng: np.random.Generator) -> dict[str, float]:
    sigma = math.sqrt(math.log1p(cov * cov))  # lognormal with this CoV

    def draw(cases: int) -> np.ndarray:
        return np.exp(rng.normal(0.0, sigma, (sessions, cases, n)))

    null = verdicts(draw(CASES), draw(CASES))
    single = verdicts(draw(1), DROP * draw(1))
    mixed_current = draw(CASES)
    mixed_current[:, 0, :] *= DROP
    mixed = verdicts(draw(CASES), mixed_current)
    return {
        "fwer": float((null == REGRESSION).any(axis=1).mean()),
        "per_case": float((null == REGRESSION).mean()),
        "no_change": float((null == NO_CHANGE).mean()),
        "power_1": float((single[:, 0] == REGRESSION).mean()),
        "power_20": float((mixed[:, 0] == REGRESSION).mean()),
        "mdc": math.expm1(min_detectable_log_change(sigma, n, n, ALPHA)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(
        f"{args.sessions} simulated sessions per row, {CASES} cases per session, alpha={ALPHA}, "
        f"tolerance ±{TOLERANCE:.0%}, true drop {1 - DROP:.0%}, lognormal noise, Holm"
    )
    header = (
        f"{'n':>3} {'CoV':>5} | {'FWER':>6} {'per-case':>8} {'NO CHANGE':>9} | "
        f"{'power m=1':>9} {'power 1/20':>10} | {'min detectable':>14}"
    )
    print(header)
    print("-" * len(header))
    results: dict[tuple[int, float], dict[str, float]] = {}
    for n in NS:
        for cov in COVS:
            r = results[(n, cov)] = simulate(n, cov, args.sessions, rng)
            print(
                f"{n:>3} {cov:>5.0%} | {r['fwer']:>6.3f} {r['per_case']:>8.4f} "
                f"{r['no_change']:>9.3f} | {r['power_1']:>9.3f} {r['power_20']:>10.3f} | "
                f"{r['mdc']:>14.1%}"
            )
    worst = max(results.items(), key=lambda kv: kv[1]["fwer"])
    key = results[(5, 0.05)]
    se = math.sqrt(ALPHA * (1 - ALPHA) / args.sessions)
    print()
    print(
        "FWER: share of sessions with >= 1 false REGRESSION; per-case: share of false "
        "REGRESSION verdicts; NO CHANGE: share of unchanged cases proven inside the tolerance; "
        "power m=1: a lone 10% drop; power 1/20: the drop as 1 of 20 Holm-corrected cases; "
        "min detectable: 80%-power change, one-sided, before correction."
    )
    print(f"elapsed {time.perf_counter() - start:.1f} s")
    fwer_ok = worst[1]["fwer"] <= ALPHA
    print(
        f"worst family-wise false-alarm rate: {worst[1]['fwer']:.3f} at n={worst[0][0]}, "
        f"CoV {worst[0][1]:.0%} (alpha {ALPHA}, Monte Carlo SE {se:.3f}): "
        f"{'OK' if fwer_ok else 'TOO HIGH'}"
    )
    print(
        f"power for a 10% drop at n=5, CoV 5%: {key['power_1']:.3f} alone, "
        f"{key['power_20']:.3f} as 1 of 20 Holm-corrected cases (target >= 0.8 alone): "
        f"{'OK' if key['power_1'] >= 0.8 else 'TOO LOW'}"
    )


if __name__ == "__main__":
    main()
