"""The run step the engine and A/B share (``session.measure``): the shared-core noise rule and
why a run cannot count in a paired comparison. Pure: the inputs are the load generator's own
records, built here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmperf.loadgen.spec import ClientHealth, HealthThresholds
from pytest_llmperf.session.measure import (
    SHARED_CPU_LAG_FRACTION,
    run_validity,
    scheduling_noise_only,
)

THRESHOLDS = HealthThresholds(loop_lag_p99_ms=100.0)


def _health(**kw: Any) -> ClientHealth:
    base: dict[str, Any] = dict(
        cpu_s=1.0,
        wall_s=10.0,
        cpu_per_request_ms=1.0,
        cpu_per_token_us=10.0,
        loop_lag_p99_ms=150.0,
        loop_lag_max_ms=200.0,
        schedule_lag_p99_ms=1.0,
        schedule_lag_max_ms=2.0,
        queue_wait_p99_ms=0.0,
        peak_rss_mb=100.0,
        event_loop="uvloop",
        client_bound=True,
        reasons=("event-loop lag p99 150 ms > 100 ms",),
    )
    base.update(kw)
    return ClientHealth(**base)


def _result(health: ClientHealth, p50_e2el_ms: float = 10_000.0, tokens: str = "ok") -> Any:
    summary = SimpleNamespace(metrics=lambda: {"p50_e2el_ms": p50_e2el_ms})
    check = SimpleNamespace(status=tokens, reasons=("server counted 12, client 11",))
    return SimpleNamespace(health=health, summary=summary, token_check=check)


def test_a_lag_small_against_the_latency_of_an_idle_client_is_noise() -> None:
    metrics = {"p50_e2el_ms": 150.0 / SHARED_CPU_LAG_FRACTION}
    assert scheduling_noise_only(_health(), THRESHOLDS, metrics)
    # just past the fraction of the median latency: it could move what the gates judge
    metrics = {"p50_e2el_ms": 149.0 / SHARED_CPU_LAG_FRACTION}
    assert not scheduling_noise_only(_health(), THRESHOLDS, metrics)


@pytest.mark.parametrize(
    "health",
    [
        _health(cpu_s=5.0),  # half a core busy: the client itself was the bottleneck
        _health(schedule_lag_p99_ms=30.0),  # it fell behind its schedule
        _health(wall_s=0.0),  # nothing measured: no share to judge
    ],
)
def test_a_busy_or_late_client_is_not_noise(health: ClientHealth) -> None:
    assert not scheduling_noise_only(health, THRESHOLDS, {"p50_e2el_ms": 1e6})


def test_no_median_latency_is_not_noise() -> None:
    assert not scheduling_noise_only(_health(), THRESHOLDS, {})


def test_a_session_that_forgives_the_flag_keeps_the_run() -> None:
    class Forgiving:
        def forgives_scheduling_noise(self, health: Any, thresholds: Any, metrics: Any) -> bool:
            return True

    class Strict:
        def forgives_scheduling_noise(self, health: Any, thresholds: Any, metrics: Any) -> bool:
            return False

    res = _result(_health())
    assert run_validity(res, Forgiving(), THRESHOLDS) == ()
    assert run_validity(res, Strict(), THRESHOLDS) == (
        "client-bound: event-loop lag p99 150 ms > 100 ms",
    )


def test_without_the_sessions_rule_only_shared_cores_forgive() -> None:
    shared = SimpleNamespace(shares_cores_with_server=lambda: True)
    alone = SimpleNamespace(shares_cores_with_server=lambda: False)
    res = _result(_health())
    assert run_validity(res, shared, THRESHOLDS) == ()
    assert run_validity(res, alone, THRESHOLDS) != ()
    assert run_validity(res, object(), THRESHOLDS) != ()  # nothing to say it shares: strict
    late = _result(_health(late_reads=True))  # read late: the timestamps themselves are wrong
    assert run_validity(late, shared, THRESHOLDS) != ()


def test_a_client_bound_flag_without_reasons_still_says_so() -> None:
    res = _result(_health(reasons=()))
    assert run_validity(res, object(), THRESHOLDS) == ("client-bound",)


def test_token_counts_that_disagree_exclude_the_run() -> None:
    res = _result(_health(client_bound=False), tokens="mismatch")
    assert run_validity(res, object(), THRESHOLDS) == (
        "token counts disagree: server counted 12, client 11",
    )
    assert run_validity(_result(_health(client_bound=False)), object(), THRESHOLDS) == ()
