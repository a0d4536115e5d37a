"""Did B change against A, measured in blocks? The paired test the interleaved A/B needs.

In an interleaved A/B session each block holds one run of A and one of B with the same
prompts, back to back on the same machine state; the block, not the run, is the unit. The
test is Student's t on the per-block log ratios log(B) - log(A): what the machine did during
a block (another tenant, thermal state, slow drift) hits both sides and cancels, which a
two-sample test cannot use. Holm across the session's (case, metric) pairs; the verdict rule
(statistical and practical significance) is ``compare.decide``'s. Pure: no I/O.

``drift`` is the other question: did A's own runs move during the session (a trend of log A
over the session's time order), which says the machine was not steady even if the pairing
cancelled it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from scipy import stats

from pytest_llmperf.verdicts.compare import (
    _CODES,
    CORRECTIONS,
    DEFAULT_TOLERANCE,
    EXACT_TARGET,
    MAX_RUNS,
    POWER,
    CaseComparison,
    Correction,
    Direction,
    Outcome,
    Verdict,
    _adjust,
    _make,
    _Stats,
    decide,
)
from pytest_llmperf.verdicts.compare_text import change as _change
from pytest_llmperf.verdicts.compare_text import pct as _pct

#: Blocks a paired test needs before it is a test at all (n - 1 degrees of freedom).
MIN_BLOCKS: Final[int] = 2


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """One (case, metric) of an A/B session: ``a[i]`` and ``b[i]`` were measured in block i."""

    case_id: str
    metric: str
    direction: Direction
    a: tuple[float, ...]
    b: tuple[float, ...]
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if len(self.a) != len(self.b):
            raise ValueError(
                f"{self.case_id} {self.metric}: paired samples need one A and one B value per "
                f"block (got {len(self.a)} A and {len(self.b)} B)"
            )


@dataclass(frozen=True, slots=True)
class _Paired:
    case: PairedComparison
    log_ratio: float
    log_ci: tuple[float, float] | None
    p_less: float | None
    p_greater: float | None
    sd: float | None  # sd of the per-block log ratios

    # One-sided p-values read as a two-sample comparison reads them (one home: compare._Stats).
    p_harm = _Stats.p_harm
    p_better = _Stats.p_better


def _cov(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.std(ddof=1) / arr.mean()) if arr.mean() else None


def _valid(case: PairedComparison, alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha={alpha} must be between 0 and 0.5 (0.05 is usual)")
    if not (math.isfinite(case.tolerance) and case.tolerance >= 0.0):
        raise ValueError(f"{case.metric}: tolerance {case.tolerance} must be a fraction >= 0")
    if case.direction == "exact":
        return
    for side, values in (("A", case.a), ("B", case.b)):
        bad = [v for v in values if not (math.isfinite(v) and v > 0.0)]
        if bad:
            raise ValueError(
                f"{case.metric}: a ratio needs positive finite values; {side}'s runs have {bad[:3]}"
            )


@dataclass(frozen=True, slots=True)
class _PairedStats:
    log_ratio: float
    log_ci: tuple[float, float] | None
    p_less: float | None
    p_greater: float | None
    sd: float | None


def paired_log_test(a: Sequence[float], b: Sequence[float], alpha: float) -> _PairedStats:
    """Student's t on d = log(b) - log(a), one value per block: the mean log ratio, its
    two-sided (1 - 2·alpha) CI and both one-sided p-values. Zero spread gives an exact answer."""
    d = np.log(np.asarray(b, dtype=np.float64)) - np.log(np.asarray(a, dtype=np.float64))
    n = d.size
    mean = float(d.mean())
    if n < MIN_BLOCKS:
        return _PairedStats(mean, None, None, None, None)
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        p_less, p_greater = (0.0, 1.0) if mean < 0 else (1.0, 0.0) if mean > 0 else (1.0, 1.0)
        return _PairedStats(mean, (mean, mean), p_less, p_greater, 0.0)
    se = sd / math.sqrt(n)
    t = mean / se
    q = float(stats.t.ppf(1.0 - alpha, n - 1))
    return _PairedStats(
        mean,
        (mean - q * se, mean + q * se),
        float(stats.t.cdf(t, n - 1)),
        float(stats.t.sf(t, n - 1)),
        sd,
    )


@lru_cache(maxsize=16)
def _paired_factor(alpha: float) -> np.ndarray:
    """k(n) with  detectable log change = k(n) · sd(d)  for n blocks (index n, n >= 2)."""
    n = np.arange(2, MAX_RUNS + 1, dtype=np.float64)
    k = (stats.t.ppf(1.0 - alpha, n - 1) + stats.t.ppf(POWER, n - 1)) / np.sqrt(n)
    return np.concatenate(([np.inf, np.inf], k))


def blocks_needed(sd: float, tolerance: float, alpha: float) -> int | None:
    """Blocks for the paired test to detect a change of ``tolerance`` with 80% power."""
    if sd == 0.0:
        return MIN_BLOCKS
    ok = np.nonzero(_paired_factor(alpha) * sd <= math.log1p(tolerance))[0]
    return int(ok[0]) if ok.size else None


def min_detectable(sd: float, n: int, alpha: float) -> float:
    """Smallest true change (a fraction) the paired test detects with 80% power at n blocks."""
    return math.expm1(float(_paired_factor(alpha)[n]) * sd) if n >= MIN_BLOCKS else math.inf


def _two_sample(case: PairedComparison) -> CaseComparison:
    """The same (case, metric) as a two-sample record (A the baseline, B the current), so the
    verdicts without a test are built by ``compare._make``, their one home."""
    return CaseComparison(case.case_id, case.metric, case.direction, case.a, case.b, case.tolerance)


def _inconclusive(case: PairedComparison, message: str) -> Verdict:
    return _make(
        _two_sample(case), Outcome.INCONCLUSIVE, message, cov_b=_cov(case.a), cov_c=_cov(case.b)
    )


def _exact(case: PairedComparison) -> Verdict:
    fails = sum(1 for v in case.b if v != EXACT_TARGET)
    n = len(case.b)
    if fails:
        outcome = Outcome.REGRESSION
        text = (
            f"{case.metric} must be {EXACT_TARGET:g} in every run; B's was not in {fails} of {n} "
            f"runs (lowest {min(case.b):.4g})"
        )
        a_fails = sum(1 for v in case.a if v != EXACT_TARGET)
        if a_fails:
            text += f"; A had {a_fails} such runs too"
    else:
        outcome = Outcome.NO_CHANGE
        text = f"{case.metric} was {EXACT_TARGET:g} in all {n} runs of B (absolute check)"
    mean_a = float(np.mean(case.a)) if case.a else 0.0
    ratio = float(np.mean(case.b)) / mean_a if mean_a and case.b else None
    return _make(
        _two_sample(case), outcome, text + ".", ratio=ratio, cov_b=_cov(case.a), cov_c=_cov(case.b)
    )


def compare_paired_session(
    cases: Sequence[PairedComparison], alpha: float = 0.05, correction: Correction = "holm"
) -> list[Verdict]:
    """Every (case, metric) of an A/B session, tested paired and corrected together (Holm:
    family-wise error <= alpha, the gate). ``ratio`` is B/A (the geometric mean of the block
    ratios), ``n_baseline``/``n_current`` the blocks of A and B, ``runs_needed`` the blocks
    that would detect the tolerance. Fewer than ``MIN_BLOCKS`` blocks: INCONCLUSIVE."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r} must be one of {', '.join(CORRECTIONS)}")
    computed: list[_Paired | Verdict] = []
    for case in cases:
        try:
            _valid(case, alpha)
        except ValueError as exc:
            computed.append(_inconclusive(case, str(exc)))
            continue
        if case.direction == "exact":
            computed.append(_exact(case))
            continue
        n = len(case.a)
        if n < MIN_BLOCKS:
            computed.append(
                _inconclusive(
                    case,
                    f"{case.metric}: {n} valid block(s) of A and B; a paired test needs at "
                    f"least {MIN_BLOCKS}. Measure more runs (or fix what made runs invalid).",
                )
            )
            continue
        s = paired_log_test(case.a, case.b, alpha)
        computed.append(_Paired(case, s.log_ratio, s.log_ci, s.p_less, s.p_greater, s.sd))
    tested = [c for c in computed if isinstance(c, _Paired)]
    harm = _adjust([c.p_harm for c in tested], correction)
    better = _adjust([c.p_better for c in tested], correction)
    adj = {id(c): (h, b) for c, h, b in zip(tested, harm, better, strict=True)}
    name = {"holm": "Holm", "bh": "BH", "bonferroni": "Bonferroni"}[correction]
    label = f"{name}, {len(tested)} tests"
    out: list[Verdict] = []
    for c in computed:
        if isinstance(c, Verdict):
            out.append(c)
        else:
            out.append(_paired_verdict(c, *adj[id(c)], label, alpha))
    return out


