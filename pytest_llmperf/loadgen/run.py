"""The load generator: sends prepared requests at a fixed concurrency or rate and records them.

Built so the client is never the thing being measured:

- keep-alive connections on raw uvloop transports with httptools' C parser (the measured
  low-CPU path; aiohttp with ``TCPConnector(limit=0)`` and a large read buffer is the fallback
  and still does the side calls); no connection cap; ``RLIMIT_NOFILE`` raised up front with a
  clear error when impossible;
- the hot path only timestamps and appends raw byte chunks; SSE is parsed when a request ends,
  by C-level scans of the whole body (full JSON decoding for anything unusual);
- one process, one event loop: measured to keep up with 1,000 streams at a fraction of one
  core (see benchmarks/), so no worker processes;
- request bodies are serialised before the load phase; the heap is frozen and the GC disabled
  during the measured window; uvloop when installed;
- every run reports the client's own health (CPU seconds, event-loop lag, schedule lag) and
  flags ``client_bound`` when the numbers say the client, not the server, set the pace;
- token totals are cross-checked (client vs ``usage`` vs the server's ``/metrics`` counters) and
  a mismatch fails ``RunResult.check()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import random
import re
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import accumulate
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
import numpy as np

from pytest_llmperf.core.atomic import JsonlWriter
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.records import ErrorKind, RequestRecord
from pytest_llmperf.metrics.summary import RunSummary, summarize
from pytest_llmperf.workload.prompts import PreparedRequest, Workload, prepare_requests

MULTIPLIERS: Final[dict[str, float]] = {"quick": 0.5, "default": 1.0, "thorough": 3.0}
READ_BUFSIZE: Final[int] = 4 * 1024 * 1024
_FD_MARGIN: Final[int] = 128

ProgressFn = Callable[[int, int, float], None]


class ClientCapacityError(RuntimeError):
    """The machine cannot give the client what the requested load needs (e.g. file handles)."""


class TokenCountMismatch(AssertionError):
    """Client, server ``usage`` and server ``/metrics`` disagree on token counts."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """How to send: ``closed`` keeps ``concurrency`` requests in flight; ``open`` starts requests
    at ``rate`` per second (``poisson`` or ``constant`` gaps), optionally capped at
    ``concurrency`` in flight. Warm-up requests run first and are excluded from results."""

    mode: Literal["closed", "open"] = "closed"
    concurrency: int | None = 1
    rate: float | None = None
    arrival: Literal["poisson", "constant"] = "poisson"
    num_requests: int = 100
    warmup_requests: int = 0
    timeout_s: float = 600.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("closed", "open"):
            raise ValueError(f"mode must be 'closed' or 'open', got {self.mode!r}")
        if self.mode == "closed" and (self.concurrency is None or self.concurrency < 1):
            raise ValueError("closed-loop load needs concurrency >= 1")
        if self.mode == "open" and (self.rate is None or not self.rate > 0):
            raise ValueError("open-loop load needs rate > 0 (requests per second)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1 (or None for an uncapped open loop)")
        if self.arrival not in ("poisson", "constant"):
            raise ValueError(f"arrival must be 'poisson' or 'constant', got {self.arrival!r}")
        if self.num_requests < 1 or self.warmup_requests < 0:
            raise ValueError("num_requests must be >= 1 and warmup_requests >= 0")
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be > 0")

    def scaled(self, multiplier: float | str) -> LoadSpec:
        """Request count times a multiplier (``quick`` 0.5, ``default`` 1, ``thorough`` 3)."""
        m = MULTIPLIERS[multiplier] if isinstance(multiplier, str) else float(multiplier)
        return replace(self, num_requests=max(1, math.ceil(self.num_requests * m)))

    @property
    def max_in_flight(self) -> int:
        if self.concurrency is not None:
            return min(self.concurrency, self.num_requests + self.warmup_requests)
        return self.num_requests + self.warmup_requests


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    loop_lag_p99_ms: float = 25.0
    schedule_lag_p99_ms: float = 25.0
    cpu_fraction: float = 0.9  # of one core, over the measured window


@dataclass(frozen=True, slots=True)
class ClientHealth:
    """How hard the client worked. ``client_bound`` means its numbers may be the client's."""

    cpu_s: float
    wall_s: float
    cpu_per_request_ms: float
    cpu_per_token_us: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    schedule_lag_p99_ms: float
    schedule_lag_max_ms: float
    queue_wait_p99_ms: float
    peak_rss_mb: float
    event_loop: str
    client_bound: bool
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """Three-way token agreement: client expectations, ``usage``, ``/metrics`` deltas."""

    status: Literal["ok", "mismatch"]
    metrics_status: Literal["ok", "mismatch", "unavailable", "skipped"]
    reasons: tuple[str, ...]
    client_input_tokens: int
    client_output_tokens: int
    usage_prompt_tokens: int
    usage_completion_tokens: int
    metrics_prompt_delta: float | None = None
    metrics_generation_delta: float | None = None
    image_tokens_per_image: float | None = None

    def check(self) -> None:
        if self.status == "mismatch":
            raise TokenCountMismatch("token counts disagree: " + "; ".join(self.reasons))

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RunResult:
    records: tuple[RequestRecord, ...] = field(repr=False)
    summary: RunSummary
    health: ClientHealth
    token_check: TokenCheck
    spec: LoadSpec
    workload: Workload
    raw: dict[int, tuple[tuple[float, ...], tuple[bytes, ...]]] | None = field(
        default=None, repr=False
    )

    def check(self) -> None:
        """Raise ``TokenCountMismatch`` when token counts disagree."""
        self.token_check.check()

    def to_json(self) -> dict[str, Any]:
        """Everything but the per-request records (those go to the JSON-lines file)."""
        return {
            "workload": asdict(self.workload),
            "spec": asdict(self.spec),
            "summary": self.summary.to_json(),
            "vllm_bench": self.summary.to_vllm_bench_json(),
            "client_health": self.health.to_json(),
            "token_check": self.token_check.to_json(),
        }


