"""The measured hot path: keep-alive HTTP/1.1 connections that only timestamp and keep raw
byte chunks (uvloop transports + httptools' C parser; aiohttp as the fallback)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from pytest_llmperf.core.records import ErrorKind

READ_BUFSIZE: Final[int] = 4 * 1024 * 1024


def client_session() -> aiohttp.ClientSession:
    """The aiohttp session a measured run (and each worker process) sends through: no limit on
    connections, DNS resolved once, bytes as they came (no decompression), no cookies, no total
    timeout (each request carries its own), and a ``READ_BUFSIZE`` read buffer. Call it inside
    the run's event loop."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector,
        read_bufsize=READ_BUFSIZE,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
    )


@dataclass(slots=True)
class RawResponse:
    status: int | None = None
    times: list[float] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    error_kind: ErrorKind | None = None
    error_detail: str | None = None
    content_type: str = ""
    end: float = 0.0


async def send_aiohttp(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> RawResponse:
    raw = RawResponse()
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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection. ``data_received`` stamps the read and hands it to
    httptools (C); the body callback appends ``(stamp, bytes)``. Nothing else runs per read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.raw: RawResponse | None = None
        self.done: asyncio.Future[None] | None = None
        self.keep_alive = True
        self.now = 0.0
        self.parser: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, raw: RawResponse, data: bytes) -> asyncio.Future[None]:
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


class RawClient:
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
        self.idle: list[_Connection] = []
        self.all: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection,
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

    async def send(self, data: bytes, timeout_s: float) -> RawResponse:
        raw = RawResponse()
        conn: _Connection | None = None
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

    def _drop(self, conn: _Connection) -> None:
        if conn.transport is not None:
            conn.transport.abort()
        self.all.discard(conn)

    def close(self) -> None:
        for conn in list(self.all):
            self._drop(conn)
        self.idle.clear()


def request_target(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return (u.path or "/") + (f"?{u.query}" if u.query else "")


def httptools_available() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True
