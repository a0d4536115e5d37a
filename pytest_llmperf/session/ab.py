"""A/B upgrade validation: two server configurations measured in one session, interleaved.

A and B are two ``ModelSpec`` variants of one model: two launch prefixes (vLLM installs or
images), two flag sets, or two environments (AITER on vs off, the study's ablation). Both
servers stay up and the runs alternate, so slow drift of the machine (thermal state, other
tenants) hits both sides alike instead of looking like a version effect. The report is the
comparator's verdict table for B vs A (Welch on logs, Holm across levels x metrics) and the
study-style ablation table: each metric per level, A, B and the change in percent.

``ab_order`` and ``ab_report`` are pure; ``run_ab`` does the I/O through an engine (anything
with ``server_for(spec)``, normally ``engine.PerfEngine``) and ``loadgen.run_load``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, Protocol

from pytest_llmperf.verdicts.baseline import metric_direction
from pytest_llmperf.verdicts.compare import (
    DEFAULT_TOLERANCE,
    CaseComparison,
    Outcome,
    Verdict,
    compare_session,
    format_table,
    not_comparable,
)

Variant = Literal["A", "B"]
AB_METRICS: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "output_throughput",
    "p99_ttft_ms",
    "p99_e2el_ms",
    "success_rate",
)
RunMetrics = Mapping[str, float]
ProgressFn = Callable[[str], None]


class ABStep(NamedTuple):
    """One load run of the plan: which variant, at which concurrency, its run index (0-based,
    counted per variant and level)."""

    variant: Variant
    level: int
    run: int


def ab_order(levels: Sequence[int], runs: int, *, balanced: bool = True) -> list[ABStep]:
    """The interleaved plan: per level, ``runs`` runs of each variant, alternating.

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
            pair: tuple[Variant, Variant] = ("B", "A") if balanced and r % 2 else ("A", "B")
            order += [ABStep(pair[0], level, r), ABStep(pair[1], level, r)]
    return order


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
    """Verdicts for B vs A (B is "current", A the "baseline") per level and metric, Holm-
    corrected across all of them, and the text: verdict table, then the ablation table.

    ``a_runs[level]`` holds one ``RunSummary.metrics()`` dict per run of A at that level.
    """
    tol = dict(tolerances or {})
    items: list[CaseComparison | Verdict] = []
    for level in sorted(set(a_runs) | set(b_runs)):
        case_id = case_label(name, level)
        for metric in metrics:
            direction = metric_direction(metric)
            a = _values(a_runs.get(level, ()), metric)
            b = _values(b_runs.get(level, ()), metric)
            if not a or not b:
                missing = label_a if not a else label_b
                items.append(
                    not_comparable(
                        case_id,
                        metric,
                        direction,
                        f"{missing} has no run with {metric} at c={level}",
                    )
                )
                continue
            items.append(
                CaseComparison(case_id, metric, direction, a, b, tol.get(metric, default_tolerance))
            )
    todo = [c for c in items if isinstance(c, CaseComparison)]
    done = iter(compare_session(todo, alpha, "holm"))
    verdicts = [next(done) if isinstance(c, CaseComparison) else c for c in items]
    title = f"{label_b} (B) vs {label_a} (A)" + (f", {name}" if name else "")
    text = "\n".join(
        [
            f"A/B comparison: {title}; change and ratio are B/A",
            format_table(verdicts),
            "",
            "ablation table (arithmetic means over runs, as the study reports them; the verdict "
            "table's change is the ratio of geometric means)",
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
    return verdicts, text


# ----------------------------------------------------------------------------- running (I/O)


class EngineLike(Protocol):
    """What ``run_ab`` needs of the engine: a ready server (handle with ``.endpoint``)."""

    def server_for(self, spec: Any) -> Any: ...


@dataclass(frozen=True)
class ABResult:
    """What an A/B run measured and concluded. ``differences`` names what the two variants'
    specs change (launch prefix, flags, environment)."""

    name: str
    label_a: str
    label_b: str
    order: tuple[ABStep, ...]
    a_runs: Mapping[int, tuple[RunMetrics, ...]] = field(hash=False)
    b_runs: Mapping[int, tuple[RunMetrics, ...]] = field(hash=False)
    verdicts: tuple[Verdict, ...]
    table: str
    differences: Mapping[str, tuple[Any, Any]] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return any(v.verdict is Outcome.REGRESSION for v in self.verdicts)

    def verdict(self, metric: str, level: int) -> Verdict:
        key = (case_label(self.name, level), metric)
        for v in self.verdicts:
            if (v.case_id, v.metric) == key:
                return v
        raise KeyError(f"no verdict for {metric} at c={level}")


SPEC_FIELDS: Final[tuple[str, ...]] = ("launch_prefix", "extra_args", "env", "max_num_seqs")


def spec_differences(a: Any, b: Any) -> dict[str, tuple[Any, Any]]:
    """What the two variants change, among the launch fields of ``config.ModelSpec``."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in SPEC_FIELDS:
        va, vb = getattr(a, f, None), getattr(b, f, None)
        if f == "env":
            va, vb = dict(va or {}), dict(vb or {})
        if va != vb:
            out[f] = (va, vb)
    return out


def run_ab(
    engine: EngineLike,
    case: Any,
    variant_a: Any,
    variant_b: Any,
    runs: int,
    *,
    levels: Sequence[int] | None = None,
    requests: int | None = None,
    balanced: bool = True,
    metrics: Sequence[str] = AB_METRICS,
    tolerances: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    records_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> ABResult:
    """Measure ``case`` (a ``config.PerfCase``: workload, concurrency, requests, warm-up) on
    two servers, ``variant_a`` and ``variant_b`` (``config.ModelSpec``s of the same model with
    different launch prefixes, flags or environments), interleaved, and compare B with A.

    Both servers are started first and stay up. Each variant's first run at a level sends the
    case's warm-up requests. Run ``r`` of A and of B use the same prompts (seed ``r``).
    ``levels`` default to the case's concurrency; ``requests`` to ``max(case.requests, level)``.
    A server that dies raises ``server.ServerError`` from its liveness check.
    """
    from pytest_llmperf.loadgen.run import HealthThresholds, LoadSpec, run_load
    from pytest_llmperf.session.engine import to_load_workload

    if variant_a.name == variant_b.name:
        raise ValueError(
            f"both variants are named {variant_a.name!r}; give them different names (e.g. "
            f"'{variant_a.name}-a', '{variant_a.name}-b'): the engine caches launch plans and "
            "servers per model name"
        )
    want = tuple(levels) if levels is not None else (int(case.concurrency),)
    plan = ab_order(want, runs, balanced=balanced)
    handles = {"A": engine.server_for(variant_a), "B": engine.server_for(variant_b)}
    limits = getattr(engine, "client_limits", None)
    thresholds = HealthThresholds(**limits()) if callable(limits) else HealthThresholds()
    timeout = float(getattr(getattr(engine, "options", None), "request_timeout", 600.0))
    workload = to_load_workload(case.workload)
    measured: dict[Variant, dict[int, list[RunMetrics]]] = {"A": {}, "B": {}}
    notes: list[str] = []
    warmed: set[tuple[Variant, int]] = set()
    for i, step in enumerate(plan):
        handle = handles[step.variant]
        check = getattr(handle, "check_alive", None)
        if callable(check):
            check()
        first = (step.variant, step.level) not in warmed
        warmed.add((step.variant, step.level))
        spec = LoadSpec(
            mode="closed",
            concurrency=step.level,
            num_requests=max(requests or int(case.requests), step.level),
            warmup_requests=int(case.warmup_requests) if first else 0,
            timeout_s=timeout,
            seed=step.run,
        )
        if progress is not None:
            progress(
                f"A/B {i + 1}/{len(plan)}: {step.variant} c={step.level} run {step.run + 1}/{runs}"
            )
        records = None
        if records_dir is not None:
            records = records_dir / f"ab-{step.variant}-c{step.level}-run{step.run + 1}.jsonl"
        result = run_load(
            handle.endpoint, workload, spec, records_path=records, thresholds=thresholds
        )
        measured[step.variant].setdefault(step.level, []).append(result.summary.metrics())
        if result.health.client_bound:
            notes.append(
                f"{step.variant} c={step.level} run {step.run + 1}: client-bound "
                f"({'; '.join(result.health.reasons)})"
            )
    a_runs = {lv: tuple(r) for lv, r in measured["A"].items()}
    b_runs = {lv: tuple(r) for lv, r in measured["B"].items()}
    name = str(getattr(case.workload, "name", ""))
    verdicts, table = ab_report(
        a_runs,
        b_runs,
        metrics=metrics,
        tolerances=tolerances,
        alpha=alpha,
        name=name,
        label_a=variant_a.name,
        label_b=variant_b.name,
    )
    diffs = spec_differences(variant_a, variant_b)
    if diffs:
        table += "\n\nB differs from A in: " + "; ".join(
            f"{k} {a!r} -> {b!r}" for k, (a, b) in diffs.items()
        )
    if notes:
        table += "\n" + "\n".join(f"note: {n}" for n in notes)
    return ABResult(
        name=name,
        label_a=variant_a.name,
        label_b=variant_b.name,
        order=tuple(plan),
        a_runs=a_runs,
        b_runs=b_runs,
        verdicts=tuple(verdicts),
        table=table,
        differences=diffs,
        notes=tuple(notes),
    )