def _paired_verdict(
    s: _Paired, p_adj: float, p_better_adj: float, label: str, alpha: float
) -> Verdict:
    case = s.case
    tol = case.tolerance
    n = len(case.a)
    higher = case.direction == "higher"
    assert s.log_ci is not None and s.sd is not None
    code = decide(
        s.log_ratio,
        s.log_ci[0],
        s.log_ci[1],
        p_adj,
        p_better_adj,
        higher_is_better=higher,
        tolerance=tol,
        alpha=alpha,
    )
    outcome = _CODES[int(code)]
    ratio = math.exp(s.log_ratio)
    ci = (math.exp(s.log_ci[0]), math.exp(s.log_ci[1]))
    mdc = min_detectable(s.sd, n, alpha)
    need = blocks_needed(s.sd, tol, alpha)
    cov_a, cov_b = _cov(case.a), _cov(case.b)
    level = round((1.0 - 2.0 * alpha) * 100)
    text = (
        f"{case.metric} B/A {_change(ratio)} (ratio {ratio:.3f}, {level}% CI "
        f"{ci[0]:.3f}-{ci[1]:.3f}), paired over {n} blocks, p={s.p_harm:.3g}, "
        f"p_adj={p_adj:.3g} ({label}), CoV A {_pct(cov_a)}, B {_pct(cov_b)}, "
        f"block-ratio sd {_pct(s.sd)}"
    )
    text += _outcome_text(outcome, tol, alpha, p_better_adj, mdc, need, n)
    return Verdict(
        case_id=case.case_id,
        metric=case.metric,
        direction=case.direction,
        verdict=outcome,
        ratio=ratio,
        ci_low=ci[0],
        ci_high=ci[1],
        p=s.p_harm,
        p_adj=p_adj,
        cov_baseline=cov_a,
        cov_current=cov_b,
        n_baseline=n,
        n_current=n,
        tolerance=tol,
        min_detectable_change=mdc,
        runs_needed=need,
        message=text + ".",
        p_improvement=s.p_better,
        p_improvement_adj=p_better_adj,
    )


