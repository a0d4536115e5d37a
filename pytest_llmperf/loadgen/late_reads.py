"""Direct evidence of a client that read its sockets late: token events that waited together.

A read carries every SSE event that arrived since the previous one, and the hot path stamps
the read, so events read together share one timestamp. A request whose token chunks all share
one timestamp was streamed by the server but measured as if it arrived at once (TTFT = E2E,
ITL 0): its figures are the client's lateness, not the server's pace. Several events waiting
in one read are the milder form. Pure; computed from the records after a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from pytest_llmperf.core.records import RequestRecord

#: Fewest token chunks a request needs before "all of them in one read" counts as evidence.
MIN_CHUNKS: int = 3


@dataclass(frozen=True, slots=True)
class LateReads:
    """``one_read``: successful requests with >= ``MIN_CHUNKS`` token chunks all read at once,
    of ``requests`` such requests; ``max_events_per_read``: most token events in one read;
    ``multi_event_fraction``: share of token events that shared their read with another."""

    one_read: int
    requests: int
    max_events_per_read: int
    multi_event_fraction: float


def late_reads(records: Sequence[RequestRecord]) -> LateReads:
    one_read = eligible = most = shared = events = 0
    for r in records:
        times = r.chunk_times
        if r.error_kind is not None or not times:
            continue
        events += len(times)
        run = 1
        for a, b in pairwise(times):
            if b == a:
                run += 1
                continue
            most = max(most, run)
            shared += run if run > 1 else 0
            run = 1
        most = max(most, run)
        shared += run if run > 1 else 0
        if len(times) >= MIN_CHUNKS:
            eligible += 1
            if times[0] == times[-1]:
                one_read += 1
    return LateReads(one_read, eligible, most, shared / events if events else 0.0)
