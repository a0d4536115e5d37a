"""Did performance change? Baseline runs vs current runs, judged the way statistics.md says.

The unit is the run (one value per run and metric). Welch's t-test on log values gives the ratio
current/baseline with a confidence interval; a one-sided test in the harmful direction, corrected
across the session (Holm), gates; the user's tolerance decides what change matters. Pure: no I/O.

The tolerance ``t`` is symmetric on the log scale: the "no practical change" band is the ratio
range ``[1/(1+t), 1+t]``, so a throughput metric and its reciprocal (a latency) are judged alike.

The records (``CaseComparison``, ``Verdict``, ``Outcome``) are in ``compare_records`` and the
words (each verdict's message, ``format_table``) in ``compare_text``; every name is re-exported
here. Size (about 650 lines), stated: one statistical procedure whose parts share the private
``_Stats`` record — the vectorised core (log-Welch, the moderated variance prior, Holm, power),
one comparison's verdict, and the session's correction — and the mutation tests
(``scripts/mutation.sh``, ``verdicts/compare``) score it as one module. The next seam is the
vectorised core (``log_welch``, ``fit_variance_prior``, ``holm``, ``decide``, power).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from pytest_llmperf.verdicts import compare_text as text_of
from pytest_llmperf.verdicts.compare_records import (
    CORRECTIONS,
    DEFAULT_TOLERANCE,
    DIRECTIONS,
    EXACT_TARGET,
    MAX_RUNS,
    MIN_POOL_CASES,
    POWER,
    VARIANCES,
    CaseComparison,
    Correction,
    Direction,
    Outcome,
    Variance,
    Verdict,
)
from pytest_llmperf.verdicts.compare_text import format_table

__all__ = [
    "CORRECTIONS",
    "DEFAULT_TOLERANCE",
    "DIRECTIONS",
    "EXACT_TARGET",
    "MAX_RUNS",
    "MIN_POOL_CASES",
    "POWER",
    "VARIANCES",
    "CaseComparison",
    "Correction",
    "Direction",
    "LogWelch",
    "Outcome",
    "Variance",
    "VariancePrior",
    "Verdict",
    "compare_metric",
    "compare_session",
    "decide",
    "fit_variance_prior",
    "format_table",
    "holm",
    "log_welch",
    "min_detectable_log_change",
    "moderate_stats",
    "not_comparable",
    "runs_needed",
]

# Outcome codes of the vectorised decision, in this order.
_CODES: Final[tuple[Outcome, ...]] = (
    Outcome.REGRESSION,
    Outcome.NO_CHANGE,
    Outcome.INCONCLUSIVE,
    Outcome.IMPROVEMENT,
)


# ----------------------------------------------------------------------------- vectorised core


@dataclass(frozen=True, slots=True)
class LogWelch:
    """Welch's test of log(current) - log(baseline) along the last axis (arrays broadcast)."""

    log_ratio: npt.NDArray[np.float64]
    ci_low: npt.NDArray[np.float64]  # log scale
    ci_high: npt.NDArray[np.float64]
    p_less: npt.NDArray[np.float64]  # H1: current < baseline
    p_greater: npt.NDArray[np.float64]  # H1: current > baseline


def log_welch(baseline: npt.ArrayLike, current: npt.ArrayLike, *, alpha: float = 0.05) -> LogWelch:
    """Welch's t-test on logs, samples along the last axis (>= 2 each, positive, finite).

    Values are divided by the first baseline value before the log: the result does not depend
    on the unit, and scaling both samples by a power of two leaves it bit-identical. Zero
    variance on both sides (identical values) gives an exact answer instead of NaN: a CI of
    width 0 and p = 0 or 1.
    """
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    ref = b[..., :1]
    lb = np.log(b / ref)
    lc = np.log(c / ref)
    d = lc.mean(axis=-1) - lb.mean(axis=-1)
    # Welch's statistic and Satterthwaite's degrees of freedom in closed form (what
    # scipy.stats.ttest_ind(equal_var=False) computes), with scipy.special's t distribution:
    # a session judges hundreds of comparisons, and the benchmark hundreds of thousands.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        vb = lb.var(axis=-1, ddof=1) / lb.shape[-1]
        vc = lc.var(axis=-1, ddof=1) / lc.shape[-1]
        se = np.sqrt(vb + vc)
        df = (vb + vc) ** 2 / (vb**2 / (lb.shape[-1] - 1) + vc**2 / (lc.shape[-1] - 1))
        t = d / se
        p_less = special.stdtr(df, t)
        p_greater = special.stdtr(df, -t)
        q = special.stdtrit(df, 1.0 - alpha) * se
    exact = (lb.var(axis=-1) == 0) & (lc.var(axis=-1) == 0)
    return LogWelch(
        log_ratio=d,
        ci_low=np.where(exact, d, d - q),
        ci_high=np.where(exact, d, d + q),
        p_less=np.where(exact, np.where(d < 0, 0.0, 1.0), p_less),
        p_greater=np.where(exact, np.where(d > 0, 0.0, 1.0), p_greater),
    )


