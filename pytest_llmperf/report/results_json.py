"""``results.json``: the document (kept current after every case), its reader and its schema.

The document is built as ``report.records`` structs and encoded by ``msgspec.json``; the
shipped schema is generated from the same structs (``python -m pytest_llmperf.report.records``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from msgspec import UNSET

from pytest_llmperf import __version__
from pytest_llmperf.core.atomic import write_text_atomic
from pytest_llmperf.metrics.quantile_bounds import Bound, QuantileBound
from pytest_llmperf.report import records
from pytest_llmperf.report.layout import RESULTS_FILE, SCHEMA_VERSION
from pytest_llmperf.verdicts.case_result import CaseResult, saturation_of, with_status
from pytest_llmperf.verdicts.gates import GateResult
from pytest_llmperf.verdicts.saturation import MetricStats, SaturationResult
from pytest_llmperf.verdicts.suite_index import SuiteIndex, SuiteIndexRecord


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


def _gate_record(g: GateResult) -> records.Gate:
    return records.Gate(
        name=g.name,
        metric=g.metric,
        measured=_num(g.measured),
        limit=float(g.limit),
        kind=g.kind,
        passed=g.passed,
        margin_pct=_num(g.margin_pct),
        verdict=g.verdict,
        bound=g.bound.record() if g.bound is not None else None,
    )


def gate_json(g: GateResult) -> dict[str, Any]:
    """A gate as it appears in results.json (benchmark.json and the history store it too)."""
    return msgspec.to_builtins(_gate_record(g))


def _summary_record(s: MetricStats) -> records.MetricSummary:
    return records.MetricSummary(
        n=s.n,
        mean=_num(s.mean),
        std=_num(s.std),
        ci_low=_num(s.ci_low),
        ci_high=_num(s.ci_high),
        cov=_num(s.cov),
        confidence=s.confidence,
    )


def _run_record(metrics: Mapping[str, float], detail: Mapping[str, Any] | None) -> records.Run:
    values = {k: _num(v) for k, v in sorted(metrics.items())}
    if detail is None:
        return records.Run(metrics=values)
    return records.Run(metrics=values, detail=_jsonable(detail))


def _case_record(c: CaseResult) -> records.Case:
    return records.Case(
        case_id=c.case_id,
        nodeid=c.nodeid,
        model=c.model,
        workload=c.workload,
        concurrency=c.concurrency,
        status=c.status,
        passed=c.passed,
        client_bound=c.client_bound,
        client_reasons=list(c.client_reasons),
        errors={str(k): int(v) for k, v in sorted(c.errors.items())},
        environment=_jsonable(c.environment),
        runs=[
            _run_record(r, c.details[i] if i < len(c.details) else None)
            for i, r in enumerate(c.runs)
        ],
        summary={k: _summary_record(s) for k, s in c.stats().items()},
        gates=[_gate_record(g) for g in c.gates],
        percentiles=_jsonable(c.percentiles),
    )


def _series_record(model: str, workload: str, res: SaturationResult) -> records.Series:
    return records.Series(
        model=model,
        workload=workload,
        peak_throughput=_num(res.peak_throughput),
        peak_concurrency=res.peak_concurrency,
        saturated_at=res.saturated_at,
        knee=res.knee,
        baseline_p99_ms=_num(res.baseline_p99_ms),
        levels=[
            records.Level(
                concurrency=v.concurrency,
                status=v.status,
                reasons=list(v.reasons),
                gain=_num(v.gain),
            )
            for v in res.levels
        ],
    )


def results_record(
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    complete: bool,
    started: datetime | None = None,
    now: datetime | None = None,
    suite: SuiteIndex | None = None,
) -> records.ResultsDocument:
    """The ``results.json`` document as its record (``report.records.ResultsDocument``).

    ``complete`` is false while the session runs, so a reader of a file left by an interrupted
    session knows it holds only the cases measured so far. ``started`` is the session start
    (``created`` in the file); it defaults to ``now``. ``suite``: the session's throughput
    index (``verdicts.suite_index``), None where the config has no suite floor.
    """
    cases = with_status(cases)
    stamp = (now or datetime.now(UTC)).isoformat()
    return records.ResultsDocument(
        schema_version=SCHEMA_VERSION,
        tool=records.Tool(name="pytest-llmperf", version=__version__),
        created=started.isoformat() if started else stamp,
        updated=stamp,
        complete=complete,
        environment=_jsonable(environment),
        cases=[_case_record(c) for c in cases],
        saturation=[
            _series_record(model, workload, res)
            for (model, workload), res in sorted(saturation_of(cases).items())
        ],
        suite_index=_suite_record(suite) if suite is not None else None,
    )


def _suite_record(s: SuiteIndex) -> SuiteIndexRecord:
    """The index's record with a non-finite index as null (``results_document`` returns it)."""
    return msgspec.structs.replace(s.record(), index=_num(s.index))


