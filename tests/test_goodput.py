"""Goodput under per-request SLOs and open-loop schedule figures (pure: records in, figures out)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
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


# -- one-token requests, exact limits, violations, and schedule edges -------------------------


def rec_at(i: int, start: float, end: float, *, intended: float | None = None) -> RequestRecord:
    """A two-token request sent at ``start`` and answered at ``end``."""
    return rec(i, start=start, ttft=(end - start) / 2, gaps=((end - start) / 2,), intended=intended)


def test_a_one_token_request_has_no_tpot_or_itl_and_meets_their_slos() -> None:
    one = rec(0, ttft=0.25, gaps=())
    lat = request_latencies_ms(one)
    assert set(lat) == {"ttft_ms", "e2el_ms", "tpot_ms", "itl_ms"}
    assert math.isnan(lat["tpot_ms"]) and math.isnan(lat["itl_ms"])
    assert lat["ttft_ms"] == lat["e2el_ms"] == 250.0
    assert meets(one, {"tpot_ms": 1.0, "itl_ms": 1.0})
    # the objectives after the missing ones are still checked
    assert not meets(one, {"tpot_ms": 1.0, "itl_ms": 1.0, "e2el_ms": 100.0})
    g = goodput([one], {"tpot_ms": 1.0, "e2el_ms": 100.0}, duration_s=1.0)
    assert g.good == 0 and g.violations == {"tpot_ms": 0, "e2el_ms": 1}


def test_a_two_token_request_has_one_tpot_interval() -> None:
    two = rec(0, ttft=0.25, gaps=(0.125,))
    lat = request_latencies_ms(two)
    assert lat["tpot_ms"] == 125.0 == lat["itl_ms"]  # (375 - 250) / (2 - 1)


def test_a_success_without_a_first_token_cannot_meet_a_ttft_slo() -> None:
    r = replace(rec(0, ttft=0.25, gaps=(0.125, 0.125)), first_token=None)
    lat = request_latencies_ms(r)
    assert math.isnan(lat["ttft_ms"]) and math.isnan(lat["tpot_ms"])
    assert lat["e2el_ms"] == 500.0 and lat["itl_ms"] == 125.0
    assert not meets(r, {"ttft_ms": 1e9})
    assert meets(r, {"e2el_ms": 500.0})  # at the limit is within it
    g = goodput([r], {"ttft_ms": 1e9, "e2el_ms": 1e9}, duration_s=1.0)
    assert g.violations == {"ttft_ms": 1, "e2el_ms": 0}


def test_violations_count_only_the_objectives_broken() -> None:
    # ttft 250 ms exactly at its limit, e2el 500 ms over its 400 ms limit
    r = rec(0, ttft=0.25, gaps=(0.125, 0.125))
    g = goodput([r], {"ttft_ms": 250.0, "e2el_ms": 400.0, "itl_ms": 125.0}, duration_s=0.5)
    assert g.violations == {"ttft_ms": 0, "e2el_ms": 1, "itl_ms": 0}
    assert g.metrics() == {
        "goodput": 0.0,
        "goodput_output_throughput": 0.0,
        "goodput_fraction": 0.0,
    }
    ok = goodput([r], {"ttft_ms": 250.0}, duration_s=0.5)  # a window under 1 s is a window
    assert ok.metrics() == {
        "goodput": 2.0,
        "goodput_output_throughput": 6.0,
        "goodput_fraction": 1.0,
    }
    assert math.isnan(goodput([], {}, duration_s=1.0).fraction)


def test_errors_say_what_was_wrong() -> None:
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError) as err:
            goodput([], {}, duration_s=bad)
        assert str(err.value) == f"duration_s must be > 0, got {bad}"
    with pytest.raises(ValueError) as err:
        meets(rec(0), {"ttft": 1, "e2e": 2})
    assert str(err.value) == (
        "unknown SLO ['e2e', 'ttft']; known: ttft_ms, tpot_ms, itl_ms, e2el_ms"
    )
    with pytest.raises(ValueError) as err:
        schedule_figures([], 1.0)
    assert str(err.value) == "no records: an open-loop run must have sent at least one request"


def _peak_by_brute_force(records: list[RequestRecord]) -> int:
    """Most requests open at once: at each send, count those with start <= t < end."""
    return max(sum(1 for r in records if r.start <= t < r.end) for t in (r.start for r in records))


def test_peak_in_flight_against_a_brute_force() -> None:
    spans = [(0.0, 1.0), (0.9, 3.0), (1.5, 3.0), (2.0, 3.0), (3.0, 3.5)]
    records = [rec_at(i, s, e) for i, (s, e) in enumerate(spans)]
    f = schedule_figures(records, requested_rate=1.0)
    assert f.peak_in_flight == _peak_by_brute_force(records) == 3
    # a request answered at the instant the next one is sent is not open with it
    back_to_back = [rec_at(i, float(i), float(i + 1)) for i in range(4)]
    assert schedule_figures(back_to_back, 1.0).peak_in_flight == 1


def test_rates_off_a_clock_that_does_not_start_at_zero() -> None:
    t0 = 1000.0
    records = [rec_at(i, t0 + 0.25 * i, t0 + 0.25 * i + 0.5) for i in range(5)]
    f = schedule_figures(records, requested_rate=4.0)
    assert f.scheduled_rate == 4.0 == f.achieved_rate  # 4 intervals over 1 s
    assert f.completion_rate == 5 / 1.5  # first due at t0, last answer at t0 + 1.5
    two = schedule_figures(records[:2], requested_rate=4.0)
    assert two.scheduled_rate == 4.0  # two sends are enough for a rate
    one = schedule_figures(records[:1], requested_rate=4.0)
    assert math.isnan(one.scheduled_rate) and math.isnan(one.achieved_rate)


def test_sends_at_one_instant_are_an_infinite_rate_and_a_zero_span_no_rate() -> None:
    burst = [rec_at(i, 5.0, 5.5) for i in range(3)]
    assert schedule_figures(burst, 1.0).achieved_rate == math.inf
    instant = [RequestRecord(0, 5.0, 5.0, None, 5.0, (), (), 1, 0, 1, None, "connection")]
    f = schedule_figures(instant, 1.0)
    assert math.isnan(f.completion_rate) and f.backlog_at_schedule_end == 0


def test_a_short_run_has_a_completion_rate() -> None:
    records = [rec_at(i, 0.1 * i, 0.1 * i + 0.05) for i in range(3)]  # 0.25 s in all
    f = schedule_figures(records, requested_rate=10.0)
    assert f.completion_rate == pytest.approx(3 / 0.25)


def test_an_answer_at_the_last_due_time_is_no_backlog() -> None:
    records = [rec_at(0, 0.0, 1.0), rec_at(1, 1.0, 1.5), rec_at(2, 0.5, 1.25, intended=0.5)]
    f = schedule_figures(records, requested_rate=2.0)
    assert f.backlog_at_schedule_end == 2  # answered at 1.0 s, when the last was due: not open


def test_send_lag_p99_is_the_nearest_rank_percentile() -> None:
    # 200 requests, the i-th sent i ms late: nearest-rank p99 is the 198th smallest, 197 ms
    records = [rec(i, intended=0.01 * i, start=0.01 * i + 0.001 * i) for i in range(200)]
    f = schedule_figures(records, requested_rate=100.0)
    lags = [1000.0 * (r.start - r.intended_start) for r in records]
    assert f.send_lag_p99_ms == pytest.approx(float(np.percentile(lags, 99, method="inverted_cdf")))
    assert f.send_lag_p99_ms == pytest.approx(197.0)
    # early sends count as no lag
    early = [rec(i, intended=0.01 * i + 0.5, start=0.01 * i) for i in range(10)]
    assert schedule_figures(early, 100.0).send_lag_p99_ms == 0.0
