"""The suite's throughput index: one floor over every case of a session, not one per case.

Why a second kind of floor. On the 2-core reference machine one case's throughput moves 15-35%
between sessions of the unchanged server (three idle sessions: min/max 0.66-0.98 case by case),
so a per-case floor that never fails the unchanged server (``config.defaults.FLOOR_FRACTION``)
cannot catch a 30% slowdown. Those case-level moves do not add up: the geometric mean over a
session's 20 cases, each divided by its reference, was 1.072, 1.075 and 1.078 in the three idle
sessions and 1.057-1.187 in three loaded ones, while a server held to 70% of its core scored
0.646. A floor on that mean catches the slowdown every case shares, which is what a regression
of the server (or of vLLM) looks like, and leaves case-level noise to the per-case floors.

Pure: the judge reads ``CaseResult`` means and a reference table; the pytest item that fails the
session on it lives in the plugin. Its record, ``SuiteIndexRecord`` (a ``msgspec`` struct, with
``SuiteCase`` and ``SuiteUncounted``), is results.json's ``suite_index`` (``report.results_json``
writes a non-finite index there as null) and ``SuiteIndex.to_json`` (the index as it is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct

from pytest_llmperf.verdicts.case_result import CaseResult

CaseKey = tuple[str, str, int]  # (model, workload, concurrency)
IndexVerdict = Literal["PASS", "FAIL", "NOT GATED"]

#: The metric the index divides; output tokens per second is what every case reports.
INDEX_METRIC: Final[str] = "output_throughput"


@dataclass(frozen=True, slots=True)
class SuiteFloor:
    """``fraction``: the lowest geometric mean of measured/reference a session may score.
    ``min_cases``: fewer matching cases than this and the mean is too noisy to gate (a single
    case moves 15-35% between sessions), so the index is reported, NOT GATED."""

    reference: Mapping[CaseKey, float]
    fraction: float
    min_cases: int = 10
    source: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.fraction:
            raise ValueError(f"suite floor fraction must be > 0, got {self.fraction}")
        if self.min_cases < 1:
            raise ValueError(f"suite floor min_cases must be >= 1, got {self.min_cases}")
        bad = [k for k, v in self.reference.items() if not (v > 0 and math.isfinite(v))]
        if bad:
            raise ValueError(f"suite floor references must be positive numbers: {bad[:3]}")


class SuiteCase(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One counted case of the suite index: its output tok/s over its reference."""

    case_id: str
    ratio: float


class SuiteUncounted(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A case the suite index did not count, and why (no reference, no measurement)."""

    case_id: str
    why: str


class SuiteIndexRecord(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The geometric mean over the session's cases of output tok/s / the config's reference,
    judged against the suite floor: PASS at or above ``fraction``, FAIL below, NOT GATED with
    fewer than ``min_cases`` counted cases."""

    metric: str
    verdict: Literal["PASS", "FAIL", "NOT GATED"]
    index: float | None
    fraction: float
    min_cases: Annotated[int, Meta(ge=1)]
    cases: list[SuiteCase]
    per_model: dict[str, float]
    uncounted: list[SuiteUncounted]
    message: str


@dataclass(frozen=True, slots=True)
class SuiteIndex:
    """The judged index. ``ratios``: each counted case's measured/reference, in case order;
    ``uncounted``: cases with no reference or no measurement, and why."""

    verdict: IndexVerdict
    index: float | None
    fraction: float
    min_cases: int
    ratios: tuple[tuple[str, float], ...]
    per_model: tuple[tuple[str, float], ...]
    uncounted: tuple[tuple[str, str], ...]
    message: str

    @property
    def failed(self) -> bool:
        return self.verdict == "FAIL"

    def record(self) -> SuiteIndexRecord:
        """The judged index as its record (the index as it is, infinite included)."""
        return SuiteIndexRecord(
            metric=INDEX_METRIC,
            verdict=self.verdict,
            index=self.index,
            fraction=self.fraction,
            min_cases=self.min_cases,
            cases=[SuiteCase(case_id=cid, ratio=r) for cid, r in self.ratios],
            per_model=dict(self.per_model),
            uncounted=[SuiteUncounted(case_id=cid, why=why) for cid, why in self.uncounted],
            message=self.message,
        )

    def to_json(self) -> dict[str, Any]:
        """``record()`` as plain JSON data."""
        return msgspec.to_builtins(self.record())


def _geomean(values: Sequence[float]) -> float:
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def judge_suite(cases: Sequence[CaseResult], floor: SuiteFloor) -> SuiteIndex:
    """The geometric mean over ``cases`` of mean output tok/s ÷ the reference for the same
    (model, workload, concurrency); PASS at or above ``floor.fraction``, FAIL below, NOT GATED
    when fewer than ``floor.min_cases`` cases could be counted. A case that ran but produced no
    tokens is counted at a ratio of 1e-6 (not 0, whose log is undefined), so a dead case drags
    the index down; its own gates fail it too."""
    ratios: list[tuple[str, float]] = []
    uncounted: list[tuple[str, str]] = []
    models: dict[str, list[float]] = {}
    for c in cases:
        ref = floor.reference.get((c.model, c.workload, c.concurrency))
        if ref is None:
            uncounted.append((c.case_id, "no reference for this case"))
            continue
        measured = c.mean(INDEX_METRIC)
        if not c.runs or math.isnan(measured):
            uncounted.append((c.case_id, "no measurement"))
            continue
        ratio = max(measured / ref, 1e-6)
        ratios.append((c.case_id, ratio))
        models.setdefault(c.model, []).append(ratio)
    per_model = tuple((m, _geomean(v)) for m, v in models.items())
    n = len(ratios)
    if n == 0:
        return SuiteIndex(
            "NOT GATED", None, floor.fraction, floor.min_cases, (), (), tuple(uncounted),
            "suite throughput index: no case has a reference; not gated",
        )  # fmt: skip
    index = _geomean([r for _, r in ratios])
    lowest = sorted(ratios, key=lambda t: t[1])[:3]
    detail = (
        f"geometric mean of {n} cases' output tok/s / reference = {index:.3f} "
        f"(floor {floor.fraction:g}; lowest: "
        + ", ".join(f"{cid} {r:.2f}" for cid, r in lowest)
        + "; per model: "
        + ", ".join(f"{m} {r:.2f}" for m, r in per_model)
        + ")"
    )
    if n < floor.min_cases:
        verdict: IndexVerdict = "NOT GATED"
        message = (
            f"suite throughput index NOT GATED: {detail}; only {n} of the {floor.min_cases} "
            "cases it needs ran, and so few cases are too noisy to gate on"
        )
    elif index < floor.fraction:
        verdict = "FAIL"
        message = (
            f"suite throughput index FAIL: {detail}. Every case is slower than its reference "
            "on average: a slower server, vLLM or machine. Compare with the per-model "
            "figures to see which server moved."
        )
    else:
        verdict = "PASS"
        message = f"suite throughput index PASS: {detail}"
    if floor.source:
        message += f" [references: {floor.source}]"
    return SuiteIndex(
        verdict, index, floor.fraction, floor.min_cases, tuple(ratios), per_model,
        tuple(uncounted), message,
    )  # fmt: skip
