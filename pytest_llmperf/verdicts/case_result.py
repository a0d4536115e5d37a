"""``CaseResult``: what one case measured (runs, gates, client health), and its saturation status.

The record every output and the baseline session read; it lives below them so none of them
reaches back into the engine."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_llmperf.verdicts.gates import GateResult, case_passed
from pytest_llmperf.verdicts.saturation import (
    LevelStatus,
    MetricStats,
    SaturationResult,
    classify_series,
    metric_stats,
    summarize_runs,
)


@dataclass(frozen=True)
class CaseResult:
    """What one case measured, as the report needs it.

    ``runs`` holds one ``RunSummary.metrics()`` dict per run; ``details`` optionally the full
    ``RunSummary.to_json()`` of each run (kept verbatim in results.json). ``status`` is the
    saturation status; leave it ``None`` and the report derives it from the series.
    """

    case_id: str
    model: str
    workload: str
    concurrency: int
    runs: tuple[Mapping[str, float], ...]
    gates: tuple[GateResult, ...] = ()
    status: LevelStatus | None = None
    client_bound: bool = False
    client_reasons: tuple[str, ...] = ()
    errors: Mapping[str, int] = field(default_factory=dict, hash=False)
    environment: Mapping[str, Any] = field(default_factory=dict, hash=False)
    details: tuple[Mapping[str, Any], ...] = ()
    nodeid: str = ""
    #: Per latency: pooled sample count and each reported percentile's point and confidence
    #: bounds (``metrics.quantile_bounds.percentile_table``); empty when not recorded.
    percentiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    @property
    def passed(self) -> bool:
        return bool(self.runs) and case_passed(self.gates, client_bound=self.client_bound)

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def stats(self) -> dict[str, MetricStats]:
        return summarize_runs(self.runs) if self.runs else {}

    def stat(self, metric: str) -> MetricStats | None:
        vals = [r[metric] for r in self.runs if metric in r]
        return metric_stats(vals) if vals else None

    def mean(self, metric: str) -> float:
        vals = [r[metric] for r in self.runs if metric in r]
        return math.fsum(vals) / len(vals) if vals else math.nan


def saturation_of(cases: Sequence[CaseResult]) -> dict[tuple[str, str], SaturationResult]:
    """The study's status rules per (model, workload), over the mean of each level's runs."""
    latest: dict[tuple[str, str, int], dict[str, float]] = {}
    for c in cases:
        if "load" in c.environment:  # an open-loop case (config.load) has a rate, no level
            continue
        means = {m: c.mean(m) for m in ("total_token_throughput", "p99_e2el_ms", "success_rate")}
        if c.runs and not any(math.isnan(v) for v in means.values()):
            latest[(c.model, c.workload, c.concurrency)] = means  # a re-run replaces a level
    return classify_series((m, w, lvl, means) for (m, w, lvl), means in latest.items())


def with_status(cases: Sequence[CaseResult]) -> list[CaseResult]:
    """``cases`` with every missing ``status`` filled in from ``saturation_of``."""
    sat = saturation_of(cases)
    by_level = {
        (model, workload, v.concurrency): v.status
        for (model, workload), res in sat.items()
        for v in res.levels
    }
    return [
        c
        if c.status is not None
        else replace(c, status=by_level.get((c.model, c.workload, c.concurrency)))
        for c in cases
    ]
