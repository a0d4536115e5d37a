"""Soak: 1,000 concurrent streams against real CPU vLLM for minutes, with every request
succeeding, client memory bounded by the records it keeps, and no file descriptor leaked.

``LLMPERF_SOAK_SECONDS`` sets the length of the measured run (default 120 s, which CI can
afford; a release check runs it for 600 or more).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.core.atomic import read_jsonl
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.workload.prompts import Workload

CONCURRENCY = 1000
SOAK = Workload("soak", input_tokens=32, output_tokens=8)
#: Allowance for allocator and interpreter noise, on top of what the records hold.
RSS_SLACK_MB = 64.0


def soak_seconds() -> float:
    return float(os.environ.get("LLMPERF_SOAK_SECONDS", "120"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes held by a record: the object and everything it refers to (shared once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, s), seen) for s in obj.__slots__ if hasattr(obj, s))
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


@pytest.mark.vllm
def test_soak_thousand_concurrent_streams(dense_server: Any, tmp_path: Path) -> None:
    endpoint = dense_server.endpoint
    # A first wave warms the server, the client's allocator and its imports, and gives the
    # request rate that sizes the soak to the requested duration.
    warm = run_load(endpoint, SOAK, LoadSpec(concurrency=CONCURRENCY, num_requests=CONCURRENCY))
    assert warm.summary.success_rate == 1.0, warm.summary.errors
    rate = warm.summary.completed / max(warm.health.wall_s, 1e-3)
    n = max(2 * CONCURRENCY, int(rate * soak_seconds()))
    del warm
    gc.collect()
    fds_before, rss_before = open_fds(), rss_mb()

    t0 = time.monotonic()
    result = run_load(
        endpoint,
        SOAK,
        LoadSpec(concurrency=CONCURRENCY, num_requests=n, timeout_s=300),
        records_path=tmp_path / "soak.jsonl",
    )
    elapsed = time.monotonic() - t0
    gc.collect()
    fds_after, rss_after = open_fds(), rss_mb()

    summary = result.summary
    assert summary.completed == n, summary.errors
    assert summary.success_rate == 1.0
    assert not summary.errors
    result.check()  # client, usage and /metrics agree on every token
    assert fds_after <= fds_before, f"{fds_after - fds_before} file descriptors leaked"
    per_record = max(deep_size(r) for r in result.records[:50])
    budget_mb = n * per_record / 2**20 + RSS_SLACK_MB
    growth = rss_after - rss_before
    assert growth <= budget_mb, (
        f"client RSS grew {growth:.0f} MB over {n} requests; records need "
        f"{n * per_record / 2**20:.0f} MB"
    )
    assert len(read_jsonl(tmp_path / "soak.jsonl")) == n
    print(
        f"\nsoak: {n} requests at c={CONCURRENCY} in {elapsed:.0f} s "
        f"({n / elapsed:.0f} req/s), RSS {rss_before:.0f} -> {rss_after:.0f} MB "
        f"(budget +{budget_mb:.0f}), fds {fds_before} -> {fds_after}, "
        f"p99 TTFT {summary.latency['ttft'].p99:.0f} ms"
    )
