"""The paired A/B test's figures and messages against independent computations: power from
the noncentral t distribution, p-values and intervals from scipy.stats.ttest_rel, the drift
trend from scipy.stats.linregress, every message as a user reads it.

Written against the mutants that survived ``scripts/mutation.sh verdicts/paired``
(docs/mutation.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_llmperf.verdicts.compare import MAX_RUNS, POWER, Outcome
from pytest_llmperf.verdicts.paired import (
    MIN_BLOCKS,
    PairedComparison,
    blocks_needed,
    compare_paired_session,
    drift,
    min_detectable,
    paired_log_test,
)


def _power(delta: float, sd: float, n: int, alpha: float) -> float:
    """True power of the one-sided paired t-test (n - 1 df) against a log change ``delta``."""
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, delta / (sd / math.sqrt(n))))


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _change(ratio: float) -> str:
    return f"{round((ratio - 1) * 100, 1) + 0.0:+.1f}%"


@pytest.mark.parametrize("n", [2, 3, 5, 10, 40])
def test_detectable_change_has_80_percent_power(n: int) -> None:
    sd = 0.04
    mdc = min_detectable(sd, n, 0.05)
    power = _power(math.log1p(mdc), sd, n, 0.05)
    if n == 2:  # one degree of freedom: the planning formula is optimistic (77% measured)
        assert 0.75 < power < POWER
    else:
        assert POWER <= power < POWER + 0.02
    assert min_detectable(sd, 1, 0.05) == math.inf  # one block: no test


@pytest.mark.parametrize("sd,tol", [(0.02, 0.05), (0.05, 0.05), (0.1, 0.03), (1.0, 0.05)])
def test_blocks_needed_is_the_fewest_blocks_that_detect_the_tolerance(
    sd: float, tol: float
) -> None:
    n = blocks_needed(sd, tol, 0.05)
    assert n is not None
    first = next(k for k in range(2, MAX_RUNS + 1) if min_detectable(sd, k, 0.05) <= tol)
    assert n == first
    assert _power(math.log1p(tol), sd, n, 0.05) >= POWER
    assert blocks_needed(0.0, tol, 0.05) == MIN_BLOCKS == 2
    assert blocks_needed(1.0, 0.001, 0.05) is None  # beyond MAX_RUNS


def test_blocks_needed_counts_a_change_exactly_at_the_detectable_size() -> None:
    for n in range(3, 300):
        for tol in (0.05, 0.1, 0.2, 0.03):
            sd = math.log1p(tol) / math.log1p(min_detectable(1.0, n, 0.05))
            if min_detectable(sd, n, 0.05) == tol and min_detectable(sd, n - 1, 0.05) > tol:
                assert blocks_needed(sd, tol, 0.05) == n
                return
    pytest.fail("no exact case found")  # pragma: no cover


def test_paired_figures_are_scipys_ttest_rel_on_logs() -> None:
    a = [1000.0, 1400.0, 700.0, 1200.0, 800.0]
    b = [1030.0, 1420.0, 730.0, 1250.0, 815.0]
    for direction, harm, better in (("higher", "less", "greater"), ("lower", "greater", "less")):
        (v,) = compare_paired_session(
            [PairedComparison("c", "m", direction, tuple(a), tuple(b))],  # type: ignore[arg-type]
            alpha=0.1,
        )
        la, lb = np.log(a), np.log(b)
        assert v.p == pytest.approx(stats.ttest_rel(lb, la, alternative=harm).pvalue)
        assert v.p_improvement == pytest.approx(stats.ttest_rel(lb, la, alternative=better).pvalue)
        ci = stats.ttest_rel(lb, la).confidence_interval(0.8)
        assert (v.ci_low, v.ci_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
        assert v.ratio == pytest.approx(math.exp(float((lb - la).mean())))
    s = paired_log_test(a, b, 0.1)
    assert s.sd == pytest.approx(float(np.std(np.log(b) - np.log(a), ddof=1)))
    one = paired_log_test([1.0], [2.0], 0.05)
    assert (one.log_ci, one.p_less, one.p_greater, one.sd) == (None, None, None, None)
    assert one.log_ratio == pytest.approx(math.log(2.0))


def test_identical_block_ratios_give_exact_p_values() -> None:
    up = paired_log_test([1.0, 2.0], [2.0, 4.0], 0.05)  # log ratios exactly log 2 twice
    assert (up.p_less, up.p_greater, up.sd) == (1.0, 0.0, 0.0)
    assert up.log_ci == (math.log(2.0), math.log(2.0))
    down = paired_log_test([1.0, 2.0], [0.5, 1.0], 0.05)
    assert (down.p_less, down.p_greater) == (0.0, 1.0)
    same = paired_log_test([1.0, 2.0], [1.0, 2.0], 0.05)
    assert (same.p_less, same.p_greater) == (1.0, 1.0)


def _head(metric: str, a: list[float], b: list[float], label: str, alpha: float = 0.05) -> str:
    la, lb = np.log(a), np.log(b)
    d = lb - la
    ratio = math.exp(float(d.mean()))
    ci = stats.ttest_rel(lb, la).confidence_interval(1 - 2 * alpha)
    p = stats.ttest_rel(lb, la, alternative="less").pvalue
    cov_a, cov_b = (float(np.std(x, ddof=1) / np.mean(x)) for x in (a, b))
    return (
        f"{metric} B/A {_change(ratio)} (ratio {ratio:.3f}, {round((1 - 2 * alpha) * 100)}% CI "
        f"{math.exp(ci.low):.3f}-{math.exp(ci.high):.3f}), paired over {len(a)} blocks, "
        f"p={p:.3g}, p_adj={{p_adj}} ({label}), CoV A {_pct(cov_a)}, B {_pct(cov_b)}, "
        f"block-ratio sd {_pct(float(d.std(ddof=1)))}"
    )


def test_every_outcome_message() -> None:
    a = [1000.0, 1400.0, 700.0, 1200.0, 800.0]
    cases = {
        "worse": [x * f for x, f in zip(a, (0.80, 0.81, 0.79, 0.80, 0.805), strict=True)],
        "better": [x * f for x, f in zip(a, (1.20, 1.21, 1.19, 1.20, 1.205), strict=True)],
        "same": [x * f for x, f in zip(a, (1.001, 0.999, 1.0, 1.002, 0.998), strict=True)],
        "noisy": [x * f for x, f in zip(a, (1.2, 0.85, 1.15, 0.9, 1.1), strict=True)],
        "hopeless": [x * f for x, f in zip(a, (1.6, 0.6, 1.5, 0.7, 1.3), strict=True)],
    }
    pcs = [PairedComparison(k, "tps", "higher", tuple(a), tuple(b), 0.05) for k, b in cases.items()]
    pcs[-1] = PairedComparison("hopeless", "tps", "higher", tuple(a), pcs[-1].b, 0.001)
    out = {v.case_id: v for v in compare_paired_session(pcs)}
    raw = [stats.ttest_rel(np.log(p.b), np.log(a), alternative="less").pvalue for p in pcs]
    ranked = sorted(range(5), key=lambda i: raw[i])
    holm, run = [0.0] * 5, 0.0
    for r, i in enumerate(ranked):
        run = max(run, min(1.0, raw[i] * (5 - r)))
        holm[i] = run
    for i, p in enumerate(pcs):
        assert out[p.case_id].p_adj == pytest.approx(holm[i])

    def head(key: str) -> str:
        v = out[key]
        return _head("tps", a, cases[key], "Holm, 5 tests").replace("{p_adj}", f"{v.p_adj:.3g}")

    assert out["worse"].verdict is Outcome.REGRESSION
    assert out["worse"].message == head("worse") + (
        ": worse than the ±5.0% tolerance and significant at alpha=0.05."
    )
    v = out["better"]
    assert v.verdict is Outcome.IMPROVEMENT
    assert v.message == head("better") + (
        f": better by more than ±5.0%, significant at alpha=0.05 (p_adj={v.p_improvement_adj:.3g})."
    )
    assert out["same"].verdict is Outcome.NO_CHANGE
    assert out["same"].message == head("same") + ": the whole CI lies inside ±5.0%."
    v = out["noisy"]
    sd = float(np.std(np.log(cases["noisy"]) - np.log(a), ddof=1))
    assert v.verdict is Outcome.INCONCLUSIVE
    assert v.min_detectable_change == min_detectable(sd, 5, 0.05) > 0.05
    assert v.runs_needed == blocks_needed(sd, 0.05, 0.05) and v.runs_needed > 5  # type: ignore[operator]
    assert v.message == head("noisy") + (
        ": cannot tell whether it changed by more than ±5.0%; at this n the smallest change "
        f"detectable with 80% power is {_pct(v.min_detectable_change)}; about {v.runs_needed} "
        "blocks would decide ±5.0%."
    )
    v = out["hopeless"]
    assert v.verdict is Outcome.INCONCLUSIVE and v.runs_needed is None
    assert v.message.endswith(f"; even {MAX_RUNS} blocks would not detect ±0.1%.")
    assert v.message.startswith("tps B/A ")
    assert (v.n_baseline, v.n_current, v.tolerance) == (5, 5, 0.001)


def test_inconclusive_with_enough_blocks_gives_no_hints() -> None:
    """Quiet blocks, a change just inside the tolerance whose CI crosses it: the blocks
    already detect the tolerance, so neither hint is printed; the boundary cases too
    (detectable change equal to the tolerance, blocks needed equal to the blocks made)."""
    a = [1000.0, 1400.0, 700.0, 1200.0, 800.0]
    f = (1.047, 1.049, 1.048, 1.051, 1.046)
    b = [x * g for x, g in zip(a, f, strict=True)]
    (v,) = compare_paired_session([PairedComparison("c", "tps", "higher", tuple(a), tuple(b))])
    assert v.verdict is Outcome.INCONCLUSIVE
    assert v.message.endswith(": cannot tell whether it changed by more than ±5.0%.")
    f = (1.0, 1.12, 0.93, 1.05, 0.97)  # noisier blocks: the hints' boundary
    sd = float(np.std(np.log(f), ddof=1))
    t0 = min_detectable(sd, 5, 0.05)
    shift = 0.9 * math.log1p(t0) - float(np.mean(np.log(f)))
    b2 = tuple(x * g * math.exp(shift) for x, g in zip(a, f, strict=True))
    (v0,) = compare_paired_session([PairedComparison("c", "tps", "higher", tuple(a), b2)])
    mdc = v0.min_detectable_change
    assert mdc is not None
    (v,) = compare_paired_session([PairedComparison("c", "tps", "higher", tuple(a), b2, mdc)])
    assert v.verdict is Outcome.INCONCLUSIVE and v.min_detectable_change == mdc
    assert v.runs_needed == 5
    assert v.message.endswith(f": cannot tell whether it changed by more than ±{_pct(mdc)}.")


def test_a_ci_reaching_past_the_band_on_one_side_is_inconclusive() -> None:
    a = [1000.0, 1400.0, 700.0, 1200.0, 800.0]
    b = [x * g for x, g in zip(a, (0.99, 0.95, 0.985, 0.94, 0.975), strict=True)]
    (v,) = compare_paired_session([PairedComparison("c", "tps", "higher", tuple(a), tuple(b))])
    assert v.ci_low is not None and v.ci_high is not None
    assert v.ci_low < 1 / 1.05 and 1 / 1.05 < v.ratio < v.ci_high < 1.05  # type: ignore[operator]
    assert v.verdict is Outcome.INCONCLUSIVE


def test_a_session_keeps_every_case_in_order() -> None:
    pcs = [
        PairedComparison("bad", "tps", "higher", (0.0, 1.0), (1.0, 1.0)),
        PairedComparison("rate", "success_rate", "exact", (0.0, 0.0), (1.0, 1.0)),
        PairedComparison("one", "tps", "higher", (1.0,), (1.0,)),
        PairedComparison("two", "tps", "higher", (100.0, 110.0), (90.0, 100.0)),
    ]
    out = compare_paired_session(pcs)
    assert [v.case_id for v in out] == ["bad", "rate", "one", "two"]
    assert out[1].verdict is Outcome.NO_CHANGE and out[1].ratio is None  # A's mean is 0
    assert out[3].p is not None  # two blocks are a test


def test_few_blocks_bad_values_and_settings() -> None:
    (v,) = compare_paired_session([PairedComparison("c", "tps", "higher", (1000.0,), (300.0,))])
    assert v.message == (
        "tps: 1 valid block(s) of A and B; a paired test needs at least 2. Measure more runs "
        "(or fix what made runs invalid)."
    )
    assert (v.cov_baseline, v.cov_current, v.n_baseline) == (None, None, 1)
    (v,) = compare_paired_session(
        [PairedComparison("c", "tps", "higher", (1.0, 2.0, 3.0, 4.0), (0.0, -1.0, math.nan, 0.0))]
    )
    assert v.verdict is Outcome.INCONCLUSIVE
    assert v.message == "tps: a ratio needs positive finite values; B's runs have [0.0, -1.0, nan]"
    assert v.cov_baseline == pytest.approx(float(np.std([1, 2, 3, 4], ddof=1) / 2.5))
    (v,) = compare_paired_session([PairedComparison("c", "tps", "higher", (0.0, 1.0), (1.0, 1.0))])
    assert "A's runs have [0.0]" in v.message
    (v,) = compare_paired_session([PairedComparison("c", "tps", "higher", (1.0,), (1.0,), -0.1)])
    assert v.message == "tps: tolerance -0.1 must be a fraction >= 0"
    (v,) = compare_paired_session(
        [PairedComparison("c", "tps", "higher", (1.0, 2.0), (1.0, 2.0))], alpha=0.5
    )
    assert v.message == "alpha=0.5 must be between 0 and 0.5 (0.05 is usual)"
    with pytest.raises(ValueError) as exc:
        compare_paired_session([], correction="none")  # type: ignore[arg-type]
    assert str(exc.value) == "correction 'none' must be one of holm, bh, bonferroni"
    with pytest.raises(ValueError) as exc:
        PairedComparison("c", "tps", "higher", (1.0, 2.0), (1.0,))
    assert str(exc.value) == (
        "c tps: paired samples need one A and one B value per block (got 2 A and 1 B)"
    )


def test_corrections_name_themselves() -> None:
    a = (100.0, 110.0, 90.0)
    pcs = [PairedComparison(f"c{i}", "tps", "higher", a, tuple(x * s for x in a)) for i, s in
           enumerate((0.9, 0.95))]  # fmt: skip
    for corr, name in (("holm", "Holm"), ("bh", "BH"), ("bonferroni", "Bonferroni")):
        out = compare_paired_session(pcs, correction=corr)  # type: ignore[arg-type]
        assert all(f"({name}, 2 tests)" in v.message for v in out)


def test_absolute_check_on_b() -> None:
    (v,) = compare_paired_session(
        [PairedComparison("c", "success_rate", "exact", (1.0, 0.5, 1.0), (1.0, 0.9, 0.0))]
    )
    assert v.verdict is Outcome.REGRESSION
    assert v.message == (
        "success_rate must be 1 in every run; B's was not in 2 of 3 runs (lowest 0); "
        "A had 1 such runs too."
    )
    assert v.ratio == pytest.approx((1.9 / 3) / (2.5 / 3))
    (v,) = compare_paired_session(
        [PairedComparison("c", "success_rate", "exact", (1.0, 1.0), (1.0, 1.0))]
    )
    assert v.verdict is Outcome.NO_CHANGE
    assert v.message == "success_rate was 1 in all 2 runs of B (absolute check)."
    assert v.ratio == 1.0 and (v.cov_baseline, v.cov_current) == (0.0, 0.0)
    (v,) = compare_paired_session([PairedComparison("c", "success_rate", "exact", (), ())])
    assert v.verdict is Outcome.NO_CHANGE and v.ratio is None


def test_drift_against_linregress_and_its_messages() -> None:
    t = [1.0, 3.0, 2.0, 4.0, 5.0]  # unordered on purpose: drift sorts by time
    v = [1000.0, 940.0, 970.0, 915.0, 880.0]
    d = drift("c", "tps", t, v)
    order = np.argsort(t)
    fit = stats.linregress(np.asarray(t)[order], np.log(np.asarray(v)[order]))
    change = math.expm1(fit.slope * 4.0)
    assert d.change == pytest.approx(change) and d.p == pytest.approx(fit.pvalue)
    assert (d.first, d.last, d.n) == (1000.0, 880.0, 5)
    assert d.first_to_last == pytest.approx(-0.12)
    assert d.drifted
    assert d.message == (
        f"tps: A's own runs moved {_change(1 + change)} over the session (trend over 5 runs, "
        f"p={fit.pvalue:.3g}); first to last run -12.0%: DRIFT beyond ±5.0%: the machine was not "
        "steady; the interleaving cancels a linear drift, but look for another tenant or "
        "thermal throttling"
    )
    # significant but within the tolerance: no drift
    small = [1000.0, 990.0, 995.0, 985.0, 980.0]
    d = drift("c", "tps", t, small)
    assert d.p is not None and d.p <= 0.05 and not d.drifted and "DRIFT" not in d.message
    # a steep trend that is not significant: no drift
    noisy = [1000.0, 600.0, 1300.0, 500.0, 900.0]
    assert not drift("c", "tps", t, noisy).drifted
    # too few, or a zero, or one instant: reported only
    for times, values in (
        ([1, 2], [100.0, 50.0]),
        ([1, 2, 3], [1.0, 0.0, 1.0]),
        ([1, 1, 1], [1.0, 2.0, 3.0]),
    ):
        d = drift("c", "tps", times, values)
        assert (d.change, d.p, d.drifted) == (None, None, False)
    d = drift("c", "tps", [1, 2], [100.0, 50.0])
    assert d.message == "tps: A's first to last run -50.0% over 2 run(s); too few for a trend test"
    d = drift("c", "tps", [1, 2, 3], [0.0, 1.0, 2.0])
    assert d.message == "tps: A's first to last run - over 3 run(s); too few for a trend test"
    flat = drift("c", "tps", [1, 2, 3], [5.0, 5.0, 5.0])  # linregress p is NaN: read as 1
    assert flat.p == 1.0 and not flat.drifted
    with pytest.raises(ValueError) as exc:
        drift("c", "tps", [1, 2], [1.0])
    assert str(exc.value) == "c tps: drift needs one time per value (and a value)"
    with pytest.raises(ValueError):
        drift("c", "tps", [], [])


def test_blocks_needed_stops_at_ten_thousand() -> None:
    """10,000 blocks are the most it answers; one more is None."""
    band = math.log1p(0.05)
    k = math.log1p(min_detectable(1.0, MAX_RUNS, 0.05))
    assert blocks_needed(band / k * (1 - 1e-9), 0.05, 0.05) == MAX_RUNS
    assert blocks_needed(band / k * (1 + 1e-9), 0.05, 0.05) is None
    assert math.isfinite(min_detectable(0.1, MAX_RUNS, 0.05))


def test_records_are_frozen_and_settings_edges() -> None:
    import dataclasses

    pc = PairedComparison("c", "tps", "higher", (1.0, 2.0), (1.0, 2.1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        pc.tolerance = 0.1  # type: ignore[misc]
    s = paired_log_test([1.0, 2.0], [1.1, 2.3], 0.05)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.sd = 0.0  # type: ignore[misc]
    # a zero tolerance is a valid setting (any significant change counts); alpha 0 is not
    (v,) = compare_paired_session([dataclasses.replace(pc, tolerance=0.0)])
    assert v.p is not None and v.tolerance == 0.0
    (v,) = compare_paired_session([pc], alpha=0.0)
    assert v.verdict is Outcome.INCONCLUSIVE and v.message.startswith("alpha=0.0 must be")


def test_drift_of_values_below_one() -> None:
    d = drift("c", "rate", [1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6])
    assert d.change is not None and d.p is not None and d.drifted
    assert d.first_to_last == pytest.approx(0.6 / 0.9 - 1)
