"""The pure half of A/B validation: the block plan (``ab_order``), the paired verdicts and the
text report (``ab_report``, ``ablation_table``). No I/O; ``session.ab`` runs the plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, NamedTuple

from pytest_llmperf.verdicts.baseline import metric_direction
from pytest_llmperf.verdicts.compare import (
    DEFAULT_TOLERANCE,
    Verdict,
    format_table,
    not_comparable,
)
from pytest_llmperf.verdicts.paired import PairedComparison, compare_paired_session

Variant = Literal["A", "B"]
BlockMode = Literal["interleaved", "fresh"]
BLOCK_MODES: Final[tuple[str, ...]] = ("interleaved", "fresh")
AB_METRICS: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "output_throughput",
    "p99_ttft_ms",
    "p99_e2el_ms",
    "success_rate",
)
#: The metrics A's drift is reported for (the throughputs move first when a machine is busy).
DRIFT_METRICS: Final[tuple[str, ...]] = ("total_token_throughput", "p99_e2el_ms")
RunMetrics = Mapping[str, float]
ProgressFn = Callable[[str], None]


class ABStep(NamedTuple):
    """One load run of the plan: which variant, at which concurrency, its run index (0-based,
    counted per variant and level; also the block number)."""

    variant: Variant
    level: int
    run: int


def ab_order(levels: Sequence[int], runs: int, *, balanced: bool = True) -> list[ABStep]:
    """The interleaved plan: per level, ``runs`` blocks of one run of each variant.

    ``balanced`` (default) alternates the pair order, A B B A A B …: with an even ``runs`` a
    linear drift then cancels exactly (plain A B A B … always measures A half a slot earlier).
    ``balanced=False`` gives A B A B ….
    """
    if runs < 1:
        raise ValueError(f"runs={runs}: an A/B comparison needs at least 1 run per variant")
    if not levels:
        raise ValueError("no concurrency levels to compare")
    if any(level < 1 for level in levels):
        raise ValueError(f"concurrency levels must be >= 1, got {list(levels)}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"concurrency levels repeat: {list(levels)}")
    order: list[ABStep] = []
    for level in levels:
        for r in range(runs):
            pair = block_order(r, balanced)
            order += [ABStep(pair[0], level, r), ABStep(pair[1], level, r)]
    return order


def block_order(block: int, balanced: bool = True) -> tuple[Variant, Variant]:
    """Which variant runs first in block ``block``: A B, then B A, … when balanced."""
    return ("B", "A") if balanced and block % 2 else ("A", "B")


def case_label(name: str, level: int) -> str:
    return f"{name}@c{level}" if name else f"c{level}"


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _values(runs: Sequence[RunMetrics], metric: str) -> tuple[float, ...]:
    return tuple(float(r[metric]) for r in runs if metric in r and math.isfinite(float(r[metric])))


def ablation_table(
    a_runs: Mapping[int, Sequence[RunMetrics]],
    b_runs: Mapping[int, Sequence[RunMetrics]],
    *,
    metrics: Sequence[str] = AB_METRICS,
    verdicts: Sequence[Verdict] = (),
    name: str = "",
    label_a: str = "A",
    label_b: str = "B",
) -> str:
    """The study's ablation table: per metric and level the mean of A's and B's runs and the
    change B vs A in percent (e.g. ``c=100  6,682  6,955  +4.1%``), with the verdict."""
    by_key = {(v.case_id, v.metric): v for v in verdicts}
    header = ("metric", "level", label_a, label_b, "change", "verdict")
    rows: list[tuple[str, ...]] = [header]
    for metric in metrics:
        for level in sorted(set(a_runs) | set(b_runs)):
            a = _mean(_values(a_runs.get(level, ()), metric))
            b = _mean(_values(b_runs.get(level, ()), metric))
            change = "-"
            if math.isfinite(a) and math.isfinite(b) and a != 0:
                change = f"{(b / a - 1.0) * 100 + 0.0:+.1f}%"
            v = by_key.get((case_label(name, level), metric))
            rows.append(
                (
                    metric,
                    f"c={level}",
                    _fmt(a),
                    _fmt(b),
                    change,
                    "" if v is None else str(v.verdict),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if 2 <= i <= 4 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _paired_values(
    a: Sequence[RunMetrics], b: Sequence[RunMetrics], metric: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Block i's A and B values of ``metric``, dropping blocks where either lacks it."""
    pa: list[float] = []
    pb: list[float] = []
    for ra, rb in zip(a, b, strict=False):
        va, vb = float(ra.get(metric, math.nan)), float(rb.get(metric, math.nan))
        if math.isfinite(va) and math.isfinite(vb):
            pa.append(va)
            pb.append(vb)
    return tuple(pa), tuple(pb)


