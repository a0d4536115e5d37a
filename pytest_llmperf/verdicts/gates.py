"""Absolute gates (throughput floors, p99 ceilings, 100% success) checked on one case.

Pure: metrics in, verdicts and an assertion message out. Gates are hard limits; judging a
change against a stored baseline is the comparator's job, not this module's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final, Literal


@dataclass(frozen=True)
class Gates:
    """Absolute limits for one case. ``None`` means no gate. Field names are the metric name
    (``RunSummary.metrics()``) plus ``_min`` (a floor) or ``_max`` (a ceiling)."""

    total_token_throughput_min: float | None = None
    output_throughput_min: float | None = None
    p99_ttft_ms_max: float | None = None
    p99_itl_ms_max: float | None = None
    p99_e2el_ms_max: float | None = None
    success_rate_min: float = 1.0


GateKind = Literal["floor", "ceiling", "exact"]


@dataclass(frozen=True)
class GateResult:
    """One gate checked. ``margin_pct`` is the headroom as a percentage of the limit: positive
    means inside the limit, negative means past it; ``None`` when the limit is 0."""

    name: str  # the Gates field, e.g. "output_throughput_min"
    metric: str  # the metric it reads, e.g. "output_throughput"
    measured: float
    limit: float
    kind: GateKind
    passed: bool
    margin_pct: float | None

    def describe(self) -> str:
        op = {"floor": ">=", "ceiling": "<=", "exact": "=="}[self.kind]
        mark = "ok  " if self.passed else "FAIL"
        head = f"{mark} {self.metric} {op} {_fmt(self.metric, self.limit)}"
        if math.isnan(self.measured):
            return f"{head}: not measured (no successful request produced it)"
        text = f"{head}: measured {_fmt(self.metric, self.measured)}"
        if self.margin_pct is not None and not (self.kind == "exact" and self.passed):
            past = "below the floor" if self.kind != "ceiling" else "over the ceiling"
            word = "headroom" if self.margin_pct >= 0 else past
            text += f" ({abs(self.margin_pct):.1f}% {word})"
        return text


def gate_metrics(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One value per metric to gate a multi-run case on: the mean across runs, except the
    success rate, where the worst run counts (every run must meet it)."""
    if not runs:
        raise ValueError("no runs to gate: a case must have measured at least one run")
    keys = set(runs[0]).intersection(*runs[1:])
    out = {k: math.fsum(r[k] for r in runs) / len(runs) for k in sorted(keys)}
    if "success_rate" in keys:
        out["success_rate"] = min(r["success_rate"] for r in runs)
    return out


def evaluate_gates(gates: Gates, metrics: Mapping[str, float]) -> list[GateResult]:
    """Check every gate that is set. A missing or NaN metric fails its gate: a gate that
    cannot be checked must not pass silently."""
    out: list[GateResult] = []
    for f in fields(gates):
        limit = getattr(gates, f.name)
        if limit is None:
            continue
        metric, _, side = f.name.rpartition("_")
        measured = float(metrics.get(metric, math.nan))
        limit = float(limit)
        kind: GateKind
        if side == "min":
            kind = "exact" if metric == "success_rate" and limit >= 1.0 else "floor"
            passed = measured >= limit
            margin = (measured - limit) / limit * 100 if limit else None
        else:
            kind = "ceiling"
            passed = measured <= limit
            margin = (limit - measured) / limit * 100 if limit else None
        if math.isnan(measured):
            passed, margin = False, None
        out.append(GateResult(f.name, metric, measured, limit, kind, passed, margin))
    return out


_KEY_LINE: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("throughput", ("total_token_throughput", "output_throughput", "request_throughput")),
    ("TTFT p50/p99", ("p50_ttft_ms", "p99_ttft_ms")),
    ("ITL p50/p99", ("p50_itl_ms", "p99_itl_ms")),
    ("E2E p50/p99", ("p50_e2el_ms", "p99_e2el_ms")),
    ("success", ("success_rate",)),
)


def key_numbers_line(metrics: Mapping[str, float], errors: Mapping[str, int] | None = None) -> str:
    """The run at a glance, so a failure message is readable without opening the report."""
    parts = []
    for label, names in _KEY_LINE:
        vals = [_fmt(n, metrics[n]) for n in names if n in metrics]
        if vals:
            parts.append(f"{label} {' / '.join(vals)}")
    if errors:
        parts.append("errors " + ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())))
    else:
        parts.append("errors none")
    return " | ".join(parts)


def gate_failure_message(
    case_id: str,
    results: Sequence[GateResult],
    key_numbers: Mapping[str, float],
    *,
    errors: Mapping[str, int] | None = None,
    client_bound: bool = False,
    client_reasons: Sequence[str] = (),
) -> str:
    """The assertion message for a case: every gate with measured, limit and margin, then the
    run's key numbers. A client-bound run is reported as a measurement problem, since its
    numbers describe the load generator, not the server."""
    failed = [r for r in results if not r.passed]
    if client_bound:
        why = "; ".join(client_reasons) or "the load generator fell behind its schedule"
        head = (
            f"{case_id}: client-bound measurement: {why} (not the server's fault). "
            "These numbers measure the client; give it more CPU, lower the concurrency, "
            "or run the load generator on another machine, then re-run."
        )
    elif failed:
        head = f"{case_id}: {len(failed)} of {len(results)} gates failed"
    else:
        head = f"{case_id}: all {len(results)} gates passed"
    lines = [head]
    lines += [f"  {r.describe()}" for r in results]
    lines.append(f"  run: {key_numbers_line(key_numbers, errors)}")
    return "\n".join(lines)


def case_passed(results: Sequence[GateResult], *, client_bound: bool = False) -> bool:
    """A case passes when every gate does and the measurement is trustworthy (not
    client-bound: a client that cannot keep up never delivered the configured load)."""
    return not client_bound and all(r.passed for r in results)


def _fmt(metric: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if metric == "success_rate":
        return f"{value * 100:.1f}%"
    if metric == "request_throughput":
        return f"{value:,.2f} req/s"
    if metric.endswith("throughput"):
        return f"{value:,.0f} tok/s"
    if metric.endswith("_ms"):
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    return f"{value:g}"
