"""Config records and parsing for load modes and SLOs: ``[load]`` (open-loop request rates) and
``[slo]`` (per-request service-level objectives, goodput gate). Pure: no files, no I/O.

``[load]`` turns the matrix from closed loop (``concurrency`` levels) into open loop: one case
per request rate, requests sent on a Poisson or constant schedule whatever the server does,
optionally capped at ``max_concurrency`` in flight; gamma arrivals take a ``burstiness``,
``ramp_up_s`` ramps the rate up linearly, and ``capacity_fractions`` give rates as fractions of
a closed-loop capacity the engine measures first (``docs/load-modes.md``). ``[slo]`` says when
one request counts as good (TTFT, TPOT, ITL, end-to-end limits, each optional) and, with
``min_goodput_fraction``, gates every case on the share of requests that met all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypeVar

from pytest_llmperf.config.validate import KeyPath, _choice, _int, _list, _number, _table
from pytest_llmperf.config.vocab import _MAX_CONCURRENCY, _MAX_REQUESTS

ARRIVALS: Final[tuple[str, ...]] = ("poisson", "constant", "gamma")
#: Gamma shapes accepted (CoV of the gaps 1 / sqrt(burstiness): 0.01 -> 10, 100 -> 0.1).
BURSTINESS_RANGE: Final[tuple[float, float]] = (0.01, 100.0)
#: Highest request rate accepted (requests/s); a typo guard, not a capacity claim.
MAX_RATE: Final[float] = 1e5
#: Seconds of schedule one open-loop run sends by default (requests = ceil(rate x this)).
DEFAULT_DURATION_S: Final[float] = 10.0
LOAD_KEYS: Final[tuple[str, ...]] = (
    "rates",
    "arrival",
    "burstiness",
    "ramp_up_s",
    "max_concurrency",
    "duration_s",
    "requests",
    "capacity_fractions",
    "capacity_concurrency",
)
#: Closed-loop level whose request throughput is the capacity ``capacity_fractions`` scale.
DEFAULT_CAPACITY_CONCURRENCY: Final[int] = 64
#: Largest fraction of the measured capacity accepted (past it: far beyond saturation).
MAX_CAPACITY_FRACTION: Final[float] = 10.0
PerfConfigT = TypeVar("PerfConfigT", bound=Any)
SLO_KEYS: Final[tuple[str, ...]] = (
    "ttft_ms",
    "tpot_ms",
    "itl_ms",
    "e2el_ms",
    "min_goodput_fraction",
)


@dataclass(frozen=True)
class OpenLoad:
    """One open-loop case's schedule: ``rate`` requests/s with ``arrival`` gaps (``gamma``:
    of shape ``burstiness``), reached by a linear ramp over the first ``ramp_up_s`` seconds
    (0: from the start), at most ``max_concurrency`` in flight (``None``: uncapped)."""

    rate: float
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    max_concurrency: int | None = None
    burstiness: float = 1.0
    ramp_up_s: float = 0.0
    #: A rate given as this fraction of the closed-loop capacity measured at
    #: ``capacity_concurrency`` (``rate`` is then 0 until the engine measured it).
    capacity_fraction: float | None = None
    capacity_concurrency: int = DEFAULT_CAPACITY_CONCURRENCY
    #: The measured capacity (requests/s) the rate was derived from; set by the engine.
    capacity_rps: float | None = None

    @property
    def label(self) -> str:
        """The case-id part: ``r2``, ``r0.5``, ``r12.5``; ``cap0.5`` for a capacity fraction
        (the same id every night, whatever the capacity measured)."""
        if self.capacity_fraction is not None:
            return f"cap{self.capacity_fraction:g}"
        return f"r{self.rate:g}"

    @property
    def resolved(self) -> bool:
        return self.rate > 0


@dataclass(frozen=True)
class LoadModes:
    """The ``[load]`` table. Empty ``rates`` keeps the closed loop at the concurrency levels."""

    rates: tuple[float, ...] = ()
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    max_concurrency: int | None = None
    duration_s: float = DEFAULT_DURATION_S
    requests: int | None = None  # per run; None: ceil(rate x duration_s), at least 10
    burstiness: float = 1.0
    ramp_up_s: float = 0.0
    #: Rates as fractions of the measured closed-loop capacity (one case each, after the
    #: ``rates`` cases), measured once per model and workload at ``capacity_concurrency``.
    capacity_fractions: tuple[float, ...] = ()
    capacity_concurrency: int = DEFAULT_CAPACITY_CONCURRENCY

    @property
    def open_loop(self) -> bool:
        return bool(self.rates or self.capacity_fractions)

    def loads(self) -> tuple[OpenLoad, ...]:
        shape = (self.arrival, self.max_concurrency, self.burstiness, self.ramp_up_s)
        fixed = tuple(OpenLoad(r, *shape) for r in self.rates)
        return fixed + tuple(
            OpenLoad(
                0.0, *shape, capacity_fraction=f, capacity_concurrency=self.capacity_concurrency
            )
            for f in self.capacity_fractions
        )

    def requests_for(self, rate: float) -> int:
        if self.requests is not None:
            return self.requests
        return max(10, math.ceil(rate * self.duration_s))


@dataclass(frozen=True)
class Slo:
    """Per-request objectives; a request is *good* when it succeeded and met every one that is
    set (``metrics.goodput``). ``min_goodput_fraction`` gates each case on the good share."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    itl_ms: float | None = None
    e2el_ms: float | None = None
    min_goodput_fraction: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.itl_ms, self.e2el_ms))

    def limits(self) -> dict[str, float]:
        """The set objectives, ``{"ttft_ms": 500.0, ...}``."""
        out = {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "itl_ms": self.itl_ms}
        out["e2el_ms"] = self.e2el_ms
        return {k: v for k, v in out.items() if v is not None}


