"""The server timeline's pure parts: the sampled series' shape, its rates from the counter's
deltas, thinning, the [client] metrics_interval_s key, and the report's per-case plot."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.metrics.server import KV_USAGE, RUNNING, WAITING, parse_exposition
from pytest_llmperf.metrics.timeline import (
    GENERATION,
    MAX_POINTS,
    SAMPLED,
    Timeline,
    integrate,
    sample_values,
)

EXPOSITION = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 2.0
vllm:num_requests_waiting{engine="0",model_name="tiny"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="tiny"} 0.5
vllm:generation_tokens_total{engine="0",model_name="tiny"} 100.0
vllm:generation_tokens_total{engine="1",model_name="tiny"} 20.0
vllm:generation_tokens_created{engine="0",model_name="tiny"} 1.7e9
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 999.0
"""


def test_one_sample_sums_requests_takes_the_fullest_cache_and_the_counter() -> None:
    got = sample_values(parse_exposition(EXPOSITION, SAMPLED))
    assert got == {RUNNING: 5.0, WAITING: 1.0, KV_USAGE[0]: 0.5, GENERATION: 120.0}


def _timeline(points: list[tuple[float, float, float]]) -> Timeline:
    tl = Timeline()
    for t, running, tokens in points:
        tl.add(t, {RUNNING: running, WAITING: 0.0, KV_USAGE[1]: 0.1, GENERATION: tokens})
    return tl


def test_series_are_columns_with_rates_from_the_counters_deltas() -> None:
    tl = _timeline([(10.0, 0, 500), (10.5, 4, 600), (11.25, 4, 900), (11.5, 0, 900)])
    js = tl.to_json(10.0, 0.5)
    assert js["t_s"] == [0.0, 0.5, 1.25, 1.5]
    assert js["running"] == [0, 4, 4, 0]
    assert js["kv_cache_usage"] == [0.1] * 4  # the older gauge name is read too
    assert js["generation_tokens_per_s"] == [None, 200.0, 400.0, 0.0]
    assert js["interval_s"] == 0.5
    assert integrate(js) == pytest.approx(400.0)  # 900 - 500


def test_a_counter_reset_or_missing_counter_gives_no_rate() -> None:
    tl = _timeline([(0.0, 1, 500), (1.0, 1, 10)])
    tl.add(2.0, {RUNNING: 1.0})
    js = tl.to_json(0.0, 1.0)
    assert js["generation_tokens_per_s"] == [None, None, None]
    assert js["waiting"] == [0.0, 0.0, None]


def test_samples_must_come_in_time_order() -> None:
    tl = _timeline([(5.0, 0, 0)])
    with pytest.raises(ValueError, match="earlier"):
        tl.add(4.0, {})


def test_a_long_run_is_thinned_not_grown_without_bound() -> None:
    tl = _timeline([(float(i), 1, 10.0 * i) for i in range(MAX_POINTS + 1)])
    assert len(tl.points) == MAX_POINTS // 2 + 1
    js = tl.to_json(0.0, 1.0)
    assert all(b > a for a, b in zip(js["t_s"], js["t_s"][1:], strict=False))
    assert integrate(js) == pytest.approx(10.0 * MAX_POINTS)  # rates span the wider gaps


def _config(client: str) -> Any:
    import tomllib

    return parse_config(tomllib.loads(f"[client]\n{client}\n"), source="t.toml")


def test_metrics_interval_key() -> None:
    assert _config("metrics_interval_s = 0.25").client.metrics_interval_s == 0.25
    assert _config("").client.metrics_interval_s is None


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("metrics_interval_s = 0", "metrics_interval_s"),
        ("metrics_interval_s = 600", "metrics_interval_s"),
        ('metrics_interval_s = "fast"', "metrics_interval_s"),
        ("metrics_interval = 1", "Did you mean 'metrics_interval_s'"),
    ],
)
def test_bad_metrics_interval_is_refused(line: str, what: str) -> None:
    with pytest.raises(ConfigError, match=what):
        _config(line)


def test_report_plots_each_case_with_a_timeline() -> None:
    from pytest_llmperf.report.html_page import render_html
    from pytest_llmperf.report.timelines import case_timelines, timelines_section
    from pytest_llmperf.verdicts.case_result import CaseResult

    series = _timeline([(0.0, 0, 0), (0.5, 4, 100), (1.0, 2, 300)]).to_json(0.0, 0.5)

    def case(model: str, details: tuple[Any, ...]) -> CaseResult:
        return CaseResult(
            case_id=f"{model}-text-c4",
            model=model,
            workload="text",
            concurrency=4,
            runs=[{"request_throughput": 1.0}] * len(details),
            details=details,
        )

    with_tl = case("a", ({"server": {"timeline": series}}, {"server": {"timeline": series}}))
    without = case("b", ({"server": {"guardrails": {}}},))
    empty = case("c", ({"server": {"timeline": {**series, "t_s": []}}},))
    assert len(case_timelines(with_tl)) == 2
    assert case_timelines(without) == [] == case_timelines(empty)
    html = timelines_section([with_tl, without, empty])
    assert html.count("<img") == 1
    assert f"timeline-{with_tl.case_id}" in html and "2 run(s)" in html
    assert "data:image/png;base64,iVBOR" in html  # a PNG
    assert timelines_section([without]) == ""
    page = render_html([with_tl, without], environment={}, images={})
    assert "Server timelines" in page and page.count("data:image/png") == 1
    assert not math.isnan(integrate(series))
