"""A/B outputs: ab.json, the B/A-per-level plot with CIs, and the report.html section.

Input is what ``ABResult.to_json()`` returns (plain dicts shaped as ``report.ab_records``'
``ABComparison``; ``report/ab.schema.json`` is generated from those structs), so this layer needs
nothing from the session layer above it. matplotlib is imported lazily.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_llmperf.core.atomic import write_bytes_atomic, write_json_atomic

AB_FILE: Final[str] = "ab.json"
AB_PNG: Final[str] = "ab.png"
AB_SCHEMA: Final[str] = "pytest-llmperf/ab/1"
_COLOURS: Final[dict[str, str]] = {
    "REGRESSION": "#ffc7c7",
    "IMPROVEMENT": "#d7f5dd",
    "NO CHANGE": "#ffffff",
    "INCONCLUSIVE": "#fff1c2",
    "NOT COMPARABLE": "#e0e0e0",
}


def write_ab_json(report_dir: Path, comparisons: Sequence[Mapping[str, Any]]) -> Path:
    """``ab.json``: every A/B comparison of the session (rewritten atomically after each)."""
    return write_json_atomic(
        Path(report_dir) / AB_FILE,
        {
            "schema": AB_SCHEMA,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "comparisons": list(comparisons),
        },
    )


def _level(case_id: str) -> int:
    return int(case_id.rsplit("@c", 1)[-1]) if "@c" in case_id else int(case_id.lstrip("c"))


def ab_ratio_png(comparisons: Sequence[Mapping[str, Any]]) -> bytes:
    """B/A per level (log x) with its CI, one line per comparison and metric; 1.0 and the
    tolerance band drawn. Exact metrics (success rate) have no CI and are left out."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    tol = 0.0
    for comp in comparisons:
        by_metric: dict[str, list[Mapping[str, Any]]] = {}
        for v in comp["verdicts"]:
            if v.get("ratio") is not None and v.get("ci_low") is not None:
                by_metric.setdefault(v["metric"], []).append(v)
        for metric, vs in by_metric.items():
            vs = sorted(vs, key=lambda v: _level(v["case_id"]))
            x = [_level(v["case_id"]) for v in vs]
            y = [v["ratio"] for v in vs]
            lo = [v["ratio"] - v["ci_low"] for v in vs]
            hi = [v["ci_high"] - v["ratio"] for v in vs]
            tol = max(tol, max(v["tolerance"] for v in vs))
            ax.errorbar(
                x,
                y,
                yerr=[lo, hi],
                marker="o",
                capsize=4,
                label=f"{comp['b']}/{comp['a']} {metric}",
            )
    ax.axhline(1.0, color="black", linewidth=0.8)
    if tol > 0:
        ax.axhspan(1.0 / (1.0 + tol), 1.0 + tol, color="grey", alpha=0.15, label=f"±{tol:.0%}")
    ax.set_xscale("log")
    ax.set_xlabel("concurrency")
    ax.set_ylabel("B / A (90% CI, paired by block)")
    ax.set_title("A/B: ratio of B to A per level")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_ab_plot(report_dir: Path, comparisons: Sequence[Mapping[str, Any]]) -> Path:
    return write_bytes_atomic(Path(report_dir) / AB_PNG, ab_ratio_png(comparisons))


def _num(x: Any, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


_VERDICT_HEAD: Final[tuple[str, ...]] = (
    "case", "metric", "verdict", "B/A", "90% CI", "p", "p (Holm)", "CoV A", "CoV B",
    "blocks", "blocks to decide",
)  # fmt: skip


def ab_section_html(comparisons: Sequence[Mapping[str, Any]], png: bytes | None = None) -> str:
    """The report.html section: per comparison the verdict table (B/A, CI, p before and after
    Holm, CoV of A and B, blocks, the n that would decide), excluded runs, drift, identity."""
    import base64

    e = html.escape
    out = ["<h2>A/B comparisons</h2>"]
    if png:
        out.append(
            "<img alt='A/B ratio per level' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        )
    for comp in comparisons:
        out.append(
            f"<h3>{e(comp['b'])} (B) vs {e(comp['a'])} (A), {e(comp['name'])}: "
            f"{e(comp['blocks'])} blocks, {comp['blocks_wanted']} wanted per level</h3>"
        )
        out.append(_verdict_table(comp["verdicts"]))
        out += _excluded_html(comp["excluded"])
        out += _drift_html(comp["drift"])
        out += _identity_html(comp.get("identity") or {})
    return "".join(out)


def _verdict_row(v: Mapping[str, Any]) -> str:
    """One verdict's row; the cell of the verdict is coloured and titled with its message."""
    e = html.escape
    ci = (
        f"{v['ci_low']:.3f}–{v['ci_high']:.3f}"
        if v.get("ci_low") is not None and v.get("ci_high") is not None
        else "–"
    )
    colour = _COLOURS.get(v["verdict"], "#fff")
    return (
        "<tr>"
        f"<td class='l'>{e(v['case_id'])}</td><td class='l'>{e(v['metric'])}</td>"
        f"<td class='l' style='background:{colour}' title='{e(v['message'])}'>"
        f"{e(v['verdict'])}</td>"
        f"<td>{_num(v.get('ratio'), '{:.3f}')}</td><td>{ci}</td>"
        f"<td>{_num(v.get('p'), '{:.3g}')}</td><td>{_num(v.get('p_adj'), '{:.3g}')}</td>"
        f"<td>{_num(v.get('cov_baseline'), '{:.1%}')}</td>"
        f"<td>{_num(v.get('cov_current'), '{:.1%}')}</td>"
        f"<td>{v['n_current']}</td><td>{_num(v.get('runs_needed'), '{}')}</td></tr>"
    )


def _verdict_table(verdicts: Sequence[Mapping[str, Any]]) -> str:
    """One comparison's verdicts as a table, the three text columns aligned left."""
    e = html.escape
    return (
        "<table><tr>"
        + "".join(
            f"<th class='{'l' if i < 3 else ''}'>{e(h)}</th>" for i, h in enumerate(_VERDICT_HEAD)
        )
        + "</tr>"
        + "".join(_verdict_row(v) for v in verdicts)
        + "</table>"
    )


def _excluded_html(excluded: Sequence[Mapping[str, Any]]) -> list[str]:
    """The excluded runs (each with why), or nothing."""
    if not excluded:
        return []
    e = html.escape
    out = ["<p>Excluded runs (their block partner too):</p><ul>"]
    for x in excluded:
        out.append(
            f"<li>{e(x['variant'])} c={x['level']} block {x['block'] + 1}: "
            f"{e('; '.join(x['reasons']))}</li>"
        )
    out.append("</ul>")
    return out


def _drift_html(drift: Sequence[Mapping[str, Any]]) -> list[str]:
    """A's drift over the session, per case, or nothing."""
    if not drift:
        return []
    e = html.escape
    out = ["<p>Drift of A over the session:</p><ul>"]
    out += [f"<li>{e(d['case_id'])} {e(d['message'])}</li>" for d in drift]
    out.append("</ul>")
    return out


def _identity_html(ident: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What served each variant (the vLLM it reported, the command line), or nothing."""
    if not ident:
        return []
    e = html.escape
    out = ["<p>What served each variant:</p><ul>"]
    for label, rec in ident.items():
        served = rec.get("served_vllm") or "unknown"
        argv = " ".join([*rec.get("launcher", []), *rec.get("argv", [])])
        out.append(f"<li>{e(label)}: vLLM {e(served)} — <code>{e(argv)}</code></li>")
    out.append("</ul>")
    return out
