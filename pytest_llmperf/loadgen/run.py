"""Run orchestration: build the requests, warm up, send the measured phase on the hot path
(``transport``), then parse (``sse``), cross-check tokens (``tokens``) and judge the client's
own health. ``run_load`` is the entry point.

Size (about 640 lines), stated: one ``_Runner`` per run holds the event loop's state (the
session, the schedule, the records, the liveness watchdog); the hot path itself is in
``transport`` and the parsing in ``sse``. ``_run_measured`` (about 260 lines) and
``_Runner.phase`` (about 90) are left long on purpose: they are the measured hot path's set-up
and one event loop's state (clients, pools, watchdog, records file, worker outcome) that every
step of the run reads and writes, and splitting them would pass that state through a dozen
arguments on the path whose timing is the product.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import aiohttp

from pytest_llmperf.core.atomic import JsonlWriter
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.arrivals import arrival_offsets
from pytest_llmperf.loadgen.late_reads import late_reads
from pytest_llmperf.loadgen.liveness import LivenessPolicy, ServerHung, Watchdog, successes
from pytest_llmperf.loadgen.resources import (
    GaugeSampler,
    cpu_seconds,
    max_ms,
    p99_ms,
    peak_rss_mb,
    raise_nofile,
    reachable,
    scrape_metrics,
    token_counters,
)
from pytest_llmperf.loadgen.spec import (
    ClientCapacityError,
    ClientHealth,
    HealthThresholds,
    LoadSpec,
    ProgressFn,
    RunResult,
)
from pytest_llmperf.loadgen.sse import to_record
from pytest_llmperf.loadgen.tokens import check_tokens
from pytest_llmperf.loadgen.transport import (
    RawClient,
    client_session,
    httptools_available,
    request_target,
    send_aiohttp,
)
from pytest_llmperf.loadgen.workers import WorkerPool, Workers, choose_workers, split_jobs
from pytest_llmperf.metrics.server import client_samples, guardrails, witness
from pytest_llmperf.metrics.summary import summarize
from pytest_llmperf.metrics.timeline import DEFAULT_INTERVAL_S
from pytest_llmperf.workload.prompts import PreparedRequest, Workload, prepare_requests

__all__ = ["HealthThresholds", "LoadSpec", "RunResult", "run_load"]

_DEFAULT_THRESHOLDS = HealthThresholds()
#: How often the server's gauges are sampled during a run by default (2 Hz; ``LoadSpec``'s
#: ``metrics_interval_s``, config ``[client] metrics_interval_s``).
GAUGE_INTERVAL_S = DEFAULT_INTERVAL_S


class _Runner:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        spec: LoadSpec,
        writer: JsonlWriter | None,
        progress: ProgressFn | None,
        keep_raw: bool,
        raw_client: RawClient | None,
    ) -> None:
        self.raw_client = raw_client
        self.paths: dict[str, str] = {}
        self.session = session
        self.endpoint = endpoint
        self.spec = spec
        self.writer = writer
        self.progress = progress
        self.keep_raw = keep_raw
        self.headers = {"Content-Type": "application/json", **endpoint.headers()}
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        self.records: list[RequestRecord] = []
        self.continuous: list[bool] = []
        self.schedule_lags: list[float] = []
        self.raw: dict[int, tuple[tuple[float, ...], tuple[bytes, ...]]] = {}
        self.total = 0
        self.t0 = 0.0
        self.stopped = False  # set by the liveness watchdog: send nothing more
        #: ``min_duration_s``: builds ``count`` more requests from index ``start`` (fresh
        #: prompts), into ``prepared`` for the token check; None: the given requests only.
        self.refill: Callable[[int, int], Awaitable[list[PreparedRequest]]] | None = None
        self.next_index = 0
        self.prepared: dict[int, PreparedRequest] = {}

    def stop(self) -> None:
        self.stopped = True

    async def one(self, req: PreparedRequest, intended: float, record: bool) -> None:
        client = self.raw_client
        if client is not None:
            path = self.paths.get(req.path)
            if path is None:
                path = self.paths[req.path] = request_target(self.endpoint.url(req.path))
            data = client.request_bytes(path, req.body)
            start = time.perf_counter()
            raw = await client.send(data, self.spec.timeout_s)
        else:
            start = time.perf_counter()
            raw = await send_aiohttp(
                self.session, self.endpoint.url(req.path), req.body, self.headers, self.timeout
            )
        if not record:
            return
        rec, continuous = to_record(req, intended, start, raw)
        self.records.append(rec)
        self.continuous.append(continuous)
        if self.keep_raw:
            self.raw[req.index] = (tuple(raw.times), tuple(raw.chunks))
        if self.writer is not None:
            self.writer.write(rec.to_json())
        if self.progress is not None:
            self.progress(len(self.records), self.total, time.perf_counter() - self.t0)

    async def phase(
        self,
        reqs: Sequence[PreparedRequest],
        *,
        record: bool,
        t0: float | None = None,
        offsets: Sequence[float] | None = None,
    ) -> None:
        """Send ``reqs``. Open loop: request ``i`` is due ``offsets[i]`` after ``t0`` (by
        default the schedule drawn from the spec, from now): a worker process gets its share
        of the run's one schedule this way (``loadgen.workers``)."""
        spec = self.spec
        self.total = len(reqs)
        self.t0 = time.perf_counter() if t0 is None else t0
        if spec.mode == "closed":
            assert spec.concurrency is not None
            pending = deque(reqs)
            extend = record and spec.min_duration_s > 0 and self.refill is not None
            batch = max(2 * spec.concurrency, 16)
            refilling: list[asyncio.Task[None]] = []

            def short() -> bool:  # the level has not lasted min_duration_s yet
                return extend and time.perf_counter() - self.t0 < spec.min_duration_s

            async def more() -> None:
                assert self.refill is not None
                start, self.next_index = self.next_index, self.next_index + batch
                new = await self.refill(start, batch)
                self.prepared.update((r.index, r) for r in new)
                pending.extend(new)
                self.total += len(new)

            failed: list[BaseException] = []

            def done(task: asyncio.Task[None]) -> None:
                refilling.clear()
                if not task.cancelled() and task.exception() is not None:
                    failed.append(task.exception())  # type: ignore[arg-type]

            async def take() -> PreparedRequest | None:
                while not self.stopped:
                    if failed:
                        raise failed[0]
                    if len(pending) <= batch and short() and not refilling:
                        # build the next prompts before they are needed (``/tokenize``)
                        task = asyncio.create_task(more())
                        refilling.append(task)
                        task.add_done_callback(done)
                    if pending:
                        return pending.popleft()
                    if not refilling:
                        return None
                    await asyncio.wait([refilling[0]])
                return None

            async def worker() -> None:
                while (req := await take()) is not None:
                    await self.one(req, time.perf_counter(), record)

            try:
                n_workers = min(spec.concurrency, len(reqs))
                await asyncio.gather(*(worker() for _ in range(n_workers)))
            finally:
                for task in refilling:
                    task.cancel()
            return
        assert spec.rate is not None
        if offsets is None:
            offsets = schedule(spec, len(reqs))
        sem = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None

        async def capped(req: PreparedRequest, intended: float) -> None:
            if sem is None:
                await self.one(req, intended, record)
            else:
                async with sem:
                    await self.one(req, intended, record)

        tasks: list[asyncio.Task[None]] = []
        for req, offset in zip(reqs, offsets, strict=True):
            if self.stopped:
                break
            due = self.t0 + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if record:
                self.schedule_lags.append(max(0.0, time.perf_counter() - due))
            tasks.append(asyncio.create_task(capped(req, due)))
        await asyncio.gather(*tasks)


