"""Goodput under per-request SLOs, and how well an open-loop run held its schedule. Pure.

A request is *good* when it succeeded and met every objective that is set:

- ``ttft_ms``: its time to first token (client queue time excluded, as everywhere here);
- ``tpot_ms``: its time per output token, ``(E2E - TTFT) / (output tokens - 1)``;
- ``itl_ms``: its *largest* per-token inter-token gap (``summary.itl_per_token``), so one
  stall in a stream breaks the objective even when the average is fine;
- ``e2el_ms``: its end-to-end latency.

A one-token request has no TPOT/ITL; those objectives count as met for it (nothing to miss).
Goodput is the good requests (and their output tokens) per second of the run, and the good
fraction is good / all requests (failures included), as ``vllm bench serve --goodput`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.summary import itl_per_token, output_tokens

SLO_NAMES = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")


def request_latencies_ms(rec: RequestRecord) -> dict[str, float]:
    """The SLO-relevant latencies of one successful request, in ms (NaN: not applicable)."""
    n_out = output_tokens(rec)
    ttft = rec.ttft
    out = {
        "ttft_ms": 1000.0 * ttft if ttft is not None else math.nan,
        "e2el_ms": 1000.0 * rec.e2e,
        "tpot_ms": math.nan,
        "itl_ms": math.nan,
    }
    if ttft is not None and n_out > 1:
        out["tpot_ms"] = 1000.0 * (rec.e2e - ttft) / (n_out - 1)
    gaps = itl_per_token(rec)
    if gaps:
        out["itl_ms"] = 1000.0 * max(gaps)
    return out


def meets(rec: RequestRecord, limits: Mapping[str, float]) -> bool:
    """Whether one request succeeded and met every objective in ``limits``."""
    unknown = set(limits) - set(SLO_NAMES)
    if unknown:
        raise ValueError(f"unknown SLO {sorted(unknown)}; known: {', '.join(SLO_NAMES)}")
    if not rec.ok:
        return False
    lat = request_latencies_ms(rec)
    for name, limit in limits.items():
        value = lat[name]
        if math.isnan(value):
            if name == "ttft_ms":  # a success without a first token cannot meet a TTFT SLO
                return False
            continue
        if value > limit:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Goodput:
    good: int
    total: int
    good_output_tokens: int
    duration_s: float
    violations: dict[str, int]  # successful requests that broke each SLO (one may break several)

    @property
    def fraction(self) -> float:
        return self.good / self.total if self.total else math.nan

    def metrics(self) -> dict[str, float]:
        """``goodput`` (good requests/s), ``goodput_output_throughput`` (their output tok/s)
        and ``goodput_fraction`` (0..1): the flat names results.json and gates use."""
        return {
            "goodput": self.good / self.duration_s,
            "goodput_output_throughput": self.good_output_tokens / self.duration_s,
            "goodput_fraction": self.fraction,
        }


def goodput(
    records: Sequence[RequestRecord], limits: Mapping[str, float], *, duration_s: float
) -> Goodput:
    """Goodput of one measured window of ``duration_s`` seconds under ``limits``."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    good = good_tokens = 0
    violations = {name: 0 for name in limits}
    for rec in records:
        if meets(rec, limits):
            good += 1
            good_tokens += output_tokens(rec)
        elif rec.ok:
            lat = request_latencies_ms(rec)
            for name, limit in limits.items():
                v = lat[name]
                if (math.isnan(v) and name == "ttft_ms") or v > limit:
                    violations[name] += 1
    return Goodput(good, len(records), good_tokens, duration_s, violations)


@dataclass(frozen=True, slots=True)
class ScheduleFigures:
    """An open-loop run against its schedule.

    ``requested_rate`` is the configured rate; ``scheduled_rate`` the rate of the schedule the
    client drew (a Poisson draw of n requests is off the requested rate by ~1/sqrt(n));
    ``achieved_rate`` the rate at which requests actually left (socket write times).
    ``completion_rate`` is successful requests per second from the first scheduled send to the
    last response. ``backlog_at_schedule_end`` counts requests still unanswered when the last
    one was due, and ``peak_in_flight`` the most requests open at once: a server that keeps
    up holds both near rate x latency; one that cannot lets them grow with the run.
    """

    requested_rate: float
    scheduled_rate: float
    achieved_rate: float
    completion_rate: float
    backlog_at_schedule_end: int
    peak_in_flight: int
    send_lag_p99_ms: float  # actual send - scheduled send (cap waits + loop lateness)

    def to_json(self) -> dict[str, float]:
        """Every field, in order (NaN and infinities kept: the run's ``detail.load``)."""
        return msgspec.to_builtins(self)


def _rate(times: Sequence[float]) -> float:
    if len(times) < 2:
        return math.nan
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else math.inf


def schedule_figures(
    records: Sequence[RequestRecord], requested_rate: float, *, steady_from_s: float = 0.0
) -> ScheduleFigures:
    """``ScheduleFigures`` from an open-loop run's records. ``steady_from_s``: a ramp-up's
    length; the scheduled and achieved rates then count only the requests due after it (the
    ramp's own rate climbs from 0), when at least two are."""
    if not records:
        raise ValueError("no records: an open-loop run must have sent at least one request")
    intended = [r.intended_start for r in records]
    starts = [r.start for r in records]
    last_due = max(intended)
    first = min(intended)
    rated = records
    if steady_from_s > 0:
        steady = [r for r in records if r.intended_start - first >= steady_from_s]
        rated = steady if len(steady) >= 2 else records
    ok = [r for r in records if r.ok]
    span = max(r.end for r in records) - first
    events = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records])
    open_now = peak = 0
    for _, d in events:
        open_now += d
        peak = max(peak, open_now)
    lags = sorted(max(0.0, s - i) for s, i in zip(starts, intended, strict=True))
    p99 = lags[min(len(lags) - 1, math.ceil(0.99 * len(lags)) - 1)]
    return ScheduleFigures(
        requested_rate=requested_rate,
        scheduled_rate=_rate([r.intended_start for r in rated]),
        achieved_rate=_rate([r.start for r in rated]),
        completion_rate=len(ok) / span if span > 0 else math.nan,
        backlog_at_schedule_end=sum(1 for r in records if r.end > last_due),
        peak_in_flight=peak,
        send_lag_p99_ms=1000.0 * p99,
    )
