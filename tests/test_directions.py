"""The metric-direction rule's one home (``metrics.directions``) and the answer each user gets:
a trend asks which way is better (a falling success rate is worse), a comparison asks how to
compare (the success rate by an absolute check, "exact")."""

from __future__ import annotations

import pytest

from pytest_llmperf.history.changepoints import ChangePoint, Point, build_series
from pytest_llmperf.metrics import directions
from pytest_llmperf.metrics.summary import direction as summary_direction
from pytest_llmperf.metrics.summary import metric_names
from pytest_llmperf.verdicts import baseline as bl
from pytest_llmperf.verdicts.compare import EXACT_TARGET
from pytest_llmperf.verdicts.fingerprint import Fingerprint


def test_success_rate_is_higher_is_better_and_compared_exactly() -> None:
    assert directions.better("success_rate") == "higher"
    assert directions.comparison("success_rate") == "exact"
    assert summary_direction("success_rate") == "higher"
    assert bl.metric_direction("success_rate") == "exact"
    # the target the comparator checks every run against is the one stated beside the rule
    assert directions.EXACT_TARGETS["success_rate"] == EXACT_TARGET == 1.0


@pytest.mark.parametrize(
    ("name", "way"),
    [
        ("total_token_throughput", "higher"),
        ("goodput_throughput", "higher"),
        ("p99_ttft_ms", "lower"),
        ("duration_s", "lower"),
        ("e2e_latency", "lower"),
    ],
)
def test_the_naming_rule_is_the_same_for_both_questions(name: str, way: str) -> None:
    assert directions.better(name) == directions.comparison(name) == way
    assert bl.metric_direction(name) == way
    assert directions.known(name)


def test_every_summary_metric_agrees_between_the_two_questions() -> None:
    for name in metric_names():
        expected = "exact" if name == "success_rate" else summary_direction(name)
        assert bl.metric_direction(name) == expected


@pytest.mark.parametrize("name", ["colour", "p99_ttft", "prefix_cache_hit_rate"])
def test_a_name_outside_the_rule_has_no_direction(name: str) -> None:
    assert not directions.known(name)
    for fn in (directions.better, directions.comparison, bl.metric_direction):
        with pytest.raises(ValueError, match=f"no default direction for metric '{name}'"):
            fn(name)


def test_a_falling_success_rate_in_the_history_is_worse() -> None:
    fp = Fingerprint(platform="cpu", model_name="tiny:m")
    rows = [
        {"session_id": sid, "started": f"2026-11-0{sid}", "commit_sha": None,
         "baseline_saved": False, "case_id": "m-text-c4", "fingerprint_id": fp.id(),
         "partial_fingerprint": False, "metric": "success_rate", "value": value, "run": 0}
        for sid, value in ((1, 1.0), (2, 1.0), (3, 0.8))
    ]  # fmt: skip
    (series,) = build_series(rows, {fp.id(): fp.to_dict()}, metrics=["success_rate"])
    assert series.direction == "higher"
    before, after = series.points[1], series.points[2]
    drop = ChangePoint(2, before, after, 1.0, 0.8, 0.01, series.direction)
    assert drop.worse and "(worse)" in drop.describe()
    assert isinstance(before, Point)


def test_the_rule_refuses_an_unknown_name_with_the_whole_rule() -> None:
    with pytest.raises(ValueError) as err:
        directions.better("colour")
    assert str(err.value) == (
        "no default direction for metric 'colour' (names ending in 'throughput' are "
        "higher-is-better, '_ms' lower); pass direction_of= giving 'higher', 'lower' or 'exact'"
    )


@pytest.mark.parametrize("direction", ["higher", "lower", "exact"])
def test_a_baseline_file_takes_each_direction_and_refuses_others(direction: str) -> None:
    fp = Fingerprint(platform="cpu", model_name="tiny:m")
    doc = bl.to_dict(bl.from_runs("s", fp, {"c": [{"p99_ttft_ms": 1.0}]}))
    doc["cases"]["c"]["metrics"]["p99_ttft_ms"]["direction"] = direction
    assert bl.from_dict(doc).cases["c"].metrics["p99_ttft_ms"].direction == direction
    doc["cases"]["c"]["metrics"]["p99_ttft_ms"]["direction"] = direction.upper()
    with pytest.raises(bl._SchemaProblem) as err:
        bl.from_dict(doc)
    assert str(err.value).endswith(".direction must be one of higher, lower, exact")
