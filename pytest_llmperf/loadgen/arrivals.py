"""When each request of an open-loop run is due: the arrival schedule, drawn up front. Pure.

``constant``: equal gaps of ``1 / rate``. ``poisson``: exponential gaps (a Poisson process),
conditioned on the run's span: the ``n - 1`` gaps are scaled so that they sum to
``(n - 1) / rate``. Given how many arrivals a Poisson process has in a span, their times are
uniform order statistics over it, and normalised exponential gaps are exactly those, so the
gaps keep their exponential shape (and the burstiness a study wants) while the schedule's rate
is the requested one. A plain draw of n gaps misses the requested rate by about ``1/sqrt(n)``
(7% at 200 requests), which no "achieved within 2% of requested" check can then meet.

``gamma``: gamma gaps of shape ``burstiness`` and mean ``1 / rate``, as ``vllm bench serve
--burstiness`` draws them: the gaps' coefficient of variation is ``1 / sqrt(burstiness)``
(1: Poisson; below 1 burstier, above 1 more regular). Scaled the same way; independent gamma
gaps of one shape, given their sum, are that sum times a symmetric Dirichlet vector, so the
scaling is again the process conditioned on its span, not a distortion of it.

``ramp_up_s``: the rate climbs linearly from 0 to ``rate`` over the first ``ramp_up_s``
seconds (``vllm bench serve --ramp-up-strategy linear``) and stays there. The steady
schedule is time-changed: with intensity ``rate * t / R`` for ``t < R``, the expected count
by ``t`` is ``rate * t**2 / (2R)``, so a steady offset ``o`` (the time at which that many
arrivals are expected at the full rate) maps to ``sqrt(2 R o)`` while ``o <= R / 2`` and to
``o + R / 2`` after it. A Poisson schedule stays a (now inhomogeneous) Poisson process; after
the ramp every gap is the steady schedule's, at exactly ``rate``.
"""

from __future__ import annotations

import math
import random
from typing import Literal

Arrival = Literal["poisson", "constant", "gamma"]
ARRIVALS: tuple[str, ...] = ("poisson", "constant", "gamma")


def arrival_offsets(
    n: int,
    rate: float,
    arrival: Arrival,
    seed: int = 0,
    *,
    burstiness: float = 1.0,
    ramp_up_s: float = 0.0,
) -> list[float]:
    """Seconds after the first send at which each of ``n`` requests is due (the first at 0)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be > 0 requests/s, got {rate!r}")
    if not (burstiness > 0 and math.isfinite(burstiness)):
        raise ValueError(f"burstiness must be > 0 (the gamma shape), got {burstiness!r}")
    if not (ramp_up_s >= 0 and math.isfinite(ramp_up_s)):
        raise ValueError(f"ramp_up_s must be >= 0 seconds, got {ramp_up_s!r}")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival must be 'poisson', 'constant' or 'gamma', got {arrival!r}")
    if arrival != "gamma" and burstiness != 1.0:
        raise ValueError(f"burstiness shapes gamma arrivals; arrival is {arrival!r}")
    if arrival == "constant":
        steady = [i / rate for i in range(n)]
    else:
        rng = random.Random(seed)
        if arrival == "poisson":
            gaps = [rng.expovariate(rate) for _ in range(max(0, n - 1))]
        else:
            gaps = [rng.gammavariate(burstiness, 1.0 / (burstiness * rate)) for _ in range(n - 1)]
        total = sum(gaps)
        if total <= 0:  # every gap drew 0.0 (a tiny shape, few gaps): equal gaps instead
            gaps, total = [1.0] * len(gaps), float(len(gaps))
        scale = (len(gaps) / rate) / total if gaps else 1.0
        steady, due = [0.0] if n else [], 0.0
        for gap in gaps:
            due += gap * scale
            steady.append(due)
    return ramped(steady, ramp_up_s) if ramp_up_s > 0 else steady


def ramped(steady: list[float], ramp_up_s: float) -> list[float]:
    """A steady schedule's offsets with a linear ramp of the rate over the first ``ramp_up_s``
    seconds (the time change of the module's docstring)."""
    half = ramp_up_s / 2.0
    return [math.sqrt(2.0 * ramp_up_s * o) if o <= half else o + half for o in steady]
