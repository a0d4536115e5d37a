"""The report's "Server timelines" section: per case, vLLM's running and waiting requests,
KV-cache fill and generation tokens/s over each run (``detail.server.timeline``, sampled from
``/metrics`` during the run; ``metrics.timeline``), one small PNG per case with its runs
overlaid. A picture of saturation the tables cannot give: a queue that grows through the run,
a KV cache that fills, a token rate that flattens. matplotlib is imported lazily."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmperf.verdicts.case_result import CaseResult

#: (series key, panel title, y label, scale)
PANELS: tuple[tuple[tuple[str, ...], str, str, float], ...] = (
    (("running", "waiting"), "requests (solid: running, dashed: waiting)", "requests", 1.0),
    (("kv_cache_usage",), "KV-cache usage", "%", 100.0),
    (("generation_tokens_per_s",), "generation tokens/s", "tok/s", 1.0),
)


def case_timelines(case: CaseResult) -> list[Mapping[str, Any]]:
    """The case's runs' timelines that have at least one sample, in run order."""
    out = []
    for d in case.details:
        server = d.get("server") if isinstance(d, Mapping) else None
        tl = server.get("timeline") if isinstance(server, Mapping) else None
        if isinstance(tl, Mapping) and tl.get("t_s"):
            out.append(tl)
    return out


def timeline_png(timelines: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """One figure: the three panels side by side, one line (colour) per run."""
    from pytest_llmperf.report.plots import _figure_png, _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 2.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (keys, panel, ylabel, scale) in zip(axes, PANELS, strict=True):
        for i, tl in enumerate(timelines):
            colour = colours[i % len(colours)]
            for key, style in zip(keys, ("-", "--"), strict=False):
                pts = [
                    (t, y * scale)
                    for t, y in zip(tl["t_s"], tl.get(key) or (), strict=False)
                    if y is not None
                ]
                if pts:
                    label = f"run {i + 1}" if key == keys[0] else None
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, color=colour, label=label, linewidth=1.2)
        ax.set_title(panel, fontsize="small")
        ax.set_xlabel("s since the run started", fontsize="small")
        ax.set_ylabel(ylabel, fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    if len(timelines) > 1:
        axes[0].legend(fontsize="x-small")
    fig.suptitle(title, fontsize="small")
    return _figure_png(fig)


def timelines_section(cases: Sequence[CaseResult]) -> str:
    """The section's HTML (empty when no run kept a timeline)."""
    e = html.escape
    parts = []
    for c in cases:
        tls = case_timelines(c)
        if not tls:
            continue
        png = base64.b64encode(timeline_png(tls, c.case_id)).decode("ascii")
        interval = tls[0].get("interval_s")
        parts.append(
            f"<h3 id='timeline-{e(c.case_id)}'>{e(c.case_id)}</h3>"
            f"<img alt='server timeline of {e(c.case_id)}' src='data:image/png;base64,{png}'>"
            f"<p><small>{len(tls)} run(s), a sample every {e(str(interval))} s</small></p>"
        )
    if not parts:
        return ""
    return (
        "<h2>Server timelines</h2><p>vLLM's own <code>/metrics</code>, sampled during each "
        "run: running and waiting requests, KV-cache usage, and generation tokens/s (the "
        "delta of <code>vllm:generation_tokens_total</code> over each interval). One colour "
        "per run.</p>" + "".join(parts)
    )