def parse_rate(value: object, at: KeyPath) -> float:
    return _number(
        value, at, minimum=0.0, maximum=MAX_RATE, what="a request rate (requests/s)", open_min=True
    )


def parse_load(value: object, at: KeyPath) -> LoadModes:
    t = _table(value, at, LOAD_KEYS)
    rates = _load_rates(t, at)
    arrival = (
        _choice(t["arrival"], at.key("arrival"), ARRIVALS, what="arrival process")
        if "arrival" in t
        else "poisson"
    )
    cap, duration, requests = _load_run_size(t, at)
    burstiness = _load_burstiness(t, at, arrival)
    ramp = (
        _number(
            t["ramp_up_s"],
            at.key("ramp_up_s"),
            minimum=0.0,
            maximum=86400.0,
            what="seconds over which the rate climbs linearly from 0",
        )
        if "ramp_up_s" in t
        else 0.0
    )
    fractions, capacity_c = _load_capacity(t, at)
    shaping = [k for k in ("arrival", "max_concurrency", "burstiness", "ramp_up_s") if k in t]
    if shaping and not (rates or fractions):
        at.fail(
            f"{', '.join(shaping)} shape an open loop, but no rates are given",
            "add rates = [...] (requests/s) or remove them",
        )
    return LoadModes(
        rates,
        arrival,  # type: ignore[arg-type]
        cap,
        duration,
        requests,
        burstiness,
        ramp,
        fractions,
        capacity_c,
    )


def _load_rates(t: Mapping[str, Any], at: KeyPath) -> tuple[float, ...]:
    """``[load] rates``: distinct positive request rates, sorted (empty: not given)."""
    if "rates" not in t:
        return ()
    rat = at.key("rates")
    items = _list(t["rates"], rat, what="request rates")
    if not items:
        rat.fail("no rates given", "list rates in requests/s, e.g. rates = [1, 4]; or remove it")
    rates = tuple(parse_rate(v, rat.index(i)) for i, v in enumerate(items))
    if len(set(rates)) != len(rates):
        rat.fail("a rate is listed twice", "list each request rate once")
    return tuple(sorted(rates))


def _load_run_size(t: Mapping[str, Any], at: KeyPath) -> tuple[int | None, float, int | None]:
    """``[load] max_concurrency``, ``duration_s`` and ``requests`` (each with its default)."""
    cap = (
        _int(
            t["max_concurrency"],
            at.key("max_concurrency"),
            minimum=1,
            maximum=_MAX_CONCURRENCY,
            what="a concurrency cap",
        )
        if "max_concurrency" in t
        else None
    )
    duration = (
        _number(
            t["duration_s"],
            at.key("duration_s"),
            minimum=0.0,
            maximum=86400.0,
            what="seconds of schedule per run",
            open_min=True,
        )
        if "duration_s" in t
        else DEFAULT_DURATION_S
    )
    requests = (
        _int(t["requests"], at.key("requests"), minimum=1, maximum=_MAX_REQUESTS, what="requests")
        if "requests" in t
        else None
    )
    return cap, duration, requests


def _load_burstiness(t: Mapping[str, Any], at: KeyPath, arrival: str) -> float:
    """``[load] burstiness``: a gamma shape, refused unless ``arrival = "gamma"`` (default 1)."""
    if "burstiness" not in t:
        return 1.0
    lo, hi = BURSTINESS_RANGE
    burstiness = _number(
        t["burstiness"],
        at.key("burstiness"),
        minimum=lo,
        maximum=hi,
        what="a gamma shape (the gaps' CoV is 1/sqrt(burstiness); 1 is Poisson)",
    )
    if arrival != "gamma":
        at.key("burstiness").fail(
            f"burstiness shapes gamma arrivals, but arrival is {arrival!r}",
            'set arrival = "gamma" or remove burstiness',
        )
    return burstiness


