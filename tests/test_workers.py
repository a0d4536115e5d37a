"""The multi-process load generator (issue 15, item 9) against the measuring instrument.

The instrument stamps, on its own clock, when it received each request
(``instrument_recv_t``); the records carry the worker processes' stamps. That one clock holds
for the parent, every worker and the instrument is what these tests check: a worker on a
per-process clock puts its send time after the instrument's receipt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmperf.core.atomic import read_jsonl
from pytest_llmperf.loadgen.arrivals import arrival_offsets
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.loadgen.spec import ClientCapacityError
from pytest_llmperf.loadgen.workers import check_clock, choose_workers, split_jobs
from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import PreparedRequest, Workload

W = Workload("w", input_tokens=20, output_tokens=6)


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i


def _recv_times(raw: tuple[tuple[float, ...], tuple[bytes, ...]]) -> float:
    blob = b"".join(raw[1])
    first = blob.split(b"\n\n", 1)[0]
    return float(json.loads(first[6:])["instrument_recv_t"])


def test_open_loop_in_three_workers_keeps_the_one_schedule_on_one_clock(
    inst: Instrument, tmp_path: Path
) -> None:
    n, rate = 90, 150.0
    path = tmp_path / "records.jsonl"
    seen: list[int] = []
    r = run_load(
        inst.endpoint(ttft=0.01, itl=0.003),
        W,
        LoadSpec(mode="open", rate=rate, concurrency=None, num_requests=n, arrival="poisson"),
        workers=3,
        keep_raw=True,
        records_path=path,
        progress=lambda done, total, _t: seen.append(done),
    )
    r.check()  # token totals agree three ways, as for one process
    assert r.health.workers == 3 and r.health.event_loop.endswith("x3 processes")
    assert r.summary.completed == n and [x.index for x in r.records] == list(range(n))
    # the merged schedule is the one-process schedule: due times on the shared clock
    offsets = arrival_offsets(n, rate, "poisson", 0)
    t0 = r.records[0].intended_start
    for rec, off in zip(r.records, offsets, strict=True):
        assert rec.intended_start - t0 == pytest.approx(off, abs=1e-9)
    assert len(r.health.workers_reason) > 0 and len(r.raw or {}) == n
    # one clock: each worker's send stamp precedes the instrument's receipt, which precedes
    # the worker's first read
    assert r.raw is not None
    for rec in r.records:
        recv = _recv_times(r.raw[rec.index])
        assert rec.start <= recv <= (rec.first_token or 0.0), rec.index
    # the records file was written by the parent as batches came, every record once
    assert sorted(d["index"] for d in read_jsonl(path)) == list(range(n))
    assert seen and seen[-1] == n and seen == sorted(seen)
    assert r.health.schedule_lag_p99_ms >= 0 and r.health.cpu_s > 0


def test_closed_loop_splits_the_concurrency(inst: Instrument) -> None:
    c, n = 5, 40
    r = run_load(
        inst.endpoint(ttft=0.2, itl=0.005), W, LoadSpec(concurrency=c, num_requests=n), workers=2
    )
    r.check()
    assert r.summary.completed == n and r.health.workers == 2

    def peak(recs: list) -> int:  # type: ignore[type-arg]
        events = sorted([(x.start, 1) for x in recs] + [(x.end, -1) for x in recs])
        now = top = 0
        for _, d in events:
            now += d
            top = max(top, now)
        return top

    # worker w sent the requests i = w mod 2 and kept its share of c in flight (3 and 2);
    # over both, never more than c
    assert [peak([x for x in r.records if x.index % 2 == w]) for w in (0, 1)] == [3, 2]
    assert peak(list(r.records)) <= c


def test_forced_one_worker_is_the_one_process_path(inst: Instrument) -> None:
    r = run_load(inst.endpoint(), W, LoadSpec(concurrency=2, num_requests=6), workers=1)
    assert r.health.workers == 1 and "processes" not in r.health.event_loop


def test_choose_workers() -> None:
    spec = LoadSpec(mode="open", rate=20000.0, concurrency=None, num_requests=5000)
    n, why = choose_workers("auto", spec, 100, cpus=[0, 1, 2, 3])
    assert n == 4 and "auto" in why  # far more than one loop holds: every allowed CPU
    n, why = choose_workers("auto", spec, 100, cpus=[3])
    assert n == 1 and "1 CPU(s) allowed" in why  # one core: a second process adds no CPU
    slow = LoadSpec(mode="open", rate=5.0, concurrency=None, num_requests=50)
    assert choose_workers("auto", slow, 100, cpus=[0, 1, 2, 3])[0] == 1
    closed = LoadSpec(concurrency=64, num_requests=200)
    assert choose_workers("auto", closed, 100, cpus=[0, 1])[0] == 1
    assert (
        choose_workers("auto", LoadSpec(concurrency=2500, num_requests=5000), 10, [0, 1, 2])[0] == 3
    )
    assert choose_workers(3, closed, 100, cpus=[0])[0] == 3  # forced: as asked
    assert choose_workers(8, LoadSpec(concurrency=2, num_requests=9), 1, [0])[0] == 2
    with pytest.raises(ValueError, match="'auto' or an integer"):
        choose_workers(0, closed, 1, [0])
    with pytest.raises(ValueError, match="min_duration_s"):
        choose_workers(2, LoadSpec(concurrency=4, min_duration_s=5), 1, [0])
    assert choose_workers("auto", LoadSpec(concurrency=4000, min_duration_s=5), 1, [0, 1])[0] == 1


def test_split_jobs_deals_requests_and_concurrency() -> None:
    from pytest_llmperf.core.endpoint import Endpoint

    reqs = [PreparedRequest(i, "/v1/completions", b"{}", 1, 1) for i in range(7)]
    offs = [i / 10 for i in range(7)]
    spec = LoadSpec(mode="open", rate=10.0, concurrency=5, num_requests=7)
    jobs = split_jobs(
        3,
        Endpoint("http://x", "m"),
        spec,
        reqs,
        offs,
        keep_raw=False,
        http_client="raw",
        cpus=[0, 1, 2],
    )
    assert [[r.index for r in j.requests] for j in jobs] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [j.offsets for j in jobs] == [(0.0, 0.3, 0.6), (0.1, 0.4), (0.2, 0.5)]
    assert [j.spec.concurrency for j in jobs] == [2, 2, 1]
    assert [j.spec.num_requests for j in jobs] == [3, 2, 2]
    assert [j.cpu for j in jobs] == [0, 1, 2]
    two = split_jobs(
        3,
        Endpoint("http://x", "m"),
        spec,
        reqs,
        offs,
        keep_raw=False,
        http_client="raw",
        cpus=[0, 1],
    )
    assert [j.cpu for j in two] == [None, None, None]  # fewer CPUs than workers: inherited


def test_the_clock_check_refuses_a_per_process_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "CLOCK_MONOTONIC" in check_clock()  # this Linux: one machine-wide clock
    real = time.get_clock_info

    def fake(name: str):  # type: ignore[no-untyped-def]
        info = real(name)
        if name == "perf_counter":
            info.implementation = "QueryPerformanceCounter()"
        return info

    monkeypatch.setattr(time, "get_clock_info", fake)
    with pytest.raises(ClientCapacityError, match="one machine-wide clock"):
        check_clock()


def test_config_key_client_workers() -> None:
    from pytest_llmperf.config import ConfigError, parse_config

    assert parse_config({}).client.workers is None  # the engine then passes "auto"
    assert parse_config({"client": {"workers": 3}}).client.workers == 3
    assert parse_config({"client": {"workers": "auto"}}).client.workers == "auto"
    for bad in (0, "two", 1.5, True):
        with pytest.raises(ConfigError, match=r"client\.workers.*'auto' or a whole number"):
            parse_config({"client": {"workers": bad}})


def test_a_hung_server_stops_every_worker_and_keeps_their_records(tmp_path: Path) -> None:
    """The instrument SIGSTOPped mid-run (c=8 over 2 workers, 2,000 requests, 3 s timeout):
    the parent's watchdog tells both workers to stop sending; the run ends within about two
    request timeouts and keeps every record the workers sent back."""
    import os
    import signal

    from pytest_llmperf.loadgen.liveness import ServerHung

    timeout_s = 3.0
    stopped: list[float] = []
    records = tmp_path / "run.jsonl"
    with Instrument() as frozen:
        assert frozen._proc is not None
        pid = frozen._proc.pid

        def freeze_after_10(done: int, total: int, elapsed: float) -> None:
            if done >= 10 and not stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(time.monotonic())

        try:
            with pytest.raises(ServerHung, match="hung during the load run") as info:
                run_load(
                    frozen.endpoint(ttft=0.01, itl=0.01),
                    W,
                    LoadSpec(concurrency=8, num_requests=2000, timeout_s=timeout_s),
                    progress=freeze_after_10,
                    records_path=records,
                    workers=2,
                )
        finally:
            os.kill(pid, signal.SIGCONT)
    ended = time.monotonic()
    result = info.value.result
    assert stopped and result is not None
    kinds = [r.error_kind for r in result.records]
    assert kinds.count(None) >= 10 and set(kinds) <= {None, "timeout"}
    assert len(result.records) < 2000 / 4
    assert len(read_jsonl(records)) == len(result.records)
    assert ended - stopped[0] < 3 * timeout_s + 10, ended - stopped[0]
