"""The load generator against the measuring instrument: known timings, every fault kind."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmperf.core.atomic import read_jsonl
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.arrivals import arrival_offsets
from pytest_llmperf.loadgen.resources import raise_nofile
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.loadgen.spec import ClientCapacityError, TokenCountMismatch
from pytest_llmperf.loadgen.sse import parse_sse, parse_sse_full
from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import TokenizeUnavailable, Workload, prepare_requests_sync

SMALL = Workload("small", input_tokens=40, output_tokens=8)


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("http_client", ["raw", "aiohttp"])
def test_timings_match_the_script(inst: Instrument, http_client: Any) -> None:
    ep = inst.endpoint(ttft=0.05, itl=0.01, k=1)
    r = run_load(
        ep,
        Workload("t", input_tokens=40, output_tokens=20),
        LoadSpec(concurrency=20, num_requests=40),
        keep_raw=True,
        http_client=http_client,
    )
    assert r.health.event_loop.endswith(http_client if http_client == "aiohttp" else "httptools")
    r.check()
    s = r.summary
    assert s.completed == 40 and s.success_rate == 1.0
    # nothing arrives before the script allows it
    assert min(x.ttft or 0 for x in r.records) >= 0.049  # (timers fire up to 1 ms early)
    assert s.latency["itl"].count == 40 * 19
    # against the instrument's own send stamps: what the client adds to every timestamp
    assert r.raw is not None
    delays = []
    for rec in r.records:
        times, chunks = r.raw[rec.index]
        for t, data in zip(times, chunks, strict=True):
            for ev in data.split(b"\n\n"):
                if b"instrument_send_t" in ev:
                    delays.append(t - json.loads(ev[6:])["instrument_send_t"])
    assert len(delays) == 40 * 20
    assert min(delays) >= 0
    # typical delay: small next to the script's 10 ms gaps, unless the client's own loop-lag
    # ticker shows the OS ran it late (a busy machine), which then explains it
    assert np.median(delays) < 0.005 + r.health.loop_lag_p99_ms / 1000
    # a large delay is never silent: the client's health must report a lag that explains it
    assert np.percentile(delays, 99) < 0.02 + r.health.loop_lag_max_ms / 1000


def test_batched_chunks_give_per_token_itl(inst: Instrument) -> None:
    r = run_load(
        inst.endpoint(ttft=0.02, itl=0.005, k=4),
        Workload("t", input_tokens=40, output_tokens=16),
        LoadSpec(concurrency=4, num_requests=8),
    )
    r.check()
    lat = r.summary.latency
    assert all(rec.chunk_tokens == (4, 4, 4, 4) for rec in r.records)
    assert lat["itl"].count == 8 * 12 and lat["ichunk"].count == 8 * 3
    # each 4-token chunk's gap is spread over its 4 tokens
    assert lat["itl"].mean * 4 == pytest.approx(lat["ichunk"].mean)
    assert 3.0 <= lat["itl"].median <= 8.0  # scripted 5 ms (loose: shared CI machines)


FAULTS = [
    ("http_400", "http_4xx"),
    ("http_429", "http_429"),
    ("http_500", "http_5xx"),
    ("malformed", "malformed_stream"),
    ("no_done", "early_stop"),
    ("short", "early_stop"),
    ("stream_error", "stream_error"),
    ("reset", "connection"),
    ("no_usage", "usage_missing"),
    ("hang", "timeout"),
]


@pytest.mark.parametrize("http_client", ["raw", "aiohttp"])
@pytest.mark.parametrize(("fault", "kind"), FAULTS)
def test_every_fault_is_classified_without_hanging(
    inst: Instrument, fault: str, kind: str, http_client: Any
) -> None:
    t0 = time.monotonic()
    r = run_load(
        inst.endpoint(fault=fault, fault_after=2),
        SMALL,
        LoadSpec(concurrency=3, num_requests=3, timeout_s=1.0),
        http_client=http_client,
    )
    assert time.monotonic() - t0 < 15
    assert [rec.error_kind for rec in r.records] == [kind] * 3
    assert all(rec.error_detail for rec in r.records)
    assert r.summary.errors == {kind: 3}
    assert r.summary.success_rate == 0.0
    r.check()  # failures are errors, not token mismatches


def test_mixed_faults_and_successes_in_one_run(inst: Instrument) -> None:
    ok = prepare_requests_sync(inst.endpoint(), SMALL, 4)
    bad = prepare_requests_sync(inst.endpoint(fault="reset"), SMALL, 4, start_index=4)
    r = run_load(
        inst.endpoint(),
        SMALL,
        LoadSpec(concurrency=8, num_requests=8),
        requests=[*ok, *bad],
    )
    assert r.summary.completed == 4
    assert r.summary.errors == {"connection": 4}
    assert r.token_check.metrics_status == "skipped"


@pytest.mark.parametrize("http_client", ["raw", "aiohttp"])
def test_dead_server_is_reported_as_server_died(http_client: Any) -> None:
    with Instrument() as dying:
        r = run_load(
            dying.endpoint(fault="die", fault_after=1),
            SMALL,
            LoadSpec(concurrency=2, num_requests=4, timeout_s=5),
            http_client=http_client,
        )
        assert not dying.alive
    assert {rec.error_kind for rec in r.records} == {"server_died"}


def test_unreachable_server() -> None:
    with Instrument() as gone:
        reqs = prepare_requests_sync(gone.endpoint(), SMALL, 3)
        ep = gone.endpoint()
    with pytest.raises(TokenizeUnavailable, match="/tokenize"):
        run_load(ep, SMALL, LoadSpec(num_requests=1))
    r = run_load(ep, SMALL, LoadSpec(concurrency=3, num_requests=3), requests=reqs)
    assert r.summary.errors == {"connection": 3}


def test_usage_disagreeing_with_client_fails_check(inst: Instrument) -> None:
    r = run_load(inst.endpoint(usage_skew=1), SMALL, LoadSpec(concurrency=2, num_requests=4))
    assert r.token_check.status == "mismatch"
    with pytest.raises(TokenCountMismatch, match="prompt tokens"):
        r.check()


def test_metrics_counters_disagreeing_fail_check(inst: Instrument) -> None:
    r = run_load(inst.endpoint(metrics_skew=2), SMALL, LoadSpec(concurrency=2, num_requests=4))
    assert r.token_check.metrics_status == "mismatch"
    assert r.token_check.metrics_generation_delta == 4 * (8 + 2)
    with pytest.raises(TokenCountMismatch, match="/metrics"):
        r.check()


def test_server_without_metrics_is_unavailable_not_failed() -> None:
    with Instrument(metrics=False) as bare:
        r = run_load(bare.endpoint(), SMALL, LoadSpec(concurrency=2, num_requests=4))
    assert r.token_check.metrics_status == "unavailable"
    assert r.token_check.status == "ok"
    r.check()


def test_token_totals_agree_three_ways(inst: Instrument) -> None:
    w = Workload("chat", endpoint="chat", input_tokens=60, output_tokens=12)
    r = run_load(inst.endpoint(k=3), w, LoadSpec(concurrency=4, num_requests=10, warmup_requests=3))
    r.check()
    tc = r.token_check
    assert tc.status == "ok" and tc.metrics_status == "ok"
    assert tc.client_input_tokens == tc.usage_prompt_tokens == tc.metrics_prompt_delta == 600
    assert tc.client_output_tokens == tc.usage_completion_tokens == 120
    assert tc.metrics_generation_delta == 120  # warm-up excluded
    assert [rec.index for rec in r.records] == list(range(10))
    report = json.loads(json.dumps(r.to_json()))
    assert report["token_check"]["status"] == "ok"
    assert report["vllm_bench"]["completed"] == 10


def test_records_are_written_incrementally(inst: Instrument, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    seen: list[int] = []

    def progress(done: int, total: int, elapsed: float) -> None:
        assert total == 12 and elapsed >= 0
        assert len(read_jsonl(path)) == done  # on disk before the run ends
        seen.append(done)

    r = run_load(
        inst.endpoint(),
        SMALL,
        LoadSpec(concurrency=4, num_requests=12),
        records_path=path,
        progress=progress,
    )
    assert seen == list(range(1, 13))
    back = sorted((RequestRecord.from_json(d) for d in read_jsonl(path)), key=lambda x: x.index)
    assert tuple(back) == r.records


def test_open_loop_constant_rate_keeps_schedule(inst: Instrument) -> None:
    r = run_load(
        inst.endpoint(ttft=0.01, itl=0.002),
        SMALL,
        LoadSpec(mode="open", rate=100.0, arrival="constant", num_requests=50, concurrency=None),
    )
    r.check()
    intended = np.array([rec.intended_start for rec in r.records])
    assert np.allclose(np.diff(intended), 0.01, atol=1e-9)
    starts = np.array([rec.start for rec in r.records])
    assert (starts >= intended - 0.002).all()  # never early (event-loop timers: 1 ms grain)
    assert r.summary.duration_s >= 0.49  # the schedule, not the server, sets the pace
    # lateness is reported, not hidden: health's schedule lag never exceeds what the records'
    # own stamps show (a lag is measured when the request's task is made, before it starts)
    lateness_ms = max(0.0, (starts - intended).max() * 1000)
    assert r.health.schedule_lag_max_ms <= lateness_ms + 1e-6
    assert r.health.schedule_lag_p99_ms < 20 or r.health.client_bound


def test_a_late_schedule_makes_the_run_client_bound(inst: Instrument) -> None:
    """Block the client's event loop for 80 ms every 10th request of a 100/s schedule: the
    next requests leave late. Schedule lag must see it (as much as the records' own stamps
    show, and at least most of the block), and the run must be client-bound for that reason
    alone (the loop-lag and CPU limits are lifted). A schedule-lag check that measured nothing,
    or was not consulted, fails here."""
    from pytest_llmperf.loadgen.spec import HealthThresholds

    block_s = 0.08

    def block_every_10th(done: int, total: int, elapsed: float) -> None:
        if done % 10 == 0:
            time.sleep(block_s)  # the loop is stuck: as if the client were starved

    r = run_load(
        inst.endpoint(ttft=0.002, itl=0.001),
        Workload("t", input_tokens=8, output_tokens=2),
        LoadSpec(mode="open", rate=100.0, arrival="constant", num_requests=60, concurrency=None),
        progress=block_every_10th,
        thresholds=HealthThresholds(loop_lag_p99_ms=1e9, schedule_lag_p99_ms=20, cpu_fraction=1),
    )
    starts = np.array([rec.start for rec in r.records])
    intended = np.array([rec.intended_start for rec in r.records])
    lateness_ms = (starts - intended).max() * 1000
    assert r.health.schedule_lag_max_ms >= 0.6 * block_s * 1000, r.health
    assert r.health.schedule_lag_max_ms <= lateness_ms + 1e-6
    assert r.health.client_bound
    assert [why.split(" p99")[0] for why in r.health.reasons] == ["schedule lag"]


def test_open_loop_cap_shows_up_as_queue_wait_not_latency(inst: Instrument) -> None:
    r = run_load(
        inst.endpoint(ttft=0.05, itl=0.001),
        Workload("t", input_tokens=20, output_tokens=2),
        LoadSpec(mode="open", rate=1000.0, arrival="poisson", num_requests=10, concurrency=1),
    )
    r.check()
    waits = sorted(rec.queue_wait for rec in r.records)
    assert waits[-1] > 0.3  # the last one waited for ~9 others (>= 50 ms each)
    # one at a time: server latencies add up to at most the run; had the waits been counted
    # as latency, they would add up to several times the run
    assert sum(rec.e2e for rec in r.records) <= r.summary.duration_s + 1e-6
    # One slot: each request waits in the client until the previous one has ended, so its
    # queue wait is the time from its scheduled start to the previous response's end (by the
    # records' own stamps; a request due after that waited for nothing).
    ordered = sorted(r.records, key=lambda rec: rec.intended_start)
    for prev, rec in itertools.pairwise(ordered):
        held = max(0.0, prev.end - rec.intended_start)
        assert rec.queue_wait >= held - 0.001, (prev, rec)
        # ... and not much more: what the client's own loop lag allows for the hand-over
        assert rec.queue_wait <= held + r.health.loop_lag_max_ms / 1000 + 0.005, (prev, rec)


def test_poisson_schedule_is_seeded(inst: Instrument) -> None:
    def gaps(seed: int) -> np.ndarray:
        r = run_load(
            inst.endpoint(ttft=0.001, itl=0.001),
            Workload("t", input_tokens=20, output_tokens=1),
            LoadSpec(mode="open", rate=500.0, num_requests=20, concurrency=None, seed=seed),
        )
        return np.diff(sorted(rec.intended_start for rec in r.records))

    assert np.allclose(gaps(1), gaps(1))
    assert not np.allclose(gaps(1), gaps(2))
    # the due times are the drawn schedule's, whose span is the requested rate's exactly
    assert np.allclose(gaps(1), np.diff(arrival_offsets(20, 500.0, "poisson", 1)), atol=1e-9)
    assert 19 / gaps(3).sum() == pytest.approx(500.0, rel=1e-6)


def test_thousand_concurrent_streams_no_fd_leak(inst: Instrument) -> None:
    before = fd_count()
    r = run_load(
        inst.endpoint(ttft=0.2, itl=0.01, k=1),
        Workload("t", input_tokens=20, output_tokens=10),
        LoadSpec(concurrency=1000, num_requests=1000, timeout_s=120),
    )
    r.check()
    assert r.summary.completed == 1000
    assert r.health.cpu_s > 0 and r.health.event_loop.startswith(("uvloop", "asyncio"))
    assert fd_count() == before


def test_client_health_flags_a_blocked_loop(inst: Instrument) -> None:
    def block(done: int, total: int, elapsed: float) -> None:
        time.sleep(0.05)  # a deliberately slow progress callback blocks the event loop

    r = run_load(
        inst.endpoint(ttft=0.01, itl=0.005),
        SMALL,
        LoadSpec(concurrency=4, num_requests=20),
        progress=block,
    )
    assert r.health.client_bound
    assert any("event-loop lag" in reason for reason in r.health.reasons)


def test_nofile_limit_error_is_clear() -> None:
    with pytest.raises(ClientCapacityError, match="hard limit"):
        raise_nofile(10**9)


def test_loadspec_validation_and_multipliers() -> None:
    assert LoadSpec(num_requests=100).scaled("quick").num_requests == 50
    assert LoadSpec(num_requests=100).scaled("thorough").num_requests == 300
    with pytest.raises(ValueError, match="rate"):
        LoadSpec(mode="open")
    with pytest.raises(ValueError, match="concurrency"):
        LoadSpec(mode="closed", concurrency=None)


def test_sse_parser_handles_split_and_merged_reads() -> None:
    events = [
        b'data: {"choices":[{"text":"a"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}',
        b'data: {"choices":[{"text":"bc"}],"usage":{"prompt_tokens":3,"completion_tokens":3}}',
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3}}',
        b"data: [DONE]",
    ]
    blob = b"\r\n\r\n".join(events) + b"\r\n\r\n"
    # split the bytes at awkward places, including inside the separator
    first_end = blob.index(b"\r\n\r\n") + 4
    cuts = [0, 7, 70, first_end - 2, first_end + 1, 150, len(blob)]
    chunks = [blob[a:b] for a, b in itertools.pairwise(cuts)]
    times = [float(i) for i in range(len(chunks))]
    p = parse_sse(times, chunks)
    assert p.done and p.error_kind is None
    assert p.chunk_tokens == [1, 2]
    assert p.prompt_tokens == 3 and p.completion_tokens == 3
    # each event is timed by the read that completed it
    assert p.chunk_times[0] == times[3]


def test_external_endpoint_url_shape() -> None:
    ep = Endpoint("http://127.0.0.1:1/v1", "m")
    assert ep.url("/v1/completions") == "http://127.0.0.1:1/v1/completions"


def _vllm_like_stream(deltas: list[int], chat: bool) -> bytes:
    events = []
    if chat:
        events.append(b'data: {"id":"x","choices":[{"index":0,"delta":{"role":"assistant"}}]}')
    done = 0
    for k in deltas:
        done += k
        text = "w" * k
        choice = f'{{"index":0,"delta":{{"content":"{text}"}}}}' if chat else f'{{"text":"{text}"}}'
        events.append(
            f'data: {{"id":"x","choices":[{choice}],"usage":{{"prompt_tokens":7,'
            f'"total_tokens":{7 + done},"completion_tokens":{done}}}}}'.encode()
        )
    events.append(
        f'data: {{"id":"x","choices":[],"usage":{{"prompt_tokens":7,"total_tokens":{7 + done},'
        f'"completion_tokens":{done}}}}}'.encode()
    )
    events.append(b"data: [DONE]")
    return b"\n\n".join(events) + b"\n\n"


@given(
    deltas=st.lists(st.integers(1, 5), min_size=1, max_size=30),
    chat=st.booleans(),
    cuts=st.lists(st.floats(0, 1), max_size=40),
)
def test_fast_and_full_sse_parsers_agree(deltas: list[int], chat: bool, cuts: list[float]) -> None:
    blob = _vllm_like_stream(deltas, chat)
    points = sorted({int(c * len(blob)) for c in cuts} | {0, len(blob)})
    chunks = [blob[a:b] for a, b in itertools.pairwise(points) if b > a]
    times = [float(i) for i in range(len(chunks))]
    fast, full = parse_sse(times, chunks), parse_sse_full(times, chunks)
    assert fast == full
    assert fast.chunk_tokens == deltas and fast.completion_tokens == sum(deltas)
    assert fast.done and fast.error_kind is None
