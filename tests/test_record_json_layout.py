"""Key order and values of the hand-readable JSON records built as msgspec structs.

Users diff these outputs (results.json's ``detail``, the plan and A/B files), so the order of
the keys is part of the format: a struct whose fields were reordered fails here."""

from __future__ import annotations

import json
import math

from pytest_llmperf.metrics.goodput import ScheduleFigures
from pytest_llmperf.metrics.quantile_bounds import QuantileBound, percentile_table
from pytest_llmperf.metrics.server import KV_USAGE, RUNNING, WAITING
from pytest_llmperf.metrics.summary import STATS, summarize
from pytest_llmperf.metrics.timeline import GENERATION, Timeline
from pytest_llmperf.report.results_json import results_document
from pytest_llmperf.verdicts.guardrails import GuardrailFlag
from pytest_llmperf.verdicts.suite_index import SuiteIndex
from tests.test_metrics import rec


def test_run_summary_keys_in_order_and_nan_kept() -> None:
    s = summarize([rec(0, chunks=[(0.1, 1), (0.2, 2)])], duration_s=2.0, extra={"k": [1, 2]})
    j = s.to_json()
    assert list(j) == [
        "duration_s", "num_requests", "completed", "failed", "total_input_tokens",
        "total_output_tokens", "errors", "chunks", "metrics", "queue_wait_ms", "extra",
    ]  # fmt: skip
    assert list(j["queue_wait_ms"]) == list(STATS)
    assert list(j["metrics"]) == list(s.metrics())
    assert j["extra"] == {"k": [1, 2]} and j["chunks"] == 2
    empty = summarize([rec(0, error="timeout")], duration_s=1.0).to_json()
    assert math.isnan(empty["metrics"]["mean_ttft_ms"])  # NaN stays NaN (results.json: null)


def test_schedule_figures_are_every_field_in_order_with_inf_and_nan_kept() -> None:
    fig = ScheduleFigures(2.0, math.inf, 1.5, math.nan, 3, 4, 0.25)
    j = fig.to_json()
    assert list(j) == [
        "requested_rate", "scheduled_rate", "achieved_rate", "completion_rate",
        "backlog_at_schedule_end", "peak_in_flight", "send_lag_p99_ms",
    ]  # fmt: skip
    assert json.dumps(j) == (
        '{"requested_rate": 2.0, "scheduled_rate": Infinity, "achieved_rate": 1.5, '
        '"completion_rate": NaN, "backlog_at_schedule_end": 3, "peak_in_flight": 4, '
        '"send_lag_p99_ms": 0.25}'
    )


def test_quantile_bound_keys_in_order_and_a_percentile_row() -> None:
    b = QuantileBound(0.99, 10, 0.95, 1.5, math.inf, math.nan, 2, None, 299)
    assert json.dumps(b.to_json()) == (
        '{"q": 0.99, "n": 10, "confidence": 0.95, "point": 1.5, "lower": null, "upper": null, '
        '"lower_k": 2, "upper_k": null, "min_n": 299, "enough": false}'
    )
    row = percentile_table({"ttft": [1.0, 2.0, 3.0]}, 0.9)["ttft"]
    assert list(row) == ["n", "confidence", "p50", "p90", "p95", "p99"]
    assert (row["n"], row["confidence"], row["p50"]["point"]) == (3, 0.9, 2.0)


def test_timeline_columns_in_order() -> None:
    tl = Timeline()
    tl.add(1.0, {RUNNING: 2.0, GENERATION: 10.0})
    tl.add(1.5, {RUNNING: 3.0, WAITING: 1.0, KV_USAGE[0]: 0.123456, GENERATION: 30.0})
    assert json.dumps(tl.to_json(1.0, 0.5)) == (
        '{"interval_s": 0.5, "t_s": [0.0, 0.5], "running": [2.0, 3.0], "waiting": [null, 1.0], '
        '"kv_cache_usage": [null, 0.1235], "generation_tokens_per_s": [null, 40.0]}'
    )


def test_a_guardrail_flag_is_its_fields_in_order() -> None:
    flag = GuardrailFlag("preemptions", "vLLM preempted 3 requests", True)
    assert json.dumps(flag.to_json()) == (
        '{"name": "preemptions", "message": "vLLM preempted 3 requests", "fails": true}'
    )
    assert flag == GuardrailFlag("preemptions", "vLLM preempted 3 requests", True)


def test_suite_index_keeps_an_infinite_index_and_results_json_writes_it_as_null() -> None:
    s = SuiteIndex(
        "PASS", math.inf, 0.85, 1, (("c1", 2.0),), (("m", 2.0),), (("c2", "why"),), "msg"
    )
    assert json.dumps(s.to_json()) == (
        '{"metric": "output_throughput", "verdict": "PASS", "index": Infinity, "fraction": 0.85, '
        '"min_cases": 1, "cases": [{"case_id": "c1", "ratio": 2.0}], "per_model": {"m": 2.0}, '
        '"uncounted": [{"case_id": "c2", "why": "why"}], "message": "msg"}'
    )
    doc = results_document([], environment={}, complete=True, suite=s)
    assert doc["suite_index"] == {**s.to_json(), "index": None}
    assert list(doc["suite_index"]) == list(s.to_json())
