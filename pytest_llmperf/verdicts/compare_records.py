"""The comparator's records and vocabulary: what one comparison takes (``CaseComparison``) and
gives (``Verdict`` with its ``Outcome``), and the constants of the procedure. Pure, no I/O.

``verdicts.compare`` (the statistics) and ``verdicts.compare_text`` (the words) both read them;
``verdicts.compare`` re-exports every name, so ``from pytest_llmperf.verdicts.compare import
Verdict`` keeps working. The metric directions are ``metrics.directions``'.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from pytest_llmperf.metrics.directions import DIRECTIONS, Direction

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
    "Outcome",
    "Variance",
    "Verdict",
]

Correction = Literal["holm", "bh", "bonferroni"]
CORRECTIONS: Final[tuple[str, ...]] = ("holm", "bh", "bonferroni")
Variance = Literal["moderated", "welch"]
VARIANCES: Final[tuple[str, ...]] = ("moderated", "welch")
#: Fewest cases of one metric whose variances are pooled (moderated) across a session.
MIN_POOL_CASES: Final[int] = 3
DEFAULT_TOLERANCE: Final[float] = 0.05
POWER: Final[float] = 0.80
EXACT_TARGET: Final[float] = 1.0  # "exact" metrics (success rate) must equal this in every run
MAX_RUNS: Final[int] = 10_000


class Outcome(Enum):
    """What a user can act on: fail, celebrate, relax, measure more, or fix the set-up."""

    REGRESSION = "REGRESSION"
    IMPROVEMENT = "IMPROVEMENT"
    NO_CHANGE = "NO CHANGE"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_COMPARABLE = "NOT COMPARABLE"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Verdict:
    """One metric of one case. ``ratio`` is current/baseline (geometric means), the CI is the
    two-sided (1 - 2·alpha) interval whose bounds are the one-sided (1 - alpha) bounds; ``p`` is
    one-sided in the harmful direction, ``p_adj`` after the session's correction. ``None`` where
    a figure does not exist (one run per side, an absolute check, an incomparable case)."""

    case_id: str
    metric: str
    direction: Direction
    verdict: Outcome
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    p_adj: float | None
    cov_baseline: float | None
    cov_current: float | None
    n_baseline: int
    n_current: int
    tolerance: float
    min_detectable_change: float | None
    runs_needed: int | None
    message: str
    p_improvement: float | None = None
    p_improvement_adj: float | None = None


@dataclass(frozen=True, slots=True)
class CaseComparison:
    """The input of one comparison in a session: a (case, metric) pair and both samples."""

    case_id: str
    metric: str
    direction: Direction
    baseline: tuple[float, ...]
    current: tuple[float, ...]
    tolerance: float = DEFAULT_TOLERANCE
