"""More than one event loop: the measured phase split over worker processes.

One event loop holds a schedule only while its CPU keeps up: at a high request rate (or with
thousands of streams) its schedule lag and event-loop lag grow, and the run is flagged
client-bound. Then the measured phase can run in ``N`` worker processes, each with its own
uvloop and a share of the requests:

- open loop: the arrival schedule is drawn once, for the whole run, and request ``i`` goes to
  worker ``i mod N`` with its own due time, so the merged schedule is exactly the one-process
  schedule; a concurrency cap is split between the workers;
- closed loop: the concurrency is split (``c // N``, the first ``c mod N`` workers one more) and
  the requests dealt round-robin; each worker keeps its share in flight;
- every worker starts at one instant, ``t0``, given by the parent on the shared clock.

**One clock.** Records keep ``time.perf_counter()`` seconds. On Linux that is
``clock_gettime(CLOCK_MONOTONIC)``, one clock for every process of the machine (not per
process), so a worker's timestamps and the parent's are comparable. ``check_clock`` requires
that implementation, and each worker's first reply is bracketed by two parent readings
(``parent_before <= worker <= parent_after``); a platform where either fails gets a clear
error and no worker run.

**Merged exactly.** Workers stream their records to the parent as they finish (the parent
writes the JSON-lines file incrementally and counts successes for the liveness watchdog); at the
end each sends its schedule lags, event-loop lags and CPU seconds. The parent sorts the records
by index, so counts, records and timestamps are the ones the workers measured, nothing
re-derived.

**When.** ``workers`` is an int (forced) or ``"auto"``: the one-process path unless the
requested load needs more CPU than one loop has within its lag limit, by the per-loop cost
measured with ``benchmarks/loadgen_processes.py`` (``LOOP_COST_PER_REQUEST_MS``,
``LOOP_COST_PER_TOKEN_US``, ``LOOP_BUDGET``), and never more workers than CPUs the client may
use: a second process on the same core adds no CPU. Placement: with at least ``N`` allowed
CPUs, worker ``w`` is pinned to the ``w``-th; otherwise all inherit the client's CPUs.

Size (about 440 lines), stated: the parent's ``WorkerPool`` and the child's ``_worker_async`` are
the two ends of one pipe protocol (``ready``, ``armed``, ``go``, ``records``, ``stop``, ``error``,
``done`` with the lags) and are kept side by side so the two ends read together; each (about
90 lines) is one event loop's measured-phase state, the hot path, like ``run._run_measured``.
"""

from __future__ import annotations

import asyncio
import gc
import math
import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.spec import ClientCapacityError, LoadSpec
from pytest_llmperf.workload.prompts import PreparedRequest

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

Workers = int | Literal["auto"]

#: Client CPU per request and per streamed token of one loop (uvloop + httptools), measured
#: against the instrument by ``benchmarks/loadgen_processes.py`` (its "cost" line): 0.38-0.62
#: ms + 6.7-8.2 us on the project's 2-core machine at load 10-12 (nice 19), so an upper
#: figure; ``auto`` sizes workers with these.
LOOP_COST_PER_REQUEST_MS: Final[float] = 0.5
LOOP_COST_PER_TOKEN_US: Final[float] = 7.5
#: The share of a core one loop may be planned to use: beyond about half a core its schedule
#: lag p99 leaves the 25 ms limit in bursts (measured by the same benchmark).
LOOP_BUDGET: Final[float] = 0.5
#: Closed loop: streams one loop is planned to hold (measured: 1,000 streams within limits).
LOOP_STREAMS: Final[int] = 1000
#: Seconds between a worker's record batches to the parent.
FLUSH_INTERVAL_S: Final[float] = 0.05


def check_clock() -> str:
    """The implementation of ``time.perf_counter`` when it is the machine-wide
    ``CLOCK_MONOTONIC``; ``ClientCapacityError`` otherwise (per-process clocks cannot merge)."""
    impl = time.get_clock_info("perf_counter").implementation
    if "CLOCK_MONOTONIC" not in impl or "RAW" in impl:
        raise ClientCapacityError(
            f"worker processes need one machine-wide clock; time.perf_counter here is {impl!r}, "
            "not clock_gettime(CLOCK_MONOTONIC); set [client] workers = 1"
        )
    return impl


def planned_cpu(spec: LoadSpec, output_tokens: int) -> float | None:
    """Cores the requested open-loop rate needs from the client (None for a closed loop)."""
    if spec.mode != "open" or spec.rate is None:
        return None
    per_request_s = LOOP_COST_PER_REQUEST_MS / 1e3 + output_tokens * LOOP_COST_PER_TOKEN_US / 1e6
    return spec.rate * per_request_s


