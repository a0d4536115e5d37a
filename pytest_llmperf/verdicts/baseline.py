"""Baseline files: every raw per-run value of every metric, keyed by environment and suite.

Human-readable JSON under ``baselines/``, one file per (fingerprint, suite), written atomically.
Raw values, not aggregates, so a statistical comparison (and later change-point analysis over a
history) is possible. A file this plugin cannot read is reported and never overwritten: what a
user measured on an 8-GPU box for an hour is not ours to lose.

The file's records are ``verdicts.baseline_records`` (msgspec structs, from which
``verdicts/baseline.schema.json`` is generated); ``to_record``/``from_record`` convert a
``Baseline`` to and from them, so the on-disk format is written and checked by msgspec, with
every problem reported by its key path.

Size (about 520 lines), stated: the record (``Baseline``), its conversion, its files
and the comparison of a current run against it are one public API (``verdicts.baseline.load``,
``save``, ``compare``, documented and used as a module by tests and scripts). The banners
below mark the seams; the pure comparison part is the one to move out first, once its users
import it from a module of its own (a re-export from here would be an import cycle).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import msgspec
from msgspec import UNSET

from pytest_llmperf.core.atomic import write_json_atomic
from pytest_llmperf.metrics.directions import comparison
from pytest_llmperf.verdicts.baseline_records import (
    BaselineDocument,
    CaseRecordEntry,
    FingerprintRecord,
    MetricRecord,
    RecordProblem,
    convert,
    problem,
)
from pytest_llmperf.verdicts.fingerprint import FIELDS, Fingerprint, diff

if TYPE_CHECKING:
    from pytest_llmperf.verdicts.compare import (
        CaseComparison,
        Correction,
        Direction,
        Variance,
        Verdict,
    )

SCHEMA_VERSION: Final[int] = 1
CASE_FIELDS: Final[tuple[str, ...]] = (
    "model_name",
    "model_revision",
    "weights_sha256",
    "launch_argv",
    "launch_env",
    "workload",
)
ENV_FIELDS: Final[tuple[str, ...]] = tuple(f for f in FIELDS if f not in CASE_FIELDS)
Source = Literal["measured", "published"]
SOURCES: Final[tuple[str, ...]] = ("measured", "published")


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file, the problem and what to
    do about it."""


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """One metric of one case: a value per run. ``published`` keeps a source's own summary
    (e.g. mean and 95% CI over 5 runs) when the raw runs were never published."""

    direction: Direction
    values: tuple[float, ...]
    unit: str | None = None
    published: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A test case's metrics. ``fingerprint`` holds what differs per case in one suite: only its
    CASE_FIELDS (model, launch plan, workload) are compared; the file's fingerprint holds the
    environment."""

    metrics: Mapping[str, MetricSeries] = field(hash=False)
    fingerprint: Fingerprint | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Baseline:
    suite: str
    fingerprint: Fingerprint
    cases: Mapping[str, CaseRecord] = field(hash=False)
    created: str = ""
    source: Source = "measured"
    note: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def fingerprint_id(self) -> str:
        return self.fingerprint.id()


# ----------------------------------------------------------------------------- metric defaults


# Which way is better, and "exact" (an absolute check: every run 1.0) for the success rate: the
# rule's one home is ``metrics.directions`` (``comparison``); the name here is the public API.
metric_direction = comparison


def metric_unit(name: str) -> str | None:
    if name == "request_throughput":
        return "req/s"
    if name.endswith("throughput"):
        return "tok/s"
    if name.endswith("_ms"):
        return "ms"
    if name.endswith("_s"):
        return "s"
    return None


def from_runs(
    suite: str,
    fingerprint: Fingerprint,
    runs: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    case_fingerprints: Mapping[str, Fingerprint] | None = None,
    direction_of: Callable[[str], Direction] = metric_direction,
    created: str | None = None,
) -> Baseline:
    """A baseline from measured runs: ``runs[case_id]`` is one ``{metric: value}`` per run. A
    metric a run could not measure (NaN, e.g. a latency with no samples) adds no value."""
    cases: dict[str, CaseRecord] = {}
    for case_id, case_runs in runs.items():
        names = sorted({name for run in case_runs for name in run})
        metrics = {
            name: MetricSeries(
                direction_of(name),
                tuple(
                    float(run[name])
                    for run in case_runs
                    if name in run and math.isfinite(float(run[name]))
                ),
                metric_unit(name),
            )
            for name in names
        }
        cases[case_id] = CaseRecord(metrics, (case_fingerprints or {}).get(case_id))
    return Baseline(suite, fingerprint, cases, created or now())


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def merge(old: Baseline, new: Baseline) -> Baseline:
    """``--llmperf-save-baseline`` semantics: cases measured now replace the stored ones (all
    their runs); cases not run this time are kept."""
    return replace(new, cases={**old.cases, **new.cases}, note=new.note or old.note)


# ----------------------------------------------------------------------------- (de)serialising


def to_record(b: Baseline) -> BaselineDocument:
    """The file's record (``verdicts.baseline_records``). A case fingerprint carries only what
    is set (a few CASE_FIELDS); ``published`` and notes are written only when there are some."""
    cases = {
        case_id: CaseRecordEntry(
            metrics={
                name: MetricRecord(
                    direction=m.direction,
                    unit=m.unit,
                    values=list(m.values),
                    published=UNSET if m.published is None else dict(m.published),
                )
                for name, m in case.metrics.items()
            },
            fingerprint=UNSET if case.fingerprint is None else case.fingerprint.to_case_record(),
            note=case.note or UNSET,
        )
        for case_id, case in b.cases.items()
    }
    return BaselineDocument(
        schema_version=cast("Literal[1]", b.schema_version),
        suite=b.suite,
        source=b.source,
        created=b.created,
        fingerprint=b.fingerprint.to_record(),
        fingerprint_id=b.fingerprint_id,
        cases=cases,
        note=b.note or UNSET,
    )


def to_dict(b: Baseline) -> dict[str, Any]:
    """The file's JSON object (``to_record`` as built-in types)."""
    return cast("dict[str, Any]", msgspec.to_builtins(to_record(b)))


