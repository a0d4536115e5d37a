"""Distribution-free confidence bounds for a quantile, from order statistics (pure).

For ``n`` independent samples of any distribution, the number ``B`` of samples at or below
the true ``q``-quantile ``x_q`` is (at least) Binomial(n, q). So the ``k``-th smallest sample
``X_(k)`` (1-based) is

- an upper bound, ``P(X_(k) >= x_q) >= binom.cdf(k - 1, n, q)``: the smallest such ``k`` with
  that probability at least ``confidence`` is the upper bound's order statistic;
- a lower bound, ``P(X_(k) <= x_q) >= binom.sf(k - 1, n, q)``: the largest such ``k``.

No upper bound exists when even the maximum is not enough: ``1 - q**n < confidence``, i.e.
``n < log(1 - confidence) / log(q)`` -- p99 at 95% needs n >= 299, p90 at 95% n >= 29. This is
the binomial rule MLPerf's early stopping builds on. For ties (a discrete distribution) the
bounds only get more conservative.

numpy and scipy are imported lazily, so importing this module (gates do) stays light. Its JSON
shapes, ``Bound`` (one bound as results.json and the reports hold it, NaN as null) and
``PercentileRow`` (one latency's row of ``percentile_table``), are ``msgspec`` structs declared
here; ``report.records`` references them in the results.json schema.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

if TYPE_CHECKING:
    import numpy as np

DEFAULT_CONFIDENCE = 0.95


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float, or a ValueError that says what to give."""
    c = float(confidence)
    if not 0.5 <= c < 1.0:
        raise ValueError(
            f"confidence {confidence!r} is not a probability in [0.5, 1): give e.g. 0.95"
        )
    return c


def _check(n: int, q: float, confidence: float) -> float:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile q must be in (0, 1), got {q} (write p99 as 0.99)")
    return check_confidence(confidence)


def upper_index(n: int, q: float, confidence: float = DEFAULT_CONFIDENCE) -> int | None:
    """The 1-based order statistic ``k`` whose value is a one-sided upper ``confidence``
    bound for the ``q``-quantile of ``n`` samples, or None when ``n`` is too small."""
    import numpy as np

    c = _check(n, q, confidence)
    if n == 0 or n < min_samples_upper(q, c):
        return None
    from scipy.stats import binom

    # cdf[j] = P(B <= j); the smallest k with P(B <= k - 1) >= c
    cdf = binom.cdf(np.arange(n), n, q)
    j = int(np.searchsorted(cdf >= c, True))  # first True (cdf is non-decreasing)
    return j + 1 if j < n else None


def lower_index(n: int, q: float, confidence: float = DEFAULT_CONFIDENCE) -> int | None:
    """The 1-based order statistic ``k`` whose value is a one-sided lower ``confidence``
    bound for the ``q``-quantile of ``n`` samples, or None when ``n`` is too small."""
    import numpy as np

    c = _check(n, q, confidence)
    if n == 0 or n < min_samples_lower(q, c):
        return None
    from scipy.stats import binom

    # sf[j] = P(B > j) = P(B >= j + 1); the largest k with P(B >= k) >= c
    ok = np.flatnonzero(binom.sf(np.arange(n), n, q) >= c)
    return int(ok[-1]) + 1 if ok.size else None


