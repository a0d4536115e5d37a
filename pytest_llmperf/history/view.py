"""What ``history`` shows: the analysed series, a text table, PNG plots and an HTML section.

``analyse`` is pure apart from Otava; ``write_plots`` does the I/O (matplotlib, imported only
there).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pytest_llmperf.history.changepoints import (
    MAX_PVALUE,
    WINDOW,
    ChangePoint,
    Series,
    detect,
)

MAX_INLINE_PLOTS: Final[int] = 24


@dataclass(frozen=True)
class Analysed:
    series: Series
    change_points: tuple[ChangePoint, ...]

    @property
    def latest(self) -> float:
        return self.series.points[-1].level if self.series.points else math.nan


def analyse(
    series: Iterable[Series], *, max_pvalue: float = MAX_PVALUE, window: int = WINDOW
) -> list[Analysed]:
    return [
        Analysed(s, tuple(detect(s.points, s.direction, max_pvalue=max_pvalue, window=window)))
        for s in series
    ]


def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:,.4g}"


def table_lines(
    results: Sequence[Analysed], *, store: str = "", max_pvalue: float = MAX_PVALUE
) -> list[str]:
    """One row per series, then one indented line per change point (size, date, commits)."""
    if not results:
        return [f"history {store}: no stored series (run pytest --llmperf, or import results)"]
    head = ("case", "metric", "fingerprint", "sessions", "from", "to", "latest", "change points")
    rows = []
    for a in results:
        pts = a.series.points
        rows.append(
            (
                a.series.case_id,
                a.series.metric,
                a.series.fingerprint_id[:8],
                str(len(pts)),
                pts[0].started[:10] if pts else "-",
                pts[-1].started[:10] if pts else "-",
                _num(a.latest),
                str(len(a.change_points)),
            )
        )
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < 3 else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    n_cp = sum(len(a.change_points) for a in results)
    lines = [
        f"history {store}: {len(results)} series, {n_cp} change point(s) "
        f"(Apache Otava E-divisive + t-test merge, p < {max_pvalue:g})",
        fmt(head),
    ]
    for a, r in zip(results, rows, strict=True):
        lines.append(fmt(r))
        for cp in a.change_points:
            mark = "!!" if cp.worse else "  "
            lines.append(
                f"  {mark} {cp.after.started[:10]}  {cp.change:+.1%}  "
                f"{_num(cp.mean_before)} -> {_num(cp.mean_after)}  p={cp.pvalue:.2g}  "
                f"commits {(cp.before.commit or '?')[:10]} .. {(cp.after.commit or '?')[:10]}  "
                f"(sessions #{cp.before.session_id} .. #{cp.after.session_id})"
            )
    return lines


def as_json(results: Sequence[Analysed]) -> list[dict[str, Any]]:
    out = []
    for a in results:
        s = a.series
        out.append(
            {
                "case_id": s.case_id,
                "metric": s.metric,
                "fingerprint_id": s.fingerprint_id,
                "direction": s.direction,
                "points": [
                    {
                        "session_id": p.session_id,
                        "started": p.started,
                        "commit": p.commit,
                        "values": list(p.values),
                        "level": p.level,
                    }
                    for p in s.points
                ],
                "change_points": [
                    {
                        "index": cp.index,
                        "date": cp.after.started,
                        "change": cp.change,
                        "worse": cp.worse,
                        "mean_before": cp.mean_before,
                        "mean_after": cp.mean_after,
                        "pvalue": cp.pvalue,
                        "commit_before": cp.before.commit,
                        "commit_after": cp.after.commit,
                        "session_before": cp.before.session_id,
                        "session_after": cp.after.session_id,
                    }
                    for cp in a.change_points
                ],
            }
        )
    return out


# ----------------------------------------------------------------------------- plots


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "case"


def plot_png(group: Sequence[Analysed]) -> bytes:
    """One case under one fingerprint: a panel per metric, every run as a dot, each session's
    mean as a line, change points as dashed lines labelled with their size."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(group), 1, figsize=(9, 3.2 * len(group)), squeeze=False)
    for ax, a in zip(axes[:, 0], group, strict=True):
        pts = a.series.points
        xs = list(range(len(pts)))
        for x, p in zip(xs, pts, strict=True):
            ax.plot([x] * len(p.values), p.values, ".", color="#9ab", markersize=4)
        ax.plot(xs, [p.level for p in pts], "-o", color="#245", markersize=3, label="session mean")
        for cp in a.change_points:
            colour = "#c22" if cp.worse else "#2a2"
            ax.axvline(cp.index - 0.5, color=colour, linestyle="--")
            ax.annotate(
                f"{cp.change:+.1%}", (cp.index - 0.5, ax.get_ylim()[1]), color=colour,
                ha="left", va="top", fontsize=9,
            )  # fmt: skip
        ticks = xs if len(xs) <= 12 else xs[:: max(1, len(xs) // 12)]
        ax.set_xticks(ticks)
        ax.set_xticklabels(
            [f"#{pts[i].session_id}\n{pts[i].started[5:10]}" for i in ticks], fontsize=8
        )
        ax.set_ylabel(a.series.metric, fontsize=9)
        ax.grid(True, alpha=0.3)
    s = group[0].series
    axes[0, 0].set_title(f"{s.case_id}  (fingerprint {s.fingerprint_id[:8]})", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def grouped(results: Sequence[Analysed]) -> dict[tuple[str, str], list[Analysed]]:
    out: dict[tuple[str, str], list[Analysed]] = {}
    for a in results:
        out.setdefault((a.series.case_id, a.series.fingerprint_id), []).append(a)
    return out


def write_plots(results: Sequence[Analysed], out_dir: Path) -> dict[tuple[str, str], Path]:
    """A PNG per (case, fingerprint) in ``out_dir``, written atomically."""
    from pytest_llmperf.core.atomic import write_bytes_atomic

    paths = {}
    for (case_id, fid), group in grouped(results).items():
        if not any(a.series.points for a in group):
            continue
        path = Path(out_dir) / f"history-{_slug(case_id)}-{fid[:8]}.png"
        paths[(case_id, fid)] = write_bytes_atomic(path, plot_png(group))
    return paths


def html_section(
    results: Sequence[Analysed],
    pngs: Mapping[tuple[str, str], bytes] | None = None,
    *,
    store: str = "",
    drift: Sequence[Any] = (),
) -> str:
    """The report's "History" section: the change-point table, drift verdicts, plots inline."""
    e = html.escape
    rows = []
    for a in results:
        pts = a.series.points
        cps = (
            "<br>".join(
                f"<span style='color:{'#a00' if cp.worse else '#070'}'>{e(cp.after.started[:10])} "
                f"{cp.change:+.1%} ({e(_num(cp.mean_before))} → {e(_num(cp.mean_after))}, "
                f"p={cp.pvalue:.2g}; commits {e((cp.before.commit or '?')[:10])} .. "
                f"{e((cp.after.commit or '?')[:10])})</span>"
                for cp in a.change_points
            )
            or "none"
        )
        rows.append(
            f"<tr><td class='l'>{e(a.series.case_id)}</td><td class='l'>{e(a.series.metric)}</td>"
            f"<td class='l'>{e(a.series.fingerprint_id[:8])}</td><td>{len(pts)}</td>"
            f"<td>{e(pts[0].started[:10] if pts else '-')} .. "
            f"{e(pts[-1].started[:10] if pts else '-')}</td>"
            f"<td>{e(_num(a.latest))}</td><td class='l gates'>{cps}</td></tr>"
        )
    drift_html = ""
    if drift:
        items = "".join(
            f"<li style='color:{'#a00' if d.failed else '#222'}'>{e(d.status)}: "
            f"{e(d.case_id)}: {e(d.message)}</li>"
            for d in drift
        )
        drift_html = f"<h3>Drift guard</h3><ul>{items}</ul>"
    imgs = "".join(
        f"<img alt='history {e(case_id)}' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode('ascii')}'>"
        for (case_id, _fid), png in list((pngs or {}).items())[:MAX_INLINE_PLOTS]
    )
    return (
        f"<p>Store: {e(store)}. Change points: Apache Otava (E-divisive split, t-test merge) "
        "over each session's mean.</p>"
        "<table><tr><th class='l'>case</th><th class='l'>metric</th><th class='l'>fingerprint"
        "</th><th>sessions</th><th>dates</th><th>latest</th><th class='l'>change points</th>"
        f"</tr>{''.join(rows)}</table>{drift_html}{imgs}"
    )