def _outcome_text(
    outcome: Outcome,
    tol: float,
    alpha: float,
    p_better_adj: float,
    mdc: float,
    need: int | None,
    n: int,
) -> str:
    """The verdict's reason after its figures; an inconclusive one adds what would decide it
    (the change detectable at this n, the blocks a decision at ``tol`` needs)."""
    if outcome is Outcome.REGRESSION:
        return f": worse than the ±{_pct(tol)} tolerance and significant at alpha={alpha:g}"
    if outcome is Outcome.IMPROVEMENT:
        return (
            f": better by more than ±{_pct(tol)}, significant at alpha={alpha:g} "
            f"(p_adj={p_better_adj:.3g})"
        )
    if outcome is Outcome.NO_CHANGE:
        return f": the whole CI lies inside ±{_pct(tol)}"
    text = f": cannot tell whether it changed by more than ±{_pct(tol)}"
    if mdc > tol:
        text += f"; at this n the smallest change detectable with 80% power is {_pct(mdc)}"
    if need is not None and need > n:
        text += f"; about {need} blocks would decide ±{_pct(tol)}"
    elif need is None:
        text += f"; even {MAX_RUNS} blocks would not detect ±{_pct(tol)}"
    return text


# ----------------------------------------------------------------------------- drift


@dataclass(frozen=True, slots=True)
class Drift:
    """A's own trend over the session at one (case, metric): ``first``/``last`` are A's first
    and last valid block, ``change`` the fitted change over the session (a fraction, from a
    least-squares line through log A against the block's position in time), ``p`` its
    two-sided p-value; ``drifted`` when significant and beyond the tolerance."""

    case_id: str
    metric: str
    n: int
    first: float
    last: float
    first_to_last: float
    change: float | None
    p: float | None
    drifted: bool
    message: str


def drift(
    case_id: str,
    metric: str,
    times: Sequence[float],
    values: Sequence[float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = 0.05,
) -> Drift:
    """Did A move during the session? ``times`` orders A's valid runs (their step number or
    clock time), ``values`` are the metric. Fewer than 3 runs: reported, never a drift."""
    if len(times) != len(values) or not values:
        raise ValueError(f"{case_id} {metric}: drift needs one time per value (and a value)")
    order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
    t = np.asarray(times, dtype=np.float64)[order]
    v = np.asarray(values, dtype=np.float64)[order]
    first, last = float(v[0]), float(v[-1])
    ftl = last / first - 1.0 if first > 0 else math.nan
    if v.size < 3 or np.any(v <= 0) or float(np.ptp(t)) == 0.0:
        return Drift(
            case_id,
            metric,
            int(v.size),
            first,
            last,
            ftl,
            None,
            None,
            False,
            f"{metric}: A's first to last run {_change(ftl + 1.0) if math.isfinite(ftl) else '-'}"
            f" over {v.size} run(s); too few for a trend test",
        )
    fit = stats.linregress(t, np.log(v))
    change = math.expm1(float(fit.slope) * float(t[-1] - t[0]))
    p = float(fit.pvalue) if math.isfinite(fit.pvalue) else 1.0
    drifted = p <= alpha and abs(math.log1p(change)) > math.log1p(tolerance)
    text = (
        f"{metric}: A's own runs moved {_change(change + 1.0)} over the session (trend over "
        f"{v.size} runs, p={p:.3g}); first to last run {_change(ftl + 1.0)}"
    )
    if drifted:
        text += (
            f": DRIFT beyond ±{_pct(tolerance)}: the machine was not steady; the interleaving "
            "cancels a linear drift, but look for another tenant or thermal throttling"
        )
    return Drift(case_id, metric, int(v.size), first, last, ftl, change, p, drifted, text)
