"""The report directory: ``results.json`` (kept current after every case), PNG plots, one
self-contained ``report.html``, a pytest-benchmark-compatible ``benchmark.json``, and the
terminal summary rows.

Input is a plain list of ``CaseResult`` records, so the report never reaches back into the
load generator or the server. Document builders are pure; the ``write_*`` functions do the
I/O. matplotlib and pytest-benchmark are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pytest_llmperf import __version__
from pytest_llmperf.core.atomic import write_json_atomic, write_text_atomic
from pytest_llmperf.verdicts.gates import GateResult, case_passed
from pytest_llmperf.verdicts.saturation import (
    LevelStatus,
    MetricStats,
    SaturationResult,
    classify_series,
    metric_stats,
    summarize_runs,
)

SCHEMA_VERSION: Final[int] = 1
RESULTS_FILE: Final[str] = "results.json"
HTML_FILE: Final[str] = "report.html"
BENCHMARK_FILE: Final[str] = "benchmark.json"
THROUGHPUT_PNG: Final[str] = "throughput.png"
LATENCY_PNG: Final[str] = "latency.png"

#: Panels of the latency plot: (metric, title).
LATENCY_PANELS: Final[tuple[tuple[str, str], ...]] = (
    ("p99_ttft_ms", "p99 TTFT"),
    ("p99_itl_ms", "p99 ITL"),
    ("p99_e2el_ms", "p99 end-to-end"),
)
STATUS_COLOURS: Final[dict[str, str]] = {
    "OK": "#d7f5dd",
    "SATURATED": "#fff1c2",
    "DEGRADED": "#ffd9b3",
    "FAILING": "#ffc7c7",
}


@dataclass(frozen=True)
class CaseResult:
    """What one case measured, as the report needs it.

    ``runs`` holds one ``RunSummary.metrics()`` dict per run; ``details`` optionally the full
    ``RunSummary.to_json()`` of each run (kept verbatim in results.json). ``status`` is the
    saturation status; leave it ``None`` and the report derives it from the series.
    """

    case_id: str
    model: str
    workload: str
    concurrency: int
    runs: tuple[Mapping[str, float], ...]
    gates: tuple[GateResult, ...] = ()
    status: LevelStatus | None = None
    client_bound: bool = False
    client_reasons: tuple[str, ...] = ()
    errors: Mapping[str, int] = field(default_factory=dict, hash=False)
    environment: Mapping[str, Any] = field(default_factory=dict, hash=False)
    details: tuple[Mapping[str, Any], ...] = ()
    nodeid: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.runs) and case_passed(self.gates, client_bound=self.client_bound)

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def stats(self) -> dict[str, MetricStats]:
        return summarize_runs(self.runs) if self.runs else {}

    def stat(self, metric: str) -> MetricStats | None:
        vals = [r[metric] for r in self.runs if metric in r]
        return metric_stats(vals) if vals else None

    def mean(self, metric: str) -> float:
        vals = [r[metric] for r in self.runs if metric in r]
        return math.fsum(vals) / len(vals) if vals else math.nan


# --------------------------------------------------------------------------------------------
# Saturation status
# --------------------------------------------------------------------------------------------


def saturation_of(cases: Sequence[CaseResult]) -> dict[tuple[str, str], SaturationResult]:
    """The study's status rules per (model, workload), over the mean of each level's runs."""
    latest: dict[tuple[str, str, int], dict[str, float]] = {}
    for c in cases:
        means = {m: c.mean(m) for m in ("total_token_throughput", "p99_e2el_ms", "success_rate")}
        if c.runs and not any(math.isnan(v) for v in means.values()):
            latest[(c.model, c.workload, c.concurrency)] = means  # a re-run replaces a level
    return classify_series((m, w, lvl, means) for (m, w, lvl), means in latest.items())


def with_status(cases: Sequence[CaseResult]) -> list[CaseResult]:
    """``cases`` with every missing ``status`` filled in from ``saturation_of``."""
    sat = saturation_of(cases)
    by_level = {
        (model, workload, v.concurrency): v.status
        for (model, workload), res in sat.items()
        for v in res.levels
    }
    return [
        c
        if c.status is not None
        else replace(c, status=by_level.get((c.model, c.workload, c.concurrency)))
        for c in cases
    ]


# --------------------------------------------------------------------------------------------
# results.json
# --------------------------------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    """JSON has no NaN/Infinity: unknown numbers become null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return _num(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    return str(obj)


def _gate_json(g: GateResult) -> dict[str, Any]:
    return {
        "name": g.name,
        "metric": g.metric,
        "measured": _num(g.measured),
        "limit": _num(g.limit),
        "kind": g.kind,
        "passed": g.passed,
        "margin_pct": _num(g.margin_pct),
    }


def _stats_json(s: MetricStats) -> dict[str, Any]:
    return {
        "n": s.n,
        "mean": _num(s.mean),
        "std": _num(s.std),
        "ci_low": _num(s.ci_low),
        "ci_high": _num(s.ci_high),
        "cov": _num(s.cov),
        "confidence": s.confidence,
    }


def _case_json(c: CaseResult) -> dict[str, Any]:
    runs = []
    for i, r in enumerate(c.runs):
        run: dict[str, Any] = {"metrics": {k: _num(v) for k, v in sorted(r.items())}}
        if i < len(c.details):
            run["detail"] = _jsonable(c.details[i])
        runs.append(run)
    return {
        "case_id": c.case_id,
        "nodeid": c.nodeid,
        "model": c.model,
        "workload": c.workload,
        "concurrency": c.concurrency,
        "status": c.status,
        "passed": c.passed,
        "client_bound": c.client_bound,
        "client_reasons": list(c.client_reasons),
        "errors": {str(k): int(v) for k, v in sorted(c.errors.items())},
        "environment": _jsonable(c.environment),
        "runs": runs,
        "summary": {k: _stats_json(s) for k, s in c.stats().items()},
        "gates": [_gate_json(g) for g in c.gates],
    }


def results_document(
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    complete: bool,
    started: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``results.json`` document (schema: ``report/report.schema.json``).

    ``complete`` is false while the session runs, so a reader of a file left by an interrupted
    session knows it holds only the cases measured so far. ``started`` is the session start
    (``created`` in the file); it defaults to ``now``.
    """
    cases = with_status(cases)
    stamp = (now or datetime.now(UTC)).isoformat()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pytest-llmperf", "version": __version__},
        "created": started.isoformat() if started else stamp,
        "updated": stamp,
        "complete": complete,
        "environment": _jsonable(environment),
        "cases": [_case_json(c) for c in cases],
        "saturation": [
            {
                "model": model,
                "workload": workload,
                "peak_throughput": _num(res.peak_throughput),
                "peak_concurrency": res.peak_concurrency,
                "saturated_at": res.saturated_at,
                "baseline_p99_ms": _num(res.baseline_p99_ms),
                "levels": [
                    {
                        "concurrency": v.concurrency,
                        "status": v.status,
                        "reasons": list(v.reasons),
                        "gain": _num(v.gain),
                    }
                    for v in res.levels
                ],
            }
            for (model, workload), res in sorted(saturation_of(cases).items())
        ],
    }


def write_results(
    report_dir: Path,
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    complete: bool = False,
    started: datetime | None = None,
) -> Path:
    """Atomically rewrite ``results.json`` with every case so far; call after each case so an
    interrupted session keeps what it measured. Pass the session's start as ``started``."""
    doc = results_document(cases, environment=environment, complete=complete, started=started)
    return write_json_atomic(Path(report_dir) / RESULTS_FILE, doc)


def read_results(path: Path) -> tuple[list[CaseResult], dict[str, Any]]:
    """Cases and session environment back from a ``results.json`` (e.g. to re-render the
    report of an interrupted session). Unknown numbers (null) come back as NaN."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: results schema_version {doc.get('schema_version')!r} is not "
            f"{SCHEMA_VERSION}; re-run the session with this pytest-llmperf version"
        )

    def f(x: float | None) -> float:
        return math.nan if x is None else float(x)

    cases = []
    for c in doc["cases"]:
        cases.append(
            CaseResult(
                case_id=c["case_id"],
                nodeid=c.get("nodeid", ""),
                model=c["model"],
                workload=c["workload"],
                concurrency=c["concurrency"],
                runs=tuple({k: f(v) for k, v in r["metrics"].items()} for r in c["runs"]),
                details=tuple(r["detail"] for r in c["runs"] if "detail" in r),
                gates=tuple(
                    GateResult(
                        g["name"],
                        g["metric"],
                        f(g["measured"]),
                        f(g["limit"]),
                        g["kind"],
                        g["passed"],
                        g["margin_pct"],
                    )
                    for g in c["gates"]
                ),
                status=c["status"],
                client_bound=c["client_bound"],
                client_reasons=tuple(c["client_reasons"]),
                errors=c["errors"],
                environment=c["environment"],
            )
        )
    return cases, doc["environment"]


def schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json``, shipped as package data."""
    from importlib.resources import files

    text = files("pytest_llmperf.report").joinpath("report.schema.json").read_text("utf-8")
    return json.loads(text)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _series(cases: Sequence[CaseResult]) -> dict[str, list[CaseResult]]:
    """One line per model (+ workload when a model ran several), levels in order."""
    multi = {
        m for m in {c.model for c in cases} if len({c.workload for c in cases if c.model == m}) > 1
    }
    out: dict[str, list[CaseResult]] = {}
    for c in sorted(cases, key=lambda c: (c.model, c.workload, c.concurrency)):
        if not c.runs:
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


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

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


def _f(x: float, digits: int = 0) -> str:
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def _ms_pair(c: CaseResult, m: str) -> str:
    return f"{_f(c.mean(f'p50_{m}_ms'), 1)} / {_f(c.mean(f'p99_{m}_ms'), 1)}"


def _ci_text(c: CaseResult, metric: str) -> str:
    st = c.stat(metric)
    if st is None or math.isnan(st.ci_half_width):
        return _f(c.mean(metric))
    return f"{_f(st.mean)} ± {_f(st.ci_half_width)}"


def _env_table(env: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th class='l'>{html.escape(str(k))}</th>"
        f"<td class='l'>{html.escape(json.dumps(_jsonable(v)) if not isinstance(v, str) else v)}"
        "</td></tr>"
        for k, v in sorted(env.items())
    )
    return f"<table>{rows}</table>" if rows else "<p>(not recorded)</p>"


def render_html(
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    images: Mapping[str, bytes],
    title: str = "pytest-llmperf report",
) -> str:
    """The whole report as one HTML string: PNGs inlined as data URIs, no scripts, no
    external files, so it can be attached to a CI run or mailed as is."""
    cases = with_status(cases)
    e = html.escape
    head = ["model", "workload", "c", "runs", "total tok/s (± 95% CI)", "output tok/s",
            "TTFT p50/p99 ms", "ITL p50/p99 ms", "E2E p50/p99 ms", "success", "errors",
            "status", "gates"]  # fmt: skip
    rows = []
    for c in cases:
        status = c.status or "–"
        failed = c.failed_gates
        if c.client_bound:
            gates_cell = "client-bound: " + e("; ".join(c.client_reasons) or "client fell behind")
        elif failed:
            gates_cell = "FAIL: " + e(", ".join(g.describe().removeprefix("FAIL ") for g in failed))
        else:
            gates_cell = f"ok ({len(c.gates)})" if c.gates else "–"
        errors = ", ".join(f"{k}×{v}" for k, v in sorted(c.errors.items())) or "0"
        cls = "gatefail" if failed else ""
        cls += " clientbound" if c.client_bound else ""
        colour = STATUS_COLOURS.get(status, "#fff")
        all_gates = e("\n".join(g.describe() for g in c.gates))
        rows.append(
            f"<tr class='{cls.strip()}' id='{e(c.case_id)}' title='{e(c.case_id)}'>"
            f"<td class='l'>{e(c.model)}</td><td class='l'>{e(c.workload)}</td>"
            f"<td>{c.concurrency}</td><td>{len(c.runs)}</td>"
            f"<td>{_ci_text(c, 'total_token_throughput')}</td>"
            f"<td>{_f(c.mean('output_throughput'))}</td>"
            f"<td>{_ms_pair(c, 'ttft')}</td><td>{_ms_pair(c, 'itl')}</td>"
            f"<td>{_ms_pair(c, 'e2el')}</td>"
            f"<td>{_f(c.mean('success_rate') * 100, 1)}%</td><td>{e(errors)}</td>"
            f"<td class='l' style='background:{colour}'>{e(status)}</td>"
            f"<td class='l gates' title='{all_gates}'>{gates_cell}</td></tr>"
        )
    peaks = []
    for (model, workload), res in sorted(saturation_of(cases).items()):
        peak = (
            f"{_f(res.peak_throughput or math.nan)} tok/s at c={res.peak_concurrency}"
            if res.peak_concurrency is not None
            else "no level succeeded"
        )
        sat = f"c={res.saturated_at}" if res.saturated_at is not None else "not reached"
        peaks.append(
            f"<tr><td class='l'>{e(model)}</td><td class='l'>{e(workload)}</td>"
            f"<td>{peak}</td><td>{sat}</td></tr>"
        )
    imgs = "".join(
        f"<h2>{e(name)}</h2><img alt='{e(name)}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        for name, png in images.items()
    )
    n_fail = sum(not c.passed for c in cases)
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
        + "".join(f"<th class='{'l' if h in _LEFT else ''}'>{e(h)}</th>" for h in head)
        + f"</tr>{''.join(rows)}</table>"
        f"<h2>Environment</h2>{_env_table(environment)}"
        f"<p><small>pytest-llmperf {e(__version__)}</small></p></body></html>"
    )


# --------------------------------------------------------------------------------------------
# pytest-benchmark export
# --------------------------------------------------------------------------------------------


def benchmark_document(
    cases: Sequence[CaseResult],
    *,
    machine_info: Mapping[str, Any] | None = None,
    commit_info: Mapping[str, Any] | None = None,
    environment: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The file ``pytest-benchmark`` 5.x writes with ``--benchmark-json``, for its
    ``compare`` command and the dashboards that read it.

    A round is one run and its "time" is that run's mean end-to-end request latency in
    seconds, so lower is better as pytest-benchmark assumes, and ``ops`` x concurrency is the
    request throughput (Little's law). Every metric's mean, the status and the gates are in
    ``extra_info``. ``machine_info``/``commit_info`` default to pytest-benchmark's own.
    """
    from pytest_benchmark import __version__ as pb_version
    from pytest_benchmark.stats import Stats

    if machine_info is None:
        from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

        machine_info = pytest_benchmark_generate_machine_info()
    if commit_info is None:
        from pytest_benchmark.utils import get_commit_info

        commit_info = get_commit_info()
    machine = dict(machine_info)
    if environment:
        machine["llmperf"] = _jsonable(environment)
    benchmarks = []
    for c in with_status(cases):
        data = [r["mean_e2el_ms"] / 1000 for r in c.runs if _finite(r.get("mean_e2el_ms"))]
        if not data:
            continue  # pytest-benchmark skips benchmarks that errored; so do we
        st = Stats()
        for d in data:
            st.update(d)
        stats = st.as_dict()
        stats["data"] = data
        stats["iterations"] = 1
        name = c.nodeid.rpartition("::")[2] if c.nodeid else f"llmperf[{c.case_id}]"
        extra = {k: _num(c.mean(k)) for k in sorted(set().union(*c.runs))}
        benchmarks.append(
            {
                "group": f"{c.model}-{c.workload}",
                "name": name,
                "fullname": c.nodeid or f"pytest_llmperf::{name}",
                "params": {"model": c.model, "workload": c.workload, "concurrency": c.concurrency},
                "param": c.case_id,
                "extra_info": {
                    "llmperf_metrics": extra,
                    "status": c.status,
                    "passed": c.passed,
                    "client_bound": c.client_bound,
                    "errors": dict(c.errors),
                    "gates": [_gate_json(g) for g in c.gates],
                },
                "options": {"timer": "llmperf", "min_rounds": len(data), "warmup": True},
                "stats": {k: _jsonable(v) for k, v in stats.items()},
            }
        )
    return {
        "machine_info": _jsonable(machine),
        "commit_info": _jsonable(dict(commit_info)),
        "benchmarks": benchmarks,
        "datetime": (now or datetime.now(UTC)).isoformat(),
        "version": pb_version,
    }


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


# --------------------------------------------------------------------------------------------
# Terminal
# --------------------------------------------------------------------------------------------


def terminal_summary_lines(cases: Sequence[CaseResult]) -> list[str]:
    """One row per model/workload/level for pytest's terminal summary; failing gates and
    client-bound runs are marked with ``!!`` and named, then each series' peak."""
    if not cases:
        return ["llmperf: no performance cases ran"]
    cases = with_status(cases)
    cols = ("", "model", "workload", "conc", "runs", "total tok/s", "out tok/s",
            "TTFT p50/p99 ms", "ITL p50/p99 ms", "E2E p50/p99 ms", "success", "status")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for c in sorted(cases, key=lambda c: (c.model, c.workload, c.concurrency)):
        failed = c.failed_gates
        mark = "!!" if failed or c.client_bound else ""
        rows.append(
            (
                mark,
                c.model,
                c.workload,
                str(c.concurrency),
                str(len(c.runs)),
                _ci_text(c, "total_token_throughput"),
                _f(c.mean("output_throughput")),
                _ms_pair(c, "ttft"),
                _ms_pair(c, "itl"),
                _ms_pair(c, "e2el"),
                f"{_f(c.mean('success_rate') * 100, 1)}%",
                c.status or "-",
            )
        )
        if c.client_bound:
            why = "; ".join(c.client_reasons) or "the load generator fell behind"
            notes.append(f"!! {c.case_id}: client-bound measurement ({why})")
        if failed:
            notes.append(
                f"!! {c.case_id}: gate failed: "
                + "; ".join(g.describe().removeprefix("FAIL ") for g in failed)
            )
    widths = [max(len(r[i]) for r in (cols, *rows)) for i in range(len(cols))]
    left = {1, 2, 11}

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(
            v.ljust(w) if i in left or i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    n_fail = sum(not c.passed for c in cases)
    lines = [f"llmperf: {len(cases)} cases, {n_fail} failing", fmt(cols)]
    lines += [fmt(r) for r in rows]
    for (model, workload), res in sorted(saturation_of(cases).items()):
        if res.peak_concurrency is None:
            lines.append(f"{model}/{workload}: no level succeeded")
            continue
        sat = f", saturated from c={res.saturated_at}" if res.saturated_at is not None else ""
        lines.append(
            f"{model}/{workload}: peak {_f(res.peak_throughput or math.nan)} tok/s "
            f"at c={res.peak_concurrency}{sat}"
        )
    return lines + notes


# --------------------------------------------------------------------------------------------
# Writing the directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPaths:
    results: Path
    html: Path
    benchmark: Path
    plots: tuple[Path, ...]


def write_report(
    report_dir: Path,
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    machine_info: Mapping[str, Any] | None = None,
    commit_info: Mapping[str, Any] | None = None,
    started: datetime | None = None,
) -> ReportPaths:
    """Write everything at session end: final results.json (``complete``), the two PNGs,
    report.html and benchmark.json."""
    report_dir = Path(report_dir)
    results = write_results(
        report_dir, cases, environment=environment, complete=True, started=started
    )
    images = {"Throughput": throughput_png(cases), "Latency": latency_png(cases)}
    plots = []
    for fname, png in zip((THROUGHPUT_PNG, LATENCY_PNG), images.values(), strict=True):
        plots.append(_write_bytes_atomic(report_dir / fname, png))
    page = write_text_atomic(
        report_dir / HTML_FILE, render_html(cases, environment=environment, images=images)
    )
    bench = write_json_atomic(
        report_dir / BENCHMARK_FILE,
        benchmark_document(
            cases, machine_info=machine_info, commit_info=commit_info, environment=environment
        ),
    )
    return ReportPaths(results, page, bench, tuple(plots))


def _write_bytes_atomic(path: Path, data: bytes) -> Path:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