@dataclass(frozen=True, slots=True)
class VariancePrior:
    """Smyth's (2004) empirical-Bayes prior for the run-to-run log variance of one metric across
    the cases of a session (limma's ``fitFDist``, no covariate).

    Each case's variance is shrunk towards ``s0_sq`` with the weight of ``d0`` prior degrees of
    freedom, so its test has ``d0 + n_b + n_c - 2`` degrees of freedom instead of
    ``n_b + n_c - 2``. ``d0`` is estimated from how much the cases' variances disagree beyond
    what sampling explains: ``inf`` when they agree (one shared variance), small when they do
    not (each case keeps close to its own variance). Pooling naively would let one noisy case's
    variance hide in nineteen quiet ones and raise false alarms; the moderated t does not."""

    d0: float
    s0_sq: float
    cases: int

    def posterior(self, s2: float, df: float) -> tuple[float, float]:
        """The moderated variance of a case with sample variance ``s2`` on ``df`` degrees of
        freedom, and the degrees of freedom of its test."""
        if math.isinf(self.d0):
            return self.s0_sq, math.inf
        return (self.d0 * self.s0_sq + df * s2) / (self.d0 + df), self.d0 + df

    def describe(self) -> str:
        d0 = "inf" if math.isinf(self.d0) else f"{self.d0:.1f}"
        return f"variance moderated across {self.cases} cases, prior df {d0}"


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (Newton's method, as limma's ``trigammaInverse``)."""
    if x > 1e7:
        return 1.0 / math.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1.0 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def fit_variance_prior(
    variances: Sequence[float] | npt.ArrayLike, dfs: Sequence[float] | npt.ArrayLike
) -> VariancePrior | None:
    """The prior from the sample log variances of one metric's cases and their degrees of
    freedom (method of moments on log variances); None with fewer than ``MIN_POOL_CASES``
    usable (positive, finite) variances."""
    s2 = np.asarray(variances, dtype=np.float64)
    d = np.asarray(dfs, dtype=np.float64)
    ok = np.isfinite(s2) & (s2 > 0) & (d > 0)
    s2, d = s2[ok], d[ok]
    if s2.size < MIN_POOL_CASES:
        return None
    e = np.log(s2) - special.digamma(d / 2.0) + np.log(d / 2.0)
    e_mean = float(e.mean())
    e_var = float(e.var(ddof=1) - np.mean(special.polygamma(1, d / 2.0)))
    if e_var <= 0.0:
        return VariancePrior(math.inf, math.exp(e_mean), int(s2.size))
    d0 = 2.0 * _trigamma_inverse(e_var)
    s0_sq = math.exp(e_mean + float(special.digamma(d0 / 2.0)) - math.log(d0 / 2.0))
    return VariancePrior(d0, s0_sq, int(s2.size))


def holm(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm step-down adjusted p-values along the last axis: family-wise error <= alpha under
    any dependence between the cases, and uniformly more powerful than Bonferroni."""
    arr = np.asarray(p, dtype=np.float64)
    m = arr.shape[-1]
    if m == 0:
        return arr.copy()
    order = np.argsort(arr, axis=-1, kind="stable")
    ranked = np.take_along_axis(arr, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def decide(
    log_ratio: npt.ArrayLike,
    ci_low: npt.ArrayLike,
    ci_high: npt.ArrayLike,
    p_harm: npt.ArrayLike,
    p_better: npt.ArrayLike,
    *,
    higher_is_better: bool,
    tolerance: float,
    alpha: float,
) -> npt.NDArray[np.int64]:
    """The verdict rule on (adjusted) statistics, vectorised: an index into ``_CODES``.

    REGRESSION needs both statistical (p <= alpha) and practical (estimate beyond the
    tolerance) significance; NO CHANGE needs the whole CI inside the tolerance band.
    """
    sign = 1.0 if higher_is_better else -1.0
    band = math.log1p(tolerance)
    g = sign * np.asarray(log_ratio, dtype=np.float64)  # > 0 is better
    lo = np.minimum(sign * np.asarray(ci_low), sign * np.asarray(ci_high))
    hi = np.maximum(sign * np.asarray(ci_low), sign * np.asarray(ci_high))
    regression = (np.asarray(p_harm) <= alpha) & (g < -band)
    improvement = (np.asarray(p_better) <= alpha) & (g > band)
    no_change = (lo >= -band) & (hi <= band)
    return np.select([regression, improvement, no_change], [0, 3, 1], default=2)


@lru_cache(maxsize=16)
def _detect_factor(alpha: float) -> npt.NDArray[np.float64]:
    """k(n) with  detectable log change = k(n) · sd  for n runs per side (index n, n >= 2)."""
    n = np.arange(2, MAX_RUNS + 1, dtype=np.float64)
    df = 2.0 * n - 2.0
    k = (stats.t.ppf(1.0 - alpha, df) + stats.t.ppf(POWER, df)) * np.sqrt(2.0 / n)
    return np.concatenate(([np.inf, np.inf], k))


def min_detectable_log_change(
    sd: float, n_baseline: int, n_current: int, alpha: float, df: float | None = None
) -> float:
    """Smallest true log change a one-sided test detects with 80% power (normal planning
    formula with t quantiles): about 1.74·CoV at n = 5 per side, 1.16·CoV at n = 10.
    ``df`` overrides the test's degrees of freedom (a moderated variance has more)."""
    df = n_baseline + n_current - 2 if df is None else df
    k = stats.t.ppf(1.0 - alpha, df) + stats.t.ppf(POWER, df)
    return float(k * sd * math.sqrt(1.0 / n_baseline + 1.0 / n_current))


def runs_needed(sd: float, tolerance: float, alpha: float) -> int | None:
    """Runs per side to detect a change of ``tolerance`` with 80% power; None if > MAX_RUNS."""
    if sd == 0.0:
        return 2
    ok = np.nonzero(_detect_factor(alpha) * sd <= math.log1p(tolerance))[0]
    return int(ok[0]) if ok.size else None


# ----------------------------------------------------------------------------- one comparison


@dataclass(frozen=True, slots=True)
class _Stats:
    """Everything about one comparison that does not depend on the other comparisons."""

    case: CaseComparison
    alpha: float
    ratio: float | None
    log_ci: tuple[float, float] | None
    p_less: float | None
    p_greater: float | None
    cov_b: float | None
    cov_c: float | None
    log_sd: float | None  # pooled sd of the logs, for power planning
    exact_failures: int = 0
    df: float | None = None  # degrees of freedom of the test (None: Welch's own)
    prior: VariancePrior | None = None  # set when the variance was moderated across cases

    @property
    def p_harm(self) -> float:
        p = self.p_less if self.case.direction == "higher" else self.p_greater
        assert p is not None
        return p

    @property
    def p_better(self) -> float:
        p = self.p_greater if self.case.direction == "higher" else self.p_less
        assert p is not None
        return p


def _cov(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.std(ddof=1) / arr.mean())


def _check(case: CaseComparison, alpha: float) -> None:
    if case.direction not in DIRECTIONS:
        raise ValueError(
            f"{case.metric}: direction {case.direction!r} is not one of {', '.join(DIRECTIONS)}"
        )
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha={alpha} must be between 0 and 0.5 (0.05 is usual)")
    if not (math.isfinite(case.tolerance) and case.tolerance >= 0.0):
        raise ValueError(f"{case.metric}: tolerance {case.tolerance} must be a fraction >= 0")
    if not case.current or (not case.baseline and case.direction != "exact"):
        raise ValueError(
            f"{case.metric}: needs at least one run on each side "
            f"(baseline {len(case.baseline)}, current {len(case.current)})"
        )
    if case.direction == "exact":
        return
    for side, values in (("baseline", case.baseline), ("current", case.current)):
        bad = [v for v in values if not (math.isfinite(v) and v > 0.0)]
        if bad:
            raise ValueError(
                f"{case.metric}: a ratio comparison needs positive finite values; "
                f"the {side} runs have {bad[:3]}"
            )


def _stats(case: CaseComparison, alpha: float) -> _Stats:
    _check(case, alpha)
    b, c = case.baseline, case.current
    if case.direction == "exact":
        failures = sum(1 for v in c if v != EXACT_TARGET)
        mean_b = float(np.mean(b)) if b else None
        ratio = float(np.mean(c)) / mean_b if mean_b else None
        return _Stats(case, alpha, ratio, None, None, None, _cov(b), _cov(c), None, failures)
    lb, lc = np.log(np.asarray(b, dtype=np.float64)), np.log(np.asarray(c, dtype=np.float64))
    ratio = math.exp(float(lc.mean() - lb.mean()))
    parts = [x for x in (lb, lc) if x.size >= 2]
    dof = sum(x.size - 1 for x in parts)
    log_sd = (
        math.sqrt(sum(float(x.var(ddof=1)) * (x.size - 1) for x in parts) / dof) if dof else None
    )
    if len(b) < 2 or len(c) < 2:
        return _Stats(case, alpha, ratio, None, None, None, _cov(b), _cov(c), log_sd)
    w = log_welch(b, c, alpha=alpha)
    return _Stats(
        case,
        alpha,
        float(np.exp(w.log_ratio)),
        (float(w.ci_low), float(w.ci_high)),
        float(w.p_less),
        float(w.p_greater),
        _cov(b),
        _cov(c),
        log_sd,
    )


def _moderated(s: _Stats, prior: VariancePrior) -> _Stats:
    """The same comparison tested with the moderated variance (a two-sample t on logs with
    the shrunk pooled variance and ``prior.d0 + n_b + n_c - 2`` degrees of freedom)."""
    nb, nc = len(s.case.baseline), len(s.case.current)
    assert s.log_sd is not None and s.ratio is not None
    post, df = prior.posterior(s.log_sd**2, nb + nc - 2)
    se = math.sqrt(post * (1.0 / nb + 1.0 / nc))
    lr = math.log(s.ratio)
    t = lr / se
    if math.isinf(df):  # one variance shared by every case: the normal distribution
        q, p_less = float(special.ndtri(1.0 - s.alpha)), float(special.ndtr(t))
    else:
        q, p_less = float(special.stdtrit(df, 1.0 - s.alpha)), float(special.stdtr(df, t))
    return replace(
        s,
        log_ci=(lr - q * se, lr + q * se),
        p_less=p_less,
        p_greater=float(special.ndtr(-t)) if math.isinf(df) else float(special.stdtr(df, -t)),
        log_sd=math.sqrt(post),
        df=df,
        prior=prior,
    )


def moderate_stats(computed: Sequence[_Stats]) -> list[_Stats]:
    """Moderate the variances of ``computed`` per metric (see ``VariancePrior``): a metric
    with fewer than ``MIN_POOL_CASES`` usable cases keeps Welch's test. Comparisons without a
    test (one run on a side, absolute checks, identical values on both sides) are unchanged."""

    def usable(x: _Stats) -> bool:
        return (
            x.p_less is not None
            and x.case.direction != "exact"
            and x.log_sd is not None
            and x.log_sd > 0.0
        )

    groups: dict[str, list[_Stats]] = {}
    for x in computed:
        if usable(x):
            groups.setdefault(x.case.metric, []).append(x)
    priors: dict[str, VariancePrior] = {}
    for metric, group in groups.items():
        prior = fit_variance_prior(
            [x.log_sd**2 for x in group],  # type: ignore[operator]
            [len(x.case.baseline) + len(x.case.current) - 2 for x in group],
        )
        if prior is not None:
            priors[metric] = prior
    return [
        _moderated(x, priors[x.case.metric]) if usable(x) and x.case.metric in priors else x
        for x in computed
    ]


def _make(
    case: CaseComparison,
    outcome: Outcome,
    message: str,
    *,
    ratio: float | None = None,
    cov_b: float | None = None,
    cov_c: float | None = None,
    need: int | None = None,
) -> Verdict:
    """A verdict without a statistical test (absolute check, fallback, unusable input)."""
    return Verdict(
        case_id=case.case_id,
        metric=case.metric,
        direction=case.direction,
        verdict=outcome,
        ratio=ratio,
        ci_low=None,
        ci_high=None,
        p=None,
        p_adj=None,
        cov_baseline=cov_b,
        cov_current=cov_c,
        n_baseline=len(case.baseline),
        n_current=len(case.current),
        tolerance=case.tolerance,
        min_detectable_change=None,
        runs_needed=need,
        message=message,
    )


def _verdict(s: _Stats, p_adj: float | None, p_better_adj: float | None, label: str) -> Verdict:
    """Apply the rule to one comparison's statistics and (adjusted) p-values; write the message
    (``compare_text``)."""
    case, alpha = s.case, s.alpha
    nb, nc = len(case.baseline), len(case.current)
    mdc = None
    if s.log_sd is not None and nb >= 2 and nc >= 2:
        mdc = math.expm1(min_detectable_log_change(s.log_sd, nb, nc, alpha, s.df))
    if s.prior is not None:
        label = f"{label}; {s.prior.describe()}"
    need = runs_needed(s.log_sd, case.tolerance, alpha) if s.log_sd is not None else None
    if case.direction == "exact":
        text = text_of.exact_message(case.metric, s.exact_failures, case.current, case.baseline)
        outcome = Outcome.REGRESSION if s.exact_failures else Outcome.NO_CHANGE
        return _make(case, outcome, text, ratio=s.ratio, cov_b=s.cov_b, cov_c=s.cov_c)
    assert s.ratio is not None
    if s.log_ci is None:
        return _one_run_verdict(s, need)
    return _tested_verdict(s, p_adj, p_better_adj, label, mdc, need)


def _one_run_verdict(s: _Stats, need: int | None) -> Verdict:
    """One run on a side: no test, the tolerance alone decides."""
    case = s.case
    assert s.ratio is not None
    g = math.log(s.ratio) * (1 if case.direction == "higher" else -1)
    outcome = Outcome.NO_CHANGE
    if abs(g) > math.log1p(case.tolerance):
        outcome = Outcome.REGRESSION if g < 0 else Outcome.IMPROVEMENT
    covs = text_of.spread(s.cov_b, s.cov_c, len(case.baseline), len(case.current))
    head = text_of.ratio_head(case.metric, s.ratio)
    text = text_of.one_run_message(head, covs, case.tolerance, need)
    return _make(case, outcome, text, ratio=s.ratio, cov_b=s.cov_b, cov_c=s.cov_c, need=need)


def _decide_one(s: _Stats, p_adj: float, p_better_adj: float) -> Outcome:
    """``decide`` for one tested comparison."""
    assert s.ratio is not None and s.log_ci is not None
    code = decide(
        math.log(s.ratio),
        s.log_ci[0],
        s.log_ci[1],
        p_adj,
        p_better_adj,
        higher_is_better=s.case.direction == "higher",
        tolerance=s.case.tolerance,
        alpha=s.alpha,
    )
    return _CODES[int(code)]


def _tested_verdict(
    s: _Stats,
    p_adj: float | None,
    p_better_adj: float | None,
    label: str,
    mdc: float | None,
    need: int | None,
) -> Verdict:
    """A tested comparison: the decision rule on the CI and the adjusted p-values."""
    case, alpha, tol = s.case, s.alpha, s.case.tolerance
    assert s.ratio is not None and s.log_ci is not None
    nb, nc = len(case.baseline), len(case.current)
    ci = (math.exp(s.log_ci[0]), math.exp(s.log_ci[1]))
    p_harm, p_better = s.p_harm, s.p_better
    p_adj = p_harm if p_adj is None else p_adj
    p_better_adj = p_better if p_better_adj is None else p_better_adj
    outcome = _decide_one(s, p_adj, p_better_adj)
    level = round((1.0 - 2.0 * alpha) * 100)
    figures = (
        f"{text_of.ratio_head(case.metric, s.ratio)}, {level}% CI {ci[0]:.3f}-{ci[1]:.3f}), "
        f"p={p_harm:.3g}, p_adj={p_adj:.3g} ({label}), "
        f"{text_of.spread(s.cov_b, s.cov_c, nb, nc)}"
    )
    text = text_of.tested_message(
        outcome,
        figures=figures,
        zero_variance=nb >= 2 and nc >= 2 and s.cov_b == 0 and s.cov_c == 0,
        tolerance=tol,
        alpha=alpha,
        p_better_adj=p_better_adj,
        detectable=mdc,
        need=need,
        fewest_runs=min(nb, nc),
    )
    return Verdict(
        case_id=case.case_id,
        metric=case.metric,
        direction=case.direction,
        verdict=outcome,
        ratio=s.ratio,
        ci_low=ci[0],
        ci_high=ci[1],
        p=p_harm,
        p_adj=p_adj,
        cov_baseline=s.cov_b,
        cov_current=s.cov_c,
        n_baseline=nb,
        n_current=nc,
        tolerance=tol,
        min_detectable_change=mdc,
        runs_needed=need,
        message=text,
        p_improvement=p_better,
        p_improvement_adj=p_better_adj,
    )


def compare_metric(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    direction: Direction,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = 0.05,
    case_id: str = "",
    metric: str = "",
) -> Verdict:
    """One comparison, no multiple-comparison correction (``p_adj == p``). Raises ValueError
    on values a ratio cannot use (zero, negative, NaN) or on bad parameters."""
    b, c = tuple(map(float, baseline)), tuple(map(float, current))
    case = CaseComparison(case_id, metric, direction, b, c, tolerance)
    return _verdict(_stats(case, alpha), None, None, "uncorrected")


def not_comparable(case_id: str, metric: str, direction: Direction, reason: str) -> Verdict:
    """A verdict for a comparison that must not be made (different hardware, missing data)."""
    return _make(
        CaseComparison(case_id, metric, direction, (), (), 0.0), Outcome.NOT_COMPARABLE, reason
    )


def _adjust(p: list[float], correction: Correction, family_size: int | None = None) -> list[float]:
    """Adjusted p-values. Bonferroni multiplies by ``family_size`` (>= len(p)), the number of
    tests in the whole family when only some are known yet: Holm's first step, valid for a gate
    run inside one test item before the session's other cases exist."""
    if not p:
        return []
    if correction == "bonferroni":
        m = max(len(p), family_size or 0)
        return [min(1.0, float(x) * m) for x in p]
    if correction == "holm":
        return [float(x) for x in holm(p)]
    return [float(x) for x in stats.false_discovery_control(p, method="bh")]


def compare_session(
    cases: Sequence[CaseComparison],
    alpha: float = 0.05,
    correction: Correction = "holm",
    *,
    family_size: int | None = None,
    variance: Variance = "welch",
) -> list[Verdict]:
    """Every comparison of a session, corrected together: Holm (family-wise error <= alpha) for
    a gate, ``correction="bh"`` (false discovery rate) for a report. Comparisons whose values
    cannot be used become INCONCLUSIVE with the reason, instead of failing the whole session.

    ``family_size`` is the number of tests in the whole family when only some are given now
    (a gate run per test item, before later cases ran); ``"bonferroni"`` with it is the valid
    in-item gate, Holm over everything at the session's end the more powerful report.

    ``variance="moderated"`` shares what the cases say about one metric's run-to-run noise
    (``VariancePrior``): at n = 5 per side in a 20-case suite that is the difference between
    4 and up to 160 degrees of freedom per test (see benchmarks/comparator_quality.py)."""
    if variance not in VARIANCES:
        raise ValueError(f"variance {variance!r} must be one of {', '.join(VARIANCES)}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r} must be one of {', '.join(CORRECTIONS)}")
    if family_size is not None and (family_size < 1 or correction != "bonferroni"):
        raise ValueError(
            f"family_size={family_size}: only Bonferroni can count tests not seen yet "
            "(correction='bonferroni', family_size >= 1)"
        )
    computed: list[_Stats | Verdict] = []
    for case in cases:
        try:
            computed.append(_stats(case, alpha))
        except ValueError as exc:
            computed.append(_make(case, Outcome.INCONCLUSIVE, str(exc)))
    if variance == "moderated":
        moderated = iter(moderate_stats([s for s in computed if isinstance(s, _Stats)]))
        computed = [next(moderated) if isinstance(s, _Stats) else s for s in computed]
    tested = [s for s in computed if isinstance(s, _Stats) and s.p_less is not None]
    harm = _adjust([s.p_harm for s in tested], correction, family_size)
    better = _adjust([s.p_better for s in tested], correction, family_size)
    adj = {id(s): (h, b) for s, h, b in zip(tested, harm, better, strict=True)}
    m = max(len(tested), family_size or 0)
    name = {"holm": "Holm", "bh": "BH", "bonferroni": "Bonferroni"}[correction]
    label = f"{name}, {m} tests" if m == len(tested) else f"{name}, m={m}"
    out: list[Verdict] = []
    for s in computed:
        if isinstance(s, Verdict):
            out.append(s)
        else:
            pa, pb = adj.get(id(s), (None, None))
            out.append(_verdict(s, pa, pb, label))
    return out