# --------------------------------------------------------------------------- hot path


@dataclass(slots=True)
class _Raw:
    status: int | None = None
    times: list[float] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    error_kind: ErrorKind | None = None
    error_detail: str | None = None
    content_type: str = ""
    end: float = 0.0


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> _Raw:
    raw = _Raw()
    clock = time.perf_counter
    times_append = raw.times.append
    chunks_append = raw.chunks.append
    try:
        async with session.post(url, data=body, headers=headers, timeout=timeout) as resp:
            raw.status = resp.status
            raw.content_type = resp.content_type
            if resp.status != 200:
                raw.chunks.append(await resp.read())
                raw.times.append(clock())
            else:
                async for data in resp.content.iter_any():
                    times_append(clock())
                    chunks_append(data)
    except TimeoutError as exc:
        raw.error_kind, raw.error_detail = "timeout", f"no complete response in time ({exc!r})"
    except aiohttp.ClientError as exc:
        raw.error_kind, raw.error_detail = "connection", f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        raw.error_kind, raw.error_detail = "connection", f"{type(exc).__name__}: {exc}"
    raw.end = clock()
    return raw


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection. ``data_received`` stamps the read and hands it to
    httptools (C); the body callback appends ``(stamp, bytes)``. Nothing else runs per read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.raw: _Raw | None = None
        self.done: asyncio.Future[None] | None = None
        self.keep_alive = True
        self.now = 0.0
        self.parser: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, raw: _Raw, data: bytes) -> asyncio.Future[None]:
        import httptools

        self.raw = raw
        self.parser = httptools.HttpResponseParser(self)
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.done

    def data_received(self, data: bytes) -> None:
        self.now = time.perf_counter()
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError and friends
            self._fail(f"invalid HTTP response: {exc}")
            if self.transport is not None:
                self.transport.abort()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type" and self.raw is not None:
            self.raw.content_type = value.split(b";", 1)[0].strip().decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.raw is not None:
            self.raw.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        raw = self.raw
        if raw is not None:
            raw.times.append(self.now)
            raw.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _fail(self, detail: str) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError(detail))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.keep_alive = False
        if self.done is not None and not self.done.done():
            self._fail(f"connection closed before the response ended ({exc or 'EOF'})")


