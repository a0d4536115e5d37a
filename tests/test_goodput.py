"""Goodput under per-request SLOs and open-loop schedule figures (pure: records in, figures out)."""

from __future__ import annotations

import math

import pytest

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.goodput import goodput, meets, request_latencies_ms, schedule_figures


def rec(
    i: int,
    *,
    start: float = 0.0,
    ttft: float = 0.1,
    gaps: tuple[float, ...] = (0.01, 0.01, 0.01),
    intended: float | None = None,
    error: str | None = None,
) -> RequestRecord:
    """A request sent at ``start``: first token after ``ttft``, one token per later gap."""
    times = [start + ttft]
    for g in gaps:
        times.append(times[-1] + g)
    return RequestRecord(
        index=i,
        intended_start=start if intended is None else intended,
        start=start,
        first_token=times[0],
        end=times[-1],
        chunk_times=tuple(times),
        chunk_tokens=(1,) * len(times),
        prompt_tokens=10,
        completion_tokens=len(times),
        expected_output_tokens=len(times),
        status=200 if error is None else 500,
        error_kind=error,  # type: ignore[arg-type]
    )


def test_request_latencies() -> None:
    lat = request_latencies_ms(rec(0, ttft=0.2, gaps=(0.01, 0.05, 0.03)))
    assert lat["ttft_ms"] == pytest.approx(200)
    assert lat["e2el_ms"] == pytest.approx(290)
    assert lat["tpot_ms"] == pytest.approx(30)  # (290 - 200) / 3
    assert lat["itl_ms"] == pytest.approx(50)  # the largest gap, not the mean


@pytest.mark.parametrize(
    ("limits", "good"),
    [
        ({"ttft_ms": 250}, True),
        ({"ttft_ms": 150}, False),
        ({"tpot_ms": 31}, True),
        ({"tpot_ms": 29}, False),
        ({"itl_ms": 51}, True),
        ({"itl_ms": 40}, False),  # mean gap 30 ms meets it; the 50 ms stall does not
        ({"e2el_ms": 300}, True),
        ({"e2el_ms": 280}, False),
        ({"ttft_ms": 250, "e2el_ms": 280}, False),  # every SLO must hold
    ],
)
def test_each_slo_decides(limits: dict[str, float], good: bool) -> None:
    assert meets(rec(0, ttft=0.2, gaps=(0.01, 0.05, 0.03)), limits) is good


def test_failed_request_is_never_good_and_unknown_slo_refused() -> None:
    assert not meets(rec(0, error="http_5xx"), {"e2el_ms": 1e9})
    with pytest.raises(ValueError, match="unknown SLO"):
        meets(rec(0), {"ttft": 1})


def test_goodput_rates_and_fraction() -> None:
    records = [rec(i, ttft=0.05 * (i + 1)) for i in range(10)] + [rec(10, error="timeout")]
    g = goodput(records, {"ttft_ms": 200}, duration_s=2.0)  # ttft 50..500 ms: 4 meet it
    assert (g.good, g.total) == (4, 11)
    assert g.violations == {"ttft_ms": 6}  # the failure is not a violation, just not good
    m = g.metrics()
    assert m["goodput"] == pytest.approx(2.0)
    assert m["goodput_output_throughput"] == pytest.approx(4 * 4 / 2.0)
    assert m["goodput_fraction"] == pytest.approx(4 / 11)


def test_schedule_held() -> None:
    # constant 10/s, sent on time, each answered within 0.13 s
    records = [rec(i, start=0.1 * i) for i in range(21)]
    f = schedule_figures(records, requested_rate=10.0)
    assert f.scheduled_rate == pytest.approx(10.0)
    assert f.achieved_rate == pytest.approx(10.0)
    assert f.send_lag_p99_ms == pytest.approx(0.0)
    assert f.backlog_at_schedule_end == 2  # the last two (sent at 1.9, 2.0 s), still streaming
    assert f.peak_in_flight == 2


def test_schedule_backlog_and_late_sends() -> None:
    # due at 10/s, but each request waits for the previous one (a server that serves 2/s)
    records = [
        rec(i, intended=0.1 * i, start=0.5 * i, ttft=0.45, gaps=(0.01, 0.01, 0.01))
        for i in range(11)
    ]
    f = schedule_figures(records, requested_rate=10.0)
    assert f.scheduled_rate == pytest.approx(10.0)
    assert f.achieved_rate == pytest.approx(2.0)
    assert f.send_lag_p99_ms == pytest.approx(4000.0)
    assert f.backlog_at_schedule_end == 9  # due at 1.0 s; requests 2..10 still open then
    assert f.completion_rate == pytest.approx(11 / (5.0 + 0.48))
    assert math.isfinite(f.completion_rate)
