"""The server's timeline over one run: vLLM's gauges and its generation-token counter, sampled
from ``/metrics`` at a fixed interval during the run (pure; the load generator's
``GaugeSampler`` scrapes, this module keeps and shapes what it got).

Per sample: the time since the measured phase started, running and waiting requests (summed
over engines), the KV-cache fill (the max over engines, 0-1) and the cumulative
``vllm:generation_tokens_total``. ``Timeline.to_json`` stores it column by column (compact:
one list per series, times in ms precision; the ``msgspec`` struct ``TimelineRecord``, which
the results.json schema references for ``detail.server.timeline``), with generation tokens/s
as the counter's delta over each interval (``None`` for the first sample, which has no
interval before it), so ``sum(rate_i * (t_i - t_{i-1}))`` is exactly the tokens the server
counted between the first and last sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct

from pytest_llmperf.metrics.server import GAUGES, KV_USAGE, RUNNING, WAITING, Scrape, gauge_values

GENERATION: Final = "vllm:generation_tokens_total"
#: What one sample scans for (the gauge-only line scan plus one counter).
SAMPLED: Final = (*GAUGES, GENERATION)
#: Sampling interval when the config sets none (2 Hz).
DEFAULT_INTERVAL_S: Final = 0.5
#: Most samples kept per run: beyond it (over ~1 h at 2 Hz) every other sample is dropped,
#: so a long run's series stays a few hundred kB at most.
MAX_POINTS: Final = 7200


def sample_values(scrape: Scrape) -> dict[str, float]:
    """One sample: the gauges (``metrics.server.gauge_values``) and the generation counter."""
    out = gauge_values(scrape)
    total = scrape.total(GENERATION)
    if total is not None:
        out[GENERATION] = total
    return out


class TimelineRecord(Struct, frozen=True, kw_only=True):
    """vLLM's gauges sampled during the run (metrics/timeline.py): per sample the seconds since
    the run started, running and waiting requests, KV-cache usage (0-1) and generation tokens/s
    (the counter's delta over the interval before it; null for the first sample). Columns of
    equal length."""

    interval_s: Annotated[float, Meta(gt=0)]
    t_s: list[float]
    running: list[float | None]
    waiting: list[float | None]
    kv_cache_usage: list[float | None]
    generation_tokens_per_s: list[float | None]


@dataclass
class Timeline:
    """Samples in arrival order: ``(perf_counter seconds, values)``."""

    points: list[tuple[float, Mapping[str, float]]] = field(default_factory=list)

    def add(self, t: float, values: Mapping[str, float]) -> None:
        if self.points and t < self.points[-1][0]:
            raise ValueError(f"sample at {t} is earlier than the last one ({self.points[-1][0]})")
        self.points.append((t, values))
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]

    def to_json(self, t0: float, interval_s: float) -> dict[str, Any]:
        """The series, column by column, times relative to ``t0`` (the run's start)."""
        ts = [round(t - t0, 3) for t, _ in self.points]

        def col(name: str | tuple[str, ...], digits: int) -> list[float | None]:
            names = (name,) if isinstance(name, str) else name
            out: list[float | None] = []
            for _, v in self.points:
                got = next((v[n] for n in names if n in v), None)
                out.append(None if got is None else round(got, digits))
            return out

        rates: list[float | None] = []
        for i, (t, v) in enumerate(self.points):
            prev = self.points[i - 1] if i else None
            if prev is None or GENERATION not in v or GENERATION not in prev[1] or t <= prev[0]:
                rates.append(None)
                continue
            delta = v[GENERATION] - prev[1][GENERATION]
            rates.append(None if delta < 0 else round(delta / (t - prev[0]), 2))  # < 0: restart
        record = TimelineRecord(
            interval_s=interval_s,
            t_s=ts,
            running=col(RUNNING, 1),
            waiting=col(WAITING, 1),
            kv_cache_usage=col(KV_USAGE, 4),
            generation_tokens_per_s=rates,
        )
        return msgspec.to_builtins(record)


def integrate(series: Mapping[str, Any], key: str = "generation_tokens_per_s") -> float:
    """The area under a rate series (``to_json``'s shape): the tokens it accounts for."""
    ts, ys = series["t_s"], series[key]
    total = 0.0
    for i in range(1, len(ts)):
        if ys[i] is not None:
            total += ys[i] * (ts[i] - ts[i - 1])
    return total
