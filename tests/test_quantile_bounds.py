"""Distribution-free quantile bounds (order statistics / binomial) and the percentile gates
that use them: known values, coverage by simulation, off-by-one sensitivity, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from pytest_llmperf.config import Gates
from pytest_llmperf.metrics.quantile_bounds import (
    lower_index,
    min_samples_lower,
    min_samples_upper,
    percentile_table,
    pool_samples,
    quantile_bound,
    quantile_of_stat,
    upper_index,
)
from pytest_llmperf.verdicts.gates import (
    case_passed,
    evaluate_gates,
    gate_failure_message,
    percentile_gate,
)


@pytest.mark.parametrize(
    ("q", "confidence", "n"),
    [
        (0.99, 0.95, 299),  # the p99 rule of thumb (MLPerf's early stopping starts here)
        (0.90, 0.95, 29),
        (0.95, 0.95, 59),
        (0.50, 0.95, 5),
        (0.99, 0.99, 459),
        (0.999, 0.95, 2995),
    ],
)
def test_min_samples_known_values(q: float, confidence: float, n: int) -> None:
    assert min_samples_upper(q, confidence) == n
    assert upper_index(n, q, confidence) == n  # just enough: the maximum is the bound
    assert upper_index(n - 1, q, confidence) is None


def test_known_indices() -> None:
    # P(B <= k-1) for B ~ Bin(1000, 0.99): k = 996 is the first with >= 0.95
    assert upper_index(1000, 0.99) == 996
    assert binom.cdf(995, 1000, 0.99) >= 0.95 > binom.cdf(994, 1000, 0.99)
    assert lower_index(1000, 0.99) == 985
    assert binom.sf(984, 1000, 0.99) >= 0.95 > binom.sf(985, 1000, 0.99)
    assert lower_index(10, 0.99) == 9  # P(B >= 9) = 0.9957, P(B = 10) = 0.904
    assert min_samples_lower(0.99) == 1


@given(
    n=st.integers(min_value=1, max_value=3000),
    q=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    c=st.sampled_from([0.9, 0.95, 0.99]),
)
@settings(max_examples=200, deadline=None)
def test_index_is_the_tightest_that_holds(n: int, q: float, c: float) -> None:
    """The upper index k holds (cdf(k-1) >= c) and k-1 does not; the lower index k holds
    (sf(k-1) >= c) and k+1 does not. An off-by-one in either direction breaks this."""
    k = upper_index(n, q, c)
    if k is None:
        assert binom.cdf(n - 1, n, q) < c
    else:
        assert binom.cdf(k - 1, n, q) >= c
        assert k == 1 or binom.cdf(k - 2, n, q) < c
    j = lower_index(n, q, c)
    if j is None:
        assert binom.sf(0, n, q) < c
    else:
        assert binom.sf(j - 1, n, q) >= c
        assert j == n or binom.sf(j, n, q) < c
    if k is not None and j is not None:
        assert j <= k


@pytest.mark.parametrize("dist", ["exponential", "lognormal", "uniform"])
@pytest.mark.parametrize(("n", "q"), [(300, 0.99), (40, 0.9), (2000, 0.99)])
def test_coverage_by_simulation(dist: str, n: int, q: float) -> None:
    """Over many samples of a known distribution, the upper bound is at or above the true
    quantile in at least 95% of trials (and not wildly more: it is the tightest index), and
    the lower bound at or below it in at least 95%."""
    rng = np.random.default_rng(12345)
    trials = 4000
    if dist == "exponential":
        draw = rng.exponential(1.0, (trials, n))
        true_q = -math.log(1 - q)
    elif dist == "lognormal":
        draw = rng.lognormal(0.0, 1.0, (trials, n))
        from scipy.stats import norm

        true_q = math.exp(norm.ppf(q))
    else:
        draw = rng.uniform(0.0, 1.0, (trials, n))
        true_q = q
    s = np.sort(draw, axis=1)
    k, j = upper_index(n, q), lower_index(n, q)
    assert k is not None and j is not None
    up_cover = float(np.mean(s[:, k - 1] >= true_q))
    lo_cover = float(np.mean(s[:, j - 1] <= true_q))
    exact_up = float(binom.cdf(k - 1, n, q))
    # 4000 trials: the binomial sd of a coverage near 0.95 is ~0.0035
    assert up_cover >= 0.95 - 0.012
    assert abs(up_cover - exact_up) < 0.015
    assert lo_cover >= 0.95 - 0.012
    if k > 1:  # one index lower would under-cover: the bound is the tightest valid one
        assert binom.cdf(k - 2, n, q) < 0.95


def test_quantile_bound_values() -> None:
    x = np.arange(1.0, 301.0)[::-1]  # unsorted input
    b = quantile_bound(x, 0.99)
    assert (b.n, b.upper_k, b.lower_k, b.upper, b.lower, b.min_n) == (300, 300, 294, 300, 294, 299)
    assert b.point == pytest.approx(np.percentile(x, 99))
    assert b.enough
    few = quantile_bound(x[:10], 0.99)
    assert not few.enough and math.isnan(few.upper) and few.lower_k == 9
    empty = quantile_bound([], 0.5)
    assert empty.n == 0 and math.isnan(empty.point) and not empty.enough
    doc = few.to_json()
    assert doc["upper"] is None and doc["enough"] is False and doc["min_n"] == 299


def test_bad_arguments_say_what_to_give() -> None:
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        upper_index(10, 0.99, 1.0)
    with pytest.raises(ValueError, match=r"write p99 as 0\.99"):
        upper_index(10, 99, 0.95)
    with pytest.raises(ValueError, match="n must be"):
        lower_index(-1, 0.5)


def test_stat_names() -> None:
    assert quantile_of_stat("p99") == 0.99
    assert quantile_of_stat("p99_9") == pytest.approx(0.999)
    assert quantile_of_stat("mean") is None and quantile_of_stat("p100") is None
    assert percentile_gate("p95_itl_ms_max") == ("p95", 0.95, "itl")
    assert percentile_gate("output_throughput_min") is None


def test_pool_and_table() -> None:
    runs = [{"ttft": np.arange(5.0)}, {"ttft": np.arange(5.0, 10.0), "itl": np.ones(3)}]
    pooled = pool_samples(runs)
    assert pooled["ttft"].tolist() == list(range(10)) and pooled["itl"].size == 3
    table = percentile_table(pooled, 0.95)
    assert table["ttft"]["n"] == 10 and table["ttft"]["p99"]["enough"] is False
    assert table["ttft"]["p50"]["enough"] is True


# -- percentile gates as confidence statements ------------------------------------------------


def _gate(limit: float, samples: np.ndarray, **kw: object) -> object:
    (g, _) = evaluate_gates(Gates(p99_ttft_ms_max=limit), {}, {"ttft": samples}, **kw)
    return g


def test_too_few_samples_is_inconclusive_not_pass() -> None:
    x = np.linspace(1.0, 10.0, 10)  # point p99 ~9.9 ms, far under the limit
    g = _gate(1000.0, x)
    assert g.verdict == "INCONCLUSIVE" and g.passed  # shown, not failing by default
    assert "too few" in g.describe() and "n=10" in g.describe() and "299" in g.describe()
    assert g.describe().startswith("INCONCLUSIVE")
    strict = _gate(1000.0, x, strict=True)
    assert strict.verdict == "INCONCLUSIVE" and not strict.passed
    assert not case_passed([strict])
    msg = gate_failure_message("c", [g], {})
    assert "INCONCLUSIVE" in msg and "--llmperf-strict" in msg


def test_pass_needs_the_upper_bound_within_the_limit() -> None:
    x = np.linspace(1.0, 300.0, 300)  # upper bound = max = 300, lower bound = 294
    assert _gate(300.0, x).verdict == "PASS"
    assert _gate(299.9, x).verdict == "INCONCLUSIVE"  # point p99 297 is under it: not enough
    assert _gate(294.0, x).verdict == "INCONCLUSIVE"
    fail = _gate(293.9, x)
    assert fail.verdict == "FAIL" and not fail.passed
    assert fail.measured == pytest.approx(np.percentile(x, 99))


def test_small_n_can_still_fail_on_the_lower_bound() -> None:
    x = np.linspace(100.0, 1000.0, 10)  # lower bound: 9th of 10 = 900
    assert _gate(899.0, x).verdict == "FAIL"
    assert _gate(901.0, x).verdict == "INCONCLUSIVE"


def test_confidence_changes_the_verdict() -> None:
    x = np.linspace(1.0, 300.0, 300)
    (g,) = [
        r
        for r in evaluate_gates(Gates(p99_ttft_ms_max=300.0, confidence=0.99), {}, {"ttft": x})
        if r.name == "p99_ttft_ms_max"
    ]
    assert g.verdict == "INCONCLUSIVE" and g.bound is not None and g.bound.min_n == 459


def test_p90_and_p95_gates_and_settings_are_not_gates() -> None:
    x = np.linspace(1.0, 100.0, 100)
    res = evaluate_gates(Gates(p90_itl_ms_max=99.0, p95_e2el_ms_max=1.0), {}, {"itl": x, "e2el": x})
    by = {r.name: r for r in res}
    assert "confidence" not in by
    assert by["p90_itl_ms_max"].verdict == "PASS"
    assert by["p95_e2el_ms_max"].verdict == "FAIL"


def test_without_samples_the_point_value_is_compared() -> None:
    res = evaluate_gates(Gates(p99_ttft_ms_max=10.0), {"p99_ttft_ms": 11.0})
    by = {r.name: r for r in res}
    assert by["p99_ttft_ms_max"].verdict == "FAIL" and by["p99_ttft_ms_max"].bound is None


def test_no_samples_fails() -> None:
    g = _gate(10.0, np.array([]))
    assert g.verdict == "FAIL" and not g.passed and "not measured" in g.describe()
