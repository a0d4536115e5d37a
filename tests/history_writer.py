"""A history writer process for the concurrency and crash tests (run as a script, not a test).

    python tests/history_writer.py URL TAG N [hang]

Waits for a line on stdin (so two writers start together), then records N sessions of 4
cases x 5 runs x 6 metrics each through ``HistoryStore.record``, printing ``done TAG``. With
``hang`` it prints ``MID-TRANSACTION`` after the third value insert of its first session, inside
the open transaction, and waits there to be killed.
"""

from __future__ import annotations

import sys
import threading

import sqlalchemy as sa

from pytest_llmperf.history.model import CaseEntry, SessionRecord, iso, new_uid
from pytest_llmperf.history.store import HistoryStore
from pytest_llmperf.verdicts.fingerprint import Fingerprint

METRICS = ("total_token_throughput", "output_throughput", "p99_e2el_ms", "p99_ttft_ms",
           "success_rate", "mean_e2el_ms")  # fmt: skip


def session(tag: str, i: int) -> SessionRecord:
    fp = Fingerprint(platform="cpu", model_name="tiny:dense-gqa", vllm_version="0.32.0")
    cases = tuple(
        CaseEntry(
            case_id=f"dense-gqa-text-c{c}",
            model="dense-gqa",
            workload="text",
            concurrency=c,
            runs=tuple({m: 1000.0 + i + r + k for k, m in enumerate(METRICS)} for r in range(5)),
            fingerprint=fp,
        )
        for c in (1, 4, 16, 64)
    )
    return SessionRecord(
        uid=new_uid(tag, i), started=iso(1_700_000_000 + i), cases=cases, suite=tag
    )


def main() -> int:
    url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    hang = len(sys.argv) > 4 and sys.argv[4] == "hang"
    store = HistoryStore(url)
    store.ensure_schema()
    if hang:
        seen = [0]
        stop = threading.Event()

        @sa.event.listens_for(store._writer, "after_execute")
        def _pause(conn, clause, *args: object) -> None:
            if getattr(clause, "table", None) is not None and clause.table.name.endswith(
                "run_values"
            ):
                seen[0] += 1
                if seen[0] == 3:
                    print("MID-TRANSACTION", flush=True)
                    stop.wait()  # until SIGKILL

    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        store.record(session(tag, i))
    store.close()
    print(f"done {tag}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
