"""The study's per-level status rules, checked on its published numbers, and the multi-run
statistics (mean, Student-t 95% CI, CoV)."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from pytest_llmperf.verdicts.saturation import (
    LevelPoint,
    classify_levels,
    classify_series,
    level_point,
    metric_stats,
    summarize_runs,
)

# Llama-3.1-405B, thorough stress, saturation levels (total tok/s, p99 s). The study publishes
# p99 only at 150, 500 and 1000; the others (marked) are interpolated and stay well under 2x.
LLAMA_405B = [
    (150, 10_320, 6.15, "OK"),
    (200, 11_519, 6.9, "OK"),  # p99 interpolated
    (300, 13_937, 8.6, "OK"),  # p99 interpolated
    (500, 15_944, 11.78, "OK"),
    (750, 15_693, 12.0, "SATURATED"),  # p99 interpolated
    (1000, 15_319, 12.28, "SATURATED"),
]


def points(rows: list[tuple[int, float, float, str]]) -> list[LevelPoint]:
    return [LevelPoint(c, tp, p99 * 1000, 1.0) for c, tp, p99, _ in rows]


def test_llama_405b_saturation() -> None:
    res = classify_levels(points(LLAMA_405B))
    assert [v.status for v in res.levels] == [s for *_, s in LLAMA_405B]
    assert (res.peak_throughput, res.peak_concurrency) == (15_944, 500)
    assert res.saturated_at == 750
    assert res.baseline_p99_ms == 6150  # the lowest level stands in for c=1
    assert res.levels[4].gain == pytest.approx(15_693 / 15_944)
    assert "x0.984 of c=500 < x1.05" in res.levels[4].reasons[0]


@pytest.mark.parametrize(
    ("name", "levels", "peak", "peak_c", "saturated_at"),
    [
        # Qwen3-VL saturation sweep: 750 and 1000 add < 5% over the level before.
        ("qwen3-vl", [(150, 23_557), (200, 29_557), (300, 37_850), (500, 47_873), (750, 47_092),
                      (1000, 47_252)], 47_873, 500, 750),
        # Multi-run per-level means: the study's peaks are Llama 6,808 at c=750, Qwen 11,218
        # at c=1000, both inside the saturated plateau.
        ("llama-multirun", [(10, 1_090), (50, 4_381), (100, 6_802), (200, 6_674), (500, 6_804),
                            (750, 6_808), (1000, 6_798)], 6_808, 750, 200),
        ("qwen-multirun", [(10, 1_902), (50, 6_961), (100, 11_198), (200, 11_193),
                           (500, 11_209), (750, 11_208), (1000, 11_218)], 11_218, 1000, 200),
    ],
)  # fmt: skip
def test_study_peaks(
    name: str, levels: list[tuple[int, float]], peak: float, peak_c: int, saturated_at: int
) -> None:
    res = classify_levels(LevelPoint(c, tp, 1000.0, 1.0) for c, tp in levels)
    assert (res.peak_throughput, res.peak_concurrency, res.saturated_at) == (
        peak, peak_c, saturated_at,
    )  # fmt: skip
    first_sat = [v.concurrency for v in res.levels].index(saturated_at)
    assert all(v.status == "OK" for v in res.levels[:first_sat])


@pytest.mark.parametrize(
    ("rows", "statuses"),
    [
        # DEGRADED: p99 past 2x the c=1 p99, even while throughput still grows
        ([(1, 100, 100, 1.0), (10, 900, 150, 1.0), (100, 5000, 201, 1.0)],
         ["OK", "OK", "DEGRADED"]),
        # FAILING beats everything: success below 95%
        ([(1, 100, 100, 1.0), (10, 90, 500, 0.94)], ["OK", "FAILING"]),
        ([(1, 100, 100, 1.0), (10, 500, 100, 0.95)], ["OK", "OK"]),
        # DEGRADED beats SATURATED
        ([(1, 100, 100, 1.0), (10, 100, 300, 1.0)], ["OK", "DEGRADED"]),
        ([(1, 100, 100, 1.0), (10, 104.9, 100, 1.0)], ["OK", "SATURATED"]),
        ([(1, 100, 100, 1.0), (10, 105, 100, 1.0)], ["OK", "OK"]),
        # input order does not matter
        ([(10, 105, 100, 1.0), (1, 100, 100, 1.0)], ["OK", "OK"]),
    ],
)  # fmt: skip
def test_rules(rows: list[tuple[int, float, float, float]], statuses: list[str]) -> None:
    res = classify_levels(LevelPoint(*r) for r in rows)
    assert [v.status for v in res.levels] == statuses


def test_explicit_baseline_and_reasons_list_every_rule() -> None:
    res = classify_levels(
        [LevelPoint(5, 100, 100, 1.0), LevelPoint(10, 90, 500, 0.5)], baseline_p99_ms=50
    )
    assert [v.status for v in res.levels] == ["OK", "FAILING"]
    assert len(res.levels[1].reasons) == 3  # failing, degraded and saturated, most severe first
    assert res.levels[1].reasons[0].startswith("success 50.0%")
    assert res.peak_concurrency == 5  # failing levels are not capacity


def test_all_failing_has_no_peak_and_bad_input_is_refused() -> None:
    res = classify_levels([LevelPoint(1, 10, 10, 0.0)])
    assert res.peak_throughput is None and res.peak_concurrency is None
    with pytest.raises(ValueError, match="at least one"):
        classify_levels([])
    with pytest.raises(ValueError, match="once"):
        classify_levels([LevelPoint(1, 1, 1, 1), LevelPoint(1, 2, 1, 1)])


def test_classify_series_from_metric_dicts() -> None:
    def m(tp: float) -> dict[str, float]:
        return {"total_token_throughput": tp, "p99_e2el_ms": 10.0, "success_rate": 1.0,
                "output_throughput": tp / 2}  # fmt: skip

    rows = [("a", "text", 1, m(100)), ("a", "text", 2, m(101)), ("b", "vision", 1, m(5))]
    out = classify_series(rows)
    assert out[("a", "text")].saturated_at == 2
    assert out[("b", "vision")].peak_throughput == 5
    out2 = classify_series(rows, throughput_metric="output_throughput")
    assert out2[("a", "text")].peak_throughput == 50.5
    assert level_point(3, m(7)) == LevelPoint(3, 7, 10, 1)


# --------------------------------------------------------------------------------------------
# Multi-run statistics
# --------------------------------------------------------------------------------------------


def test_metric_stats_matches_t_interval() -> None:
    xs = [6_500.0, 6_900.0, 6_700.0, 7_100.0, 6_840.0]
    s = metric_stats(xs)
    sd = statistics.stdev(xs)
    half = sps.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert s.n == 5 and s.mean == pytest.approx(6_808)
    assert s.std == pytest.approx(sd)
    assert (s.ci_low, s.ci_high) == (pytest.approx(6_808 - half), pytest.approx(6_808 + half))
    assert s.ci_half_width == pytest.approx(half)
    assert s.cov == pytest.approx(sd / 6_808)
    lo, hi = sps.t.interval(0.95, 4, loc=6_808, scale=sd / math.sqrt(5))
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))


def test_one_run_has_unknown_spread() -> None:
    s = metric_stats([42.0])
    assert s.mean == 42 and math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.cov)


def test_metric_stats_errors_and_zero_mean() -> None:
    with pytest.raises(ValueError):
        metric_stats([])
    with pytest.raises(ValueError, match="confidence"):
        metric_stats([1, 2], confidence=1.0)
    assert math.isnan(metric_stats([-1.0, 1.0]).cov)
    assert metric_stats([3.0, 3.0]).ci_half_width == 0


def test_summarize_runs_uses_common_metrics() -> None:
    runs = [{"a": 1.0, "b": 2.0}, {"a": 3.0}]
    out = summarize_runs(runs)
    assert list(out) == ["a"] and out["a"].mean == 2.0


@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=2, max_size=12))
def test_interval_contains_mean_and_widens_with_confidence(xs: list[float]) -> None:
    s95, s99 = metric_stats(xs), metric_stats(xs, confidence=0.99)
    assert s95.ci_low <= s95.mean <= s95.ci_high
    # the interval itself, against scipy's t-interval computed independently (sample std)
    sem = sps.sem(xs)
    if sem > 0:
        low, high = sps.t.interval(0.95, len(xs) - 1, loc=statistics.fmean(xs), scale=sem)
        assert (s95.ci_low, s95.ci_high) == pytest.approx((low, high), rel=1e-7, abs=1e-6)
    assert s99.ci_half_width >= s95.ci_half_width - 1e-9


def test_a_level_both_degraded_and_saturated_counts_as_saturated() -> None:
    """The default job's shape: throughput peaks at c=256 and falls at c=1,000 while p99 is far
    past the degradation limit; the report must say where saturation starts and name the knee."""
    from pytest_llmperf.verdicts.saturation import LevelPoint, classify_levels

    res = classify_levels(
        [
            LevelPoint(1, 400.0, 20.0, 1.0),
            LevelPoint(16, 2900.0, 30.0, 1.0),
            LevelPoint(256, 4000.0, 900.0, 1.0),
            LevelPoint(1000, 3500.0, 9000.0, 1.0),
        ]
    )
    last = res.levels[-1]
    assert last.status == "DEGRADED" and last.broken == ("DEGRADED", "SATURATED")
    assert res.saturated_at == 1000 and res.knee == 256 and res.peak_concurrency == 256
    scaling = classify_levels([LevelPoint(1, 1.0, 1.0, 1.0), LevelPoint(2, 2.0, 1.0, 1.0)])
    assert scaling.saturated_at is None and scaling.knee is None


def test_results_are_frozen_records() -> None:
    """Verdicts are handed to reports and baselines: nothing downstream may alter them."""
    import dataclasses

    res = classify_levels([LevelPoint(1, 10.0, 10.0, 1.0), LevelPoint(2, 10.0, 10.0, 1.0)])
    stats = metric_stats([1.0, 2.0])
    for obj, attr in (
        (LevelPoint(1, 1.0, 1.0, 1.0), "throughput"),
        (res.levels[1], "status"),
        (res, "saturated_at"),
        (stats, "mean"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, None)


def test_each_reason_states_the_rule_and_its_threshold() -> None:
    res = classify_levels([LevelPoint(1, 100.0, 100.0, 1.0), LevelPoint(10, 101.0, 300.0, 0.5)])
    first, second = res.levels
    assert first.gain is None and first.reasons == () and first.broken == ()
    assert second.reasons == (
        "success 50.0% < 95%",
        "p99 300 ms > 2x baseline 100 ms",
        "throughput x1.010 of c=1 < x1.05",
    )
    assert second.broken == ("FAILING", "DEGRADED", "SATURATED")


def test_p99_rule_needs_a_baseline_and_works_below_a_millisecond() -> None:
    # a zero baseline p99 gives no reference: nothing is DEGRADED against it
    zero = classify_levels([LevelPoint(1, 100.0, 0.0, 1.0), LevelPoint(2, 200.0, 50.0, 1.0)])
    assert [v.status for v in zero.levels] == ["OK", "OK"]
    # a sub-millisecond baseline (a fast instrument) still degrades at 2x
    fast = classify_levels([LevelPoint(1, 100.0, 0.4, 1.0), LevelPoint(2, 200.0, 0.9, 1.0)])
    assert [v.status for v in fast.levels] == ["OK", "DEGRADED"]


def test_gain_after_a_zero_level_is_unknown_and_small_figures_still_saturate() -> None:
    # a level with zero throughput (every request failed) gives no ratio for the next level
    after_zero = classify_levels([LevelPoint(1, 0.0, 10.0, 0.0), LevelPoint(2, 5.0, 10.0, 1.0)])
    assert [v.status for v in after_zero.levels] == ["FAILING", "OK"]
    assert after_zero.levels[1].gain is None
    # request throughput is often below 1/s: 0.5 -> 0.51 req/s is still saturation
    slow = classify_levels(
        [LevelPoint(1, 0.5, 10.0, 1.0), LevelPoint(2, 0.51, 10.0, 1.0)],
    )
    assert slow.levels[1].gain == pytest.approx(1.02)
    assert slow.saturated_at == 2


def test_hand_built_records_default_to_no_broken_rule_and_no_knee() -> None:
    from pytest_llmperf.verdicts.saturation import LevelVerdict, SaturationResult

    v = LevelVerdict(1, 10.0, 5.0, 1.0, "OK", (), None)
    assert v.broken == ()
    r = SaturationResult((v,), 10.0, 1, None, 5.0)
    assert r.knee is None


def test_bad_series_errors_say_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"^no levels to classify: measure at least one"):
        classify_levels([])
    with pytest.raises(ValueError, match=r"^each concurrency level must appear once; average"):
        classify_levels([LevelPoint(1, 1, 1, 1), LevelPoint(1, 2, 1, 1)])


def test_equal_throughput_peak_is_the_lower_concurrency() -> None:
    # reaching the same throughput with less load is the capacity point
    res = classify_levels(
        [LevelPoint(4, 100.0, 10.0, 1.0), LevelPoint(8, 100.0, 10.0, 1.0)],
        saturation_gain=0.5,
    )
    assert (res.peak_throughput, res.peak_concurrency) == (100.0, 4)


def test_classify_series_takes_the_latency_metric_by_name() -> None:
    m = {"total_token_throughput": 10.0, "p99_e2el_ms": 10.0, "p90_e2el_ms": 50.0,
         "success_rate": 1.0}  # fmt: skip
    m2 = dict(m, total_token_throughput=20.0, p90_e2el_ms=120.0)
    rows = [("a", "w", 1, m), ("a", "w", 2, m2)]
    by_p90 = classify_series(rows, latency_metric="p90_e2el_ms")[("a", "w")]
    assert by_p90.baseline_p99_ms == 50.0
    assert [v.status for v in by_p90.levels] == ["OK", "DEGRADED"]
    assert [v.status for v in classify_series(rows)[("a", "w")].levels] == ["OK", "OK"]


def test_statistics_edges_one_run_zero_confidence_and_the_default_level() -> None:
    from pytest_llmperf.verdicts.saturation import MetricStats

    assert metric_stats([42.0]).n == 1
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"^confidence must be between 0 and 1, got"):
            metric_stats([1.0, 2.0], confidence=bad)
    with pytest.raises(ValueError, match=r"^no values: a statistic needs at least one run"):
        metric_stats([])
    assert MetricStats(2, 1.0, 0.0, 1.0, 1.0, 0.0).confidence == 0.95


def test_summarize_runs_keeps_only_metrics_every_run_has_whatever_the_order() -> None:
    out = summarize_runs([{"a": 1.0}, {"a": 3.0, "b": 2.0}])
    assert list(out) == ["a"] and out["a"].mean == 2.0
    one = summarize_runs([{"a": 5.0}])
    assert one["a"].n == 1 and one["a"].mean == 5.0
    with pytest.raises(ValueError, match=r"^no runs to summarise$"):
        summarize_runs([])


def test_an_unknown_success_rate_is_failing() -> None:
    """A level whose success rate is NaN (nothing was counted) cannot pass the success rule."""
    res = classify_levels([LevelPoint(1, 100.0, 10.0, 1.0), LevelPoint(2, 190.0, 10.0, math.nan)])
    assert [v.status for v in res.levels] == ["OK", "FAILING"]
    assert res.levels[1].reasons == ("success nan% < 95%",)
