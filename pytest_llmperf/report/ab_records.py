"""The ``ab.json`` records: typed, immutable ``msgspec`` structs, and the file's generated schema.

``ABDocument`` is the file (``report.ab_outputs.write_ab_json`` writes it with the stdlib
``json``, sorted keys, so an unknown number stays ``NaN`` as it always was); each of its
``comparisons`` is an ``ABComparison``, what ``session.ab.ABResult.to_json()`` builds and turns
into plain dicts with ``msgspec.to_builtins``. A verdict is ``verdicts.compare.Verdict`` and a
drift ``verdicts.paired.Drift`` field for field (their one home). The shipped
``report/ab.schema.json`` is generated from these structs by ``python -m
pytest_llmperf.report.generate_schema`` (``--check``: is it stale?).

Pure. This module imports ``msgspec``; the pytest entry point never imports it at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from pytest_llmperf.core.json_schema import schema_document, schema_file_text
from pytest_llmperf.verdicts.compare import Verdict
from pytest_llmperf.verdicts.paired import Drift

AB_SCHEMA_FILE = Path(__file__).with_name("ab.schema.json")

Variant = Literal["A", "B"]
Level = Annotated[int, Meta(ge=1, description="A concurrency level.")]


class ABStepRecord(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One measured run in time order, as ``[variant, level, block]`` (block 0-based)."""

    variant: Variant
    level: int
    block: int


class ABExcludedRun(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A run left out of the verdict (its block partner with it), and why."""

    variant: Variant
    level: int
    block: Annotated[int, Meta(description="0-based block number.")]
    reasons: tuple[str, ...]


class ABIdentity(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What actually served a variant (``session.ab.identity_of``); the launch fields only
    when the server is known (never an API key: it is in neither argv nor env)."""

    declared_vllm: Annotated[str | None, Meta(description="The version the variant declares.")]
    served_vllm: Annotated[str | None, Meta(description="What the server's /version reports.")]
    endpoint: str
    model: str | UnsetType = UNSET
    launcher: list[str] | UnsetType = UNSET
    argv: list[str] | UnsetType = UNSET
    env: dict[str, str] | UnsetType = UNSET


Runs = Annotated[
    dict[str, list[dict[str, float]]],
    Meta(description="Level (as a string) -> the valid blocks' metrics, block i at index i."),
]


class ABRuns(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The valid runs of both sides; ``a[level][i]`` and ``b[level][i]`` are block i's pair."""

    a: Runs
    b: Runs


class ABComparison(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One A/B comparison: B against A, paired by block, one verdict per case and metric."""

    name: Annotated[str, Meta(description="The workload's name (the cases' prefix).")]
    a: Annotated[str, Meta(description="Variant A's name.")]
    b: Annotated[str, Meta(description="Variant B's name.")]
    blocks: Literal["interleaved", "fresh"]
    blocks_wanted: Annotated[int, Meta(description="Valid blocks asked for per level.")]
    levels: list[Level]
    order: list[ABStepRecord]
    verdicts: list[Verdict]
    excluded: list[ABExcludedRun]
    too_few_valid_blocks: Annotated[
        dict[str, int],
        Meta(description="Level -> its valid blocks, for levels with fewer than asked for."),
    ]
    drift: Annotated[list[Drift], Meta(description="A's own trend over the session.")]
    differences: Annotated[
        dict[str, list[Any]],
        Meta(description="Launch field -> [A's value, B's value], where the variants differ."),
    ]
    identity: Annotated[dict[str, ABIdentity], Meta(description="Variant name -> identity.")]
    runs: ABRuns
    notes: list[str]


class ABDocument(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``ab.json``: every A/B comparison of the session (rewritten after each)."""

    schema: Literal["pytest-llmperf/ab/1"]
    written: Annotated[
        str, Meta(description="UTC time of writing.", extra_json_schema={"format": "date-time"})
    ]
    comparisons: list[ABComparison]


_SCHEMA_HEAD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/pytest-llmperf/pytest-llmperf/ab.schema.json",
    "title": "pytest-llmperf ab.json",
}


def generated_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``ab.json``, generated from the structs."""
    return schema_document([ABDocument], "ABDocument", _SCHEMA_HEAD)


def schema_text() -> str:
    """``generated_schema()`` as the shipped file's text."""
    return schema_file_text(generated_schema())
