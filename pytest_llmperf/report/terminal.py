"""The terminal summary rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_llmperf.report.html_page import _ci_text, _ms_pair, _number, thin_note
from pytest_llmperf.verdicts.case_result import CaseResult, saturation_of, with_status

_COLUMNS: tuple[str, ...] = (
    "", "model", "workload", "conc", "runs", "total tok/s", "out tok/s",
    "TTFT p50/p99 ms", "ITL p50/p99 ms", "E2E p50/p99 ms", "success", "status",
)  # fmt: skip
#: Columns aligned left (the mark, model, workload, status); the figures align right.
_LEFT_COLUMNS: frozenset[int] = frozenset({0, 1, 2, 11})


def terminal_summary_lines(cases: Sequence[CaseResult]) -> list[str]:
    """One row per model/workload/level for pytest's terminal summary; failing gates and
    client-bound runs are marked with ``!!`` and named, INCONCLUSIVE gates with ``??``, a p99
    from too few samples for its bound with ``*``; then each series' peak."""
    if not cases:
        return ["llmperf: no performance cases ran"]
    cases = with_status(cases)
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for c in sorted(cases, key=lambda c: (c.model, c.workload, c.concurrency)):
        rows.append(_summary_row(c))
        notes += _case_notes(c)
    widths = [max(len(r[i]) for r in (_COLUMNS, *rows)) for i in range(len(_COLUMNS))]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(
            v.ljust(w) if i in _LEFT_COLUMNS else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    n_fail = sum(not c.passed for c in cases)
    lines = [f"llmperf: {len(cases)} cases, {n_fail} failing", fmt(_COLUMNS)]
    lines += [fmt(r) for r in rows]
    return lines + _peak_lines(cases) + notes


def _summary_row(c: CaseResult) -> tuple[str, ...]:
    """``c``'s cells, in ``_COLUMNS`` order, the first one its ``!!``/``??`` mark."""
    unsure = any(g.inconclusive for g in c.gates)
    mark = "!!" if c.failed_gates or c.client_bound else "??" if unsure else ""
    return (
        mark,
        c.model,
        c.workload,
        _level(c),
        str(len(c.runs)),
        _ci_text(c, "total_token_throughput"),
        _number(c.mean("output_throughput")),
        _ms_pair(c, "ttft"),
        _ms_pair(c, "itl"),
        _ms_pair(c, "e2el"),
        f"{_number(c.mean('success_rate') * 100, 1)}%",
        c.status or "-",
    )


def _case_notes(c: CaseResult) -> list[str]:
    """The lines under the table that say why ``c`` is marked: client-bound, failed gates,
    INCONCLUSIVE gates, thin p99s."""
    notes = []
    if c.client_bound:
        why = "; ".join(c.client_reasons) or "the load generator fell behind"
        notes.append(f"!! {c.case_id}: client-bound measurement ({why})")
    failed = c.failed_gates
    if failed:
        notes.append(
            f"!! {c.case_id}: gate failed: "
            + "; ".join(g.describe().removeprefix("FAIL ") for g in failed)
        )
    unsure = [g for g in c.gates if g.inconclusive and g.passed]
    if unsure:
        notes.append(
            f"?? {c.case_id}: gate INCONCLUSIVE (not a failure unless --llmperf-strict): "
            + "; ".join(g.describe().removeprefix("INCONCLUSIVE ") for g in unsure)
        )
    thin = thin_note(c)
    if thin:
        notes.append(thin)
    return notes


def _peak_lines(cases: Sequence[CaseResult]) -> list[str]:
    """One line per model/workload series: its peak throughput and where it saturated."""
    lines = []
    for (model, workload), res in sorted(saturation_of(cases).items()):
        if res.peak_concurrency is None:
            lines.append(f"{model}/{workload}: no level succeeded")
            continue
        sat = f", saturated from c={res.saturated_at}" if res.saturated_at is not None else ""
        sat += f" (knee c={res.knee})" if res.knee is not None else ""
        lines.append(
            f"{model}/{workload}: peak {_number(res.peak_throughput or math.nan)} tok/s "
            f"at c={res.peak_concurrency}{sat}"
        )
    return lines


def _level(c: CaseResult) -> str:
    """The concurrency, or an open-loop case's requested rate (``2/s``)."""
    load = c.environment.get("load")
    if not isinstance(load, dict):
        return str(c.concurrency)
    if load.get("capacity_fraction") is not None:  # its measured rate is in detail.load
        return f"{load['capacity_fraction']:g}xcap"
    return f"{load['rate']:g}/s"