def _load_capacity(t: Mapping[str, Any], at: KeyPath) -> tuple[tuple[float, ...], int]:
    """``[load] capacity_fractions`` (distinct, sorted) and ``capacity_concurrency``."""
    fractions: tuple[float, ...] = ()
    if "capacity_fractions" in t:
        fat = at.key("capacity_fractions")
        items = _list(t["capacity_fractions"], fat, what="fractions of the measured capacity")
        if not items:
            fat.fail("no fractions given", "list them, e.g. capacity_fractions = [0.5, 1.0]")
        fractions = tuple(
            _number(
                v,
                fat.index(i),
                minimum=0.0,
                maximum=MAX_CAPACITY_FRACTION,
                what="a fraction of the measured capacity",
                open_min=True,
            )
            for i, v in enumerate(items)
        )
        if len(set(fractions)) != len(fractions):
            fat.fail("a fraction is listed twice", "list each fraction once")
        fractions = tuple(sorted(fractions))
    capacity_c = DEFAULT_CAPACITY_CONCURRENCY
    if "capacity_concurrency" in t:
        capacity_c = _int(
            t["capacity_concurrency"],
            at.key("capacity_concurrency"),
            minimum=1,
            maximum=_MAX_CONCURRENCY,
            what="the closed-loop level whose throughput is the capacity",
        )
        if not fractions:
            at.key("capacity_concurrency").fail(
                "capacity_concurrency sizes the capacity measurement, but no "
                "capacity_fractions are given",
                "add capacity_fractions = [...] or remove it",
            )
    return fractions, capacity_c


def parse_slo(value: object, at: KeyPath) -> Slo:
    t = _table(value, at, SLO_KEYS)
    out: dict[str, float] = {}
    for key in SLO_KEYS:
        if key not in t:
            continue
        if key == "min_goodput_fraction":
            out[key] = _number(
                t[key], at.key(key), minimum=0.0, maximum=1.0, what="a fraction of requests"
            )
        else:
            out[key] = _number(
                t[key], at.key(key), minimum=0.0, maximum=1e7, what="a limit in ms", open_min=True
            )
    slo = Slo(**out)
    if slo.min_goodput_fraction is not None and not slo.any:
        at.fail(
            "min_goodput_fraction gates on requests meeting the SLOs, but no SLO is set",
            "set at least one of ttft_ms, tpot_ms, itl_ms, e2el_ms",
        )
    return slo


def parse_sections(t: Mapping[str, object], root: KeyPath) -> dict[str, object]:
    """The ``PerfConfig`` updates from a document's ``load`` and ``slo`` tables."""
    out: dict[str, object] = {}
    if "load" in t:
        out["load"] = parse_load(t["load"], root.key("load"))
    if "slo" in t:
        out["slo"] = parse_slo(t["slo"], root.key("slo"))
    return out


def with_rates(config: PerfConfigT, rates: list[str] | None, *, source: str) -> PerfConfigT:
    """``config`` with its ``[load] rates`` (and ``capacity_fractions``) replaced by ``rates``
    (strings from the command line, e.g. ``--llmperf-rate 1,4``, or ``capacity*0.5`` for a
    fraction of the measured capacity); ``None`` leaves it as it is."""
    if rates is None:
        return config
    at = KeyPath(source, "")
    how = "give rates in requests/s or as capacity fractions, like 1,2.5,capacity*0.5"
    values: list[float] = []
    fractions: list[float] = []
    for text in rates:
        body, is_fraction = text, False
        if text.strip().lower().startswith(CAPACITY_PREFIX):
            body, is_fraction = text.strip()[len(CAPACITY_PREFIX) :], True
        try:
            (fractions if is_fraction else values).append(float(body))
        except ValueError:
            at.fail(f"{text!r} is not a request rate", how)
    if not values and not fractions:
        at.fail("no rates given", how)
    table: dict[str, object] = {**_load_rest(config.load)}  # type: ignore[attr-defined]
    if values:
        table["rates"] = values
    if fractions:
        table["capacity_fractions"] = fractions
        table["capacity_concurrency"] = config.load.capacity_concurrency  # type: ignore[attr-defined]
    load = parse_load(table, at)
    return replace(config, load=load)  # type: ignore[type-var]


#: ``--llmperf-rate capacity*0.5``: half the measured closed-loop capacity.
CAPACITY_PREFIX: Final[str] = "capacity*"


def _load_rest(load: LoadModes) -> dict[str, object]:
    out: dict[str, object] = {"arrival": load.arrival, "duration_s": load.duration_s}
    if load.arrival == "gamma":
        out["burstiness"] = load.burstiness
    if load.ramp_up_s:
        out["ramp_up_s"] = load.ramp_up_s
    if load.max_concurrency is not None:
        out["max_concurrency"] = load.max_concurrency
    if load.requests is not None:
        out["requests"] = load.requests
    return out
