"""The ``results.json`` records: typed, immutable ``msgspec`` structs, and its generated schema.

One struct per object in the file. ``report.results_json`` builds them from the verdict records
and encodes them with ``msgspec.json``; ``read_results`` decodes a file into them (a wrong type
or a missing key is reported with its path, e.g. ``$.cases[0].concurrency``). The shipped
``report/report.schema.json`` is generated from these structs::

    python -m pytest_llmperf.report.generate_schema          # rewrite report/report.schema.json
    python -m pytest_llmperf.report.generate_schema --check  # exit 1 if it is stale

(``tests/test_results_records.py`` fails when the committed schema differs from the generated
one.) Numbers are ``float | None``: the file has no NaN, an unknown number is null.

Free-form parts stay plain JSON objects: the session and case ``environment`` (a fingerprint),
each run's ``detail`` and the case's ``percentiles`` (``metrics.quantile_bounds.percentile_table``).
Their schemas still come from structs, referenced from the fields: ``ServerAccount`` (here) for
``detail.server``, ``RunSummaryRecord`` (``metrics.summary``) for ``detail.summary``,
``ClientHealth`` and ``TokenCheck`` (``loadgen.spec``) for ``detail.client`` and
``detail.token_check``, ``PercentileRow`` (``metrics.quantile_bounds``). A record owned by a lower
layer is declared there once and imported here: ``Bound``, ``PercentileRow``,
``RunSummaryRecord``, ``TimelineRecord`` (metrics), ``ClientHealth``, ``TokenCheck`` (loadgen),
``GuardrailFlag``, ``SuiteIndexRecord`` (verdicts).

This module imports ``msgspec``; the pytest entry point never imports it at import time.

Size (about 350 lines), stated: it is one file format's whole type, eleven small structs
(mostly field declarations with their ``Meta`` descriptions, no logic) from which the one schema
is generated; splitting them would spread one schema's source over several modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from pytest_llmperf.core.json_schema import schema_document, schema_file_text
from pytest_llmperf.loadgen.spec import ClientHealth, TokenCheck
from pytest_llmperf.metrics.quantile_bounds import Bound, PercentileRow
from pytest_llmperf.metrics.summary import RunSummaryRecord
from pytest_llmperf.metrics.timeline import TimelineRecord
from pytest_llmperf.verdicts.guardrails import GuardrailFlag
from pytest_llmperf.verdicts.suite_index import SuiteIndexRecord

SCHEMA_FILE = Path(__file__).with_name("report.schema.json")

Number = float | None
Status = Literal["OK", "SATURATED", "DEGRADED", "FAILING"]
Environment = Annotated[
    dict[str, Any],
    Meta(
        description="Free-form fingerprint: hardware (GPU/CPU model, driver, ROCm/CUDA), vLLM "
        "version, model revision, launch flags. Comparisons are only valid between equal "
        "fingerprints."
    ),
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


# --------------------------------------------------------------------------------------------
# Records in the file
# --------------------------------------------------------------------------------------------


class Tool(Struct, frozen=True, kw_only=True):
    """The writer of the file."""

    name: Literal["pytest-llmperf"]
    version: str


class Gate(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One gate checked against the case's first run (percentile ceilings: against the case's
    samples pooled across its runs)."""

    name: Annotated[
        str, Meta(description="The gate, e.g. output_throughput_min or p99_e2el_ms_max.")
    ]
    metric: str
    measured: Number
    limit: float
    kind: Literal["floor", "ceiling", "exact"]
    passed: bool
    margin_pct: Annotated[
        Number,
        Meta(
            description="Headroom in % of the limit; negative when past it; null when the "
            "limit is 0 or nothing was measured."
        ),
    ]
    verdict: Annotated[
        Literal["PASS", "FAIL", "INCONCLUSIVE"] | UnsetType,
        Meta(
            description="INCONCLUSIVE: a percentile ceiling whose confidence bounds straddle "
            "the limit, or too few samples for a bound; it fails the case only under "
            "--llmperf-strict (then passed is false)."
        ),
    ] = UNSET
    bound: Annotated[
        Bound | None,
        Meta(
            description="A percentile ceiling's bounds over the case's samples pooled across "
            "its runs; null for other gates."
        ),
    ] = None


