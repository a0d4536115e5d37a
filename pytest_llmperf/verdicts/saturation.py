"""Where a model stops scaling (the study's per-level status rules) and multi-run statistics.

Pure: plain numbers in, frozen records out. scipy is imported only inside ``metric_stats`` so
importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

LevelStatus = Literal["OK", "SATURATED", "DEGRADED", "FAILING"]

#: The study's thresholds: a level must add 5% throughput, keep p99 within 2x the baseline's,
#: and succeed on at least 95% of requests.
SATURATION_GAIN: Final[float] = 1.05
DEGRADATION_FACTOR: Final[float] = 2.0
MIN_SUCCESS: Final[float] = 0.95
#: Most severe first: the status of a level that breaks several rules.
SEVERITY: Final[tuple[LevelStatus, ...]] = ("FAILING", "DEGRADED", "SATURATED", "OK")


@dataclass(frozen=True)
class LevelPoint:
    """One concurrency level's figures (means over runs when there are several)."""

    concurrency: int
    throughput: float  # tok/s, total unless the caller chose otherwise
    p99_ms: float
    success_rate: float  # 0..1


@dataclass(frozen=True)
class LevelVerdict:
    """A level's status and every rule it broke; ``gain`` is throughput / previous level's."""

    concurrency: int
    throughput: float
    p99_ms: float
    success_rate: float
    status: LevelStatus
    reasons: tuple[str, ...]
    gain: float | None
    #: Every rule the level broke, most severe first (``status`` is only the first of them).
    broken: tuple[LevelStatus, ...] = ()


@dataclass(frozen=True)
class SaturationResult:
    """A model/workload series: per-level verdicts in concurrency order, and the peak.

    ``peak_*`` ignore FAILING levels (their throughput is not a capacity); ``None`` when every
    level failed. ``saturated_at`` is the first level that broke the SATURATED rule, whatever
    worse status it also has (a level both saturated and degraded counts); ``knee`` is the
    level before it, the last one whose throughput still grew.
    """

    levels: tuple[LevelVerdict, ...]
    peak_throughput: float | None
    peak_concurrency: int | None
    saturated_at: int | None
    baseline_p99_ms: float
    knee: int | None = None


def classify_levels(
    points: Iterable[LevelPoint],
    *,
    baseline_p99_ms: float | None = None,
    saturation_gain: float = SATURATION_GAIN,
    degradation_factor: float = DEGRADATION_FACTOR,
    min_success: float = MIN_SUCCESS,
) -> SaturationResult:
    """Apply the study's rules level by level, in concurrency order.

    The p99 baseline is ``baseline_p99_ms`` if given, else the lowest level's p99 (c=1 when it
    was measured). SATURATED compares with the level just before, as the study did.
    """
    pts = sorted(points, key=lambda p: p.concurrency)
    if not pts:
        raise ValueError("no levels to classify: measure at least one concurrency level")
    if len({p.concurrency for p in pts}) != len(pts):
        raise ValueError("each concurrency level must appear once; average repeated runs first")
    base = pts[0].p99_ms if baseline_p99_ms is None else baseline_p99_ms
    verdicts: list[LevelVerdict] = []
    prev: LevelPoint | None = None
    for p in pts:
        verdicts.append(
            _level_verdict(p, prev, base, saturation_gain, degradation_factor, min_success)
        )
        prev = p
    usable = [v for v in verdicts if v.status != "FAILING" and not math.isnan(v.throughput)]
    first = next((i for i, v in enumerate(verdicts) if "SATURATED" in v.broken), None)
    saturated_at = None if first is None else verdicts[first].concurrency
    knee = None if not first else verdicts[first - 1].concurrency
    peak = max(usable, key=lambda v: (v.throughput, -v.concurrency), default=None)
    return SaturationResult(
        levels=tuple(verdicts),
        peak_throughput=None if peak is None else peak.throughput,
        peak_concurrency=None if peak is None else peak.concurrency,
        saturated_at=saturated_at,
        baseline_p99_ms=base,
        knee=knee,
    )