def results_document(
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    complete: bool,
    started: datetime | None = None,
    now: datetime | None = None,
    suite: SuiteIndex | None = None,
) -> dict[str, Any]:
    """The ``results.json`` document as plain JSON data (schema: ``report/report.schema.json``);
    see ``results_record``."""
    record = results_record(
        cases, environment=environment, complete=complete, started=started, now=now, suite=suite
    )
    return msgspec.to_builtins(record)


def encode_results(record: records.ResultsDocument) -> str:
    """The file's text: sorted keys, two-space indent, a trailing newline."""
    raw = msgspec.json.encode(record, order="sorted")
    return msgspec.json.format(raw, indent=2).decode("utf-8") + "\n"


def write_results(
    report_dir: Path,
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    complete: bool = False,
    started: datetime | None = None,
    suite: SuiteIndex | None = None,
) -> Path:
    """Atomically rewrite ``results.json`` with every case so far; call after each case so an
    interrupted session keeps what it measured. Pass the session's start as ``started``, and
    the session's throughput index so far as ``suite``."""
    record = results_record(
        cases, environment=environment, complete=complete, started=started, suite=suite
    )
    return write_text_atomic(Path(report_dir) / RESULTS_FILE, encode_results(record))


class _VersionOnly(msgspec.Struct):
    schema_version: Any = None


def read_results(path: Path) -> tuple[list[CaseResult], dict[str, Any]]:
    """Cases and session environment back from a ``results.json`` (e.g. to re-render the
    report of an interrupted session). Unknown numbers (null) come back as NaN.

    A file that is not valid JSON, of another ``schema_version``, or not shaped as the schema
    says raises ``ValueError`` naming the file, the key path and what is wrong."""
    path = Path(path)
    data = path.read_bytes()
    try:
        version = msgspec.json.decode(data, type=_VersionOnly).schema_version
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: results schema_version {version!r} is not "
                f"{SCHEMA_VERSION}; re-run the session with this pytest-llmperf version"
            )
        doc = msgspec.json.decode(data, type=records.ResultsDocument)
    except msgspec.ValidationError as e:
        raise ValueError(
            f"{path}: not a results.json of this pytest-llmperf version: {e} (the schema is "
            "report/report.schema.json; re-run the session, or fix the file by hand)"
        ) from None
    except msgspec.DecodeError as e:
        raise ValueError(
            f"{path}: not valid JSON ({e}); a results.json is rewritten whole after each "
            "case, so a torn file was not written by pytest-llmperf"
        ) from None
    return [_case_back(c) for c in doc.cases], doc.environment


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _case_back(c: records.Case) -> CaseResult:
    return CaseResult(
        case_id=c.case_id,
        nodeid=c.nodeid,
        model=c.model,
        workload=c.workload,
        concurrency=c.concurrency,
        runs=tuple({k: _nan(v) for k, v in r.metrics.items()} for r in c.runs),
        details=tuple(r.detail for r in c.runs if r.detail is not UNSET),
        gates=tuple(_gate_back(g) for g in c.gates),
        percentiles=c.percentiles,
        status=c.status,
        client_bound=c.client_bound,
        client_reasons=tuple(c.client_reasons),
        errors=c.errors,
        environment=c.environment,
    )


def _gate_back(g: records.Gate) -> GateResult:
    return GateResult(
        g.name,
        g.metric,
        _nan(g.measured),
        _nan(g.limit),
        g.kind,
        g.passed,
        g.margin_pct,
        None if g.verdict is UNSET else g.verdict,
        _bound_back(g.bound),
    )


def _bound_back(b: Bound | None) -> QuantileBound | None:
    """A gate's ``bound`` from results.json (nulls back to NaN)."""
    if b is None:
        return None
    return QuantileBound(
        q=b.q,
        n=b.n,
        confidence=b.confidence,
        point=_nan(b.point),
        lower=_nan(b.lower),
        upper=_nan(b.upper),
        lower_k=b.lower_k,
        upper_k=b.upper_k,
        min_n=b.min_n,
    )


def schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json``, shipped as package data."""
    from importlib.resources import files

    text = files("pytest_llmperf.report").joinpath("report.schema.json").read_text("utf-8")
    return json.loads(text)