class MetricSummary(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A metric over the case's runs: mean, sample std, Student-t confidence interval,
    coefficient of variation. With one run std, ci_* and cov are null."""

    n: Annotated[int, Meta(ge=1)]
    mean: Number
    std: Number
    ci_low: Number
    ci_high: Number
    cov: Number
    confidence: Annotated[float, Meta(gt=0, lt=1)]


RunMetrics = Annotated[
    dict[str, Number],
    Meta(
        description="One run's flat metrics (RunSummary.metrics()): request_throughput, "
        "output_throughput, total_token_throughput, peak_output_throughput (tok/s or req/s), "
        "success_rate (0..1), and {mean,median,std,p50,p90,p95,p99,p99_9}_"
        "{ttft,tpot,itl,ichunk,e2el,ttfct}_ms (ttfct: time to the first content token, after "
        "a reasoning model's thinking; TTFT ends at the first token of any kind).",
        extra_json_schema={
            "properties": {"success_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1}}
        },
    ),
]


class Run(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One measured run of a case."""

    metrics: RunMetrics
    detail: (
        Annotated[
            dict[str, Any],
            Meta(
                description="The run's full account, when recorded; detail.summary: its "
                "summary (RunSummary.to_json()); detail.server: vLLM's own /metrics account of "
                "the run (guardrails, witness, flags; see docs/guardrails.md); detail.client: the "
                "load generator's own health (ClientHealth); detail.token_check: the three-way "
                "token count check (TokenCheck).",
                extra_json_schema={
                    "properties": {
                        "summary": _ref("RunSummaryRecord"),
                        "server": _ref("ServerAccount"),
                        "client": _ref("ClientHealth"),
                        "token_check": _ref("TokenCheck"),
                    }
                },
            ),
        ]
        | UnsetType
    ) = UNSET


class Case(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One case: its runs, their summary over runs, its gates and saturation status."""

    case_id: Annotated[
        str,
        Meta(
            pattern=r"^.+-(c[0-9]+|r[0-9][0-9.e+-]*)$",
            description="model-workload-cN (closed loop at concurrency N) or model-workload-rR "
            "(open loop at R requests/s), stable across runs.",
        ),
    ]
    nodeid: Annotated[str, Meta(description="The pytest node id, or empty.")]
    model: str
    workload: str
    concurrency: Annotated[
        int,
        Meta(
            ge=0,
            description="The closed-loop level; for an open-loop case its max_concurrency cap, "
            "0 when uncapped (environment.load holds the rate).",
        ),
    ]
    status: Status | None
    passed: Annotated[
        bool,
        Meta(description="Every gate passed and the measurement was not client-bound."),
    ]
    client_bound: Annotated[
        bool,
        Meta(
            description="The load generator could not keep up; the numbers describe the "
            "client, not the server."
        ),
    ]
    client_reasons: list[str]
    errors: Annotated[
        dict[str, Annotated[int, Meta(ge=0)]],
        Meta(description="Failed requests by error kind, over all runs."),
    ]
    environment: Environment
    runs: list[Run]
    summary: dict[str, MetricSummary]
    gates: list[Gate]
    percentiles: Annotated[
        dict[str, Any],
        Meta(
            description="Per latency (ttft, tpot, itl, ichunk, e2el, ttfct): n (samples pooled "
            "over the case's runs), confidence, and for p50/p90/p95/p99 a Bound.",
            extra_json_schema={"additionalProperties": _ref("PercentileRow")},
        ),
    ] = {}


#: A closed-loop case (``-cN``) runs at least one stream.
_CLOSED_LOOP_RULE = {
    "if": {"properties": {"case_id": {"pattern": "-c[0-9]+$"}}},
    "then": {"properties": {"concurrency": {"minimum": 1}}},
}


class Level(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One concurrency level of a series: its status and every rule it broke."""

    concurrency: Annotated[int, Meta(ge=1)]
    status: Status
    reasons: list[str]
    gain: Number


class Series(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The study's status rules over one model/workload, levels in concurrency order."""

    model: str
    workload: str
    peak_throughput: Number
    peak_concurrency: int | None
    saturated_at: int | None
    knee: Annotated[
        int | None,
        Meta(description="The last level before saturated_at: where throughput stopped growing."),
    ] = None
    baseline_p99_ms: Number
    levels: list[Level]


class ResultsDocument(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every measured case of a pytest-llmperf session. Rewritten atomically after each case;
    'complete' is false until the session ends, so a file left by an interrupted session holds
    the cases measured so far. Numbers that could not be measured (NaN) are null."""

    schema_version: Annotated[Literal[1], Meta(description="Bumped on any incompatible change.")]
    tool: Tool
    created: Annotated[
        str,
        Meta(
            description="When the session wrote its first case (UTC, ISO 8601).",
            extra_json_schema={"format": "date-time"},
        ),
    ]
    updated: Annotated[
        str,
        Meta(
            description="When this file was last rewritten.",
            extra_json_schema={"format": "date-time"},
        ),
    ]
    complete: Annotated[
        bool,
        Meta(
            description="True once the session finished; false while running or after an "
            "interruption."
        ),
    ]
    environment: Environment
    cases: list[Annotated[Case, Meta(extra_json_schema=_CLOSED_LOOP_RULE)]]
    saturation: list[Series]
    suite_index: Annotated[
        SuiteIndexRecord | None,
        Meta(
            description="The session's throughput index (verdicts.suite_index); null where the "
            "config has no suite floor (a user's own file without [suite_floor])."
        ),
    ] = None


# --------------------------------------------------------------------------------------------
# Shapes of the free-form parts (schema only; the writers build them as plain objects)
# --------------------------------------------------------------------------------------------


class Guardrails(Struct, frozen=True, kw_only=True):
    """Counter deltas and gauge peaks of vLLM's /metrics over one run."""

    source: str
    preemptions: Number
    prefix_cache_queries: Number
    prefix_cache_hits: Number
    prefix_cache_hit_rate: Number | UnsetType = UNSET
    peak_running: Number
    peak_waiting: Number
    peak_kv_cache_usage: Number
    spec_decode: dict[str, Any] | UnsetType | None = UNSET


class Witness(Struct, frozen=True, kw_only=True):
    """vLLM's latency histograms against the client's samples."""

    source: str
    metrics: dict[str, Any]
    late: list[str]


class ServerAccount(Struct, frozen=True, kw_only=True):
    """vLLM's /metrics over one run: guardrails (counter deltas and gauge peaks), timeline (the
    gauges sampled during it), witness (its latency histograms against the client's samples),
    flags (the guardrail verdicts)."""

    guardrails: Guardrails
    witness: Witness
    timeline: TimelineRecord | UnsetType = UNSET
    flags: list[GuardrailFlag] | UnsetType = UNSET


# --------------------------------------------------------------------------------------------
# The generated schema
# --------------------------------------------------------------------------------------------

_SCHEMA_HEAD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/pytest-llmperf/pytest-llmperf/report.schema.json",
    "title": "pytest-llmperf results.json",
}


def generated_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``results.json``, generated from the structs."""
    return schema_document(
        [ResultsDocument, RunSummaryRecord, ServerAccount, PercentileRow, ClientHealth, TokenCheck],
        "ResultsDocument",
        _SCHEMA_HEAD,
    )


def schema_text() -> str:
    """``generated_schema()`` as the shipped file's text."""
    return schema_file_text(generated_schema())
