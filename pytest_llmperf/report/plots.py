"""PNG plots: throughput and p99 latency per level, with 95% CIs. matplotlib is imported lazily."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from pytest_llmperf.report.layout import LATENCY_PANELS
from pytest_llmperf.verdicts.case_result import CaseResult


def _series(cases: Sequence[CaseResult]) -> dict[str, list[CaseResult]]:
    """One line per model (+ workload when a model ran several), levels in order."""
    multi = {
        m for m in {c.model for c in cases} if len({c.workload for c in cases if c.model == m}) > 1
    }
    out: dict[str, list[CaseResult]] = {}
    for c in sorted(cases, key=lambda c: (c.model, c.workload, c.concurrency)):
        if not c.runs or "load" in c.environment:  # open-loop cases have no level to plot
            continue
        label = f"{c.model} / {c.workload}" if c.model in multi else c.model
        out.setdefault(label, []).append(c)
    return out


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _mean_ci(cases: Sequence[CaseResult], metric: str) -> tuple[list[float], list[float]]:
    means, errs = [], []
    for c in cases:
        st = c.stat(metric)
        means.append(c.mean(metric))
        half = st.ci_half_width if st is not None else math.nan
        errs.append(0.0 if math.isnan(half) else half)
    return means, errs


def throughput_png(cases: Sequence[CaseResult], metric: str = "total_token_throughput") -> bytes:
    """Throughput against concurrency (log x), mean with 95% CI error bars; peaks starred."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, series in _series(cases).items():
        xs = [c.concurrency for c in series]
        ys, errs = _mean_ci(series, metric)
        line = ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
        finite = [(y, x) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
        if finite:
            peak_y, peak_x = max(finite)
            ax.plot([peak_x], [peak_y], marker="*", markersize=14, color=line[0].get_color())
    ax.set_xscale("log")
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (tok/s)")
    ax.set_title("Throughput vs concurrency (mean, 95% CI; * = peak)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return _figure_png(fig)


def latency_png(cases: Sequence[CaseResult]) -> bytes:
    """p99 TTFT, ITL and end-to-end latency against concurrency, log-log."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(LATENCY_PANELS), figsize=(15, 4.5))
    series = _series(cases)
    for ax, (metric, title) in zip(axes, LATENCY_PANELS, strict=True):
        for label, cs in series.items():
            ys, errs = _mean_ci(cs, metric)
            ax.errorbar(
                [c.concurrency for c in cs], ys, yerr=errs, marker="o", capsize=3, label=label
            )
        ax.set_xscale("log")
        if any(c.mean(metric) > 0 for cs in series.values() for c in cs):
            ax.set_yscale("log")
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    if series:
        axes[0].legend(fontsize="small")
    return _figure_png(fig)
