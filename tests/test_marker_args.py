"""``@pytest.mark.llmperf(...)`` arguments into a ``PerfCase`` (``engine.case_from_marker``):
each gate argument lands on its own ``Gates`` field, and bad arguments are named."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.session.marker import case_from_marker


def cfg() -> Any:
    return parse_config({"models": ["dense-gqa"], "workloads": ["text"]}, source="llmperf.toml")


@pytest.mark.parametrize(
    ("arg", "field"),
    [
        ("throughput_floor", "total_token_throughput_min"),
        ("output_throughput_floor", "output_throughput_min"),
        ("p99_ceiling_ms", "p99_e2el_ms_max"),
        ("p99_ttft_ms", "p99_ttft_ms_max"),
        ("p99_itl_ms", "p99_itl_ms_max"),
        ("min_success", "success_rate_min"),
    ],
)
def test_each_gate_argument_sets_its_own_gate(arg: str, field: str) -> None:
    base = case_from_marker(cfg(), {}).gates
    gates = case_from_marker(cfg(), {arg: 0.5}).gates
    assert getattr(gates, field) == 0.5
    changed = [f for f in type(gates).__dataclass_fields__ if getattr(gates, f) != getattr(base, f)]
    assert changed == [field]


def test_model_and_workload_by_name_or_from_the_config() -> None:
    case = case_from_marker(cfg(), {"model": "moe-gqa", "workload": "vision", "concurrency": 2})
    assert (case.model.name, case.model.tiny, case.workload.name, case.concurrency) == (
        "moe-gqa",
        "moe-gqa",
        "vision",
        2,
    )
    assert case_from_marker(cfg(), {}).model.name == "dense-gqa"


@pytest.mark.parametrize(
    ("kwargs", "key", "fragment"),
    [
        ({"colour": 1}, "colour", "unknown marker argument. Use only: arrival, burstiness, "),
        ({"model": "gpt-5"}, "model", "unknown model 'gpt-5'"),
        ({"workload": "chat"}, "workload", "unknown workload 'chat'"),
        ({"concurrency": 0}, "concurrency", "0 is not a concurrency"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        case_from_marker(cfg(), kwargs)
    assert info.value.source == "@pytest.mark.llmperf" and info.value.key == key
    assert fragment in str(info.value)