class _RawClient:
    """Keep-alive connection pool over raw transports (uvloop + httptools), the low-CPU path.
    Used when httptools is importable; aiohttp is the fallback."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        import ssl as _ssl
        from urllib.parse import urlsplit

        u = urlsplit(base_url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl = _ssl.create_default_context() if u.scheme == "https" else None
        netloc = u.netloc.rsplit("@", 1)[-1]
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.prefix = (
            f"Host: {netloc}\r\nUser-Agent: pytest-llmperf\r\nAccept: text/event-stream\r\n"
            f"Content-Type: application/json\r\n{extra}"
        )
        self.idle: list[_Conn] = []
        self.all: set[_Conn] = set()

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Conn,
            self.host,
            self.port,
            ssl=self.ssl,
            server_hostname=self.host if self.ssl else None,
        )
        self.all.add(conn)
        return conn

    def request_bytes(self, path: str, body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\n{self.prefix}Content-Length: {len(body)}\r\n\r\n"
        return head.encode("latin-1") + body

    async def send(self, data: bytes, timeout_s: float) -> _Raw:
        raw = _Raw()
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(timeout_s):
                for attempt in (0, 1):
                    reused = False
                    while self.idle:
                        c = self.idle.pop()
                        if c.transport is not None and not c.transport.is_closing():
                            conn, reused = c, True
                            break
                    if conn is None:
                        conn = await self._connect()
                    try:
                        await conn.start(raw, data)
                        break
                    except ConnectionError:
                        # a kept-alive socket the server had already closed: retry once, fresh
                        if reused and raw.status is None and not raw.chunks and attempt == 0:
                            self._drop(conn)
                            conn = None
                            continue
                        raise
        except TimeoutError:
            raw.error_kind, raw.error_detail = "timeout", f"no complete response in {timeout_s} s"
        except (ConnectionError, OSError) as exc:
            raw.error_kind, raw.error_detail = "connection", f"{type(exc).__name__}: {exc}"
        raw.end = time.perf_counter()
        if conn is not None:
            conn.raw = None
            if raw.error_kind is None and conn.keep_alive and conn.transport is not None:
                self.idle.append(conn)
            else:
                self._drop(conn)
        return raw

    def _drop(self, conn: _Conn) -> None:
        if conn.transport is not None:
            conn.transport.abort()
        self.all.discard(conn)

    def close(self) -> None:
        for conn in list(self.all):
            self._drop(conn)
        self.idle.clear()


def _request_target(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return (u.path or "/") + (f"?{u.query}" if u.query else "")


def _httptools_available() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- parsing (after)


@dataclass(slots=True)
class ParsedStream:
    chunk_times: list[float]
    chunk_tokens: list[int]
    prompt_tokens: int | None
    completion_tokens: int | None
    done: bool
    error_kind: ErrorKind | None
    error_detail: str | None
    continuous_usage: bool


_USAGE_RE: Final = re.compile(rb'"prompt_tokens":\s*(\d+).*"completion_tokens":\s*(\d+)')
_EMPTY_CHOICES: Final[tuple[bytes, bytes]] = (b'"choices":[]', b'"choices": []')


def _fast_usage(payload: bytes) -> tuple[int, int, bool] | None:
    """(prompt, completion, has_choices) read from a well-formed usage event without a JSON
    decode (the common case: one per streamed chunk), or None to take the full parse."""
    if not (payload.startswith(b"{") and payload.endswith(b"}")) or b'"error"' in payload:
        return None
    i = payload.rfind(b'"usage":')
    if i < 0:
        return None
    m = _USAGE_RE.search(payload, i)
    if m is None:
        return None
    has_choices = _EMPTY_CHOICES[0] not in payload and _EMPTY_CHOICES[1] not in payload
    return int(m.group(1)), int(m.group(2)), has_choices


def _events(times: Sequence[float], chunks: Sequence[bytes]) -> Iterator[tuple[float, bytes]]:
    """SSE events with the time of the read that completed each (incomplete tail dropped)."""
    body = b"".join(chunks)
    if b"\r" in body:  # CRLF framing: normalise per read, keeping each event's read
        buf = b""
        for t, data in zip(times, chunks, strict=True):
            buf = (buf + data).replace(b"\r\n", b"\n")
            if b"\n\n" in buf:
                *evs, buf = buf.split(b"\n\n")
                for ev in evs:
                    yield t, ev
        return
    ends = list(accumulate(map(len, chunks)))
    evs = body.split(b"\n\n")
    evs.pop()  # b"" after the final separator, or an incomplete event
    pos = 0
    i = 0
    for ev in evs:
        pos += len(ev) + 2
        while ends[i] < pos:
            i += 1
        yield times[i], ev


_COMPLETION_RE: Final = re.compile(rb'"completion_tokens":\s*(\d+)')
_PROMPT_RE: Final = re.compile(rb'"prompt_tokens":\s*(\d+)')
_DONE: Final = b"data: [DONE]\n\n"


def _parse_fast(times: Sequence[float], chunks: Sequence[bytes]) -> ParsedStream | None:
    """Whole-body fast path for a clean stream in which every JSON event but the first
    carries usage (vLLM with continuous usage stats): C-level scans, then a few operations
    per event. Returns None whenever anything is unusual; the full parser then decodes and
    validates every event."""
    body = b"".join(chunks)
    if not body.endswith(_DONE) or b"\r" in body or b'"error"' in body:
        return None
    found = list(_COMPLETION_RE.finditer(body))
    if not found:
        return None
    n_events = body.count(b"\n\n") - 1  # JSON events, [DONE] excluded
    unmatched = n_events - len(found)
    head_end = body.find(b"\n\n") + 2
    if unmatched == 1:
        # the first event (e.g. a chat role chunk without usage): decode and validate it
        if found[0].start() < head_end:
            return None
        first = _parse_slow([times[0]], [body[:head_end]])
        if first.error_kind is not None or first.chunk_tokens:
            return None
    elif unmatched != 0:
        return None
    out = ParsedStream([], [], None, None, True, None, None, True)
    ends = list(accumulate(map(len, chunks)))
    ct = out.chunk_times
    ck = out.chunk_tokens
    i = 0
    prev = 0
    for m in found:
        completion = int(m.group(1))
        k = completion - prev
        if k > 0:
            pos = body.find(b"\n\n", m.end()) + 2  # the event counts when it is complete
            while ends[i] < pos:
                i += 1
            ct.append(times[i])
            ck.append(k)
            prev = completion
        elif k < 0:
            return None
    last = found[-1]
    pm = _PROMPT_RE.search(body, body.rfind(b"\n\ndata: {", 0, last.start()))
    if pm is None:
        return None
    out.prompt_tokens = int(pm.group(1))
    out.completion_tokens = prev
    return out


def parse_sse(times: Sequence[float], chunks: Sequence[bytes]) -> ParsedStream:
    """Split raw reads into SSE events (an event's time is the read that completed it) and
    derive token-carrying chunks from the usage deltas (one token per text chunk without)."""
    fast = _parse_fast(times, chunks)
    return fast if fast is not None else _parse_slow(times, chunks)


def _parse_slow(times: Sequence[float], chunks: Sequence[bytes]) -> ParsedStream:
    """Split raw reads into SSE events (an event's time is the read that completed it) and
    derive token-carrying chunks from the usage deltas (one token per text chunk without).

    Usage-carrying events are read with a byte-level fast path; every other event (the first,
    errors, events without usage) is decoded as JSON and validated."""
    out = ParsedStream([], [], None, None, False, None, None, True)
    prev_completion = 0
    saw_usage_delta = False
    saw_text_without_usage = False
    first = True
    chunk_times = out.chunk_times
    chunk_tokens = out.chunk_tokens
    for t, ev in _events(times, chunks):
        if ev.startswith(b"data: ") and b"\n" not in ev:
            payload = ev[6:]
        else:
            payload = b"\n".join(
                line[5:].lstrip(b" ") for line in ev.split(b"\n") if line.startswith(b"data:")
            )
            if not payload:
                continue
        if payload == b"[DONE]":
            out.done = True
            break
        fast = None if first else _fast_usage(payload)
        first = False
        if fast is not None:
            out.prompt_tokens, completion, has_choices = fast
            out.completion_tokens = completion
            if has_choices:
                k = completion - prev_completion
                prev_completion = completion
                saw_usage_delta = True
                if k > 0:
                    chunk_times.append(t)
                    chunk_tokens.append(k)
            continue
        try:
            obj = json.loads(payload)
        except ValueError:
            out.error_kind = "malformed_stream"
            out.error_detail = f"invalid JSON in SSE event: {payload[:200]!r}"
            return out
        if not isinstance(obj, dict):
            out.error_kind = "malformed_stream"
            out.error_detail = f"SSE event is not a JSON object: {payload[:200]!r}"
            return out
        if "error" in obj or obj.get("object") == "error":
            err = obj.get("error", obj)
            msg = err.get("message", err) if isinstance(err, dict) else err
            out.error_kind, out.error_detail = "stream_error", f"server error: {msg}"[:500]
            return out
        choices = obj.get("choices") or []
        usage = obj.get("usage")
        if usage:
            out.prompt_tokens = usage.get("prompt_tokens", out.prompt_tokens)
            out.completion_tokens = usage.get("completion_tokens", out.completion_tokens)
        if not choices:
            continue
        if usage and "completion_tokens" in usage:
            k = int(usage["completion_tokens"]) - prev_completion
            prev_completion = int(usage["completion_tokens"])
            saw_usage_delta = True
        else:
            c0 = choices[0]
            text = c0.get("text") or (c0.get("delta") or {}).get("content")
            k = 1 if text else 0
            saw_text_without_usage = saw_text_without_usage or bool(text)
        if k > 0:
            chunk_times.append(t)
            chunk_tokens.append(k)
    out.continuous_usage = saw_usage_delta and not saw_text_without_usage
    return out


def _record(
    req: PreparedRequest, intended: float, start: float, raw: _Raw
) -> tuple[RequestRecord, bool]:
    """Raw response -> record. Returns the record and whether per-chunk usage was present."""
    base: dict[str, Any] = {
        "index": req.index,
        "intended_start": intended,
        "start": start,
        "end": raw.end,
        "expected_output_tokens": req.output_tokens,
        "status": raw.status,
        "queue_wait": max(0.0, start - intended),
    }
    empty: dict[str, Any] = {
        "first_token": None,
        "chunk_times": (),
        "chunk_tokens": (),
        "prompt_tokens": None,
        "completion_tokens": None,
    }
    if raw.error_kind is not None:
        return RequestRecord(
            **base, **empty, error_kind=raw.error_kind, error_detail=raw.error_detail
        ), False
    status = raw.status or 0
    if status != 200:
        kind: ErrorKind = (
            "http_429" if status == 429 else "http_5xx" if status >= 500 else "http_4xx"
        )
        detail = b"".join(raw.chunks)[:300].decode("utf-8", "replace")
        return RequestRecord(
            **base, **empty, error_kind=kind, error_detail=f"HTTP {status}: {detail}"
        ), False
    p = parse_sse(raw.times, raw.chunks)
    err, detail = p.error_kind, p.error_detail
    if err is None and raw.content_type != "text/event-stream" and not p.chunk_times:
        err, detail = "malformed_stream", f"expected text/event-stream, got {raw.content_type!r}"
    if err is None and not p.done:
        err, detail = "early_stop", "stream ended without [DONE]"
    if err is None and p.completion_tokens is None:
        err, detail = "usage_missing", "no usage in the stream (stream_options.include_usage)"
    if err is None and p.completion_tokens is not None and p.completion_tokens < req.output_tokens:
        err = "early_stop"
        detail = f"{p.completion_tokens} of {req.output_tokens} output tokens"
    rec = RequestRecord(
        **base,
        first_token=p.chunk_times[0] if p.chunk_times else None,
        chunk_times=tuple(p.chunk_times),
        chunk_tokens=tuple(p.chunk_tokens),
        prompt_tokens=p.prompt_tokens,
        completion_tokens=p.completion_tokens,
        error_kind=err,
        error_detail=detail,
    )
    return rec, p.continuous_usage


# --------------------------------------------------------------------------- resources


def raise_nofile(needed: int) -> int:
    """Raise the soft open-file limit to cover ``needed`` sockets; clear error when the hard
    limit is too low. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + _FD_MARGIN
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        raise ClientCapacityError(
            f"{needed} concurrent connections need about {want} open files but the hard limit "
            f"is {hard}; raise it (ulimit -Hn, /etc/security/limits.conf, or the container's "
            "nofile setting) or lower the concurrency"
        )
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else hard, hard)
    )
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_seconds() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _peak_rss_mb() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (s + c) / 1024.0


