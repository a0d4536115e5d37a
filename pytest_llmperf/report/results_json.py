"""``results.json``: the document (kept current after every case), its reader and its schema."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_llmperf import __version__
from pytest_llmperf.core.atomic import write_json_atomic
from pytest_llmperf.metrics.quantile_bounds import QuantileBound
from pytest_llmperf.report.layout import RESULTS_FILE, SCHEMA_VERSION
from pytest_llmperf.verdicts.case_result import CaseResult, saturation_of, with_status
from pytest_llmperf.verdicts.gates import GateResult
from pytest_llmperf.verdicts.saturation import (
    MetricStats,
)


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
        "verdict": g.verdict,
        "bound": g.bound.to_json() if g.bound is not None else None,
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
        "percentiles": _jsonable(c.percentiles),
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
                "knee": res.knee,
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
                        g.get("verdict"),
                        _bound_back(g.get("bound")),
                    )
                    for g in c["gates"]
                ),
                percentiles=c.get("percentiles") or {},
                status=c["status"],
                client_bound=c["client_bound"],
                client_reasons=tuple(c["client_reasons"]),
                errors=c["errors"],
                environment=c["environment"],
            )
        )
    return cases, doc["environment"]


def _bound_back(doc: Mapping[str, Any] | None) -> QuantileBound | None:
    """A gate's ``bound`` from results.json (nulls back to NaN)."""
    if not doc:
        return None

    def f(x: float | None) -> float:
        return math.nan if x is None else float(x)

    return QuantileBound(
        q=float(doc["q"]),
        n=int(doc["n"]),
        confidence=float(doc["confidence"]),
        point=f(doc["point"]),
        lower=f(doc["lower"]),
        upper=f(doc["upper"]),
        lower_k=doc["lower_k"],
        upper_k=doc["upper_k"],
        min_n=int(doc["min_n"]),
    )


def schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json``, shipped as package data."""
    from importlib.resources import files

    text = files("pytest_llmperf.report").joinpath("report.schema.json").read_text("utf-8")
    return json.loads(text)