def schedule(spec: LoadSpec, n: int) -> list[float]:
    """The open-loop due offsets of a run's ``n`` requests, drawn once (one process or many)."""
    assert spec.rate is not None
    return arrival_offsets(
        n,
        spec.rate,
        spec.arrival,
        spec.seed,
        burstiness=spec.burstiness,
        ramp_up_s=spec.ramp_up_s,
    )


async def _in_workers(
    pool: WorkerPool,
    runner: _Runner,
    reqs: Sequence[PreparedRequest],
    http_client: str,
    lags: list[float],
    worker_cpu: list[float],
    worker_rss: list[float],
    starts: list[float],
) -> None:
    """The measured phase in ``pool``'s worker processes: records stream back into the runner
    (the JSON-lines file, progress and the watchdog's success count see them as they come);
    the workers' schedule lags, loop lags, CPU and RSS are merged at the end."""
    spec = runner.spec
    offsets = None
    if spec.mode == "open":
        assert spec.rate is not None
        offsets = schedule(spec, len(reqs))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    jobs = split_jobs(
        pool.n,
        runner.endpoint,
        spec,
        reqs,
        offsets,
        keep_raw=runner.keep_raw,
        http_client=http_client,
        cpus=cpus,
    )
    total = len(reqs)

    def on_records(batch: list[tuple[RequestRecord, bool, Any]]) -> None:
        for rec, continuous, raw in batch:
            runner.records.append(rec)
            runner.continuous.append(continuous)
            if runner.keep_raw and raw is not None:
                runner.raw[rec.index] = raw
            if runner.writer is not None:
                runner.writer.write(rec.to_json())
        if runner.progress is not None:
            t = starts[0] if starts else time.perf_counter()
            runner.progress(len(runner.records), total, time.perf_counter() - t)

    out = await pool.run(jobs, on_records, started=starts.append)
    runner.schedule_lags.extend(out.schedule_lags)
    lags.extend(out.loop_lags)
    worker_cpu.extend(out.cpu_s)
    worker_rss.extend(out.peak_rss_mb)