def choose_workers(
    setting: Workers, spec: LoadSpec, output_tokens: int, cpus: Sequence[int] | None = None
) -> tuple[int, str]:
    """How many worker processes a run gets, and why (for the client health's record).
    1 means the one-process path."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    most = (
        spec.num_requests if spec.mode == "open" else min(spec.num_requests, spec.concurrency or 1)
    )
    if setting != "auto":
        if not isinstance(setting, int) or isinstance(setting, bool) or setting < 1:
            raise ValueError(f"workers must be 'auto' or an integer >= 1, got {setting!r}")
        n = min(setting, most)
        if n > 1 and spec.min_duration_s > 0:
            raise ValueError(
                "min_duration_s extends a closed-loop level from one process; "
                "it cannot be split over worker processes (set workers = 1)"
            )
        return n, f"forced: {setting} requested" + (f", {n} used" if n != setting else "")
    if spec.min_duration_s > 0:
        return 1, "auto: min_duration_s runs in one process"
    need = planned_cpu(spec, output_tokens)
    if need is not None:
        want = max(1, math.ceil(need / LOOP_BUDGET))
        why = f"auto: {spec.rate:g} req/s plans {need:.2f} cores at {LOOP_BUDGET:g} per loop"
    else:
        want = max(1, math.ceil((spec.concurrency or 1) / LOOP_STREAMS))
        why = f"auto: {spec.concurrency} streams at {LOOP_STREAMS} per loop"
    n = max(1, min(want, len(cpus), most))
    if n < want:
        why += f"; {want} wanted, {len(cpus)} CPU(s) allowed to the client"
    return n, f"{why}: {n} process(es)"


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """What one worker sends: its requests, their due offsets (open loop) and its spec."""

    index: int
    endpoint: Endpoint
    spec: LoadSpec
    requests: tuple[PreparedRequest, ...]
    offsets: tuple[float, ...] | None
    keep_raw: bool
    http_client: str
    cpu: int | None


def split_jobs(
    n: int,
    endpoint: Endpoint,
    spec: LoadSpec,
    reqs: Sequence[PreparedRequest],
    offsets: Sequence[float] | None,
    *,
    keep_raw: bool,
    http_client: str,
    cpus: Sequence[int],
) -> list[WorkerJob]:
    """Deal ``reqs`` round-robin to ``n`` workers (with their due offsets) and split the
    concurrency; a worker with no request gets no job."""
    jobs = []
    for w in range(n):
        mine = tuple(reqs[w::n])
        if not mine:
            continue
        conc = spec.concurrency
        if conc is not None:
            conc = max(1, conc // n + (w < conc % n))
        jobs.append(
            WorkerJob(
                index=w,
                endpoint=endpoint,
                spec=replace(spec, concurrency=conc, num_requests=len(mine), warmup_requests=0),
                requests=mine,
                offsets=tuple(offsets[w::n]) if offsets is not None else None,
                keep_raw=keep_raw,
                http_client=http_client,
                cpu=cpus[w] if len(cpus) >= n else None,
            )
        )
    return jobs


# --------------------------------------------------------------------------- worker (child)


def _worker_main(conn: Connection) -> None:  # pragma: no cover - runs in the child
    try:
        job: WorkerJob = conn.recv()
        if job.cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {job.cpu})
        conn.send(("ready", time.perf_counter()))
        from pytest_llmperf.loadgen.run import _new_loop

        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(_worker_async(conn, job))
    except BaseException as exc:
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except OSError:
            pass
    finally:
        conn.close()


async def _worker_async(conn: Connection, job: WorkerJob) -> None:  # pragma: no cover
    from pytest_llmperf.loadgen.resources import cpu_seconds, peak_rss_mb, raise_nofile
    from pytest_llmperf.loadgen.run import _loop_lag_ticker, _Runner
    from pytest_llmperf.loadgen.transport import RawClient, client_session, httptools_available

    raise_nofile(job.spec.max_in_flight)
    loop = asyncio.get_running_loop()
    go: asyncio.Future[float] = loop.create_future()

    def handle(msg: tuple[Any, ...]) -> None:
        if msg[0] == "go" and not go.done():
            go.set_result(msg[1])
        elif msg[0] == "stop":
            runner.stop()
            if not go.done():
                go.set_result(math.nan)

    def control() -> None:
        """Blocking reads in a thread: ``add_reader`` would make the shared socket
        non-blocking, and a large record batch sent on it could then fail half-written."""
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = ("stop",)
            try:
                loop.call_soon_threadsafe(handle, msg)
            except RuntimeError:  # the loop has closed
                return
            if msg[0] == "stop":
                return

    use_raw = job.http_client == "raw" or (job.http_client == "auto" and httptools_available())
    raw_client = RawClient(job.endpoint.base_url, job.endpoint.headers()) if use_raw else None
    async with client_session() as session:
        runner = _Runner(session, job.endpoint, job.spec, None, None, job.keep_raw, raw_client)
        threading.Thread(target=control, name="llmperf-worker-control", daemon=True).start()
        conn.send(("armed",))
        t0 = await go
        sent = 0

        def flush() -> None:
            nonlocal sent
            recs = runner.records
            if len(recs) > sent:
                batch = [
                    (r, runner.continuous[i], runner.raw.get(r.index) if job.keep_raw else None)
                    for i, r in enumerate(recs[sent:], start=sent)
                ]
                sent = len(recs)
                conn.send(("records", batch))

        async def flusher(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), FLUSH_INTERVAL_S)
                except TimeoutError:
                    pass
                flush()

        lags: list[float] = []
        stop = asyncio.Event()
        gc.collect()
        gc.freeze()
        gc.disable()
        cpu0 = cpu_seconds()
        try:
            if not math.isnan(t0):
                delay = t0 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                ticker = asyncio.create_task(_loop_lag_ticker(stop, lags, 0.1))
                flushing = asyncio.create_task(flusher(stop))
                try:
                    await runner.phase(job.requests, record=True, t0=t0, offsets=job.offsets)
                finally:
                    stop.set()
                    await ticker
                    await flushing
        finally:
            cpu = cpu_seconds() - cpu0
            gc.enable()
            gc.unfreeze()
            if raw_client is not None:
                raw_client.close()
        flush()
        conn.send(("done", runner.schedule_lags, lags, cpu, peak_rss_mb()))


# --------------------------------------------------------------------------- parent


@dataclass
class WorkerOutcome:
    """What the workers measured, merged (records arrive through ``on_records``)."""

    schedule_lags: list[float]
    loop_lags: list[float]
    cpu_s: list[float]
    peak_rss_mb: list[float]


class WorkerPool:
    """Worker processes for one measured phase. ``start`` spawns them early (their imports
    overlap the parent's prompt preparation); ``run`` deals the jobs and waits."""

    def __init__(self, n: int) -> None:
        check_clock()
        self.n = n
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        self.stopped = False

    def start(self) -> WorkerPool:
        ctx = mp.get_context("spawn")
        for _ in range(self.n):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        return self

    def stop(self) -> None:
        """Tell every worker to send nothing more (the liveness watchdog's stop)."""
        self.stopped = True
        for c in self.conns:
            try:
                c.send(("stop",))
            except OSError:
                pass

    def close(self) -> None:
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)

    async def run(
        self,
        jobs: Sequence[WorkerJob],
        on_records: Callable[[list[tuple[RequestRecord, bool, Any]]], None],
        start_delay_s: float = 0.2,
        started: Callable[[float], None] | None = None,
    ) -> WorkerOutcome:
        """Deal ``jobs``, check the clock, start every worker at one ``t0`` (``started(t0)``
        is told it), pass record batches to ``on_records`` as they come, merge the rest."""
        loop = asyncio.get_running_loop()
        conns = self.conns[: len(jobs)]
        for c in self.conns[len(jobs) :]:
            c.close()  # a worker without requests ends at once (EOF)
        inbox: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

        def pump(i: int, c: Connection) -> None:
            """Blocking reads in a thread (see the worker's ``control``), handed to the loop."""
            while True:
                try:
                    msg = c.recv()
                except (EOFError, OSError):
                    msg = ("eof",)
                try:
                    loop.call_soon_threadsafe(inbox.put_nowait, (i, msg))
                except RuntimeError:  # the loop has closed
                    return
                if msg[0] in ("done", "error", "eof"):
                    return

        order = ("ready", "armed", "done")
        early: list[tuple[int, Any]] = []  # a fast worker's next step, before the others'
        finished: set[int] = set()

        async def expect(kind: str) -> dict[int, Any]:
            got: dict[int, Any] = {}
            while len(got) < len(conns):
                if early and early[0][1][0] == kind:
                    i, msg = early.pop(0)
                else:
                    i, msg = await inbox.get()
                if msg[0] == "records":
                    on_records(msg[1])
                elif msg[0] == kind:
                    got[i] = msg
                    if kind == "done":
                        finished.add(i)
                elif msg[0] in order and order.index(msg[0]) > order.index(kind):
                    early.append((i, msg))
                elif msg[0] == "eof" and i in finished:
                    continue  # a worker that sent "done" has closed its end
                elif msg[0] == "error":
                    raise RuntimeError(f"load worker {i} failed: {msg[1]}\n{msg[2]}")
                else:
                    raise RuntimeError(f"load worker {i} ended unexpectedly ({msg[0]})")
            return got

        brackets = []
        for i, c in enumerate(conns):
            threading.Thread(
                target=pump, args=(i, c), name=f"llmperf-pump-{i}", daemon=True
            ).start()
        for c, job in zip(conns, jobs, strict=True):
            brackets.append(time.perf_counter())
            c.send(job)
        ready = await expect("ready")
        after = time.perf_counter()
        for i, before in enumerate(brackets):
            t_worker = ready[i][1]
            if not before <= t_worker <= after:
                raise ClientCapacityError(
                    f"load worker {i}'s clock read {t_worker:.6f} s, outside the parent's "
                    f"[{before:.6f}, {after:.6f}]: the processes do not share one clock; "
                    "set [client] workers = 1"
                )
        await expect("armed")
        t0 = time.perf_counter() + start_delay_s
        if started is not None:
            started(t0)
        for c in conns:
            c.send(("stop",) if self.stopped else ("go", t0))
        done = await expect("done")
        out = WorkerOutcome([], [], [], [])
        for i in sorted(done):
            _, sched, lags, cpu, rss = done[i]
            out.schedule_lags.extend(sched)
            out.loop_lags.extend(lags)
            out.cpu_s.append(cpu)
            out.peak_rss_mb.append(rss)
        return out
