"""Cost of writing one ``RequestRecord`` to records.jsonl: the hand-built dict against msgspec.

``loadgen.run`` writes ``rec.to_json()`` through ``JsonlWriter.write`` (``json.dumps(...,
sort_keys=True)`` then ``redact_text``) for every finished request while other requests still
stream, so this is on the measured hot path. Both paths are timed end to end (dict building
plus the writer's encoding, not the file write) over 10,000 realistic records of about 100
chunks each; the figure is the median of 5 repeats, in microseconds per record.

    .venv/bin/python benchmarks/record_serialise.py
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.core.redact import redact_text

RECORDS = 10_000
REPEATS = 5


def realistic(n: int, seed: int = 0) -> list[RequestRecord]:
    """``n`` records the way ``loadgen.sse`` builds them: ~100 chunks, one token each mostly."""
    rng = random.Random(seed)
    out: list[RequestRecord] = []
    for i in range(n):
        intended = 1000.0 + i * 0.01
        start = intended + rng.uniform(0, 0.002)
        chunks = rng.randint(90, 110)
        t = start + rng.uniform(0.02, 0.2)
        times = []
        for _ in range(chunks):
            times.append(t)
            t += rng.uniform(0.005, 0.04)
        tokens = tuple(rng.choice((1, 1, 1, 2)) for _ in range(chunks))
        out.append(
            RequestRecord(
                i, intended, start, times[0], t, tuple(times), tokens, 512, sum(tokens),
                sum(tokens), 200, queue_wait=start - intended, first_content=times[0],
            )
        )  # fmt: skip
    return out


def old_to_json(rec: RequestRecord) -> dict[str, Any]:
    """``RequestRecord.to_json`` before msgspec (``dataclasses.asdict``)."""
    data = asdict(rec)
    data["chunk_times"] = list(rec.chunk_times)
    data["chunk_tokens"] = list(rec.chunk_tokens)
    return data


def encode(record: Any) -> str:
    """What ``JsonlWriter.write`` does to a record before writing it."""
    return redact_text(json.dumps(record, sort_keys=True))


def timed(work: Callable[[RequestRecord], object], recs: list[RequestRecord]) -> float:
    """Seconds for ``work`` over every record, once."""
    t0 = time.perf_counter()
    for r in recs:
        work(r)
    return time.perf_counter() - t0


def medians_us(
    paths: dict[str, Callable[[RequestRecord], object]], recs: list[RequestRecord]
) -> dict[str, float]:
    """Median microseconds per record of each path; the paths take turns in every repeat, so
    a busy machine slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(REPEATS):
        for name, work in paths.items():
            times[name].append(timed(work, recs))
    return {name: statistics.median(t) / len(recs) * 1e6 for name, t in times.items()}


def main() -> None:
    recs = realistic(RECORDS)
    assert all(encode(old_to_json(r)) == encode(r.to_json()) for r in recs), "bytes differ"
    us = medians_us(
        {
            "old to_json + writer encode": lambda r: encode(old_to_json(r)),
            "new to_json + writer encode": lambda r: encode(r.to_json()),
            "old to_json alone": old_to_json,
            "new to_json alone": RequestRecord.to_json,
        },
        recs,
    )
    print(f"{RECORDS} records of ~100 chunks, median of {REPEATS} repeats, us per record:")
    for name, v in us.items():
        print(f"  {name}: {v:.1f}")


if __name__ == "__main__":
    main()