#: A schema problem, turned into a BaselineError that names the file.
_SchemaProblem = RecordProblem


def _check_version(root: Any) -> int:
    """The envelope, checked before the records: a newer file says to upgrade, whatever else
    it holds."""
    if not isinstance(root, dict):
        raise RecordProblem(f"the file must be a JSON object, not {type(root).__name__}")
    version = root.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RecordProblem("schema_version is missing or not a whole number")
    if version > SCHEMA_VERSION:
        raise RecordProblem(
            f"it was written with schema version {version}, newer than the {SCHEMA_VERSION} "
            "this pytest-llmperf reads; upgrade pytest-llmperf to use it"
        )
    if version < 1:
        raise RecordProblem(f"schema_version {version} is not a version pytest-llmperf ever wrote")
    return version


def _series(m: MetricRecord, where: str) -> MetricSeries:
    for i, v in enumerate(m.values):
        if not math.isfinite(v):
            raise problem(f"{where}.values[{i}]", f"Found {v!r}", "values")
    published = None if m.published is UNSET else m.published
    return MetricSeries(m.direction, tuple(m.values), m.unit, published)


def from_record(doc: BaselineDocument) -> Baseline:
    """The ``Baseline`` of a file's record; raises ``RecordProblem`` for a value that is not
    finite."""
    cases: dict[str, CaseRecord] = {}
    for case_id, c in doc.cases.items():
        where = f"$.cases[{case_id!r}]"
        fp = None if c.fingerprint in (None, UNSET) else c.fingerprint
        cases[case_id] = CaseRecord(
            {name: _series(m, f"{where}.metrics[{name!r}]") for name, m in c.metrics.items()},
            None if fp is None else Fingerprint.from_record(cast("FingerprintRecord", fp)),
            None if c.note is UNSET else c.note,
        )
    return Baseline(
        suite=doc.suite,
        fingerprint=Fingerprint.from_record(doc.fingerprint),
        cases=cases,
        created=doc.created,
        source=doc.source,
        note=None if doc.note is UNSET else doc.note,
        schema_version=doc.schema_version,
    )


def from_dict(data: Any) -> Baseline:
    """Validate and build; raises ``_SchemaProblem`` (``RecordProblem``) with the key path of
    the first problem, what is wrong and what the field must hold."""
    _check_version(data)
    return from_record(convert(data, BaselineDocument))


# ----------------------------------------------------------------------------- files (I/O)


