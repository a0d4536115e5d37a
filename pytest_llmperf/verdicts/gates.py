"""Absolute gates (throughput floors, percentile ceilings, 100% success) checked on one case.

Pure: metrics in, verdicts and an assertion message out. Gates are hard limits; judging a
change against a stored baseline is the comparator's job, not this module's.

A ceiling on a percentile (``p99_ttft_ms_max``) is a statement at a stated confidence
(``Gates.confidence``, default 0.95) when the latency samples are given: PASS when the
distribution-free upper confidence bound of that quantile is within the limit, FAIL when the
lower bound is past it, INCONCLUSIVE otherwise -- including when there are too few samples
for any upper bound (p99 at 95% needs 299). An INCONCLUSIVE gate does not fail the case
unless ``strict`` (``--llmperf-strict``), but it is always shown as INCONCLUSIVE.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from pytest_llmperf.metrics.quantile_bounds import (
    DEFAULT_CONFIDENCE,
    QuantileBound,
    quantile_bound,
    quantile_of_stat,
)


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
    p90_ttft_ms_max: float | None = None
    p95_ttft_ms_max: float | None = None
    p90_itl_ms_max: float | None = None
    p95_itl_ms_max: float | None = None
    p90_e2el_ms_max: float | None = None
    p95_e2el_ms_max: float | None = None
    #: Confidence of the percentile gates' bounds (not a limit; see the module docstring).
    confidence: float = DEFAULT_CONFIDENCE


#: Gates fields that are settings, not limits.
SETTINGS: Final[frozenset[str]] = frozenset({"confidence"})
#: A percentile ceiling: ``p<pct>_<latency>_ms_max``.
_PERCENTILE_GATE = re.compile(r"^(p\d+(?:_\d+)?)_([a-z0-9]+)_ms_max$")


def percentile_gate(name: str) -> tuple[str, float, str] | None:
    """``"p99_ttft_ms_max"`` -> ``("p99", 0.99, "ttft")``; None for any other gate."""
    m = _PERCENTILE_GATE.match(name)
    if m is None:
        return None
    q = quantile_of_stat(m.group(1))
    return None if q is None else (m.group(1), q, m.group(2))


GateKind = Literal["floor", "ceiling", "exact"]
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]


@dataclass(frozen=True)
class GateResult:
    """One gate checked. ``margin_pct`` is the headroom as a percentage of the limit: positive
    means inside the limit, negative means past it; ``None`` when the limit is 0."""

    name: str  # the Gates field, e.g. "output_throughput_min"
    metric: str  # the metric it reads, e.g. "output_throughput"
    measured: float
    limit: float
    kind: GateKind
    passed: bool  # False: the gate fails the case (an INCONCLUSIVE one only when strict)
    margin_pct: float | None
    #: PASS / FAIL / INCONCLUSIVE; ``None`` (a plain limit): PASS or FAIL as ``passed`` says.
    status: Verdict | None = None
    #: A percentile ceiling's confidence bounds over the case's pooled samples.
    bound: QuantileBound | None = None

    @property
    def verdict(self) -> Verdict:
        if self.status is not None:
            return self.status
        return "PASS" if self.passed else "FAIL"

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "INCONCLUSIVE"

    def describe(self) -> str:
        op = {"floor": ">=", "ceiling": "<=", "exact": "=="}[self.kind]
        if self.inconclusive:
            mark = "INCONCLUSIVE" if self.passed else "FAIL INCONCLUSIVE (strict)"
        else:
            mark = "ok  " if self.passed else "FAIL"
        head = f"{mark} {self.metric} {op} {_fmt(self.metric, self.limit)}"
        if self.bound is not None:
            head += f" at {self.bound.confidence:.0%} confidence"
        if math.isnan(self.measured):
            return f"{head}: not measured (no successful request produced it)"
        if self.bound is not None:
            return f"{head}: {self._bound_text(self.bound)}"
        text = f"{head}: measured {_fmt(self.metric, self.measured)}"
        if self.margin_pct is not None and not (self.kind == "exact" and self.passed):
            past = "below the floor" if self.kind != "ceiling" else "over the ceiling"
            word = "headroom" if self.margin_pct >= 0 else past
            text += f" ({abs(self.margin_pct):.1f}% {word})"
        return text

    def _bound_text(self, b: QuantileBound) -> str:
        m, pct = self.metric, _pct_word(b.q)
        point = f"point {pct} {_fmt(m, b.point)}"
        few = f"too few for an upper bound on {pct} at {b.confidence:.0%} (needs n >= {b.min_n})"
        lo = "no lower bound" if b.lower_k is None else f"lower bound {_fmt(m, b.lower)}"
        if b.enough:
            up = f"upper bound {_fmt(m, b.upper)} (order statistic {b.upper_k} of {b.n})"
        else:
            up = ""
        if self.verdict == "FAIL":
            over = f" ({abs(self.margin_pct):.1f}% over the ceiling)" if self.margin_pct else ""
            parts = [f"{lo}{over}", up or few, point, f"n={b.n}"]
        elif self.verdict == "PASS":
            room = f" ({self.margin_pct:.1f}% headroom)" if self.margin_pct is not None else ""
            parts = [f"{up}{room}", lo, point, f"n={b.n}"]
        elif not b.enough:
            parts = [f"{point} from n={b.n} samples", few, lo, "neither pass nor fail"]
        else:
            parts = [up, lo, point, f"n={b.n}", "the limit lies between the bounds"]
        return ", ".join(parts)


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


def evaluate_gates(
    gates: Gates,
    metrics: Mapping[str, float],
    samples: Mapping[str, Sequence[float] | Any] | None = None,
    *,
    strict: bool = False,
) -> list[GateResult]:
    """Check every gate that is set. A missing or NaN metric fails its gate: a gate that
    cannot be checked must not pass silently.

    ``samples`` (latency name -> the case's samples in ms, e.g. ``{"ttft": [...]}``) turns a
    percentile ceiling into a confidence statement (module docstring); without them it
    compares the point value in ``metrics``. ``strict``: an INCONCLUSIVE gate fails."""
    out: list[GateResult] = []
    for f in fields(gates):
        limit = getattr(gates, f.name)
        if limit is None or f.name in SETTINGS:
            continue
        pg = percentile_gate(f.name)
        if pg is not None and samples is not None and pg[2] in samples:
            out.append(_bounded(f.name, pg, float(limit), samples[pg[2]], gates, strict))
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


def _bounded(
    name: str,
    pg: tuple[str, float, str],
    limit: float,
    values: Sequence[float] | Any,
    gates: Gates,
    strict: bool,
) -> GateResult:
    """A percentile ceiling judged on its confidence bounds."""
    _, q, _ = pg
    metric = name.removesuffix("_max")
    b = quantile_bound(values, q, gates.confidence)
    status: Verdict
    if b.n == 0:
        return GateResult(name, metric, math.nan, limit, "ceiling", False, None, "FAIL", b)
    if b.enough and b.upper <= limit:
        status, ref = "PASS", b.upper
    elif b.lower_k is not None and b.lower > limit:
        status, ref = "FAIL", b.lower
    else:
        status, ref = "INCONCLUSIVE", b.point
    passed = status == "PASS" or (status == "INCONCLUSIVE" and not strict)
    margin = (limit - ref) / limit * 100 if limit else None
    return GateResult(name, metric, b.point, limit, "ceiling", passed, margin, status, b)


def _pct_word(q: float) -> str:
    pct = q * 100
    return f"p{pct:g}".replace(".", "_")


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
    unsure = [r for r in results if r.inconclusive and r.passed]
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
        if unsure:
            head = (
                f"{case_id}: {len(results) - len(unsure)} of {len(results)} gates passed, "
                f"{len(unsure)} INCONCLUSIVE (the samples cannot decide at the stated "
                "confidence; not a failure unless --llmperf-strict)"
            )
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
