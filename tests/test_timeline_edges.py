"""metrics.timeline at its edges (pure): samples at an equal time, the refusal's text, thinning
exactly at ``MAX_POINTS``, the precision of each stored column, what one sample scans for, and
the default sampling interval."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_llmperf.loadgen.spec import LoadSpec
from pytest_llmperf.metrics.server import GAUGES, KV_USAGE, RUNNING, WAITING, parse_exposition
from pytest_llmperf.metrics.timeline import (
    DEFAULT_INTERVAL_S,
    GENERATION,
    MAX_POINTS,
    SAMPLED,
    Timeline,
    sample_values,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "guardrails.md"


def test_a_sample_at_the_same_time_as_the_last_is_kept_without_a_rate() -> None:
    """Two scrapes can land on the same clock reading (a coarse clock, a late sampler): both are
    kept; the second has no interval to divide by, so no rate (not a ZeroDivisionError)."""
    tl = Timeline()
    tl.add(1.0, {GENERATION: 10.0})
    tl.add(1.0, {GENERATION: 12.0})
    tl.add(1.5, {GENERATION: 22.0})
    assert [t for t, _ in tl.points] == [1.0, 1.0, 1.5]
    assert tl.to_json(1.0, 0.5)["generation_tokens_per_s"] == [None, None, 20.0]


def test_an_earlier_sample_is_refused_naming_both_times() -> None:
    tl = Timeline()
    tl.add(5.0, {RUNNING: 7.0})
    with pytest.raises(ValueError) as err:
        tl.add(4.5, {RUNNING: 1.0})
    assert str(err.value) == "sample at 4.5 is earlier than the last one (5.0)"
    assert len(tl.points) == 1


def test_exactly_max_points_are_kept_one_more_halves_them() -> None:
    tl = Timeline()
    for i in range(MAX_POINTS):
        tl.add(float(i), {})
    assert len(tl.points) == MAX_POINTS
    tl.add(float(MAX_POINTS), {})
    assert len(tl.points) == MAX_POINTS // 2 + 1
    assert tl.points[-1][0] == float(MAX_POINTS)  # the newest sample survives the thinning


def test_each_column_is_stored_at_its_stated_precision() -> None:
    """Times in ms (3 digits), requests to 0.1, the KV-cache fill to 4 digits, rates to 0.01
    tokens/s: each figure below has one more digit than its column keeps."""
    tl = Timeline()
    tl.add(10.0, {RUNNING: 1.26, WAITING: 2.74, KV_USAGE[0]: 0.123456, GENERATION: 0.0})
    tl.add(10.3, {RUNNING: 3.0, WAITING: 0.0, KV_USAGE[0]: 0.5, GENERATION: 100.0})
    tl.add(11.23456, {RUNNING: 0.0, WAITING: 0.0, KV_USAGE[0]: 0.0, GENERATION: 100.0})
    js = tl.to_json(10.0, 0.5)
    assert js["t_s"] == [0.0, 0.3, 1.235]
    assert js["running"] == [1.3, 3.0, 0.0]
    assert js["waiting"] == [2.7, 0.0, 0.0]
    assert js["kv_cache_usage"] == [0.1235, 0.5, 0.0]
    assert js["generation_tokens_per_s"] == [None, 333.33, 0.0]  # 100 tokens in 0.3 s


def test_a_sample_scans_only_the_gauges_and_the_generation_counter() -> None:
    """The sampler runs during the measured phase, so it parses only what a sample keeps: a
    prompt-token counter or a histogram in the same exposition is skipped, not parsed."""
    text = "\n".join(
        [
            'vllm:num_requests_running{engine="0"} 2.0',
            'vllm:generation_tokens_total{engine="0"} 40.0',
            'vllm:prompt_tokens_total{engine="0"} 999.0',
            'vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0"} 5.0',
        ]
    )
    scrape = parse_exposition(text, SAMPLED)
    assert set(scrape.samples) == {RUNNING, GENERATION}
    assert set(SAMPLED) == {*GAUGES, GENERATION}
    assert sample_values(scrape) == {RUNNING: 2.0, GENERATION: 40.0}


def test_the_default_interval_is_the_documented_one_everywhere() -> None:
    """docs/guardrails.md states the default (0.5 s); the load generator's spec repeats it as a
    literal, and the session falls back to ``DEFAULT_INTERVAL_S``: all three agree."""
    documented = re.search(r"default ([0-9.]+) s", DOCS.read_text())
    assert documented is not None
    assert DEFAULT_INTERVAL_S == float(documented.group(1)) == 0.5
    assert LoadSpec(concurrency=1).metrics_interval_s == DEFAULT_INTERVAL_S