def load(path: str | os.PathLike[str]) -> Baseline:
    """Read a baseline file. Anything wrong with it raises ``BaselineError`` saying which file,
    what is wrong and what to do; the file is left untouched."""
    p = Path(path)
    keep = "The file was not modified."
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise BaselineError(
            f"baseline {p} does not exist; record one with --llmperf-save-baseline"
        ) from None
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {p}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BaselineError(
            f"baseline {p} is not valid JSON ({exc}); it may be truncated or hand-edited. "
            f"Restore it from version control, or move it away and record a new baseline "
            f"with --llmperf-save-baseline. {keep}"
        ) from None
    try:
        return from_dict(data)
    except RecordProblem as exc:
        raise BaselineError(
            f"baseline {p} is not usable: {exc}. Fix that entry or restore the file from "
            f"version control. {keep}"
        ) from None
    except RecursionError:
        raise BaselineError(f"baseline {p} is nested too deeply to be a baseline. {keep}") from None


def save(baseline: Baseline, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a crash mid-write leaves the previous file whole. A baseline that
    ``load`` would reject (NaN values, say) is refused before anything is written."""
    data = to_dict(baseline)
    try:
        from_dict(data)
    except RecordProblem as exc:
        raise BaselineError(f"refusing to write baseline {path}: {exc}") from None
    return write_json_atomic(path, data)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "suite"


def baseline_path(directory: str | os.PathLike[str], suite: str, fingerprint: Fingerprint) -> Path:
    return Path(directory) / f"{slug(suite)}-{fingerprint.id()}.json"


def find(
    directory: str | os.PathLike[str],
    suite: str,
    fingerprint: Fingerprint,
    ignore: Iterable[str] = (),
) -> Path | None:
    """The baseline to compare with: the exact fingerprint's file; else one that differs only
    in ignorable fields; else the newest of the suite (so the comparison can say NOT COMPARABLE
    and list what differs, instead of silently finding nothing). Unreadable files raise."""
    exact = baseline_path(directory, suite, fingerprint)
    if exact.exists():
        return exact
    named = Path(directory) / f"{slug(suite)}.json"  # a reference named after its suite
    candidates = sorted(
        [*Path(directory).glob(f"{slug(suite)}-*.json"), *([named] if named.is_file() else [])],
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    loaded = [(p, load(p)) for p in candidates]
    same_suite = [(p, b) for p, b in loaded if b.suite == suite]
    ignore = tuple(ignore)
    for p, b in same_suite:
        if not diff(b.fingerprint, fingerprint, ignore):
            return p
    return same_suite[0][0] if same_suite else None


def save_run(directory: str | os.PathLike[str], run: Baseline) -> Path:
    """Write or update the baseline of this run's (fingerprint, suite). An existing file that
    cannot be parsed raises BaselineError instead of being overwritten."""
    path = baseline_path(directory, run.suite, run.fingerprint)
    if path.exists():
        run = merge(load(path), run)
    return save(run, path)


# ----------------------------------------------------------------------------- comparison (pure)


def _unknown(fp: Fingerprint) -> tuple[str, ...]:
    """Fields a published fingerprint leaves empty: the source did not report them, so they
    cannot disagree with anything."""
    return tuple(k for k in FIELDS if getattr(fp, k) in (None, ()))


def _flag_pairs(argv: Sequence[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for i, a in enumerate(argv):
        if a.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            out.append((a, None if nxt is None or nxt.startswith("--") else nxt))
    return out


def published_case_diff(
    published: Fingerprint, current: Fingerprint, ignore: Iterable[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """A published case fingerprint states only part of a launch: it matches when what it
    states holds. Its flags (with values) must all be in the current command, its environment
    entries in the current environment, its workload fields equal the current workload's;
    other stated fields must be equal; unstated (empty) fields are unknown, never a
    difference."""
    skip = set(ignore) | set(_unknown(published))
    out: dict[str, tuple[Any, Any]] = {}
    pa, ca = published.to_dict(), current.to_dict()
    for k in CASE_FIELDS:
        if k in skip:
            continue
        if k == "launch_argv":
            have = set(_flag_pairs(current.launch_argv))
            if any(pair not in have for pair in _flag_pairs(published.launch_argv)):
                out[k] = (pa[k], ca[k])
        elif k == "launch_env":
            if not set(published.launch_env) <= set(current.launch_env):
                out[k] = (pa[k], ca[k])
        elif k == "workload" and isinstance(pa[k], dict) and isinstance(ca[k], dict):
            if any(ca[k].get(f) != v for f, v in pa[k].items()):
                out[k] = (pa[k], {f: ca[k].get(f) for f in pa[k]})
        elif pa[k] != ca[k]:
            out[k] = (pa[k], ca[k])
    return out


def _fingerprint_reason(differences: Mapping[str, tuple[Any, Any]], what: str) -> str:
    parts = [f"{k} {a!r} -> {b!r}" for k, (a, b) in differences.items()]
    fields_ = " ".join(f"--llmperf-ignore-field {k}" for k in differences)
    return (
        f"{what} differs from the baseline's: {'; '.join(parts)}. Compare on the same "
        f"environment, record a baseline for this one, or declare the fields ignorable "
        f"({fields_})"
    )


def comparisons(
    baseline: Baseline,
    current: Baseline,
    *,
    tolerances: Mapping[str, float] | None = None,
    default_tolerance: float | None = None,
    ignore: Iterable[str] = (),
    metrics: Iterable[str] | None = None,
) -> list[CaseComparison | Verdict]:
    """What ``compare`` tests, before any test: a ``CaseComparison`` per (case, metric) of the
    current run that can be compared, a NOT COMPARABLE ``Verdict`` (with the reason) for one
    that cannot. A session collects these across cases and corrects them together."""
    from pytest_llmperf.verdicts.compare import DEFAULT_TOLERANCE, CaseComparison, not_comparable

    tol = dict(tolerances or {})
    wanted = None if metrics is None else frozenset(metrics)
    default = DEFAULT_TOLERANCE if default_tolerance is None else default_tolerance
    ignore = tuple(ignore)
    published = baseline.source == "published"
    env_ignore = (*ignore, *_unknown(baseline.fingerprint)) if published else ignore
    env_diff = diff(baseline.fingerprint, current.fingerprint, env_ignore)
    out: list[CaseComparison | Verdict] = []
    for case_id, case in current.cases.items():
        old = baseline.cases.get(case_id)
        reason = None
        if env_diff:
            reason = _fingerprint_reason(env_diff, "the environment fingerprint")
        elif old is None:
            reason = "no baseline for this case yet; record one with --llmperf-save-baseline"
        elif old.fingerprint is not None and case.fingerprint is not None:
            if published:
                case_diff = published_case_diff(old.fingerprint, case.fingerprint, ignore)
            else:
                case_diff = diff(old.fingerprint, case.fingerprint, (*ignore, *ENV_FIELDS))
            if case_diff:
                reason = _fingerprint_reason(case_diff, "this case's fingerprint")
        for name, series in case.metrics.items():
            if wanted is not None and name not in wanted:
                continue
            ref = None if old is None else old.metrics.get(name)
            why = reason
            if why is None and ref is None:
                why = f"metric {name} is not in the baseline; record a new baseline to add it"
            elif why is None and ref is not None and ref.direction != series.direction:
                why = (
                    f"metric {name} was stored as {ref.direction}-is-better, now "
                    f"{series.direction}; record a new baseline"
                )
            if why is not None or ref is None:
                out.append(not_comparable(case_id, name, series.direction, why or ""))
                continue
            t = tol.get(name, default)
            out.append(
                CaseComparison(case_id, name, series.direction, ref.values, series.values, t)
            )
    return out


def judge(
    items: Sequence[CaseComparison | Verdict],
    *,
    alpha: float = 0.05,
    correction: Correction = "holm",
    family_size: int | None = None,
    variance: Variance = "welch",
) -> list[Verdict]:
    """Test the ``CaseComparison`` items together (one correction across all of them) and keep
    the ready verdicts, in the given order."""
    from pytest_llmperf.verdicts.compare import CaseComparison, compare_session

    todo = [c for c in items if isinstance(c, CaseComparison)]
    done = iter(
        compare_session(todo, alpha, correction, family_size=family_size, variance=variance)
    )
    return [next(done) if isinstance(c, CaseComparison) else c for c in items]


def compare(
    baseline: Baseline,
    current: Baseline,
    *,
    tolerances: Mapping[str, float] | None = None,
    default_tolerance: float | None = None,
    ignore: Iterable[str] = (),
    alpha: float = 0.05,
    correction: Correction = "holm",
    family_size: int | None = None,
    metrics: Iterable[str] | None = None,
    variance: Variance = "welch",
) -> list[Verdict]:
    """Verdicts for every (case, metric) of the current run, corrected across all of them.
    Cases only in the baseline (not run this time) are skipped; anything that cannot be
    compared becomes NOT COMPARABLE with the reason. ``metrics`` limits the comparison to those
    metrics (every test costs power under the correction); ``family_size`` is Bonferroni's m
    when the comparisons given are only part of the family (see ``compare.compare_session``)."""
    items = comparisons(
        baseline,
        current,
        tolerances=tolerances,
        default_tolerance=default_tolerance,
        ignore=ignore,
        metrics=metrics,
    )
    return judge(
        items, alpha=alpha, correction=correction, family_size=family_size, variance=variance
    )