def _p99_ms(values: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, 99)) if len(values) else 0.0


def _max_ms(values: Sequence[float]) -> float:
    return max(values) * 1000.0 if len(values) else 0.0


def parse_prometheus_counters(text: str, names: Sequence[str]) -> dict[str, float]:
    """Sum of each named counter over its label sets (``_created`` series ignored)."""
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            with contextlib.suppress(ValueError, IndexError):
                out[name] += float(line.rsplit(" ", 1)[1])
    return out


_COUNTERS: Final[tuple[str, str]] = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")


async def _scrape(session: aiohttp.ClientSession, endpoint: Endpoint) -> dict[str, float] | None:
    try:
        async with session.get(
            endpoint.url("/metrics"),
            headers=endpoint.headers(),
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    if not any(name in text for name in _COUNTERS):
        return None
    return parse_prometheus_counters(text, _COUNTERS)


async def _reachable(session: aiohttp.ClientSession, endpoint: Endpoint) -> bool:
    try:
        async with session.get(
            endpoint.url("/v1/models"),
            headers=endpoint.headers(),
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp:
            await resp.read()
            return True
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


# --------------------------------------------------------------------------- the run


class _Runner:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        spec: LoadSpec,
        writer: JsonlWriter | None,
        progress: ProgressFn | None,
        keep_raw: bool,
        raw_client: _RawClient | None,
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

    async def one(self, req: PreparedRequest, intended: float, record: bool) -> None:
        client = self.raw_client
        if client is not None:
            path = self.paths.get(req.path)
            if path is None:
                path = self.paths[req.path] = _request_target(self.endpoint.url(req.path))
            data = client.request_bytes(path, req.body)
            start = time.perf_counter()
            raw = await client.send(data, self.spec.timeout_s)
        else:
            start = time.perf_counter()
            raw = await _send(
                self.session, self.endpoint.url(req.path), req.body, self.headers, self.timeout
            )
        if not record:
            return
        rec, continuous = _record(req, intended, start, raw)
        self.records.append(rec)
        self.continuous.append(continuous)
        if self.keep_raw:
            self.raw[req.index] = (tuple(raw.times), tuple(raw.chunks))
        if self.writer is not None:
            self.writer.write(rec.to_json())
        if self.progress is not None:
            self.progress(len(self.records), self.total, time.perf_counter() - self.t0)

    async def phase(self, reqs: Sequence[PreparedRequest], *, record: bool) -> None:
        spec = self.spec
        self.total = len(reqs)
        self.t0 = time.perf_counter()
        if spec.mode == "closed":
            it = iter(reqs)

            async def worker() -> None:
                for req in it:
                    await self.one(req, time.perf_counter(), record)

            assert spec.concurrency is not None
            await asyncio.gather(*(worker() for _ in range(min(spec.concurrency, len(reqs)))))
            return
        assert spec.rate is not None
        rng = random.Random(spec.seed)
        sem = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None

        async def capped(req: PreparedRequest, intended: float) -> None:
            if sem is None:
                await self.one(req, intended, record)
            else:
                async with sem:
                    await self.one(req, intended, record)

        tasks: list[asyncio.Task[None]] = []
        due = self.t0
        for i, req in enumerate(reqs):
            if i:
                due += rng.expovariate(spec.rate) if spec.arrival == "poisson" else 1 / spec.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if record:
                self.schedule_lags.append(max(0.0, time.perf_counter() - due))
            tasks.append(asyncio.create_task(capped(req, due)))
        await asyncio.gather(*tasks)


async def _loop_lag_ticker(stop: asyncio.Event, lags: list[float], interval: float) -> None:
    clock = time.perf_counter
    while not stop.is_set():
        t = clock()
        await asyncio.sleep(interval)
        lags.append(max(0.0, clock() - t - interval))


def _token_check(
    records: Sequence[RequestRecord],
    continuous: Sequence[bool],
    prepared: dict[int, PreparedRequest],
    workload: Workload,
    before: dict[str, float] | None,
    after: dict[str, float] | None,
) -> TokenCheck:
    reasons: list[str] = []
    ok_recs = [(r, c) for r, c in zip(records, continuous, strict=True) if r.ok]
    client_in = sum(
        prepared[r.index].expected_prompt_tokens or prepared[r.index].input_tokens
        for r, _ in ok_recs
    )
    client_out = sum(prepared[r.index].output_tokens for r, _ in ok_recs)
    usage_in = sum(r.prompt_tokens or 0 for r, _ in ok_recs)
    usage_out = sum(r.completion_tokens or 0 for r, _ in ok_recs)
    bad_in = bad_out = bad_stream = 0
    per_image: set[int] = set()
    for r, cont in ok_recs:
        req = prepared[r.index]
        if req.num_images:
            per_image.add(((r.prompt_tokens or 0) - req.input_tokens) // req.num_images)
        want = req.expected_prompt_tokens
        if want is None:
            bad, built = (r.prompt_tokens or 0) <= req.input_tokens, f"more than {req.input_tokens}"
        else:
            bad, built = r.prompt_tokens != want, str(want)
        if bad:
            bad_in += 1
            if bad_in == 1:
                reasons.append(
                    f"request {r.index}: server counted {r.prompt_tokens} prompt tokens, the "
                    f"client built {built}"
                )
        if r.completion_tokens != req.output_tokens:
            bad_out += 1
            if bad_out == 1:
                reasons.append(
                    f"request {r.index}: server generated {r.completion_tokens} tokens, "
                    f"{req.output_tokens} were forced (ignore_eos, min_tokens)"
                )
        if cont and sum(r.chunk_tokens) != r.completion_tokens:
            bad_stream += 1
            if bad_stream == 1:
                reasons.append(
                    f"request {r.index}: streamed usage deltas sum to {sum(r.chunk_tokens)}, "
                    f"final usage says {r.completion_tokens}"
                )
    if bad_in > 1 or bad_out > 1 or bad_stream > 1:
        reasons.append(
            f"{bad_in} prompt, {bad_out} output and {bad_stream} stream mismatches in "
            f"{len(ok_recs)} successful requests"
        )
    m_prompt = m_gen = None
    metrics_status: Literal["ok", "mismatch", "unavailable", "skipped"]
    if before is None or after is None:
        metrics_status = "unavailable"
    else:
        m_prompt = after[_COUNTERS[0]] - before[_COUNTERS[0]]
        m_gen = after[_COUNTERS[1]] - before[_COUNTERS[1]]
        if len(ok_recs) != len(records):
            metrics_status = "skipped"
            reasons.append(
                f"/metrics check skipped: {len(records) - len(ok_recs)} requests failed "
                "(the server counts their partial tokens)"
            )
        elif m_prompt != usage_in or m_gen != usage_out:
            metrics_status = "mismatch"
            reasons.append(
                f"server /metrics counted {m_prompt:.0f} prompt and {m_gen:.0f} generation "
                f"tokens during the run; usage reported {usage_in} and {usage_out} (another "
                "client on the same server also causes this)"
            )
        else:
            metrics_status = "ok"
    mismatch = bad_in or bad_out or bad_stream or metrics_status == "mismatch"
    return TokenCheck(
        status="mismatch" if mismatch else "ok",
        metrics_status=metrics_status,
        reasons=tuple(reasons),
        client_input_tokens=client_in,
        client_output_tokens=client_out,
        usage_prompt_tokens=usage_in,
        usage_completion_tokens=usage_out,
        metrics_prompt_delta=m_prompt,
        metrics_generation_delta=m_gen,
        image_tokens_per_image=(float(per_image.pop()) if len(per_image) == 1 else None)
        if workload.images_per_request
        else None,
    )


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
) -> RunResult:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    async with aiohttp.ClientSession(
        connector=connector,
        read_bufsize=READ_BUFSIZE,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
    ) as session:
        if requests is None:
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
        else:
            need = spec.num_requests + spec.warmup_requests
            if len(requests) < need:
                raise ValueError(f"{len(requests)} prepared requests given, the spec needs {need}")
            reqs = list(requests[: spec.num_requests])
            warm = list(requests[spec.num_requests : need])
        prepared = {r.index: r for r in reqs}
        reachable_at_start = await _reachable(session, endpoint)
        writer = JsonlWriter(records_path) if records_path is not None else None
        if http_client == "raw" and not _httptools_available():
            raise ClientCapacityError("http_client='raw' needs httptools (pip install httptools)")
        use_raw = http_client == "raw" or (http_client == "auto" and _httptools_available())
        raw_client = _RawClient(endpoint.base_url, endpoint.headers()) if use_raw else None
        runner = _Runner(session, endpoint, spec, writer, progress, keep_raw, raw_client)
        try:
            if warm:
                await runner.phase(warm, record=False)
            before = await _scrape(session, endpoint)
            lags: list[float] = []
            stop = asyncio.Event()
            gc.collect()
            gc.freeze()
            gc_was_enabled = gc.isenabled()
            gc.disable()
            cpu0 = _cpu_seconds()
            t_start = time.perf_counter()
            ticker = asyncio.create_task(_loop_lag_ticker(stop, lags, 0.1))
            try:
                await runner.phase(reqs, record=True)
            finally:
                t_end = time.perf_counter()
                cpu = _cpu_seconds() - cpu0
                stop.set()
                await ticker
                if gc_was_enabled:
                    gc.enable()
                gc.unfreeze()
        finally:
            if raw_client is not None:
                raw_client.close()
            if writer is not None:
                writer.close()
        after = await _scrape(session, endpoint) if before is not None else None
        records = runner.records
        if any(r.error_kind == "connection" for r in records) and reachable_at_start:
            if not await _reachable(session, endpoint):
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
        token_check = _token_check(records, runner.continuous, prepared, workload, before, after)
        if token_check.metrics_status == "mismatch" and after is not None:
            # vLLM updates its counters a moment after the last response; look again once.
            await asyncio.sleep(0.5)
            after = await _scrape(session, endpoint)
            token_check = _token_check(
                records, runner.continuous, prepared, workload, before, after
            )

    records.sort(key=lambda r: r.index)
    duration = max(max((r.end for r in records), default=t_end) - t_start, 1e-9)
    summary = summarize(records, duration_s=duration)
    wall = t_end - t_start
    out_tokens = max(summary.total_output_tokens, 1)
    loop_p99 = _p99_ms(lags)
    sched_p99 = _p99_ms(runner.schedule_lags)
    reasons: list[str] = []
    if loop_p99 > thresholds.loop_lag_p99_ms:
        share = cpu / wall if wall > 0 else 0.0
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
    if wall > 0 and cpu / wall > thresholds.cpu_fraction:
        reasons.append(
            f"client used {100 * cpu / wall:.0f}% of a core "
            f"(> {100 * thresholds.cpu_fraction:.0f}%)"
        )
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    loop_name += "+httptools" if use_raw else "+aiohttp"
    health = ClientHealth(
        cpu_s=cpu,
        wall_s=wall,
        cpu_per_request_ms=1000.0 * cpu / max(len(records), 1),
        cpu_per_token_us=1e6 * cpu / out_tokens,
        loop_lag_p99_ms=loop_p99,
        loop_lag_max_ms=_max_ms(lags),
        schedule_lag_p99_ms=sched_p99,
        schedule_lag_max_ms=_max_ms(runner.schedule_lags),
        queue_wait_p99_ms=summary.queue_wait.p99 if summary.queue_wait.count else 0.0,
        peak_rss_mb=_peak_rss_mb(),
        event_loop=loop_name,
        client_bound=bool(reasons),
        reasons=tuple(reasons),
    )
    return RunResult(
        records=tuple(records),
        summary=summary,
        health=health,
        token_check=token_check,
        spec=spec,
        workload=workload,
        raw=runner.raw if keep_raw else None,
    )


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
    thresholds: HealthThresholds = HealthThresholds(),
    http_client: Literal["auto", "raw", "aiohttp"] = "auto",
) -> RunResult:
    """Build the requests (unless ``requests`` are given: the first ``num_requests`` are
    measured, the next ``warmup_requests`` warm up), send them as ``spec`` says, and return the
    records, summary, client health and token check. Blocking; runs its own event loop.
    ``http_client``: ``raw`` (uvloop + httptools transports, the low-CPU path), ``aiohttp``
    (one session, no connection cap), ``auto`` = raw when httptools is installed."""
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
            )
        )
