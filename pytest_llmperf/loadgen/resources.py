"""The client's resources and the server's side channels: open-file limit, rusage, and the
``/metrics`` and ``/v1/models`` probes around a run."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Sequence
from typing import Final

import aiohttp
import numpy as np

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.spec import ClientCapacityError
from pytest_llmperf.metrics.server import GAUGES, Scrape, parse_exposition, peak
from pytest_llmperf.metrics.timeline import SAMPLED, Timeline, sample_values

GAUGE_NAMES: Final = frozenset(GAUGES)

_FD_MARGIN: Final[int] = 128


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


def cpu_seconds() -> float:
    """This process's own CPU time (a child reaped meanwhile, e.g. a stopped server, is not
    the client's work)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    return s.ru_utime + s.ru_stime


def peak_rss_mb() -> float:
    """This process's own peak RSS (``RUSAGE_CHILDREN`` would add the largest reaped child)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def p99_ms(values: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, 99)) if len(values) else 0.0


def max_ms(values: Sequence[float]) -> float:
    return max(values) * 1000.0 if len(values) else 0.0


TOKEN_COUNTERS: Final[tuple[str, str]] = (
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
)


async def fetch_metrics_text(
    session: aiohttp.ClientSession, endpoint: Endpoint, timeout_s: float = 10.0
) -> str | None:
    """The server's ``/metrics`` text, or None (no such endpoint, an error, a timeout)."""
    try:
        async with session.get(
            endpoint.url("/metrics"),
            headers=endpoint.headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if resp.status != 200:
                return None
            return await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def scrape_metrics(session: aiohttp.ClientSession, endpoint: Endpoint) -> Scrape | None:
    """One parsed ``/metrics`` scrape, or None when the server has no vLLM token counters."""
    text = await fetch_metrics_text(session, endpoint)
    if text is None or not any(name in text for name in TOKEN_COUNTERS):
        return None
    return parse_exposition(text)


def token_counters(scrape: Scrape | None) -> dict[str, float] | None:
    """The token counters ``loadgen.tokens`` cross-checks, from a scrape."""
    if scrape is None:
        return None
    return {name: scrape.total(name) or 0.0 for name in TOKEN_COUNTERS}


class GaugeSampler:
    """Samples vLLM's running/waiting/KV-cache gauges and its generation-token counter every
    ``interval`` seconds during the run, in the client's own event loop: one small GET and a
    line scan that keeps only those lines. Keeps the peaks and the whole series
    (``metrics.timeline``); once ``stop`` is set it takes one last sample (unless
    ``final_sample`` was cleared, e.g. for a hung server), so the series covers the whole run.
    ``parse_cpu_s`` is the CPU its parsing took (the GET's share is measured by
    ``benchmarks/metrics_sampler_cost.py``)."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, interval: float) -> None:
        self.session, self.endpoint, self.interval = session, endpoint, interval
        self.peaks: dict[str, float] = {}
        self.timeline = Timeline()
        self.samples = 0
        self.parse_cpu_s = 0.0
        self.final_sample = True

    async def _sample(self) -> None:
        text = await fetch_metrics_text(self.session, self.endpoint, timeout_s=self.interval * 4)
        if text is not None:
            at = time.perf_counter()
            t = time.thread_time()
            values = sample_values(parse_exposition(text, SAMPLED))
            peak(self.peaks, {k: v for k, v in values.items() if k in GAUGE_NAMES})
            self.timeline.add(at, values)
            self.parse_cpu_s += time.thread_time() - t
            self.samples += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        if self.final_sample:
            await self._sample()


async def reachable(session: aiohttp.ClientSession, endpoint: Endpoint) -> bool:
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
