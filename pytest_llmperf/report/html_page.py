"""One self-contained ``report.html``: PNGs inlined, no scripts, no network."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_llmperf import __version__
from pytest_llmperf.core.atomic import write_text_atomic
from pytest_llmperf.report.layout import STATUS_COLOURS
from pytest_llmperf.report.results_json import _jsonable
from pytest_llmperf.report.server_section import server_section
from pytest_llmperf.report.timelines import timelines_section
from pytest_llmperf.verdicts.case_result import CaseResult, saturation_of, with_status

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:12px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#eee} td.l,th.l{text-align:left} td{white-space:nowrap} td.gates{white-space:normal}
tr.gatefail td.gates{color:#a00;font-weight:bold}
tr.clientbound td{font-style:italic;color:#555}
img{max-width:100%;border:1px solid #ddd;margin:8px 0}
.badge{padding:1px 6px;border-radius:3px}
"""


_LEFT: Final[frozenset[str]] = frozenset({"model", "workload", "status", "gates"})
#: Where ``insert_section`` adds sections to a written page (before the environment table).
SECTIONS_MARK: Final[str] = "<!-- llmperf:sections -->"


def _number(x: float, digits: int = 0) -> str:
    """A figure for a table: thousands separators, ``digits`` decimals, a dash for NaN."""
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def _ms_pair(c: CaseResult, m: str) -> str:
    """p50 / p99 of latency ``m``; a p99 from too few samples for an upper bound at the
    case's confidence is marked ``*`` (see ``thin_percentiles``)."""
    mark = "*" if ("p99", m) in {(s, n) for s, n, _, _ in thin_percentiles(c)} else ""
    return f"{_number(c.mean(f'p50_{m}_ms'), 1)} / {_number(c.mean(f'p99_{m}_ms'), 1)}{mark}"


def thin_percentiles(
    c: CaseResult, stats: Sequence[str] = ("p99",)
) -> list[tuple[str, str, int, int]]:
    """``(stat, latency, n, needed)`` for each shown percentile of ``c`` whose pooled sample
    count is too small for any upper confidence bound: it is a point estimate, not a claim."""
    out = []
    for m in ("ttft", "itl", "e2el"):
        row = c.percentiles.get(m)
        if not row:
            continue
        for stat in stats:
            b = row.get(stat)
            if b and not b.get("enough", True):
                out.append((stat, m, int(b["n"]), int(b["min_n"])))
    return out


def thin_note(c: CaseResult) -> str | None:
    """The legend line for ``c``'s ``*`` marks, or None."""
    thin = thin_percentiles(c)
    if not thin:
        return None
    conf = next(iter(c.percentiles.values())).get("confidence", 0.95)
    parts = [f"{m.upper()} n={n}" for _, m, n, _ in thin]
    need = max(k for *_, k in thin)
    return (
        f"* {c.case_id}: p99 from too few samples ({', '.join(parts)}; a p99 bound at "
        f"{conf:.0%} needs n >= {need}): a point estimate, not a p99 claim"
    )


def _ci_text(c: CaseResult, metric: str) -> str:
    st = c.stat(metric)
    if st is None or math.isnan(st.ci_half_width):
        return _number(c.mean(metric))
    return f"{_number(st.mean)} ± {_number(st.ci_half_width)}"


def _env_table(env: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th class='l'>{html.escape(str(k))}</th>"
        f"<td class='l'>{html.escape(json.dumps(_jsonable(v)) if not isinstance(v, str) else v)}"
        "</td></tr>"
        for k, v in sorted(env.items())
    )
    return f"<table>{rows}</table>" if rows else "<p>(not recorded)</p>"


def _gates_cell(c: CaseResult) -> str:
    """The gates column of ``c``'s row: client-bound, the failed gates, the INCONCLUSIVE
    ones, or ``ok (n)`` (escaped)."""
    e = html.escape
    if c.client_bound:
        return "client-bound: " + e("; ".join(c.client_reasons) or "client fell behind")
    failed = c.failed_gates
    if failed:
        return "FAIL: " + e(", ".join(g.describe().removeprefix("FAIL ") for g in failed))
    if any(g.inconclusive for g in c.gates):
        unsure = [g for g in c.gates if g.inconclusive]
        return "INCONCLUSIVE: " + e(
            ", ".join(g.describe().removeprefix("INCONCLUSIVE ") for g in unsure)
        )
    return f"ok ({len(c.gates)})" if c.gates else "–"


