"""Late reads: token chunks that waited in the socket are caught directly, not only by the
event-loop-lag ticker; a deliberately starved client (a CPU hog on its core) is flagged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from procwatch import communicate_stopped

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.late_reads import MIN_CHUNKS, late_reads
from pytest_llmperf.testing.instrument import Instrument


def rec(times: tuple[float, ...], error: bool = False) -> RequestRecord:
    return RequestRecord(
        index=0,
        intended_start=0.0,
        start=0.0,
        first_token=times[0] if times else None,
        end=(times[-1] if times else 0.0) + 0.001,
        chunk_times=times,
        chunk_tokens=(1,) * len(times),
        prompt_tokens=5,
        completion_tokens=len(times),
        expected_output_tokens=len(times),
        status=200,
        error_kind="early_stop" if error else None,
    )


def test_all_chunks_in_one_read_is_counted() -> None:
    paced = rec((0.01, 0.02, 0.03, 0.04))
    burst = rec((0.05,) * 6)
    lr = late_reads([paced, burst, rec((0.1, 0.1), error=True)])
    assert (lr.one_read, lr.requests, lr.max_events_per_read) == (1, 2, 6)
    assert lr.multi_event_fraction == pytest.approx(6 / 10)


def test_pairs_and_short_requests() -> None:
    lr = late_reads([rec((1.0, 1.0, 2.0, 3.0, 3.0, 3.0)), rec((4.0,) * (MIN_CHUNKS - 1))])
    assert lr.one_read == 0 and lr.requests == 1  # too few chunks to count as evidence
    assert lr.max_events_per_read == 3
    assert lr.multi_event_fraction == pytest.approx(7 / 8)
    assert late_reads([]).requests == 0


CLIENT = r"""
import json, sys
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.workload.prompts import Workload
print("ready", flush=True)
r = run_load(Endpoint(sys.argv[1], "instrument?ttft=0.01&itl=0.01"),
             Workload("w", input_tokens=8, output_tokens=30),
             LoadSpec(concurrency=1, num_requests=12, warmup_requests=1))
print(json.dumps(r.health.to_json()), flush=True)
"""


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i


def client_health(inst: Instrument, *, starve: bool) -> dict[str, object]:
    """Run a client; with ``starve`` the OS is kept from running it 250 ms of every 300 ms
    (SIGSTOP/SIGCONT: what vLLM's busy threads did to a client on their cores, made exact)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, inst.base_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    # the length of the stop is the point: 250 ms stopped of every 300 ms
    return json.loads(communicate_stopped(proc, stop_s=0.25 if starve else None, run_s=0.05))


def test_starved_client_is_flagged_by_its_late_reads(inst: Instrument) -> None:
    starved = client_health(inst, starve=True)
    assert starved["client_bound"] and starved["late_reads"], starved
    assert any("in one read" in r for r in starved["reasons"]), starved["reasons"]
    # the same client, left to run, reads its chunks as they come
    fed = client_health(inst, starve=False)
    assert not fed["late_reads"], fed
    assert fed["max_events_per_read"] < starved["max_events_per_read"]
