"""The baseline file's records: typed, immutable ``msgspec`` structs, and its generated schema.

One struct per object in a ``baselines/*.json`` file. ``verdicts.baseline`` builds them from its
``Baseline`` and writes their ``msgspec.to_builtins`` form; it reads a file by converting the
JSON into them (``convert``), so a wrong type or a missing key is reported with its key path
(``$.cases['test_perf[c16]'].metrics['p99_ttft_ms'].values[2]``), what is wrong and what the
field must hold. ``verdicts.fingerprint`` reads and writes a ``Fingerprint`` the same way. The
shipped ``verdicts/baseline.schema.json`` is generated from these structs::

    python -m pytest_llmperf.report.generate_schema          # rewrite both shipped schemas
    python -m pytest_llmperf.report.generate_schema --check  # exit 1 if one is stale

(``tests/test_baseline_records.py`` fails when the committed schema differs from the generated
one.) The on-disk format is the one the hand-written serialiser wrote before these structs
existed (``tests/data/baseline-v1-hand-written.json`` loads and is rewritten byte for byte).
Unknown keys are ignored, as they always were, so a file written by a newer plugin still loads.

Pure: no I/O. This module imports ``msgspec``; the pytest entry point never imports it at import
time.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from pytest_llmperf.core.json_schema import schema_document, schema_file_text

SCHEMA_FILE = Path(__file__).with_name("baseline.schema.json")
T = TypeVar("T")

Direction = Literal["higher", "lower", "exact"]  # metrics.directions.DIRECTIONS (tested equal)
Text = str | None


# --------------------------------------------------------------------------------------------
# Records in the file
# --------------------------------------------------------------------------------------------


class FingerprintRecord(Struct, frozen=True, kw_only=True):
    """The environment a measurement belongs to (verdicts.fingerprint.Fingerprint): every
    field, unknown ones null. Two runs are comparable only when their comparability keys match
    (all fields but plugin_version, os_platform and hostname; driver and runtime_version by
    major version)."""

    platform: Annotated[str, Meta(description="cuda, rocm or cpu.")]
    accelerator_model: Text = None
    accelerator_count: Annotated[int, Meta(ge=0)] = 0
    driver: Text = None
    runtime_version: Annotated[Text, Meta(description="CUDA or ROCm version.")] = None
    vllm_version: Text = None
    torch_version: Text = None
    model_name: Text = None
    model_revision: Text = None
    weights_sha256: Text = None
    launch_argv: Annotated[list[str], Meta(description="The server's command line.")] = []
    launch_env: Annotated[
        dict[str, str],
        Meta(description="The server's environment as launched, secrets replaced."),
    ] = {}
    workload: Annotated[
        Any, Meta(description="The workload's settings (a JSON object), or null.")
    ] = None
    plugin_version: Text = None
    host_cpu: Text = None
    os_platform: Text = None
    hostname: Text = None
    cpu_layout: Annotated[
        Text, Meta(description="Which cores a local CPU server and the client ran on.")
    ] = None


class CaseFingerprintRecord(FingerprintRecord, frozen=True, kw_only=True, omit_defaults=True):
    """What differs per case within one suite: only the fields that are set are written, and
    only model_name, model_revision, weights_sha256, launch_argv, launch_env and workload are
    compared (the file's fingerprint holds the environment)."""


class MetricRecord(Struct, frozen=True, kw_only=True):
    """One metric of one case: a value per run (raw values, not aggregates)."""

    direction: Annotated[
        Direction,
        Meta(description="Which way is better; exact: every run must be exactly 1.0."),
    ]
    unit: Text = None
    values: Annotated[list[float], Meta(description="One finite number per run, in run order.")]
    published: Annotated[
        dict[str, Any] | UnsetType | None,
        Meta(
            description="A source's own summary (e.g. mean, 95% CI half-width, n) when the "
            "raw runs were never published."
        ),
    ] = UNSET


class CaseRecordEntry(Struct, frozen=True, kw_only=True):
    """A test case's metrics, and what of its launch and workload differs from the file's
    fingerprint."""

    metrics: dict[str, MetricRecord]
    fingerprint: CaseFingerprintRecord | UnsetType | None = UNSET
    note: Text | UnsetType = UNSET


class BaselineDocument(Struct, frozen=True, kw_only=True):
    """Every raw per-run value of every metric of one suite, measured in one environment.
    Written atomically by --llmperf-save-baseline; a file pytest-llmperf cannot read is
    reported and never overwritten."""

    schema_version: Annotated[Literal[1], Meta(description="Bumped on any incompatible change.")]
    suite: str
    source: Annotated[
        Literal["measured", "published"],
        Meta(description="published: numbers a paper or vendor reported, not measured here."),
    ] = "measured"
    created: Annotated[str, Meta(description="When it was recorded (UTC, ISO 8601).")] = ""
    fingerprint: FingerprintRecord
    fingerprint_id: Annotated[
        Any,
        Meta(
            description="The fingerprint's id (also in the file name). Derived, so ignored "
            "when read (a reader never refused a file for it).",
            extra_json_schema={"type": "string"},
        ),
    ] = UNSET
    cases: dict[str, CaseRecordEntry]
    note: Text | UnsetType = UNSET


# --------------------------------------------------------------------------------------------
# Reading: the first problem, with its key path and what the field must hold
# --------------------------------------------------------------------------------------------

#: What each field must hold, said after the problem msgspec found.
RULES: dict[str, str] = {
    "direction": "must be one of higher, lower, exact",
    "values": "must be a list of finite numbers, one per run",
    "source": "must be one of measured, published",
    "platform": "must name the platform measured on: cuda, rocm or cpu",
    "accelerator_count": "must be a whole number >= 0",
    "launch_argv": "must be a list of strings",
    "launch_env": "must map names to strings",
    "suite": "must be a string",
    "created": "must be a string",
    "cases": "must map case ids to objects",
    "metrics": "must map metric names to objects",
    "fingerprint": "must be a JSON object",
    "published": "must be a JSON object or null",
    "schema_version": "must be 1",
    **{
        name: "must be a string or null"
        for name in ("unit", "note", *FingerprintRecord.__struct_fields__)
        if name not in ("platform", "accelerator_count", "launch_argv", "launch_env", "workload")
    },
}


class RecordProblem(ValueError):
    """A value that is not a record of this file: the message says where (the key path),
    what is wrong and what the field must hold."""


def problem(path: str, detail: str, field: str | None = None) -> RecordProblem:
    """``"<detail>: <path> <rule>"`` when the path ends at the field, ``"<detail> at <path>;
    <field> <rule>"`` when it goes past it (an item of its list, ``values[2]``, an entry of
    its object), ``"<detail> at <path>"`` for a field without a rule."""
    rule = RULES.get(field or "")
    if field is None or rule is None:
        return RecordProblem(f"{detail} at {path}")
    if path.endswith(f".{field}"):
        return RecordProblem(f"{detail}: {path} {rule}")
    return RecordProblem(f"{detail} at {path}; {field} {rule}")


_AT = " - at `"
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")


def convert(data: Any, type_: type[T], root: str = "$") -> T:
    """``msgspec.convert`` (strict: no string-to-number coercion), raising ``RecordProblem``
    whose path names the dict key (msgspec writes ``[...]`` for it) and the field's rule."""
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        detail, _, at = str(exc).partition(_AT)
        path, field = _real_path(data, type_, at.rstrip("`") or "$")
        missing = _MISSING.match(detail)
        if missing:
            field = missing.group(1)
            path = f"{path}.{field}"
        raise problem(root + path[1:], detail, field) from None


def _real_path(data: Any, type_: Any, path: str) -> tuple[str, str | None]:
    """msgspec's path with each ``[...]`` (a dict entry) replaced by the key of the first entry
    that does not convert, and the last field name on it."""
    out, node, t, field = "$", data, type_, None
    for m in _SEGMENT.finditer(path, 1):
        name, index = m.groups()
        t = _container(t, node)
        if name is not None:
            field = name
            out += f".{name}"
            hints = typing.get_type_hints(t, include_extras=True) if _is_struct(t) else {}
            t = hints.get(name, Any)
            node = node.get(name) if isinstance(node, dict) else None
        elif index == "...":
            args = typing.get_args(t)
            t = args[1] if len(args) == 2 else Any
            bad = [k for k, v in node.items() if not _fits(v, t)] if isinstance(node, dict) else []
            if not bad:
                return out + path[m.start() :], field
            out += f"[{bad[0]!r}]"
            node = node[bad[0]]
        else:
            args = typing.get_args(t)
            t = args[0] if args else Any
            out += f"[{index}]"
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
    return out, field


def _is_struct(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, Struct)


def _container(t: Any, node: Any) -> Any:
    """The struct, dict or list type inside an ``Annotated`` or a union, the one that fits
    the value at hand."""
    while True:
        origin = typing.get_origin(t)
        if origin is Annotated:
            t = typing.get_args(t)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            kinds = [a for a in typing.get_args(t) if a not in (type(None), UnsetType)]
            pick = [a for a in kinds if _is_struct(a) or typing.get_origin(a) is dict]
            if isinstance(node, list):
                pick = [a for a in kinds if typing.get_origin(a) is list]
            t = (pick or kinds or [Any])[0]
            continue
        return t


def _fits(value: Any, type_: Any) -> bool:
    try:
        msgspec.convert(value, type_, strict=True)
    except msgspec.ValidationError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The generated schema
# --------------------------------------------------------------------------------------------

_SCHEMA_HEAD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/pytest-llmperf/pytest-llmperf/baseline.schema.json",
    "title": "pytest-llmperf baseline file (baselines/*.json)",
}


def generated_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a baseline file, generated from the structs."""
    return schema_document([BaselineDocument], "BaselineDocument", _SCHEMA_HEAD)


def schema_text() -> str:
    """``generated_schema()`` as the shipped file's text."""
    return schema_file_text(generated_schema())