def _case_row(c: CaseResult) -> str:
    """``c``'s row of the cases table, its id as the row's anchor."""
    e = html.escape
    status = c.status or "–"
    errors = ", ".join(f"{k}×{v}" for k, v in sorted(c.errors.items())) or "0"
    cls = "gatefail" if c.failed_gates else ""
    cls += " clientbound" if c.client_bound else ""
    colour = STATUS_COLOURS.get(status, "#fff")
    all_gates = e("\n".join(g.describe() for g in c.gates))
    return (
        f"<tr class='{cls.strip()}' id='{e(c.case_id)}' title='{e(c.case_id)}'>"
        f"<td class='l'>{e(c.model)}</td><td class='l'>{e(c.workload)}</td>"
        f"<td>{c.concurrency}</td><td>{len(c.runs)}</td>"
        f"<td>{_ci_text(c, 'total_token_throughput')}</td>"
        f"<td>{_number(c.mean('output_throughput'))}</td>"
        f"<td>{_ms_pair(c, 'ttft')}</td><td>{_ms_pair(c, 'itl')}</td>"
        f"<td>{_ms_pair(c, 'e2el')}</td>"
        f"<td>{_number(c.mean('success_rate') * 100, 1)}%</td><td>{e(errors)}</td>"
        f"<td class='l' style='background:{colour}'>{e(status)}</td>"
        f"<td class='l gates' title='{all_gates}'>{_gates_cell(c)}</td></tr>"
    )


def _peak_rows(cases: Sequence[CaseResult]) -> list[str]:
    """One row of the peaks table per model/workload series: its peak and where it saturated."""
    e = html.escape
    peaks = []
    for (model, workload), res in sorted(saturation_of(cases).items()):
        peak = (
            f"{_number(res.peak_throughput or math.nan)} tok/s at c={res.peak_concurrency}"
            if res.peak_concurrency is not None
            else "no level succeeded"
        )
        sat = f"c={res.saturated_at}" if res.saturated_at is not None else "not reached"
        sat += f" (knee c={res.knee})" if res.knee is not None else ""
        peaks.append(
            f"<tr><td class='l'>{e(model)}</td><td class='l'>{e(workload)}</td>"
            f"<td>{peak}</td><td>{sat}</td></tr>"
        )
    return peaks


_CASE_HEAD: Final[tuple[str, ...]] = (
    "model", "workload", "c", "runs", "total tok/s (± 95% CI)", "output tok/s",
    "TTFT p50/p99 ms", "ITL p50/p99 ms", "E2E p50/p99 ms", "success", "errors",
    "status", "gates",
)  # fmt: skip


def render_html(
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    images: Mapping[str, bytes],
    title: str = "pytest-llmperf report",
    extra_html: str = "",
) -> str:
    """The whole report as one HTML string: PNGs inlined as data URIs, no scripts, no
    external files, so it can be attached to a CI run or mailed as is."""
    cases = with_status(cases)
    e = html.escape
    rows = [_case_row(c) for c in cases]
    peaks = _peak_rows(cases)
    imgs = "".join(
        f"<h2>{e(name)}</h2><img alt='{e(name)}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        for name, png in images.items()
    )
    n_fail = sum(not c.passed for c in cases)
    thin = [t for t in (thin_note(c) for c in cases) if t]
    thin_html = f"<p><small>{'<br>'.join(e(t) for t in thin)}</small></p>" if thin else ""
    legend = " ".join(
        f"<span class='badge' style='background:{col}'>{s}</span>"
        for s, col in STATUS_COLOURS.items()
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1>"
        f"<p>{len(cases)} cases, {n_fail} failing. Status: {legend}</p>"
        "<h2>Peaks</h2><table><tr><th class='l'>model</th><th class='l'>workload</th>"
        "<th>peak total throughput</th><th>saturated from</th></tr>"
        f"{''.join(peaks)}</table>"
        f"{imgs}"
        "<h2>Cases</h2><table><tr>"
        + "".join(f"<th class='{'l' if h in _LEFT else ''}'>{e(h)}</th>" for h in _CASE_HEAD)
        + f"</tr>{''.join(rows)}</table>{thin_html}"
        f"{server_section(cases)}"
        f"{timelines_section(cases)}"
        f"{extra_html}"
        f"{SECTIONS_MARK}<h2>Environment</h2>{_env_table(environment)}"
        f"<p><small>pytest-llmperf {e(__version__)}</small></p></body></html>"
    )


def insert_section(html_path: Path, title: str, body_html: str) -> Path:
    """Add a section (``<h2>title</h2>`` and ``body_html``, already escaped) to a written
    report.html, before the environment table, atomically: for outputs that exist only after
    the page was written (the history, recorded at session end). A page without the mark
    (written by an older version) gets it before ``</body>``."""
    page = Path(html_path).read_text(encoding="utf-8")
    block = f"<h2>{html.escape(title)}</h2>{body_html}"
    if SECTIONS_MARK in page:
        page = page.replace(SECTIONS_MARK, block + SECTIONS_MARK, 1)
    else:
        page = page.replace("</body>", block + "</body>", 1)
    return write_text_atomic(html_path, page)
