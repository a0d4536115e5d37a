"""The statistical core: verdict rules, corrections, edge cases, and properties (hypothesis)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_llmperf.verdicts.compare import (
    CaseComparison,
    Outcome,
    Verdict,
    compare_metric,
    compare_session,
    format_table,
    holm,
    log_welch,
    min_detectable_log_change,
    not_comparable,
    runs_needed,
)


def lognormal(center: float, cov: float, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(center * np.exp(rng.normal(0.0, cov, n)))


def test_log_welch_is_scipy_welch_on_logs() -> None:
    rng = np.random.default_rng(0)
    b = np.exp(rng.normal(5, 0.1, (50, 6)))
    c = np.exp(rng.normal(5, 0.2, (50, 4)))
    w = log_welch(b, c, alpha=0.05)
    for i in range(50):
        ref = stats.ttest_ind(np.log(c[i]), np.log(b[i]), equal_var=False, alternative="less")
        ci = stats.ttest_ind(np.log(c[i]), np.log(b[i]), equal_var=False).confidence_interval(0.9)
        assert w.p_less[i] == pytest.approx(ref.pvalue, rel=1e-9)
        assert w.p_greater[i] == pytest.approx(1 - ref.pvalue, rel=1e-9, abs=1e-12)
        assert (w.ci_low[i], w.ci_high[i]) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_clear_drop_in_throughput_is_a_regression() -> None:
    v = compare_metric(
        lognormal(1000, 0.02, 5, 1),
        lognormal(850, 0.02, 5, 2),
        direction="higher",
        metric="output_throughput",
    )
    assert v.verdict is Outcome.REGRESSION
    assert v.ratio is not None and 0.8 < v.ratio < 0.9
    assert v.ci_low is not None and v.ci_high is not None and v.ci_high < 1 / 1.05
    assert v.p is not None and v.p < 0.001
    for part in ("ratio", "90% CI", "p=", "p_adj=", "CoV"):
        assert part in v.message


def test_latency_increase_is_a_regression_and_decrease_an_improvement() -> None:
    base = lognormal(100, 0.02, 5, 3)
    worse = compare_metric(base, lognormal(130, 0.02, 5, 4), direction="lower")
    better = compare_metric(base, lognormal(70, 0.02, 5, 4), direction="lower")
    assert worse.verdict is Outcome.REGRESSION
    assert better.verdict is Outcome.IMPROVEMENT


def test_significant_but_small_change_is_not_a_regression() -> None:
    # A 2% drop measured with 0.1% noise is real but inside a 5% tolerance.
    v = compare_metric(
        lognormal(1000, 0.001, 5, 5), lognormal(980, 0.001, 5, 6), direction="higher"
    )
    assert v.p is not None and v.p < 1e-6
    assert v.verdict is Outcome.NO_CHANGE


def test_noisy_small_sample_is_inconclusive_and_says_what_it_would_take() -> None:
    # CoV ~16%, like DeepSeek-V3.2 in the study: 5 runs cannot resolve 5%.
    b, c = [5000, 6500, 5200, 7000, 4900], [6800, 5100, 5500, 4800, 6600]
    v = compare_metric(b, c, direction="higher")
    assert v.verdict is Outcome.INCONCLUSIVE
    assert v.min_detectable_change is not None and v.min_detectable_change > 0.05
    assert v.runs_needed is not None and v.runs_needed > 5
    assert f"about {v.runs_needed} runs per side" in v.message
    assert "80% power" in v.message


def test_detectable_change_matches_the_notes() -> None:
    # statistics.md: about 1.74 x CoV at n = 5 per side, 1.16 x CoV at n = 10.
    assert min_detectable_log_change(1.0, 5, 5, 0.05) == pytest.approx(1.74, abs=0.01)
    assert min_detectable_log_change(1.0, 10, 10, 0.05) == pytest.approx(1.16, abs=0.01)
    assert runs_needed(0.05, math.expm1(1.75 * 0.05), 0.05) == 5
    assert runs_needed(0.05, math.expm1(1.73 * 0.05), 0.05) == 6
    assert runs_needed(0.0, 0.05, 0.05) == 2
    assert runs_needed(5.0, 0.01, 0.05) is None


def test_identical_values_give_no_change_without_nan() -> None:
    v = compare_metric([100.0] * 3, [100.0] * 3, direction="higher")
    assert v.verdict is Outcome.NO_CHANGE
    assert (v.ratio, v.ci_low, v.ci_high, v.p) == (1.0, 1.0, 1.0, 1.0)
    assert v.cov_baseline == 0.0 and v.runs_needed == 2
    assert "nan" not in v.message.lower()


def test_zero_variance_with_a_real_difference() -> None:
    v = compare_metric([100.0] * 3, [80.0] * 3, direction="higher")
    assert v.verdict is Outcome.REGRESSION and v.p == 0.0
    assert v.ratio == pytest.approx(0.8)
    w = compare_metric([100.0] * 3, [98.0] * 3, direction="higher")
    assert w.verdict is Outcome.NO_CHANGE


def test_one_run_per_side_falls_back_to_the_tolerance() -> None:
    drop = compare_metric([15944.0], [14000.0], direction="higher")
    assert drop.verdict is Outcome.REGRESSION
    assert drop.p is None and drop.ci_low is None
    assert "tolerance alone" in drop.message
    same = compare_metric([15944.0], [15800.0, 15900.0, 16000.0], direction="higher")
    assert same.verdict is Outcome.NO_CHANGE
    assert "tolerance alone" in same.message


def test_success_rate_is_an_absolute_check() -> None:
    ok = compare_metric([1.0] * 5, [1.0] * 5, direction="exact", metric="success_rate")
    assert ok.verdict is Outcome.NO_CHANGE and ok.p is None
    bad = compare_metric([1.0] * 5, [1.0, 0.99, 1.0], direction="exact", metric="success_rate")
    assert bad.verdict is Outcome.REGRESSION
    assert "1 of 3 runs" in bad.message


@pytest.mark.parametrize(
    ("baseline", "current", "match"),
    [
        ([1.0, 2.0], [0.0, 1.0], "positive finite"),
        ([1.0, math.nan], [1.0, 1.0], "positive finite"),
        ([], [1.0], "at least one run"),
    ],
)
def test_unusable_values_raise_with_a_reason(
    baseline: list[float], current: list[float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        compare_metric(baseline, current, direction="higher", metric="m")


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="direction"):
        compare_metric([1.0, 2.0], [1.0, 2.0], direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance"):
        compare_metric([1.0, 2.0], [1.0, 2.0], direction="higher", tolerance=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        compare_metric([1.0, 2.0], [1.0, 2.0], direction="higher", alpha=0.7)


def test_holm_adjusts_known_values() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == pytest.approx([0.5])
    np.testing.assert_allclose(
        holm(np.array([[0.01, 0.02], [0.9, 0.001]])), [[0.02, 0.02], [0.9, 0.002]]
    )


def _session(p_target_case: tuple[list[float], list[float]], n_null: int) -> list[CaseComparison]:
    cases = [CaseComparison("target", "tput", "higher", *map(tuple, p_target_case))]
    for i in range(n_null):
        cases.append(
            CaseComparison(
                f"null{i}",
                "tput",
                "higher",
                tuple(lognormal(100, 0.05, 5, 100 + i)),
                tuple(lognormal(100, 0.05, 5, 200 + i)),
            )
        )
    return cases


def test_holm_can_turn_a_marginal_regression_into_inconclusive() -> None:
    target = ([100.0, 103.0, 97.0, 101.0, 99.0], [92.0, 97.0, 89.0, 93.0, 99.0])
    alone = compare_metric(*target, direction="higher")
    assert alone.verdict is Outcome.REGRESSION and alone.p is not None and alone.p > 0.01
    verdicts = compare_session(_session(target, 19))
    first = verdicts[0]
    assert first.p == alone.p
    assert first.p_adj is not None and first.p_adj > first.p
    assert first.verdict is Outcome.INCONCLUSIVE
    assert "Holm, 20 tests" in first.message


def test_bh_for_reports_is_less_strict_than_holm() -> None:
    cases = _session(([100.0, 103.0, 97.0, 101.0, 99.0], [92.0, 97.0, 89.0, 93.0, 99.0]), 19)
    holm_v = compare_session(cases)
    bh_v = compare_session(cases, correction="bh")
    for h, b in zip(holm_v, bh_v, strict=True):
        assert b.p_adj is not None and h.p_adj is not None and b.p_adj <= h.p_adj + 1e-12
    assert "BH" in bh_v[0].message


def test_bonferroni_over_a_family_not_yet_seen() -> None:
    """The in-item gate: one case's tests, multiplied by the whole session's m."""
    target = ([100.0, 103.0, 97.0, 101.0, 99.0], [92.0, 97.0, 89.0, 93.0, 99.0])
    alone = compare_metric(*target, direction="higher")
    assert alone.p is not None
    (v,) = compare_session(
        [CaseComparison("a", "tput", "higher", *target)], correction="bonferroni", family_size=40
    )
    assert v.p_adj == pytest.approx(min(1.0, alone.p * 40))
    assert v.verdict is Outcome.INCONCLUSIVE
    assert "Bonferroni, m=40" in v.message
    # Holm's first step is Bonferroni: with the whole family known, Holm is never stricter
    cases = _session(target, 19)
    bonf = compare_session(cases, correction="bonferroni", family_size=20)
    for h, b in zip(compare_session(cases), bonf, strict=True):
        assert h.p_adj is not None and b.p_adj is not None and h.p_adj <= b.p_adj + 1e-12
    with pytest.raises(ValueError, match="only Bonferroni"):
        compare_session(cases, family_size=40)
    with pytest.raises(ValueError, match="only Bonferroni"):
        compare_session(cases, correction="bonferroni", family_size=0)


def test_format_table_shows_bh_beside_holm() -> None:
    cases = _session(([100.0, 103.0, 97.0, 101.0, 99.0], [92.0, 97.0, 89.0, 93.0, 99.0]), 3)
    text = format_table(compare_session(cases), bh=compare_session(cases, correction="bh"))
    header = text.splitlines()[0].split()
    assert header[header.index("p_adj") + 1] == "p_BH"


def test_session_keeps_going_past_unusable_values() -> None:
    cases = [
        CaseComparison("a", "p99_e2el_ms", "lower", (1.0, 2.0), (math.nan, 1.0)),
        CaseComparison("b", "success_rate", "exact", (1.0,), (1.0,)),
        CaseComparison("c", "tput", "higher", (1.0, 1.0), (1.0, 1.0)),
    ]
    v = compare_session(cases)
    assert [x.verdict for x in v] == [Outcome.INCONCLUSIVE, Outcome.NO_CHANGE, Outcome.NO_CHANGE]
    assert "positive finite" in v[0].message
    assert "1 tests" in v[2].message  # only the t-tested comparison is in the family


def test_format_table_lists_every_verdict_and_explains_the_bad_ones() -> None:
    v = [
        compare_metric([100.0] * 3, [80.0] * 3, direction="higher", case_id="c1", metric="tput"),
        compare_metric([1.0] * 3, [1.0] * 3, direction="exact", case_id="c1", metric="success"),
        not_comparable("c2", "tput", "higher", "fingerprint differs: driver"),
    ]
    table = format_table(v)
    assert table.splitlines()[0].split()[:3] == ["case", "metric", "verdict"]
    assert "REGRESSION: c1 tput" in table
    assert "NOT COMPARABLE: c2 fingerprint differs: driver" in table
    assert table.splitlines()[-1] == "1 REGRESSION, 1 NO CHANGE, 1 NOT COMPARABLE"


# ----------------------------------------------------------------------------- properties

samples = st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=8)
tolerances = st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.3])
RANK = {
    Outcome.REGRESSION: 0,
    Outcome.INCONCLUSIVE: 1,
    Outcome.NO_CHANGE: 1,
    Outcome.IMPROVEMENT: 2,
}
MIRROR = {
    Outcome.REGRESSION: Outcome.IMPROVEMENT,
    Outcome.IMPROVEMENT: Outcome.REGRESSION,
    Outcome.NO_CHANGE: Outcome.NO_CHANGE,
    Outcome.INCONCLUSIVE: Outcome.INCONCLUSIVE,
}


def clear_of_boundaries(v: Verdict, alpha: float = 0.05, eps: float = 1e-7) -> bool:
    """True when rounding cannot flip the verdict: no statistic sits on a decision threshold."""
    band = math.log1p(v.tolerance)
    logs = [math.log(x) for x in (v.ratio, v.ci_low, v.ci_high) if x is not None]
    ps = [x for x in (v.p, v.p_improvement) if x is not None]
    return all(abs(abs(x) - band) > eps for x in logs) and all(abs(p - alpha) > eps for p in ps)


@settings(max_examples=150, deadline=None)
@given(samples, samples, st.integers(-20, 20), tolerances)
def test_scaling_by_a_power_of_two_changes_nothing(
    b: list[float], c: list[float], k: int, tol: float
) -> None:
    v = compare_metric(b, c, direction="higher", tolerance=tol)
    scaled_b, scaled_c = [x * 2.0**k for x in b], [x * 2.0**k for x in c]
    w = compare_metric(scaled_b, scaled_c, direction="higher", tolerance=tol)
    assert (w.verdict, w.ratio, w.p, w.ci_low, w.ci_high) == (
        v.verdict,
        v.ratio,
        v.p,
        v.ci_low,
        v.ci_high,
    )


@settings(max_examples=150, deadline=None)
@given(samples, samples, st.floats(1e-3, 1e3), tolerances)
def test_scale_invariance(b: list[float], c: list[float], scale: float, tol: float) -> None:
    v = compare_metric(b, c, direction="lower", tolerance=tol)
    assume(clear_of_boundaries(v))
    scaled_b, scaled_c = [x * scale for x in b], [x * scale for x in c]
    w = compare_metric(scaled_b, scaled_c, direction="lower", tolerance=tol)
    assert w.verdict is v.verdict
    assert w.ratio == pytest.approx(v.ratio, rel=1e-9)


@settings(max_examples=150, deadline=None)
@given(samples, samples, tolerances)
def test_swapping_direction_mirrors_the_verdict(b: list[float], c: list[float], tol: float) -> None:
    up = compare_metric(b, c, direction="higher", tolerance=tol)
    down = compare_metric(b, c, direction="lower", tolerance=tol)
    assert down.verdict is MIRROR[up.verdict]
    assert down.ratio == up.ratio


@settings(max_examples=150, deadline=None)
@given(samples, samples, tolerances)
def test_inverting_values_mirrors_and_swapping_both_restores(
    b: list[float], c: list[float], tol: float
) -> None:
    v = compare_metric(b, c, direction="higher", tolerance=tol)
    assume(clear_of_boundaries(v, eps=1e-6))
    inv_b, inv_c = [1 / x for x in b], [1 / x for x in c]
    assert (
        compare_metric(inv_b, inv_c, direction="higher", tolerance=tol).verdict is MIRROR[v.verdict]
    )
    assert compare_metric(inv_b, inv_c, direction="lower", tolerance=tol).verdict is v.verdict


@settings(max_examples=150, deadline=None)
@given(samples, samples, st.floats(0.3, 3.0), st.floats(0.3, 3.0), tolerances)
def test_verdict_is_monotone_in_the_effect(
    b: list[float], c: list[float], f1: float, f2: float, tol: float
) -> None:
    lo, hi = sorted((f1, f2))
    v_lo = compare_metric(b, [x * lo for x in c], direction="higher", tolerance=tol)
    v_hi = compare_metric(b, [x * hi for x in c], direction="higher", tolerance=tol)
    assume(clear_of_boundaries(v_lo) and clear_of_boundaries(v_hi))
    assert RANK[v_lo.verdict] <= RANK[v_hi.verdict]


def test_the_benchmark_runs_the_plugins_gate(tmp_path: Path) -> None:
    """A small run of benchmarks/comparator_quality.py (its figures are printed by the script;
    this only guards that it runs through BaselineSession and the numbers are sane)."""
    import sys

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "comparator_quality.py"
    spec = importlib.util.spec_from_file_location("comparator_quality", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    r = bench.measure(bench.Row(5, 0.05, 20), 40, np.random.default_rng(1), tmp_path)
    assert r["fwer"] <= 0.2  # 0.044 at 1,000 sessions; 40 only guard against a broken gate
    assert r["all_fail"] == 1.0 and r["all_case"] >= 0.7


# ----------------------------------------------------------------------------- moderated variance


def _smyth_variances(n_cases: int, d0: float, s0_sq: float, df: int, seed: int) -> np.ndarray:
    """Sample variances drawn from Smyth's model: 1/sigma^2 ~ chi2(d0)/(d0 s0^2), then
    s^2 ~ sigma^2 chi2(df)/df."""
    rng = np.random.default_rng(seed)
    sigma_sq = d0 * s0_sq / rng.chisquare(d0, n_cases)
    return sigma_sq * rng.chisquare(df, n_cases) / df


def test_variance_prior_recovers_the_model_it_assumes() -> None:
    from scipy.special import digamma as special_digamma

    from pytest_llmperf.verdicts.compare import fit_variance_prior

    prior = fit_variance_prior(_smyth_variances(4000, 6.0, 0.04, 8, seed=1), [8] * 4000)
    assert prior is not None and prior.cases == 4000
    assert 4.5 < prior.d0 < 8.0
    assert prior.s0_sq == pytest.approx(0.04, rel=0.05)
    # one shared variance: the cases disagree about as much as sampling explains -> d0 huge
    # or inf (inf when the excess spread comes out <= 0)
    rng = np.random.default_rng(2)
    shared = fit_variance_prior(0.04 * rng.chisquare(8, 4000) / 8, [8] * 4000)
    assert shared is not None and shared.d0 > 500
    assert shared.s0_sq == pytest.approx(0.04, rel=0.05)
    identical = fit_variance_prior([0.04] * 5, [8] * 5)
    assert identical is not None and math.isinf(identical.d0)
    assert identical.s0_sq == pytest.approx(0.04 * 4 * math.exp(-float(special_digamma(4.0))))


def test_variance_prior_needs_three_usable_cases() -> None:
    from pytest_llmperf.verdicts.compare import fit_variance_prior

    three = [0.01, 0.02, 0.05]
    assert fit_variance_prior(three, [8, 8, 8]) is not None
    assert fit_variance_prior(three[:2], [8, 8]) is None
    # zero, NaN or infinite variances and df <= 0 are not usable
    assert fit_variance_prior([*three[:2], 0.0, math.nan, math.inf], [8] * 5) is None
    assert fit_variance_prior(three, [8, 8, 0]) is None


def test_trigamma_inverse_inverts_trigamma_over_its_range() -> None:
    from scipy import special

    from pytest_llmperf.verdicts.compare import _trigamma_inverse

    for x in (1e-8, 1e-5, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e6):
        y = _trigamma_inverse(x)
        assert float(special.polygamma(1, y)) == pytest.approx(x, rel=1e-6), x
    assert _trigamma_inverse(1e8) == pytest.approx(1e-4, rel=1e-6)  # 1/sqrt(x) limit


def test_posterior_shrinks_toward_the_prior_by_its_degrees_of_freedom() -> None:
    from pytest_llmperf.verdicts.compare import VariancePrior

    finite = VariancePrior(d0=4.0, s0_sq=1.0, cases=5)
    assert finite.posterior(3.0, 4.0) == pytest.approx((2.0, 8.0))  # (4*1 + 4*3) / 8
    assert finite.posterior(3.0, 1e9)[0] == pytest.approx(3.0, rel=1e-6)  # own data wins
    shared = VariancePrior(d0=math.inf, s0_sq=0.5, cases=7)
    assert shared.posterior(3.0, 4.0) == (0.5, math.inf)
    assert finite.describe() == "variance moderated across 5 cases, prior df 4.0"
    assert shared.describe() == "variance moderated across 7 cases, prior df inf"


def _noisy_session(n_cases: int, metric: str = "tput") -> list[CaseComparison]:
    return [
        CaseComparison(
            f"case{i}",
            metric,
            "higher",
            tuple(lognormal(100, 0.03 * (1 + i % 3), 5, 300 + i)),
            tuple(lognormal(100, 0.03 * (1 + i % 3), 5, 400 + i)),
        )
        for i in range(n_cases)
    ]


def test_moderated_test_is_a_t_test_with_the_shrunk_variance() -> None:
    """Checked against scipy.stats.t with the posterior variance and d0 + nb + nc - 2 df."""
    from pytest_llmperf.verdicts.compare import _stats, moderate_stats

    cases = _noisy_session(6)
    plain = [_stats(c, 0.05) for c in cases]
    moderated = moderate_stats(plain)
    prior = moderated[0].prior
    assert prior is not None and prior.cases == 6 and not math.isinf(prior.d0)
    for p, m in zip(plain, moderated, strict=True):
        assert p.log_sd is not None and p.ratio is not None and m.log_ci is not None
        post, df = prior.posterior(p.log_sd**2, 8)
        assert m.df == pytest.approx(prior.d0 + 8)
        se = math.sqrt(post * (1 / 5 + 1 / 5))
        lr = math.log(p.ratio)
        assert m.p_less == pytest.approx(stats.t.cdf(lr / se, df), rel=1e-9)
        assert m.p_greater == pytest.approx(stats.t.sf(lr / se, df), rel=1e-9)
        q = stats.t.ppf(0.95, df) * se
        assert m.log_ci == pytest.approx((lr - q, lr + q), rel=1e-9)
        assert m.log_sd == pytest.approx(math.sqrt(post))


def test_a_shared_variance_makes_the_moderated_test_normal() -> None:
    from pytest_llmperf.verdicts.compare import VariancePrior, _moderated, _stats

    s = _stats(_noisy_session(1)[0], 0.05)
    assert s.ratio is not None
    m = _moderated(s, VariancePrior(math.inf, 0.001, 5))
    se = math.sqrt(0.001 * 2 / 5)
    z = math.log(s.ratio) / se
    assert m.df == math.inf
    assert m.p_less == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    assert m.p_greater == pytest.approx(stats.norm.sf(z), rel=1e-9)
    q = stats.norm.ppf(0.95) * se
    assert m.log_ci == pytest.approx((math.log(s.ratio) - q, math.log(s.ratio) + q), rel=1e-9)


def test_moderation_pools_per_metric_and_leaves_untestable_cases_alone() -> None:
    from pytest_llmperf.verdicts.compare import _stats, moderate_stats

    cases = [
        *_noisy_session(3, "tput"),
        *_noisy_session(2, "p99"),  # too few cases of this metric: Welch's test stays
        CaseComparison("one-run", "tput", "higher", (100.0,), (101.0, 99.0)),
        CaseComparison("flat", "tput", "higher", (5.0, 5.0), (5.0, 5.0)),  # zero variance
        CaseComparison("ok", "tput", "exact", (1.0,), (1.0,)),
    ]
    plain = [_stats(c, 0.05) for c in cases]
    out = moderate_stats(plain)
    assert [x.prior is not None for x in out] == [True] * 3 + [False] * 5
    assert all(o is p for o, p in zip(out[3:], plain[3:], strict=True))
    assert {x.prior.cases for x in out[:3] if x.prior is not None} == {3}


def test_session_with_moderated_variance_says_so_and_refuses_unknown_settings() -> None:
    cases = _noisy_session(5)
    v = compare_session(cases, variance="moderated")
    assert all("variance moderated across 5 cases, prior df" in x.message for x in v)
    welch = compare_session(cases)
    assert all("moderated" not in x.message for x in welch)
    assert [x.p for x in v] != [x.p for x in welch]
    with pytest.raises(ValueError, match=r"^variance 'pooled' must be one of moderated, welch$"):
        compare_session(cases, variance="pooled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^correction 'fdr' must be one of holm, bh, bonferroni$"):
        compare_session(cases, correction="fdr")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- records and limits


def test_outcome_names_are_the_words_reports_and_files_use() -> None:
    assert [str(o) for o in Outcome] == [
        "REGRESSION", "IMPROVEMENT", "NO CHANGE", "INCONCLUSIVE", "NOT COMPARABLE",
    ]  # fmt: skip
    assert Outcome("NO CHANGE") is Outcome.NO_CHANGE


def test_verdicts_and_inputs_are_frozen_and_untested_ones_have_no_p() -> None:
    import dataclasses

    one_run = compare_metric([100.0], [90.0], direction="higher")
    exact = compare_metric([1.0], [1.0], direction="exact")
    nc = not_comparable("c", "m", "higher", "different GPU")
    for v in (one_run, exact, nc):
        assert v.p is None and v.p_improvement is None and v.p_improvement_adj is None
    tested = compare_metric([1.0, 1.1, 0.9], [1.0, 1.05, 0.95], direction="higher")
    assert tested.p_improvement is not None and tested.p_improvement_adj is not None
    case = CaseComparison("c", "m", "higher", (1.0,), (1.0,))
    assert case.tolerance == 0.05
    w = log_welch([1.0, 2.0], [1.5, 2.5])
    for obj, attr in ((tested, "verdict"), (case, "tolerance"), (w, "log_ratio")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, None)


def test_log_welch_defaults_to_a_90_percent_interval() -> None:
    b, c = [10.0, 11.0, 9.5, 10.2], [12.0, 11.5, 12.5, 11.8]
    default, explicit = log_welch(b, c), log_welch(b, c, alpha=0.05)
    assert (float(default.ci_low), float(default.ci_high)) == (
        float(explicit.ci_low),
        float(explicit.ci_high),
    )
    ref = stats.ttest_ind(np.log(c), np.log(b), equal_var=False).confidence_interval(0.9)
    assert float(default.ci_low) == pytest.approx(ref.low, rel=1e-9)


def test_runs_needed_stops_at_ten_thousand_per_side() -> None:
    """Past 10,000 runs per side the answer is "never" (None), said in the message too."""
    alpha, tol = 0.05, 0.05

    def k(n: int) -> float:  # the planning formula of statistics.md: z-like t quantiles
        df = 2 * n - 2
        return float((stats.t.ppf(1 - alpha, df) + stats.t.ppf(0.80, df)) * math.sqrt(2 / n))

    band = math.log1p(tol)
    at_cap = band / ((k(9_999) + k(10_000)) / 2)  # first detectable at n = 10,000
    past_cap = band / ((k(10_000) + k(10_001)) / 2)  # would need 10,001
    assert runs_needed(at_cap, tol, alpha) == 10_000
    assert runs_needed(past_cap, tol, alpha) is None
    b = [100.0, 300.0, 50.0, 200.0, 120.0]
    v = compare_metric(b, [x * 1.01 for x in b[::-1]], direction="higher", tolerance=0.001)
    assert v.runs_needed is None
    assert "even 10000 runs per side would not detect ±0.1%" in v.message


def test_zero_variance_p_values_are_exact_in_both_directions() -> None:
    # identical values: no evidence either way
    same = log_welch([5.0, 5.0, 5.0], [5.0, 5.0])
    assert (float(same.p_less), float(same.p_greater)) == (1.0, 1.0)
    # a 20% rise with no noise: certainly greater, certainly not less
    up = log_welch([5.0, 5.0, 5.0], [6.0, 6.0])
    assert (float(up.p_less), float(up.p_greater)) == (1.0, 0.0)
    assert float(up.ci_low) == float(up.ci_high) == pytest.approx(math.log(1.2))
    down = log_welch([6.0, 6.0], [5.0, 5.0, 5.0])
    assert (float(down.p_less), float(down.p_greater)) == (0.0, 1.0)


def test_zero_variance_on_one_side_only_is_still_welchs_test() -> None:
    b, c = [1.0, 1.0, 1.0], [0.9, 1.05, 0.98, 1.09]
    w = log_welch(b, c)
    ref = stats.ttest_ind(np.log(c), np.log(b), equal_var=False, alternative="less")
    assert float(w.p_less) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(w.ci_low) < float(w.log_ratio) < float(w.ci_high)


def test_variance_prior_is_frozen() -> None:
    import dataclasses

    from pytest_llmperf.verdicts.compare import VariancePrior

    with pytest.raises(dataclasses.FrozenInstanceError):
        VariancePrior(4.0, 1.0, 3).d0 = 5.0  # type: ignore[misc]


def test_decision_boundaries_are_inclusive_where_the_rule_says() -> None:
    from pytest_llmperf.verdicts.compare import _CODES, decide

    band = math.log1p(0.05)

    def outcome(lr: float, lo: float, hi: float, p_harm: float, p_better: float) -> Outcome:
        code = decide(lr, lo, hi, p_harm, p_better, higher_is_better=True, tolerance=0.05,
                      alpha=0.05)  # fmt: skip
        return _CODES[int(code)]

    # p exactly alpha is significant; an estimate exactly at the band edge is not beyond it
    assert outcome(-0.2, -0.3, -0.1, 0.05, 1.0) is Outcome.REGRESSION
    assert outcome(-band, -band - 0.1, -band + 0.1, 0.0, 1.0) is Outcome.INCONCLUSIVE
    assert outcome(0.2, 0.1, 0.3, 1.0, 0.05) is Outcome.IMPROVEMENT
    assert outcome(band, band - 0.1, band + 0.1, 1.0, 0.0) is Outcome.INCONCLUSIVE
    assert outcome(0.2, 0.1, 0.3, 1.0, 0.06) is Outcome.INCONCLUSIVE  # big but not significant
    # a CI touching the band edges is still inside it
    assert outcome(0.0, -band, band, 0.5, 0.5) is Outcome.NO_CHANGE
    # lower-is-better mirrors: a latency up 20% is the regression
    code = decide(0.2, 0.1, 0.3, 0.0, 1.0, higher_is_better=False, tolerance=0.05, alpha=0.05)
    assert _CODES[int(code)] is Outcome.REGRESSION


def test_change_and_percent_formatting() -> None:
    from pytest_llmperf.verdicts.compare_text import change as _change
    from pytest_llmperf.verdicts.compare_text import pct as _pct

    assert (_change(1.053), _change(0.9), _change(0.99999), _change(1.0)) == (
        "+5.3%", "-10.0%", "+0.0%", "+0.0%",
    )  # fmt: skip
    assert _change(1.0004) == "+0.0%" and _change(1.0006) == "+0.1%"
    assert (_pct(0.1234), _pct(None), _pct(0.0)) == ("12.3%", "n/a", "0.0%")


def test_one_run_fallback_follows_the_direction() -> None:
    up = compare_metric([100.0], [130.0], direction="lower")
    down = compare_metric([100.0], [70.0], direction="lower")
    assert (up.verdict, down.verdict) == (Outcome.REGRESSION, Outcome.IMPROVEMENT)
    assert compare_metric([100.0], [104.0], direction="lower").verdict is Outcome.NO_CHANGE


def test_absolute_check_details() -> None:
    v = compare_metric([1.0, 0.98], [1.0, 0.96], direction="exact", metric="success_rate")
    assert v.verdict is Outcome.REGRESSION
    assert v.ratio == pytest.approx(0.98 / 0.99)
    assert v.cov_baseline is not None and v.cov_current is not None  # two runs give a CoV
    assert v.message == (
        "success_rate must be 1 in every run; it was not in 1 of 2 runs (lowest 0.96)"
        "; the baseline had such runs too."
    )
    clean = compare_metric([1.0], [1.0, 0.9], direction="exact", metric="success_rate")
    assert "baseline had such runs" not in clean.message
    assert clean.cov_baseline is None  # one run: no spread


def test_parameter_edges() -> None:
    b, c = [1.0, 1.1, 0.9], [1.0, 1.05, 0.95]
    for alpha in (0.0, 0.5):
        with pytest.raises(ValueError, match=r"must be between 0 and 0.5"):
            compare_metric(b, c, direction="higher", alpha=alpha)
    assert compare_metric(b, c, direction="higher", tolerance=0.0).tolerance == 0.0
    v = compare_metric([1.0, 2.0], [1.5, 2.5], direction="higher")
    assert v.cov_baseline == pytest.approx(float(np.std([1.0, 2.0], ddof=1) / 1.5))
