"""Quantile bounds against an independent, exact calculation: the binomial probabilities in
rational arithmetic (``fractions.Fraction`` of the very floats passed in), the order
statistics by brute force, and hand-worked ties where the probability equals the confidence
exactly. Fast example tests (the simulations and the property test are in
test_quantile_bounds.py)."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest

from pytest_llmperf.metrics.quantile_bounds import (
    REPORTED,
    QuantileBound,
    check_confidence,
    lower_index,
    min_samples_lower,
    min_samples_upper,
    percentile_table,
    pool_samples,
    quantile_bound,
    quantile_of_stat,
    upper_index,
)


@functools.cache
def _cdf(n: int, q: float) -> tuple[Fraction, ...]:
    """P(B <= j) for j = -1 .. n, B ~ Binomial(n, q), exactly, for the float q as given."""
    p = Fraction(q)
    out, acc = [Fraction(0)], Fraction(0)
    for i in range(n + 1):
        acc += math.comb(n, i) * p**i * (1 - p) ** (n - i)
        out.append(acc)
    return tuple(out)


def _exact_upper(n: int, q: float, c: float) -> int | None:
    """Smallest 1-based k with P(B <= k - 1) >= c, by brute force."""
    cdf = _cdf(n, q)
    return next((k for k in range(1, n + 1) if cdf[k] >= Fraction(c)), None)


def _exact_lower(n: int, q: float, c: float) -> int | None:
    """Largest 1-based k with P(B >= k) = 1 - P(B <= k - 1) >= c, by brute force."""
    cdf = _cdf(n, q)
    return next((k for k in range(n, 0, -1) if 1 - cdf[k] >= Fraction(c)), None)


def _near_tie(n: int, q: float, c: float) -> bool:
    """Whether a cumulative probability (or its complement) lies within float rounding of c:
    there scipy's float answer may honestly differ from the exact one (n = 15, q = c = 1/2:
    P(B >= 8) is 1/2 exactly, scipy's sf a hair under). Exact ties are checked by hand below,
    where the floats are exact."""
    cf, eps = Fraction(c), Fraction(1, 10**9)
    return any(abs(v - cf) < eps for s in _cdf(n, q) for v in (s, 1 - s))


GRID = [
    (n, q, c)
    for q in (0.1, 0.5, 0.9, 0.95)
    for c in (0.5, 0.8, 0.9, 0.95, 0.99)
    for n in range(0, 31)
]


def test_indices_equal_the_exact_binomial_brute_force() -> None:
    checked = 0
    for n, q, c in GRID:
        if _near_tie(n, q, c):
            continue
        checked += 1
        assert upper_index(n, q, c) == _exact_upper(n, q, c), (n, q, c)
        assert lower_index(n, q, c) == _exact_lower(n, q, c), (n, q, c)
    assert checked > 0.95 * len(GRID)


@pytest.mark.parametrize(
    ("n", "q", "c", "upper", "lower"),
    [
        # One sample, the median, 50%: P(X_(1) >= median) = 1/2 exactly, so the single sample
        # is both bounds (a strict comparison would find no bound at all).
        (1, 0.5, 0.5, 1, 1),
        # n = 2: P(B <= 1) = 3/4 exactly, so the maximum is the upper bound at 75%, and
        # P(B >= 1) = 3/4 makes the minimum the lower bound.
        (2, 0.5, 0.75, 2, 1),
        # n = 3, q = 1/2: P(B <= 1) = 1/2, P(B <= 2) = 7/8; P(B >= 2) = 1/2.
        (3, 0.5, 0.5, 2, 2),
        (3, 0.5, 0.875, 3, 1),
        (3, 0.5, 0.9, None, None),  # 1 - 1/8 < 0.9
        (1, 0.1, 0.5, 1, None),  # P(B <= 0) = 0.9: the sample bounds p10 above; P(B >= 1) = 0.1
        (0, 0.5, 0.5, None, None),
    ],
)
def test_hand_worked_exact_ties(
    n: int, q: float, c: float, upper: int | None, lower: int | None
) -> None:
    assert upper_index(n, q, c) == upper == _exact_upper(n, q, c)
    assert lower_index(n, q, c) == lower == _exact_lower(n, q, c)


def _exact_min_samples(q: float, c: float) -> int:
    n = 1
    while 1.0 - q**n < c:  # the float criterion the docstring states, counted up from 1
        n += 1
    return n


@pytest.mark.parametrize("q", [0.1, 0.2, 0.5, 0.75, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("c", [0.5, 0.75, 0.8, 0.9, 0.95, 0.99])
def test_min_samples_is_the_smallest_n_by_counting(q: float, c: float) -> None:
    assert min_samples_upper(q, c) == _exact_min_samples(q, c)
    assert min_samples_lower(q, c) == _exact_min_samples(1.0 - q, c)


def test_min_samples_where_the_logarithm_rounds_up() -> None:
    # log(1 - 0.8) / log(0.2) is 1.0000000000000002 in floats (1 - 0.8 is 0.19999999999999996),
    # so its ceiling is 2; yet one sample already holds: 1 - 0.2 = 0.8. The guard loop must
    # step back to 1.
    assert math.ceil(math.log(1.0 - 0.8) / math.log(0.2)) == 2
    assert min_samples_upper(0.2, 0.8) == 1
    assert min_samples_upper(0.1, 0.9) == 1
    assert upper_index(1, 0.2, 0.8) == 1
    # Exactly at 2 needed: 1 - 0.5 ** 2 = 0.75.
    assert min_samples_upper(0.5, 0.75) == 2


def test_confidence_bounds_of_the_range() -> None:
    assert check_confidence(0.5) == 0.5  # the lower end is allowed
    assert check_confidence(np.float32(0.75)) == 0.75
    for bad in (0.4999, 1.0, 1.5):
        with pytest.raises(ValueError) as err:
            check_confidence(bad)
        assert str(err.value) == (
            f"confidence {bad!r} is not a probability in [0.5, 1): give e.g. 0.95"
        )


@pytest.mark.parametrize("q", [0.0, 1.0, 1.5, -0.1])
def test_quantile_outside_the_open_interval_is_refused(q: float) -> None:
    for fn in (upper_index, lower_index):
        with pytest.raises(ValueError) as err:
            fn(10, q, 0.95)
        assert str(err.value) == f"quantile q must be in (0, 1), got {q} (write p99 as 0.99)"
    with pytest.raises(ValueError, match="write p99"):
        min_samples_upper(q)


def test_negative_n_is_refused_with_its_value() -> None:
    for fn in (upper_index, lower_index):
        with pytest.raises(ValueError) as err:
            fn(-3, 0.5)
        assert str(err.value) == "n must be >= 0, got -3"


def test_quantile_bound_against_brute_force_order_statistics() -> None:
    rng = np.random.default_rng(7)
    x = rng.exponential(1.0, 64)
    s = sorted(x.tolist())
    for q in (0.5, 0.9, 0.95):
        b = quantile_bound(x, q, 0.9)
        k, j = _exact_upper(64, q, 0.9), _exact_lower(64, q, 0.9)
        assert (b.upper_k, b.lower_k) == (k, j)
        assert k is not None and j is not None
        assert (b.upper, b.lower) == (s[k - 1], s[j - 1])
        # linear interpolation between order statistics, written out
        h = (64 - 1) * q
        lo = math.floor(h)
        assert b.point == pytest.approx(s[lo] + (h - lo) * (s[lo + 1] - s[lo]), rel=1e-12)
        assert (b.q, b.n, b.confidence) == (q, 64, 0.9)
        assert b.min_n == _exact_min_samples(q, 0.9)
        assert b.enough is (k is not None)


def test_one_sample_is_its_own_median_bound() -> None:
    b = quantile_bound([4.0], 0.5, 0.5)
    assert (b.upper_k, b.lower_k, b.upper, b.lower, b.point) == (1, 1, 4.0, 4.0, 4.0)
    assert b.enough and b.min_n == 1


def test_to_json_maps_every_field_and_nan_to_none() -> None:
    b = QuantileBound(
        q=0.9,
        n=7,
        confidence=0.8,
        point=1.5,
        lower=math.nan,
        upper=2.5,
        lower_k=None,
        upper_k=7,
        min_n=6,
    )
    assert b.to_json() == {
        "q": 0.9, "n": 7, "confidence": 0.8, "point": 1.5, "lower": None, "upper": 2.5,
        "lower_k": None, "upper_k": 7, "min_n": 6, "enough": True,
    }  # fmt: skip
    inf = QuantileBound(0.5, 1, 0.5, math.inf, -math.inf, math.nan, None, None, 1)
    doc = inf.to_json()
    assert doc["point"] is None and doc["lower"] is None and doc["upper"] is None
    assert doc["enough"] is False


@pytest.mark.parametrize(
    ("stat", "q"),
    [
        ("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99_9", 0.999),
        ("p1", 0.01), ("p0_1", 0.001), ("p99.5", 0.995),
    ],
)  # fmt: skip
def test_stat_names_to_quantiles(stat: str, q: float) -> None:
    assert quantile_of_stat(stat) == pytest.approx(q, rel=1e-12)


@pytest.mark.parametrize("stat", ["mean", "median", "std", "p", "p0", "p100", "p101", "px", "P99"])
def test_stat_names_without_a_quantile(stat: str) -> None:
    assert quantile_of_stat(stat) is None


def test_percentile_table_is_each_reported_bound() -> None:
    rng = np.random.default_rng(3)
    ttft = rng.lognormal(0.0, 1.0, 60)
    table = percentile_table({"ttft": ttft, "itl": [1.0, 2.0]}, 0.9)
    assert list(table) == ["ttft", "itl"]
    assert REPORTED == ("p50", "p90", "p95", "p99")
    row = table["ttft"]
    assert set(row) == {"n", "confidence", *REPORTED}
    assert (row["n"], row["confidence"]) == (60, 0.9)
    for stat, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        assert row[stat] == quantile_bound(ttft, q, 0.9).to_json()
        s = np.sort(ttft)
        k = _exact_upper(60, q, 0.9)
        assert row[stat]["upper"] == (s[k - 1] if k else None)
    assert table["ttft"]["p99"]["upper"] is None  # p99 at 90% needs 230 samples
    assert table["itl"]["n"] == 2 and table["itl"]["p99"]["enough"] is False


def test_pool_keeps_run_order_and_names_in_first_seen_order() -> None:
    runs = [
        {"ttft": [3.0, 1.0]},
        {"itl": [9.0], "ttft": [2.0]},
        {"ttft": np.array([0.5]), "e2el": [7]},
    ]
    pooled = pool_samples(runs)
    assert list(pooled) == ["ttft", "itl", "e2el"]
    assert pooled["ttft"].tolist() == [3.0, 1.0, 2.0, 0.5]
    assert pooled["itl"].tolist() == [9.0] and pooled["e2el"].dtype == np.float64
    assert pool_samples([]) == {}