def min_samples_upper(q: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Fewest samples for which an upper bound on the ``q``-quantile exists at
    ``confidence`` (the maximum is it then): smallest n with ``1 - q**n >= confidence``."""
    _check(1, q, confidence)
    n = max(1, math.ceil(math.log(1.0 - confidence) / math.log(q)))
    while n > 1 and 1.0 - q ** (n - 1) >= confidence:  # float guard
        n -= 1
    while 1.0 - q**n < confidence:
        n += 1
    return n


def min_samples_lower(q: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Fewest samples for which a lower bound exists (the minimum is it then): smallest n
    with ``1 - (1 - q)**n >= confidence``."""
    return min_samples_upper(1.0 - q, confidence)


class Bound(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A percentile's point estimate and distribution-free one-sided confidence bounds from
    order statistics (metrics.quantile_bounds): upper/lower are the upper_k-th/lower_k-th
    smallest of n samples; null where n is too small (enough false: fewer than min_n samples,
    no upper bound exists)."""

    q: Annotated[float, Meta(gt=0, lt=1)]
    n: Annotated[int, Meta(ge=0)]
    confidence: Annotated[float, Meta(ge=0.5, lt=1)]
    point: float | None
    lower: float | None
    upper: float | None
    lower_k: Annotated[int, Meta(ge=1)] | None
    upper_k: Annotated[int, Meta(ge=1)] | None
    min_n: Annotated[int, Meta(ge=1)]
    enough: bool


class PercentileRow(Struct, frozen=True, kw_only=True):
    """One latency's pooled sample count, confidence, and a Bound per reported percentile."""

    n: Annotated[int, Meta(ge=0)]
    confidence: float
    p50: Bound | UnsetType = UNSET
    p90: Bound | UnsetType = UNSET
    p95: Bound | UnsetType = UNSET
    p99: Bound | UnsetType = UNSET


def _finite(x: float) -> float | None:
    """A number as JSON holds it: a float, NaN and infinities None."""
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class QuantileBound:
    """The ``q``-quantile of ``n`` samples: the point estimate (linear interpolation, as
    ``np.percentile``) and its one-sided ``confidence`` bounds (NaN where ``n`` is too small;
    ``upper_k``/``lower_k`` are the 1-based order statistics used)."""

    q: float
    n: int
    confidence: float
    point: float
    lower: float
    upper: float
    lower_k: int | None
    upper_k: int | None
    min_n: int  # fewest samples for an upper bound at this confidence

    @property
    def enough(self) -> bool:
        """Whether the samples support an upper bound (a ``p99 <= X`` claim) at all."""
        return self.upper_k is not None

    def record(self) -> Bound:
        """The bound as its JSON record (NaN and infinities as None)."""
        return Bound(
            q=self.q,
            n=self.n,
            confidence=self.confidence,
            point=_finite(self.point),
            lower=_finite(self.lower),
            upper=_finite(self.upper),
            lower_k=self.lower_k,
            upper_k=self.upper_k,
            min_n=self.min_n,
            enough=self.enough,
        )

    def to_json(self) -> dict[str, Any]:
        """``record()`` as plain JSON data."""
        return msgspec.to_builtins(self.record())


def quantile_bound(
    samples: Sequence[float] | np.ndarray, q: float, confidence: float = DEFAULT_CONFIDENCE
) -> QuantileBound:
    """Point estimate and distribution-free bounds of the ``q``-quantile of ``samples``."""
    import numpy as np

    arr = np.sort(np.asarray(samples, dtype=np.float64))
    n = int(arr.size)
    c = _check(n, q, confidence)
    lo_k, up_k = lower_index(n, q, c), upper_index(n, q, c)
    point = float(np.percentile(arr, 100.0 * q)) if n else math.nan
    return QuantileBound(
        q=q,
        n=n,
        confidence=c,
        point=point,
        lower=float(arr[lo_k - 1]) if lo_k is not None else math.nan,
        upper=float(arr[up_k - 1]) if up_k is not None else math.nan,
        lower_k=lo_k,
        upper_k=up_k,
        min_n=min_samples_upper(q, c),
    )


def quantile_of_stat(stat: str) -> float | None:
    """``"p99"`` -> 0.99, ``"p99_9"`` -> 0.999, ``"p50"`` -> 0.5; None for mean/median/std."""
    if not stat.startswith("p"):
        return None
    body = stat[1:].replace("_", ".")
    try:
        pct = float(body)
    except ValueError:
        return None
    return pct / 100.0 if 0.0 < pct < 100.0 else None


#: The percentiles a report shows with their sample count and bounds.
REPORTED: tuple[str, ...] = ("p50", "p90", "p95", "p99")


def percentile_table(
    samples: dict[str, Any], confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, dict[str, Any]]:
    """Per latency: its sample count and, for each of ``REPORTED``, the point estimate and
    bounds (``QuantileBound.to_json()``): a ``PercentileRow`` as plain JSON data; what
    results.json and the reports read."""
    import numpy as np

    out: dict[str, dict[str, Any]] = {}
    for name, values in samples.items():
        bounds: dict[str, Bound] = {}
        for stat in REPORTED:
            q = quantile_of_stat(stat)
            assert q is not None
            bounds[stat] = quantile_bound(values, q, confidence).record()
        row = PercentileRow(n=int(np.asarray(values).size), confidence=confidence, **bounds)
        out[name] = msgspec.to_builtins(row)
    return out


def pool_samples(runs: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Each latency's samples of several runs, concatenated (a case's percentile gates judge
    its requests over all its runs)."""
    import numpy as np

    names = list(dict.fromkeys(k for r in runs for k in r))
    return {
        k: np.concatenate([np.asarray(r[k], dtype=np.float64) for r in runs if k in r])
        for k in names
    }
