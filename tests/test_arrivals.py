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
     ((3, 1.0, "gamma"), "'poisson' or 'constant'")],
)  # fmt: skip
def test_bad_input_says_what(args: tuple, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        arrival_offsets(*args)
