"""The JSON of the records that land in results.json's ``environment`` and ``detail``: the CPU
layout, the client's health, the token check, a run's result, a capacity search. Field for
field, key order and value types included (users diff these files), and their schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_report import ENV, make_cases

from pytest_llmperf.core.cpu_layout import CpuLayout
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.spec import ClientHealth, LoadSpec, RunResult, TokenCheck
from pytest_llmperf.metrics.summary import summarize
from pytest_llmperf.report import schema, write_results
from pytest_llmperf.session.capacity import CapacityResult, Step
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.workload.presets import Workload

HEALTH = ClientHealth(
    cpu_s=1.5, wall_s=3.0, cpu_per_request_ms=2.0, cpu_per_token_us=40.0, loop_lag_p99_ms=3.5,
    loop_lag_max_ms=9.0, schedule_lag_p99_ms=1.0, schedule_lag_max_ms=2.0, queue_wait_p99_ms=0.0,
    peak_rss_mb=120.0, event_loop="uvloop+httptools", client_bound=True,
    reasons=("event-loop lag", "cpu"), one_read_requests=1, max_events_per_read=3,
    multi_event_read_fraction=0.25, late_reads=True, workers=2, workers_reason="rate",
)  # fmt: skip
CHECK = TokenCheck("mismatch", "unavailable", ("prompt off by 1",), 64, 32, 65, 32, None, 3.0)


def test_cpu_layout_json_names_the_cpu_lists_and_the_bind_value() -> None:
    doc = CpuLayout((0, 2, 3), (7,), "0,2-3/7").to_json()
    assert list(doc.items()) == [
        ("server_cpus", [0, 2, 3]),
        ("client_cpus", [7]),
        ("vllm_cpu_omp_threads_bind", "0,2-3"),
        ("source", "0,2-3/7"),
    ]
    assert type(doc["server_cpus"]) is list and type(doc["client_cpus"]) is list


@pytest.mark.parametrize("record", [HEALTH, CHECK], ids=["health", "token_check"])
def test_health_and_token_check_json_is_every_field_in_order(record: Any) -> None:
    doc = record.to_json()
    assert list(doc) == list(record.__slots__)
    assert doc == {name: getattr(record, name) for name in record.__slots__}
    assert type(doc["reasons"]) is tuple  # as it always was in memory


def test_run_result_json_keeps_its_sections() -> None:
    rec = RequestRecord(0, 0.0, 0.0, 0.1, 0.3, (0.1, 0.2, 0.3), (1, 1, 1), 8, 3, 3, 200)
    summary = summarize([rec], duration_s=1.0)
    workload = Workload("t", input_tokens=64, output_tokens=32, shared_prefix_tokens=8)
    spec = LoadSpec(concurrency=4, num_requests=10, min_duration_s=2.5)
    result = RunResult((rec,), summary, HEALTH, CHECK, spec, workload, server={"g": 1})
    doc = result.to_json()
    assert list(doc) == [
        "workload", "spec", "summary", "vllm_bench", "client_health", "token_check", "server",
    ]  # fmt: skip
    assert doc["workload"] == {
        "name": "t", "kind": "text", "endpoint": "completions", "input_tokens": 64,
        "output_tokens": 32, "images_per_request": 0, "image_size": workload.image_size,
        "shared_prefix_tokens": 8, "seed": 0,
    }  # fmt: skip
    assert type(doc["workload"]["image_size"]) is tuple
    assert list(doc["spec"]) == list(LoadSpec.__slots__)
    assert doc["spec"]["concurrency"] == 4 and doc["spec"]["min_duration_s"] == 2.5
    assert doc["summary"] == summary.to_json()
    assert doc["client_health"] == HEALTH.to_json() and doc["token_check"] == CHECK.to_json()
    assert doc["server"] == {"g": 1}


def test_capacity_json_lists_every_step() -> None:
    steps = (Step(1.0, 1.0, True), Step(2.0, None, False, "client-bound"))
    doc = CapacityResult(0.9, 1.0, None, steps, bounded=False, note="n").to_json()
    assert list(doc.items()) == [
        ("target", 0.9),
        ("capacity_rate", 1.0),
        ("lowest_failing_rate", None),
        (
            "steps",
            [
                {"rate": 1.0, "fraction": 1.0, "passed": True, "note": ""},
                {"rate": 2.0, "fraction": None, "passed": False, "note": "client-bound"},
            ],
        ),
        ("bounded", False),
        ("note", "n"),
    ]
    assert type(doc["steps"]) is list


def test_the_client_and_token_check_of_a_run_are_checked(tmp_path: Path) -> None:
    """``detail.client`` and ``detail.token_check`` are held to their records' schemas."""
    detail = {"client": HEALTH.to_json(), "token_check": CHECK.to_json()}
    case = CaseResult(**{**vars(make_cases(runs=1)[0]), "details": (detail,)})
    path = write_results(tmp_path, [case], environment=ENV)
    jsonschema.validate(json.loads(path.read_text()), schema(), cls=jsonschema.Draft202012Validator)
    for part, key, value in (
        ("client", "client_bound", "yes"),
        ("client", "workers", 1.5),
        ("token_check", "status", "fine"),
        ("token_check", "metrics_prompt_delta", "3"),
    ):
        bad = json.loads(path.read_text())
        bad["cases"][0]["runs"][0]["detail"][part][key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema(), cls=jsonschema.Draft202012Validator)
