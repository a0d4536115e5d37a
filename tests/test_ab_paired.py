"""The paired (blocked) A/B test and the drift check: pure statistics, checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_llmperf.verdicts.compare import Outcome
from pytest_llmperf.verdicts.paired import (
    PairedComparison,
    blocks_needed,
    compare_paired_session,
    drift,
    min_detectable,
    paired_log_test,
)


def test_paired_test_matches_scipy_ttest_rel_on_logs() -> None:
    rng = np.random.default_rng(1)
    a = rng.lognormal(7.0, 0.05, 6)
    b = a * rng.lognormal(-0.03, 0.02, 6)
    s = paired_log_test(a, b, 0.05)
    ref = stats.ttest_rel(np.log(b), np.log(a), alternative="less")
    assert s.p_less == pytest.approx(ref.pvalue, rel=1e-9)
    ci = stats.ttest_rel(np.log(b), np.log(a)).confidence_interval(0.90)
    assert s.log_ci == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_block_effects_cancel_where_a_two_sample_test_drowns() -> None:
    # Machine state swings +-40% from block to block; B is steadily 10% slower inside each.
    swing = np.array([1.0, 1.4, 0.7, 1.2, 0.8, 1.3])
    a = 1000.0 * swing
    b = 900.0 * swing * np.array([1.01, 0.99, 1.0, 1.005, 0.995, 1.0])
    (v,) = compare_paired_session(
        [PairedComparison("c16", "total_token_throughput", "higher", tuple(a), tuple(b))]
    )
    assert v.verdict is Outcome.REGRESSION, v.message
    assert v.ratio == pytest.approx(0.9, abs=0.01)
    assert v.ci_low is not None and v.ci_high is not None and v.ci_high < 0.95
    assert "paired over 6 blocks" in v.message
    welch = stats.ttest_ind(np.log(b), np.log(a), equal_var=False, alternative="less")
    assert welch.pvalue > 0.2  # unpaired, the same data says nothing


def test_latency_direction_and_holm_family() -> None:
    a = (100.0, 110.0, 90.0, 105.0, 95.0)
    worse = tuple(x * 1.3 for x in a)
    vs = compare_paired_session(
        [
            PairedComparison("c1", "p99_e2el_ms", "lower", a, worse),
            PairedComparison("c1", "total_token_throughput", "higher", a, a),
        ]
    )
    assert vs[0].verdict is Outcome.REGRESSION
    assert vs[1].verdict is Outcome.NO_CHANGE
    assert "Holm, 2 tests" in vs[0].message


def test_too_few_blocks_is_inconclusive_and_says_so() -> None:
    (v,) = compare_paired_session(
        [PairedComparison("c16", "output_throughput", "higher", (1000.0,), (300.0,))]
    )
    assert v.verdict is Outcome.INCONCLUSIVE
    assert "1 valid block" in v.message and "at least 2" in v.message


def test_noisy_blocks_are_inconclusive_with_the_blocks_that_would_decide() -> None:
    a = (1000.0, 1000.0, 1000.0, 1000.0)
    b = (1100.0, 850.0, 1150.0, 880.0)
    (v,) = compare_paired_session([PairedComparison("c", "output_throughput", "higher", a, b)])
    assert v.verdict is Outcome.INCONCLUSIVE
    assert v.runs_needed is not None and v.runs_needed > 4
    assert f"about {v.runs_needed} blocks would decide" in v.message


def test_success_rate_is_an_absolute_check_on_b() -> None:
    (v,) = compare_paired_session(
        [PairedComparison("c", "success_rate", "exact", (1.0, 1.0, 1.0), (1.0, 0.9, 1.0))]
    )
    assert v.verdict is Outcome.REGRESSION and "1 of 3" in v.message


def test_unequal_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="one A and one B value per block"):
        PairedComparison("c", "m", "higher", (1.0, 2.0), (1.0,))


def test_planning_figures_agree_with_the_t_distribution() -> None:
    sd = 0.05
    n = blocks_needed(sd, 0.05, 0.05)
    assert n is not None
    k = lambda m: (stats.t.ppf(0.95, m - 1) + stats.t.ppf(0.8, m - 1)) / math.sqrt(m)  # noqa: E731
    assert k(n) * sd <= math.log1p(0.05) < k(n - 1) * sd
    assert min_detectable(sd, n, 0.05) <= 0.05 < min_detectable(sd, n - 1, 0.05)


def test_false_alarms_stay_at_alpha_by_simulation() -> None:
    """A and B identical, block effects and noise random: REGRESSION at most ~alpha."""
    rng = np.random.default_rng(7)
    trials, n = 2000, 5
    block = rng.lognormal(0.0, 0.3, (trials, n))
    a = 1000 * block * rng.lognormal(0.0, 0.05, (trials, n))
    b = 1000 * block * rng.lognormal(0.0, 0.05, (trials, n))
    cases = [
        PairedComparison(f"t{i}", "total_token_throughput", "higher", tuple(a[i]), tuple(b[i]), 0.0)
        for i in range(trials)
    ]
    alarms = 0
    for i in range(0, trials, 1):  # one comparison per session: no correction in play
        (v,) = compare_paired_session([cases[i]])
        alarms += v.verdict is Outcome.REGRESSION
    assert alarms / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)


def test_drift_sees_a_steady_decline_and_not_a_flat_series() -> None:
    t = [1, 3, 5, 7, 9, 11]
    falling = [1000 * (1 - 0.03 * i) for i in range(6)]
    d = drift("c16", "total_token_throughput", t, falling)
    assert d.drifted and d.change is not None and d.change < -0.1
    assert "DRIFT" in d.message
    flat = [1000.0, 1003.0, 998.0, 1001.0, 999.0, 1002.0]
    d2 = drift("c16", "total_token_throughput", t, flat)
    assert not d2.drifted and d2.first_to_last == pytest.approx(0.002)


def test_drift_with_two_runs_only_reports() -> None:
    d = drift("c1", "total_token_throughput", [1, 2], [100.0, 50.0])
    assert not d.drifted and d.p is None and "too few" in d.message