def _level_verdict(
    p: LevelPoint,
    prev: LevelPoint | None,
    base: float,
    saturation_gain: float,
    degradation_factor: float,
    min_success: float,
) -> LevelVerdict:
    """One level's verdict: every rule it breaks (with its reason, most severe first) against
    the p99 baseline ``base`` and the level just before (``prev``, None for the first)."""
    reasons: dict[LevelStatus, str] = {}
    if not p.success_rate >= min_success:
        reasons["FAILING"] = f"success {p.success_rate * 100:.1f}% < {min_success * 100:.0f}%"
    if base > 0 and p.p99_ms > degradation_factor * base:
        reasons["DEGRADED"] = (
            f"p99 {p.p99_ms:,.0f} ms > {degradation_factor:g}x baseline {base:,.0f} ms"
        )
    gain = None
    if prev is not None and prev.throughput > 0:
        gain = p.throughput / prev.throughput
        if gain < saturation_gain:
            reasons["SATURATED"] = (
                f"throughput x{gain:.3f} of c={prev.concurrency} < x{saturation_gain:g}"
            )
    status = next((s for s in SEVERITY if s in reasons), "OK")
    return LevelVerdict(
        p.concurrency,
        p.throughput,
        p.p99_ms,
        p.success_rate,
        status,
        tuple(reasons[s] for s in SEVERITY if s in reasons),
        gain,
        tuple(s for s in SEVERITY if s in reasons),
    )


def level_point(
    concurrency: int,
    metrics: Mapping[str, float],
    *,
    throughput_metric: str = "total_token_throughput",
    latency_metric: str = "p99_e2el_ms",
) -> LevelPoint:
    """A ``LevelPoint`` from a ``RunSummary.metrics()``-style mapping (the study's figures are
    total tok/s and end-to-end p99)."""
    return LevelPoint(
        concurrency,
        float(metrics[throughput_metric]),
        float(metrics[latency_metric]),
        float(metrics["success_rate"]),
    )


def classify_series(
    rows: Iterable[tuple[str, str, int, Mapping[str, float]]],
    **kwargs: object,
) -> dict[tuple[str, str], SaturationResult]:
    """Classify every (model, workload) series from ``(model, workload, concurrency,
    metrics)`` rows; ``kwargs`` go to ``level_point`` (metric names) or ``classify_levels``."""
    point_keys = {"throughput_metric", "latency_metric"}
    pk = {k: v for k, v in kwargs.items() if k in point_keys}
    ck = {k: v for k, v in kwargs.items() if k not in point_keys}
    series: dict[tuple[str, str], list[LevelPoint]] = defaultdict(list)
    for model, workload, c, metrics in rows:
        series[(model, workload)].append(level_point(c, metrics, **pk))  # type: ignore[arg-type]
    return {key: classify_levels(pts, **ck) for key, pts in series.items()}  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Multi-run statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricStats:
    """A metric over N runs: mean, sample std, Student-t confidence interval and CoV.

    With one run the spread is unknown, so ``std``, the interval and ``cov`` are NaN rather
    than a misleading 0.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    cov: float  # std / |mean|; NaN when the mean is 0
    confidence: float = 0.95

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def metric_stats(values: Sequence[float], *, confidence: float = 0.95) -> MetricStats:
    """Mean and t-interval of per-run values: runs are the statistical unit, so N is small and
    the t-distribution (not the normal) gives the honest width."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("no values: a statistic needs at least one run")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    mean = math.fsum(xs) / n
    if n == 1:
        nan = math.nan
        return MetricStats(1, mean, nan, nan, nan, nan, confidence)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    cov = std / abs(mean) if mean else math.nan
    return MetricStats(n, mean, std, mean - half, mean + half, cov, confidence)


def summarize_runs(
    runs: Sequence[Mapping[str, float]], *, confidence: float = 0.95
) -> dict[str, MetricStats]:
    """``metric_stats`` for every metric present in all runs."""
    if not runs:
        raise ValueError("no runs to summarise")
    keys = set(runs[0]).intersection(*runs[1:])
    return {k: metric_stats([r[k] for r in runs], confidence=confidence) for k in sorted(keys)}
