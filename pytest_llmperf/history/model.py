"""What one session puts into the history, as plain records (no database, no I/O).

A ``SessionRecord`` is built three ways: from a live pytest session (the plugin), from a
``results.json`` a past session wrote, or from a baseline file. Every value that could hold a
secret is redacted here, before anything reaches a store: environment entries whose names look
secret (TOKEN, KEY, SECRET, PASSWORD, CREDENTIAL), the argument after ``--api-key``-like flags,
and any known secret value (the session's API key, secret-named environment variables) wherever
it appears in a string.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pytest_llmperf.core.redact import (
    MIN_SECRET_LENGTH,
    REDACTED,
    SECRET_ENV,
    redact_argv,
    redact_text,
)
from pytest_llmperf.verdicts.fingerprint import Fingerprint

#: Fingerprint fields a ``results.json`` records for its session (the rest are unknown there).
PARTIAL_FIELDS: Final[tuple[str, ...]] = (
    "platform",
    "accelerator_model",
    "accelerator_count",
    "vllm_version",
    "host_cpu",
)


class HistoryError(ValueError):
    """A history store or input that cannot be used; the message says what to do."""


# ----------------------------------------------------------------------------- redaction


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets in nested JSON-like data. ``secrets`` are exact values to scrub from
    every string (the session's API key, values of secret-named environment variables)."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], extra: Iterable[str | None] = ()) -> Redactor:
        values = [v for k, v in environ.items() if SECRET_ENV.search(k)]
        values += [v for v in extra if v]
        keep = sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        return cls(tuple(keep))

    def text(self, value: str) -> str:
        """``value`` without this redactor's secrets, nor any the session registered with
        ``core.redact`` (the API key, secret-named variables of launch environments)."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return redact_text(value)

    def argv(self, argv: Sequence[Any]) -> list[str]:
        """A command line with secret flags' values hidden (``--api-key X``, ``--token=X``)."""
        return [self.text(a) for a in redact_argv([str(a) for a in argv])]

    def data(self, value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if SECRET_ENV.search(str(k)) else self.data(v, str(k))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            if key.endswith("argv"):
                return self.argv(list(value))
            return [self.data(v, key) for v in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    def values(self, value: Any) -> Any:
        """Known secrets scrubbed from every string; keys kept as they are (a workload's
        ``input_tokens`` is no secret)."""
        if isinstance(value, Mapping):
            return {str(k): self.values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.values(v) for v in value]
        return self.text(value) if isinstance(value, str) else value

    def fingerprint(self, fp: Fingerprint) -> Fingerprint:
        """The launch environment by name (as ``fingerprint.gather`` already does), the launch
        command by flag, known secrets everywhere; the workload's keys untouched, so the id of
        a fingerprint without secrets does not change."""
        d = fp.to_dict()
        d["launch_env"] = {
            k: REDACTED if SECRET_ENV.search(k) else self.text(v)
            for k, v in d["launch_env"].items()
        }
        d["launch_argv"] = self.argv(d["launch_argv"])
        return Fingerprint.from_dict(
            {k: v if k in ("launch_env", "launch_argv") else self.values(v) for k, v in d.items()}
        )


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CaseEntry:
    """One case of one session: every run's raw metric values and what was decided about it."""

    case_id: str
    model: str
    workload: str
    concurrency: int
    runs: tuple[Mapping[str, float], ...]
    fingerprint: Fingerprint
    passed: bool = True
    status: str | None = None
    client_bound: bool = False
    verdict: str | None = None  # the baseline comparison's case status (REGRESSION, ...)
    verdicts: tuple[Mapping[str, Any], ...] = ()
    gates: tuple[Mapping[str, Any], ...] = ()
    partial_fingerprint: bool = False

    @property
    def n_values(self) -> int:
        return sum(1 for run in self.runs for v in run.values() if _finite(v))


@dataclass(frozen=True)
class SessionRecord:
    """A session as the store keeps it. ``uid`` makes writing idempotent: importing the same
    file twice stores it once."""

    uid: str
    started: str  # ISO-8601 UTC, e.g. 2026-12-01T20:00:00Z
    cases: tuple[CaseEntry, ...]
    finished: str | None = None
    suite: str = "default"
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    host: str | None = None
    plugin_version: str | None = None
    source: str = "pytest"
    source_path: str | None = None
    complete: bool = True
    environment: Mapping[str, Any] = field(default_factory=dict)
    baseline_saved: bool = False

    @property
    def n_values(self) -> int:
        return sum(c.n_values for c in self.cases)

    def redacted(self, redactor: Redactor) -> SessionRecord:
        cases = tuple(
            CaseEntry(
                case_id=c.case_id,
                model=c.model,
                workload=c.workload,
                concurrency=c.concurrency,
                runs=c.runs,
                fingerprint=redactor.fingerprint(c.fingerprint),
                passed=c.passed,
                status=c.status,
                client_bound=c.client_bound,
                verdict=c.verdict,
                verdicts=tuple(redactor.data(dict(v)) for v in c.verdicts),
                gates=tuple(redactor.data(dict(g)) for g in c.gates),
                partial_fingerprint=c.partial_fingerprint,
            )
            for c in self.cases
        )
        return SessionRecord(
            uid=self.uid,
            started=self.started,
            cases=cases,
            finished=self.finished,
            suite=self.suite,
            commit=self.commit,
            branch=self.branch,
            dirty=self.dirty,
            host=self.host,
            plugin_version=self.plugin_version,
            source=self.source,
            source_path=redactor.text(self.source_path) if self.source_path else None,
            complete=self.complete,
            environment=redactor.data(dict(self.environment)),
            baseline_saved=self.baseline_saved,
        )


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def iso(value: datetime | str | float | None) -> str:
    """ISO-8601 UTC with a Z, second precision: sortable as text in every SQL database."""
    if value is None:
        value = datetime.now(UTC)
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise HistoryError(
                f"time {value!r} is not ISO-8601 (e.g. 2026-12-01T20:00:00Z)"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid(*parts: object) -> str:
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]


def clean_runs(runs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, float], ...]:
    """Per-run metric values, numbers only (NaN/null/non-numbers dropped)."""
    return tuple({str(k): float(v) for k, v in run.items() if _finite(v)} for run in runs)


# ----------------------------------------------------------------------------- results.json


def partial_fingerprint(env: Mapping[str, Any], case_env: Mapping[str, Any]) -> Fingerprint:
    """What a results.json says about the environment: the session's platform, accelerator,
    vLLM version and CPU, and the case's model. The other fields are unknown (None)."""
    count = env.get("accelerator_count")
    return Fingerprint(
        platform=str(env.get("platform") or "unknown"),
        accelerator_model=_opt_str(env.get("accelerator")),
        accelerator_count=count if isinstance(count, int) and count >= 0 else 0,
        vllm_version=_opt_str(env.get("vllm_version")),
        host_cpu=_opt_str(env.get("host_cpu")),
        model_name=_opt_str(case_env.get("model")),
    )


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def from_results(
    doc: Any, *, source_path: str | None = None, suite: str = "default"
) -> SessionRecord:
    """A ``results.json`` document as a session. Raises HistoryError naming what is wrong."""
    where = source_path or "results.json"
    if not isinstance(doc, Mapping) or not isinstance(doc.get("cases"), list):
        raise HistoryError(
            f"{where} is not a pytest-llmperf results.json (no 'cases' list); give a file the "
            "plugin wrote in its report folder"
        )
    if doc.get("schema_version") != 1:
        raise HistoryError(
            f"{where}: results schema_version {doc.get('schema_version')!r} is not 1, the one "
            "this pytest-llmperf reads"
        )
    env = doc.get("environment") if isinstance(doc.get("environment"), Mapping) else {}
    started = iso(doc.get("created") or env.get("started"))
    cases = []
    for i, c in enumerate(doc["cases"]):
        if not isinstance(c, Mapping) or "case_id" not in c or not isinstance(c.get("runs"), list):
            raise HistoryError(f"{where}: cases[{i}] has no case_id or runs list")
        runs = clean_runs(r.get("metrics", {}) for r in c["runs"] if isinstance(r, Mapping))
        case_env = c.get("environment") if isinstance(c.get("environment"), Mapping) else {}
        cases.append(
            CaseEntry(
                case_id=str(c["case_id"]),
                model=str(c.get("model", "")),
                workload=str(c.get("workload", "")),
                concurrency=int(c.get("concurrency") or 0),
                runs=runs,
                fingerprint=partial_fingerprint(env, case_env),
                passed=bool(c.get("passed", True)),
                status=_opt_str(c.get("status")),
                client_bound=bool(c.get("client_bound", False)),
                gates=tuple(g for g in c.get("gates", []) if isinstance(g, Mapping)),
                partial_fingerprint=True,
            )
        )
    return SessionRecord(
        uid=new_uid("results.json", started, json.dumps(doc.get("cases"), sort_keys=True)[:100000]),
        started=started,
        finished=iso(doc["updated"]) if doc.get("updated") else None,
        cases=tuple(cases),
        suite=suite,
        host=_opt_str(env.get("host")),
        plugin_version=_opt_str((doc.get("tool") or {}).get("version")),
        source="results.json",
        source_path=source_path,
        complete=bool(doc.get("complete", True)),
        environment=dict(env),
    )


# ----------------------------------------------------------------------------- baseline files


def merged_fingerprint(env_fp: Fingerprint, case_fp: Fingerprint | None) -> Fingerprint:
    """The full fingerprint of a baseline case: the file's environment and the case's fields
    (the plugin splits them that way when it saves)."""
    if case_fp is None:
        return env_fp
    from pytest_llmperf.verdicts.baseline import CASE_FIELDS

    data = env_fp.to_dict()
    case = case_fp.to_dict()
    for k in CASE_FIELDS:
        data[k] = case[k]
    return Fingerprint.from_dict(data)


def from_baseline(baseline: Any, *, source_path: str | None = None) -> SessionRecord:
    """A measured baseline file (``baseline.Baseline``) as a session at its ``created`` time.
    Case metadata a baseline does not keep (workload, concurrency) is read from the case id
    where it follows the ``model-workload-cN`` pattern."""
    if baseline.source != "measured":
        raise HistoryError(
            f"{source_path or 'baseline'} holds published figures (source 'published'), not "
            "runs measured here; it is not imported into the history"
        )
    started = iso(baseline.created or None)
    cases = []
    for case_id, rec in baseline.cases.items():
        names = list(rec.metrics)
        n = max((len(rec.metrics[m].values) for m in names), default=0)
        runs = tuple(
            {m: rec.metrics[m].values[i] for m in names if i < len(rec.metrics[m].values)}
            for i in range(n)
        )
        m = re.match(r"^(.*)-c(\d+)$", case_id)
        wl = None
        if rec.fingerprint is not None and rec.fingerprint.workload:
            wl = json.loads(rec.fingerprint.workload)
        cases.append(
            CaseEntry(
                case_id=case_id,
                model=str(rec.fingerprint.model_name if rec.fingerprint else "") or "",
                workload=str((wl or {}).get("name") or ""),
                concurrency=int((wl or {}).get("concurrency") or (m.group(2) if m else 0)),
                runs=clean_runs(runs),
                fingerprint=merged_fingerprint(baseline.fingerprint, rec.fingerprint),
                verdict="BASELINE",
            )
        )
    return SessionRecord(
        uid=new_uid("baseline", baseline.suite, baseline.fingerprint_id, started),
        started=started,
        cases=tuple(cases),
        suite=baseline.suite,
        plugin_version=baseline.fingerprint.plugin_version,
        source="baseline",
        source_path=source_path,
        baseline_saved=True,
    )
