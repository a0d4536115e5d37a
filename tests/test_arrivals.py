"""The open-loop arrival schedule (``loadgen.arrivals``): the requested rate exactly, with
exponential gaps for Poisson arrivals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from pytest_llmperf.loadgen.arrivals import arrival_offsets


def schedule_rate(offsets: list[float]) -> float:
    return (len(offsets) - 1) / (offsets[-1] - offsets[0])


@pytest.mark.parametrize("n", [2, 20, 205, 5000])
@pytest.mark.parametrize("arrival", ["poisson", "constant"])
def test_the_schedule_runs_at_the_requested_rate(n: int, arrival: str) -> None:
    for seed in range(5):
        offsets = arrival_offsets(n, 34.15, arrival, seed)  # type: ignore[arg-type]
        assert len(offsets) == n and offsets[0] == 0.0
        assert all(b >= a for a, b in itertools.pairwise(offsets))
        assert schedule_rate(offsets) == pytest.approx(34.15, rel=1e-12)


def test_a_plain_draw_would_miss_the_rate_by_about_one_over_root_n() -> None:
    """What the scaling removes: unscaled exponential gaps of 205 requests are off by several
    percent in most seeds (so the check above is not trivially met by any exponential draw)."""
    rng = np.random.default_rng(0)
    off = [abs(204 / rng.exponential(1 / 34.15, 204).sum() / 34.15 - 1) for _ in range(200)]
    assert np.median(off) > 0.03


def test_poisson_gaps_keep_their_exponential_shape() -> None:
    offsets = np.array(arrival_offsets(20_001, 10.0, "poisson", seed=3))
    gaps = np.diff(offsets)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # CoV of an exponential
    ks = stats.kstest(gaps, "expon", args=(0, 1 / 10.0))
    assert ks.pvalue > 0.01, ks
    # bursty, unlike constant gaps: a tenth of the gaps are under a tenth of the mean
    assert np.mean(gaps < 0.01) == pytest.approx(1 - math.exp(-0.1), abs=0.01)


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    assert arrival_offsets(50, 4.0, "poisson", 1) == arrival_offsets(50, 4.0, "poisson", 1)
    assert arrival_offsets(50, 4.0, "poisson", 1) != arrival_offsets(50, 4.0, "poisson", 2)
    assert arrival_offsets(4, 2.0, "constant") == [0.0, 0.5, 1.0, 1.5]
    assert arrival_offsets(1, 2.0, "poisson") == [0.0] and arrival_offsets(0, 2.0, "poisson") == []


@pytest.mark.parametrize(
    ("args", "says"),
    [((-1, 1.0, "poisson"), "n must be >= 0"), ((3, 0.0, "poisson"), "rate must be > 0"),
     ((3, 1.0, "weibull"), "'poisson', 'constant' or 'gamma'")],
)  # fmt: skip
def test_bad_input_says_what(args: tuple, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        arrival_offsets(*args)


@pytest.mark.parametrize(
    ("kw", "says"),
    [({"burstiness": 0.0}, "burstiness must be > 0"),
     ({"burstiness": math.inf}, "burstiness must be > 0"),
     ({"ramp_up_s": -1.0}, "ramp_up_s must be >= 0"),
     ({"ramp_up_s": math.nan}, "ramp_up_s must be >= 0")],
)  # fmt: skip
def test_bad_gamma_and_ramp_input_says_what(kw: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        arrival_offsets(3, 1.0, "gamma", **kw)


def test_burstiness_belongs_to_gamma_arrivals() -> None:
    with pytest.raises(ValueError, match="burstiness shapes gamma arrivals"):
        arrival_offsets(3, 1.0, "poisson", burstiness=0.5)


# -- gamma arrivals (vllm bench serve --burstiness) ----------------------------------------


@pytest.mark.parametrize("n", [2, 20, 205, 5000])
@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_schedule_runs_at_the_requested_rate(n: int, burstiness: float) -> None:
    for seed in range(5):
        offsets = arrival_offsets(n, 34.15, "gamma", seed, burstiness=burstiness)
        assert len(offsets) == n and offsets[0] == 0.0
        assert all(b >= a for a, b in itertools.pairwise(offsets))
        assert schedule_rate(offsets) == pytest.approx(34.15, rel=1e-12)


@pytest.mark.parametrize("burstiness", [0.25, 0.5, 2.0, 8.0])
def test_gamma_gaps_have_the_shape_and_cov_of_the_burstiness(burstiness: float) -> None:
    rate = 10.0
    gaps = np.diff(arrival_offsets(20_001, rate, "gamma", seed=5, burstiness=burstiness))
    cov = gaps.std() / gaps.mean()
    assert cov == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)
    scale = 1 / (burstiness * rate)  # vllm bench's theta: mean gap 1 / rate
    ks = stats.kstest(gaps, "gamma", args=(burstiness, 0, scale))
    assert ks.pvalue > 0.01, ks
    # and not an exponential, which a gamma draw of another shape would be told apart from
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue < 1e-6


def test_gamma_with_burstiness_one_is_a_poisson_process() -> None:
    gaps = np.diff(arrival_offsets(20_001, 10.0, "gamma", seed=2, burstiness=1.0))
    assert stats.kstest(gaps, "expon", args=(0, 0.1)).pvalue > 0.01
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)


def test_gamma_seeding() -> None:
    a = arrival_offsets(50, 4.0, "gamma", 1, burstiness=0.5)
    assert a == arrival_offsets(50, 4.0, "gamma", 1, burstiness=0.5)
    assert a != arrival_offsets(50, 4.0, "gamma", 2, burstiness=0.5)
    assert a != arrival_offsets(50, 4.0, "gamma", 1, burstiness=2.0)


# -- linear ramp-up (vllm bench serve --ramp-up-strategy linear) ----------------------------


def test_a_constant_ramp_follows_the_linear_rate() -> None:
    rate, ramp = 20.0, 10.0
    offsets = np.array(arrival_offsets(400, rate, "constant", ramp_up_s=ramp))
    assert offsets[0] == 0.0 and np.all(np.diff(offsets) > 0)
    # arrivals due by t (t within the ramp): the integral of rate * t / ramp, i.e.
    # rate * t**2 / (2 * ramp), plus the one at 0
    for t in (2.0, 5.0, 7.5, 10.0):
        due = np.sum(offsets <= t + 1e-9)
        assert due == math.floor(rate * t**2 / (2 * ramp)) + 1
    # the local rate climbs through the ramp: gaps shrink, then stay 1 / rate exactly
    inside = np.diff(offsets[offsets < ramp])
    assert np.all(np.diff(inside) < 0)
    after = np.diff(offsets[offsets >= ramp])
    assert after == pytest.approx(np.full(len(after), 1 / rate), rel=1e-9)
    # a ramp of R costs R / 2 seconds against the steady schedule
    assert offsets[-1] == pytest.approx(399 / rate + ramp / 2)


def test_a_poisson_ramp_is_a_poisson_process_of_linear_intensity() -> None:
    """Given how many arrivals fall in the ramp, an inhomogeneous Poisson process of intensity
    proportional to t places them with density 2t / R**2 (CDF (t / R)**2): KS test against it,
    and the steady part after the ramp stays exponential at the full rate."""
    rate, ramp = 50.0, 40.0
    offsets = np.array(arrival_offsets(6001, rate, "poisson", seed=4, ramp_up_s=ramp))
    inside = offsets[(offsets > 0) & (offsets < ramp)]
    assert len(inside) == pytest.approx(rate * ramp / 2, rel=0.05)
    ks = stats.kstest(inside / ramp, lambda x: np.clip(x, 0, 1) ** 2)
    assert ks.pvalue > 0.01, ks
    assert stats.kstest(inside / ramp, "uniform").pvalue < 1e-6  # not a flat rate
    gaps = np.diff(offsets[offsets >= ramp])
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 0.01
    steady = arrival_offsets(6001, rate, "poisson", seed=4)
    assert offsets[-1] == pytest.approx(steady[-1] + ramp / 2)


def test_no_ramp_is_the_steady_schedule() -> None:
    assert arrival_offsets(30, 3.0, "gamma", 7, burstiness=0.5, ramp_up_s=0.0) == (
        arrival_offsets(30, 3.0, "gamma", 7, burstiness=0.5)
    )
