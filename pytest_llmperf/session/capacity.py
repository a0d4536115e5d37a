"""Capacity at SLO: the highest open-loop request rate whose goodput fraction stays at or above
a target, found by a short search whose every step is kept.

The search (``search_capacity``) is pure: it calls ``measure(rate)`` for a step's good
fraction. It climbs from ``start_rate`` by ``factor`` while the target holds (or descends by
it while it does not), then bisects (geometric mean) between the highest passing and the
lowest failing rate until they are within ``tolerance`` of each other or ``max_steps`` are
spent. A step the client could not trust (``None``: client-bound) ends the search there; its
capacity is then only a lower bound, and the result says so.

``engine_capacity`` runs the steps as open-loop cases of a ``PerfEngine``, so each step is a
case in results.json (``<model>-<workload>-r<rate>``) with its goodput and schedule figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec


@dataclass(frozen=True)
class Step:
    rate: float
    fraction: float | None  # None: not trusted (client-bound)
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class CapacityResult:
    target: float
    capacity_rate: float | None  # highest passing rate; None: even the lowest tried failed
    lowest_failing_rate: float | None
    steps: tuple[Step, ...] = field(default=())
    bounded: bool = True  # False: the search stopped before a failing rate bounded it above
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["steps"] = list(out["steps"])
        return out

    def lines(self) -> list[str]:
        out = [
            f"step {i + 1}: rate {s.rate:g}/s -> goodput fraction "
            + ("untrusted (client-bound)" if s.fraction is None else f"{s.fraction:.3f}")
            + f" {'PASS' if s.passed else 'FAIL'}{' (' + s.note + ')' if s.note else ''}"
            for i, s in enumerate(self.steps)
        ]
        cap = "none" if self.capacity_rate is None else f"{self.capacity_rate:g} req/s"
        bound = "" if self.bounded else " (lower bound: no failing rate found)"
        out.append(f"capacity at goodput fraction >= {self.target:g}: {cap}{bound}")
        if self.note:
            out.append(self.note)
        return out


def search_capacity(
    measure: Callable[[float], float | None],
    *,
    target: float,
    start_rate: float,
    factor: float = 2.0,
    tolerance: float = 0.1,
    max_steps: int = 8,
    min_rate: float = 1e-3,
    max_rate: float = 1e5,
) -> CapacityResult:
    """Search the highest rate whose ``measure(rate)`` is >= ``target`` (see module doc)."""
    if not 0 < target <= 1:
        raise ValueError(f"target must be a goodput fraction in (0, 1], got {target}")
    if not start_rate > 0 or not factor > 1 or not tolerance > 0 or max_steps < 1:
        raise ValueError("need start_rate > 0, factor > 1, tolerance > 0 and max_steps >= 1")
    steps: list[Step] = []
    lo: float | None = None  # highest passing
    hi: float | None = None  # lowest failing

    def step(rate: float) -> bool | None:
        frac = measure(rate)
        if frac is None:
            steps.append(Step(rate, None, False, "client-bound: not trusted"))
            return None
        ok = not math.isnan(frac) and frac >= target
        steps.append(Step(rate, frac, ok))
        return ok

    rate = start_rate
    while len(steps) < max_steps:
        if lo is not None and hi is not None:
            if hi / lo <= 1 + tolerance:
                break
            rate = math.sqrt(lo * hi)
        ok = step(rate)
        if ok is None:
            return CapacityResult(
                target,
                lo,
                hi,
                tuple(steps),
                bounded=False,
                note=f"stopped at {rate:g}/s: the client could not hold the schedule there",
            )
        if ok:
            lo = rate
            if hi is None:
                rate = rate * factor
                if rate > max_rate:
                    break
        else:
            hi = rate
            if lo is None:
                rate = rate / factor
                if rate < min_rate:
                    break
    return CapacityResult(target, lo, hi, tuple(steps), bounded=hi is not None)


def engine_capacity(
    engine: Any,
    model: Any,
    workload: Any,
    *,
    target: float,
    start_rate: float,
    factor: float = 2.0,
    tolerance: float = 0.1,
    max_steps: int = 8,
    arrival: str = "poisson",
    max_concurrency: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CapacityResult:
    """``search_capacity`` with each step an open-loop case of ``engine`` (a ``PerfEngine``
    whose config sets ``[slo]``); every step lands in results.json like any case."""
    from pytest_llmperf.config import Gates, PerfCase
    from pytest_llmperf.config.load import OpenLoad
    from pytest_llmperf.session.engine import PerfFailure

    if not engine.config.slo.any:
        raise ValueError("capacity at SLO needs SLOs: set [slo] ttft_ms / tpot_ms / e2el_ms")
    cfg = engine.config

    def measure(rate: float) -> float | None:
        load = OpenLoad(round(rate, 4), arrival, max_concurrency)  # type: ignore[arg-type]
        case = PerfCase(
            model=model,
            workload=workload,
            concurrency=max_concurrency or 0,
            requests=cfg.load.requests_for(load.rate),
            runs=1,
            warmup_requests=cfg.warmup_requests,
            gates=Gates(success_rate_min=0.0),  # failures count against goodput, not as errors
            load=load,
        )
        try:
            result = engine.run_case(case, progress=progress)
        except PerfFailure:
            result = next(r for r in reversed(engine.results) if r.case_id == case.id)
        if result.client_bound:
            return None
        return result.mean("goodput_fraction")

    return search_capacity(
        measure,
        target=target,
        start_rate=start_rate,
        factor=factor,
        tolerance=tolerance,
        max_steps=max_steps,
    )