def ab_report(
    a_runs: Mapping[int, Sequence[RunMetrics]],
    b_runs: Mapping[int, Sequence[RunMetrics]],
    *,
    metrics: Sequence[str] = AB_METRICS,
    tolerances: Mapping[str, float] | None = None,
    default_tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = 0.05,
    name: str = "",
    label_a: str = "A",
    label_b: str = "B",
) -> tuple[list[Verdict], str]:
    """Verdicts for B vs A per level and metric, paired by block (``a_runs[level][i]`` and
    ``b_runs[level][i]`` were measured in block i), Holm-corrected across all of them, and the
    text: verdict table, then the ablation table.

    ``a_runs[level]`` holds one ``RunSummary.metrics()`` dict per valid block of A.
    """
    tol = dict(tolerances or {})
    items: list[PairedComparison | Verdict] = []
    for level in sorted(set(a_runs) | set(b_runs)):
        a_level, b_level = a_runs.get(level, ()), b_runs.get(level, ())
        if a_level and b_level and len(a_level) != len(b_level):
            raise ValueError(
                f"c={level}: {len(a_level)} runs of {label_a} but {len(b_level)} of {label_b}; "
                "a paired comparison needs one of each per block"
            )
        for metric in metrics:
            items.append(
                _level_comparison(
                    case_label(name, level),
                    level,
                    metric,
                    a_level,
                    b_level,
                    tol.get(metric, default_tolerance),
                    label_a=label_a,
                    label_b=label_b,
                )
            )
    todo = [c for c in items if isinstance(c, PairedComparison)]
    done = iter(compare_paired_session(todo, alpha, "holm"))
    verdicts = [next(done) if isinstance(c, PairedComparison) else c for c in items]
    text = _ab_text(
        verdicts, a_runs, b_runs, metrics=metrics, name=name, label_a=label_a, label_b=label_b
    )
    return verdicts, text


def _ab_text(
    verdicts: Sequence[Verdict],
    a_runs: Mapping[int, Sequence[RunMetrics]],
    b_runs: Mapping[int, Sequence[RunMetrics]],
    *,
    metrics: Sequence[str],
    name: str,
    label_a: str,
    label_b: str,
) -> str:
    """``ab_report``'s text: a title line, the verdict table, then the ablation table."""
    title = f"{label_b} (B) vs {label_a} (A)" + (f", {name}" if name else "")
    return "\n".join(
        [
            f"A/B comparison: {title}; change and ratio are B/A, paired by block "
            "(CoV base/cur is A/B, n the valid blocks)",
            format_table(verdicts),
            "",
            "ablation table (arithmetic means over valid runs, as the study reports them; the "
            "verdict table's change is the geometric mean of the block ratios)",
            ablation_table(
                a_runs,
                b_runs,
                metrics=metrics,
                verdicts=verdicts,
                name=name,
                label_a=label_a,
                label_b=label_b,
            ),
        ]
    )


def _level_comparison(
    case_id: str,
    level: int,
    metric: str,
    a_level: Sequence[RunMetrics],
    b_level: Sequence[RunMetrics],
    tolerance: float,
    *,
    label_a: str,
    label_b: str,
) -> PairedComparison | Verdict:
    """One level's paired comparison of ``metric`` (still to be tested, with the others, for
    Holm), or its NOT COMPARABLE verdict when A or B has no run with it."""
    direction = metric_direction(metric)
    a, b = _paired_values(a_level, b_level, metric)
    if not a:
        missing = label_a if not _values(a_level, metric) else label_b
        return not_comparable(
            case_id,
            metric,
            direction,
            f"{missing} has no run with {metric} at c={level} (none measured, or none valid)",
        )
    return PairedComparison(case_id, metric, direction, a, b, tolerance)