async def _loop_lag_ticker(stop: asyncio.Event, lags: list[float], interval: float) -> None:
    clock = time.perf_counter
    while not stop.is_set():
        t = clock()
        await asyncio.sleep(interval)
        lags.append(max(0.0, clock() - t - interval))


async def _run_async(
    endpoint: Endpoint,
    workload: Workload,
    spec: LoadSpec,
    records_path: Path | None,
    progress: ProgressFn | None,
    requests: Sequence[PreparedRequest] | None,
    keep_raw: bool,
    thresholds: HealthThresholds,
    http_client: str,
    workers: Workers = 1,
) -> RunResult:
    n_workers, workers_why = choose_workers(workers, spec, workload.output_tokens)
    pool = WorkerPool(n_workers).start() if n_workers > 1 else None  # imports overlap /tokenize
    try:
        return await _run_measured(
            endpoint,
            workload,
            spec,
            records_path,
            progress,
            requests,
            keep_raw,
            thresholds,
            http_client,
            pool,
            workers_why,
        )
    finally:
        if pool is not None:
            pool.close()


async def _run_measured(
    endpoint: Endpoint,
    workload: Workload,
    spec: LoadSpec,
    records_path: Path | None,
    progress: ProgressFn | None,
    requests: Sequence[PreparedRequest] | None,
    keep_raw: bool,
    thresholds: HealthThresholds,
    http_client: str,
    pool: WorkerPool | None,
    workers_why: str,
) -> RunResult:
    worker_cpu: list[float] = []
    worker_rss: list[float] = []
    async with client_session() as session:
        watchdog = Watchdog(session, endpoint, LivenessPolicy.for_request_timeout(spec.timeout_s))
        if requests is None:

            async def prepare() -> tuple[list[PreparedRequest], list[PreparedRequest]]:
                reqs = await prepare_requests(session, endpoint, workload, spec.num_requests)
                warm = (
                    await prepare_requests(
                        session,
                        endpoint,
                        workload,
                        spec.warmup_requests,
                        start_index=spec.num_requests,
                    )
                    if spec.warmup_requests
                    else []
                )
                return reqs, warm

            phase = "prompt preparation (/tokenize)"
            got = await watchdog.guard(prepare(), phase=phase)
            if got is None:
                raise ServerHung(f"{watchdog.hung_message}; no request was sent", phase=phase)
            reqs, warm = got
        else:
            need = spec.num_requests + spec.warmup_requests
            if len(requests) < need:
                raise ValueError(f"{len(requests)} prepared requests given, the spec needs {need}")
            reqs = list(requests[: spec.num_requests])
            warm = list(requests[spec.num_requests : need])
        prepared = {r.index: r for r in reqs}
        reachable_at_start = await reachable(session, endpoint)
        writer = JsonlWriter(records_path) if records_path is not None else None
        if http_client == "raw" and not httptools_available():
            raise ClientCapacityError("http_client='raw' needs httptools (pip install httptools)")
        use_raw = http_client == "raw" or (http_client == "auto" and httptools_available())
        raw_client = RawClient(endpoint.base_url, endpoint.headers()) if use_raw else None
        runner = _Runner(session, endpoint, spec, writer, progress, keep_raw, raw_client)
        if spec.min_duration_s > 0:
            if requests is not None:
                raise ValueError(
                    "min_duration_s needs the load generator to build its own requests; "
                    "given requests cannot be extended"
                )

            async def refill(start: int, count: int) -> list[PreparedRequest]:
                return await prepare_requests(session, endpoint, workload, count, start_index=start)

            runner.refill, runner.prepared = refill, prepared
            runner.next_index = spec.num_requests + spec.warmup_requests
        try:
            if warm:
                await watchdog.guard(
                    runner.phase(warm, record=False),
                    phase="warm-up",
                    stop_sending=runner.stop,
                    grace_s=spec.timeout_s,
                )
                if watchdog.hung_message:
                    raise ServerHung(f"{watchdog.hung_message}; nothing measured", phase="warm-up")
            before = await scrape_metrics(session, endpoint)
            sampler = GaugeSampler(session, endpoint, spec.metrics_interval_s)
            lags: list[float] = []
            stop = asyncio.Event()
            gc.collect()
            gc.freeze()
            gc_was_enabled = gc.isenabled()
            gc.disable()
            cpu0 = cpu_seconds()
            t_start = time.perf_counter()
            ticker = (  # in worker mode each worker runs its own ticker
                asyncio.create_task(_loop_lag_ticker(stop, lags, 0.1)) if pool is None else None
            )
            sampling = asyncio.create_task(sampler.run(stop)) if before is not None else None
            starts: list[float] = []
            measured = (
                runner.phase(reqs, record=True)
                if pool is None
                else _in_workers(
                    pool, runner, reqs, http_client, lags, worker_cpu, worker_rss, starts
                )
            )
            try:
                watchdog.progress = successes(runner.records)
                await watchdog.guard(
                    measured,
                    phase="the load run",
                    stop_sending=runner.stop if pool is None else pool.stop,
                    grace_s=spec.timeout_s,
                )
            finally:
                if pool is not None and starts:
                    t_start = starts[0]  # the workers' common start
                t_end = time.perf_counter()
                cpu = cpu_seconds() - cpu0
                sampler.final_sample = not watchdog.hung_message
                stop.set()
                if ticker is not None:
                    await ticker
                if sampling is not None:
                    await sampling
                if gc_was_enabled:
                    gc.enable()
                gc.unfreeze()
        finally:
            if raw_client is not None:
                raw_client.close()
            if writer is not None:
                writer.close()
        hung = watchdog.hung_message
        after = None if before is None or hung else await scrape_metrics(session, endpoint)
        records = runner.records
        if any(r.error_kind == "connection" for r in records) and reachable_at_start:
            if not await reachable(session, endpoint):
                records = [
                    replace(
                        r,
                        error_kind="server_died",
                        error_detail=f"server unreachable after the run; {r.error_detail}",
                    )
                    if r.error_kind == "connection"
                    else r
                    for r in records
                ]
        counts0 = token_counters(before)
        token_check = check_tokens(
            records, runner.continuous, prepared, workload, counts0, token_counters(after)
        )
        samples = client_samples(records)
        seen = witness(before, after, samples)
        unmatched = any(not m["matched"] for m in seen["metrics"].values())
        if (token_check.metrics_status == "mismatch" or unmatched) and after is not None:
            # vLLM updates its counters a moment after the last response; look again once.
            await asyncio.sleep(0.5)
            after = await scrape_metrics(session, endpoint)
            token_check = check_tokens(
                records, runner.continuous, prepared, workload, counts0, token_counters(after)
            )
            seen = witness(before, after, samples)
        server = {
            "guardrails": {
                **guardrails(before, after, sampler.peaks),
                "gauge_samples": sampler.samples,
                "gauge_interval_s": spec.metrics_interval_s,
                "gauge_parse_cpu_ms": 1000.0 * sampler.parse_cpu_s,
            },
            "timeline": sampler.timeline.to_json(t_start, spec.metrics_interval_s),
            "witness": seen,
        }

    records.sort(key=lambda r: r.index)
    duration = max(max((r.end for r in records), default=t_end) - t_start, 1e-9)
    summary = summarize(records, duration_s=duration)
    wall = t_end - t_start
    # with worker processes: the busiest process's share of its core is what lags
    busiest = max([cpu, *worker_cpu])
    cpu += sum(worker_cpu)
    out_tokens = max(summary.total_output_tokens, 1)
    loop_p99 = p99_ms(lags)
    sched_p99 = p99_ms(runner.schedule_lags)
    reasons: list[str] = []
    if loop_p99 > thresholds.loop_lag_p99_ms:
        share = busiest / wall if wall > 0 else 0.0
        why = (
            "the client was too busy to read responses promptly"
            if share >= 0.5
            else f"the client used only {100 * share:.0f}% of a core, so the OS did not run it "
            "in time (too few cores for server and client)"
        )
        reasons.append(
            f"event-loop lag p99 {loop_p99:.1f} ms > {thresholds.loop_lag_p99_ms} ms: {why}; "
            "client timestamps may be late by that much"
        )
    if sched_p99 > thresholds.schedule_lag_p99_ms:
        reasons.append(
            f"schedule lag p99 {sched_p99:.1f} ms > {thresholds.schedule_lag_p99_ms} ms: requests "
            "left later than the arrival schedule said"
        )
    late = late_reads(records)
    late_flag = False
    if late.one_read > thresholds.one_read_requests:
        late_flag = True
        reasons.append(
            f"{late.one_read} of {late.requests} requests arrived in one read (all their token "
            "chunks at once): the client read its sockets late, so their TTFT and ITL are "
            "the client's delay, not the server's pace"
        )
    if late.max_events_per_read > thresholds.max_events_per_read:
        late_flag = True
        reasons.append(
            f"{late.max_events_per_read} token events waited in one read "
            f"(> {thresholds.max_events_per_read}): the client read its sockets late"
        )
    if wall > 0 and busiest / wall > thresholds.cpu_fraction:
        reasons.append(
            f"client{' process' if worker_cpu else ''} used {100 * busiest / wall:.0f}% of a core "
            f"(> {100 * thresholds.cpu_fraction:.0f}%)"
        )
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    loop_name += "+httptools" if use_raw else "+aiohttp"
    if worker_cpu:
        loop_name += f" x{len(worker_cpu)} processes"
    health = ClientHealth(
        cpu_s=cpu,
        wall_s=wall,
        cpu_per_request_ms=1000.0 * cpu / max(len(records), 1),
        cpu_per_token_us=1e6 * cpu / out_tokens,
        loop_lag_p99_ms=loop_p99,
        loop_lag_max_ms=max_ms(lags),
        schedule_lag_p99_ms=sched_p99,
        schedule_lag_max_ms=max_ms(runner.schedule_lags),
        queue_wait_p99_ms=summary.queue_wait.p99 if summary.queue_wait.count else 0.0,
        peak_rss_mb=max([peak_rss_mb(), *worker_rss]),
        event_loop=loop_name,
        workers=max(1, len(worker_cpu)),
        workers_reason=workers_why,
        client_bound=bool(reasons),
        reasons=tuple(reasons),
        one_read_requests=late.one_read,
        max_events_per_read=late.max_events_per_read,
        multi_event_read_fraction=late.multi_event_fraction,
        late_reads=late_flag,
    )
    result = RunResult(
        records=tuple(records),
        summary=summary,
        health=health,
        token_check=token_check,
        spec=spec,
        server=server,
        workload=workload,
        raw=runner.raw if keep_raw else None,
    )
    if hung:
        raise ServerHung(
            f"{hung}; {len(records)} of {len(reqs)} requests were answered or timed out and are "
            "kept, the rest were not sent or were abandoned in flight",
            phase="the load run",
            result=result,
        )
    return result


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def run_load(
    endpoint: Endpoint,
    workload: Workload,
    spec: LoadSpec,
    *,
    records_path: Path | None = None,
    progress: ProgressFn | None = None,
    requests: Sequence[PreparedRequest] | None = None,
    keep_raw: bool = False,
    thresholds: HealthThresholds = _DEFAULT_THRESHOLDS,
    http_client: Literal["auto", "raw", "aiohttp"] = "auto",
    workers: Workers = 1,
) -> RunResult:
    """Build the requests (unless ``requests`` are given: the first ``num_requests`` are
    measured, the next ``warmup_requests`` warm up), send them as ``spec`` says, and return the
    records, summary, client health and token check. Blocking; runs its own event loop.
    ``http_client``: ``raw`` (uvloop + httptools transports, the low-CPU path), ``aiohttp``
    (one session, no connection cap), ``auto`` = raw when httptools is installed.
    ``workers``: worker processes for the measured phase (``loadgen.workers``): 1 (one
    process, one loop), an int, or ``"auto"`` (more only when one loop cannot hold the load
    and the client has the CPUs)."""
    raise_nofile(spec.max_in_flight)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        return runner.run(
            _run_async(
                endpoint,
                workload,
                spec,
                records_path,
                progress,
                requests,
                keep_raw,
                thresholds,
                http_client,
                workers,
            )
        )
