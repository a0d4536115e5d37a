"""The drift guard (pure): has a case's history moved since the blessed baseline, even though
tonight's pairwise comparison passed?

The cumulative-erosion case: 2% a night stays inside every pairwise tolerance, and a 5-run
comparison at CoV 5% cannot see 8% either, but a month of nights can. The guard looks at the
series from the blessed baseline (its raw runs as the first point) to tonight, finds Otava's
change points, and fails when the level of the newest segment is worse than the level of the
first one (the baseline's) by more than the tolerance. It names the nights the shift spans:
from the last night before the first change point to the first night after the last one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pytest_llmperf.history.changepoints import MAX_PVALUE, WINDOW, ChangePoint, Point, detect

#: Fewer points than this (baseline and nights together) is too short a history to judge.
MIN_POINTS: Final[int] = 4
DEFAULT_TOLERANCE: Final[float] = 0.05

OK: Final[str] = "NO DRIFT"
DRIFT: Final[str] = "DRIFT"
SHORT: Final[str] = "TOO SHORT"


@dataclass(frozen=True)
class DriftVerdict:
    case_id: str
    metric: str
    direction: str
    status: str  # NO DRIFT, DRIFT, TOO SHORT
    change: float | None  # newest segment's level / first segment's level - 1
    change_points: tuple[ChangePoint, ...]
    points: int
    message: str

    @property
    def failed(self) -> bool:
        return self.status == DRIFT


def _adverse(change: float, direction: str, tolerance: float) -> bool:
    if direction == "higher":
        return change < -tolerance
    if direction == "lower":
        return change > tolerance
    return False


def _level(points: Sequence[Point]) -> float:
    vals = [v for p in points for v in p.values]
    return math.fsum(vals) / len(vals) if vals else math.nan


def check_drift(
    case_id: str,
    metric: str,
    direction: str,
    points: Sequence[Point],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_pvalue: float = MAX_PVALUE,
    window: int = WINDOW,
    min_points: int = MIN_POINTS,
) -> DriftVerdict:
    """``points``: the baseline first (when there is one), then each night up to tonight."""
    n = len(points)
    if n < min_points:
        return DriftVerdict(
            case_id, metric, direction, SHORT, None, (), n,
            f"{metric}: {n} point(s) since the baseline; the drift guard needs {min_points}",
        )  # fmt: skip
    cps = tuple(detect(points, direction, max_pvalue=max_pvalue, window=window))
    if not cps:
        return DriftVerdict(
            case_id, metric, direction, OK, 0.0, (), n,
            f"{metric}: no change point in {n} points since {points[0].night}",
        )  # fmt: skip
    first = _level(points[: cps[0].index])
    last = _level(points[cps[-1].index :])
    change = last / first - 1 if first else math.nan
    span = f"{cps[0].before.night} .. {cps[-1].after.night}"
    steps = "; ".join(c.describe() for c in cps)
    if math.isfinite(change) and _adverse(change, direction, tolerance):
        message = (
            f"{case_id}: DRIFT in {metric}: {change:+.1%} since {points[0].night} "
            f"({first:,.4g} -> {last:,.4g}; tolerance {tolerance:.0%}), though tonight's "
            f"pairwise comparison passed. The shift spans the nights {span} "
            f"({len(cps)} change point(s): {steps})"
        )
        return DriftVerdict(case_id, metric, direction, DRIFT, change, cps, n, message)
    message = (
        f"{metric}: change point(s) since {points[0].night} but the level now is "
        f"{change:+.1%} from the baseline's, inside the {tolerance:.0%} tolerance ({steps})"
    )
    return DriftVerdict(case_id, metric, direction, OK, change, cps, n, message)


def guard_points(
    prior: Sequence[Point],
    tonight: tuple[float, ...],
    *,
    window: int,
    now: str,
    blessed_at: str | None = None,
    blessed_values: Sequence[float] = (),
) -> list[Point]:
    """The series the guard judges for one metric: where it starts, then the stored nights,
    then tonight (``now``) last, at most ``window`` points.

    ``prior`` is the case's stored series under tonight's fingerprint, oldest first. With a
    blessed baseline that holds the case (``blessed_at`` its creation time), the series starts
    at the baseline: only nights after it count, and its raw runs (``blessed_values``, when it
    has this metric) are the first point. Without one, it starts at the newest stored night that
    saved a baseline (label ``"baseline"``), else it is simply the newest nights. The window
    keeps the newest points; the baseline's own point is never dropped.
    """
    start: list[Point] = []
    if blessed_at is not None:
        prior = [p for p in prior if p.started > blessed_at]
        if blessed_values:
            start = [Point(0, blessed_at, None, tuple(blessed_values), "baseline")]
    else:
        saved = [i for i, p in enumerate(prior) if p.label == "baseline"]
        if saved:
            prior = prior[saved[-1] :]
    keep = max(window - 1 - len(start), 0)
    kept = list(prior[len(prior) - keep :] if len(prior) > keep else prior)
    return [*start, *kept, Point(-1, now, None, tonight, "tonight")]
