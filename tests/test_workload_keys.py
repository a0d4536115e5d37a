"""Config errors of the ``[[workloads]]`` extras (``config.workload_keys``): dataset, synthetic
input lengths, shared prefix and multi-turn keys, each naming file, key path and what to do."""

from __future__ import annotations

import tomllib

import pytest

from pytest_llmperf.config import ConfigError, parse_config


def parse(text: str) -> object:
    return parse_config(tomllib.loads(text), source="pyproject.toml", prefix="tool.llmperf")


W = "[[workloads]]\nname = 'text'\n"


@pytest.mark.parametrize(
    ("toml", "key", "fragment"),
    [
        (W + "dataset = ''", "tool.llmperf.workloads[0].dataset", "expected a file path"),
        (W + "dataset = 'd.jsonl'\nturns = 2", "tool.llmperf.workloads[0]",
         "dataset and turns cannot be combined"),
        (W + "turns = 2\ninput_lengths = { distribution = 'fixed', mean = 8 }",
         "tool.llmperf.workloads[0]", "input_lengths and turns cannot be combined"),
        (W + "dataset = 'd.jsonl'\nshared_prefix_tokens = 4", "tool.llmperf.workloads[0]",
         "shared_prefix_tokens does not apply"),
        (W + "input_lengths = { mean = 8 }", "tool.llmperf.workloads[0].input_lengths",
         "no distribution given"),
        (W + "input_lengths = { distribution = 'zipf' }",
         "tool.llmperf.workloads[0].input_lengths.distribution", "lognormal"),
        ("[[workloads]]\nname = 'vision'\nturns = 2", "tool.llmperf.workloads[0]",
         "turns workloads are text only"),
        (W + "turns = 0", "tool.llmperf.workloads[0].turns", "out of range"),
        (W + "input_tokens = 16\nshared_prefix_tokens = 16",
         "tool.llmperf.workloads[0].shared_prefix_tokens", "out of range"),
    ],
)  # fmt: skip
def test_workload_extra_errors_name_the_key(toml: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(toml)
    err = info.value
    assert err.key == key, str(err)
    assert fragment.lower() in str(err).lower(), str(err)
    assert str(err).startswith(f"pyproject.toml: {key}: ")
    assert err.fix


def test_workload_extras_reach_the_workload() -> None:
    cfg = parse(
        "models = ['dense-gqa']\n" + W + "input_tokens = 64\nshared_prefix_tokens = 16\nturns = 3"
    )
    (w,) = cfg.workloads  # type: ignore[attr-defined]
    assert (w.shared_prefix_tokens, w.turns, w.dataset) == (16, 3, None)
