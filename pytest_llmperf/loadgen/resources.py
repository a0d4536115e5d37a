"""The client's resources and the server's side channels: open-file limit, rusage, and the
``/metrics`` and ``/v1/models`` probes around a run."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Sequence
from typing import Final

import aiohttp
import numpy as np

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.spec import ClientCapacityError

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


TOKEN_COUNTERS: Final[tuple[str, str]] = (
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
)


async def scrape_counters(
    session: aiohttp.ClientSession, endpoint: Endpoint
) -> dict[str, float] | None:
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
    if not any(name in text for name in TOKEN_COUNTERS):
        return None
    return parse_prometheus_counters(text, TOKEN_COUNTERS)


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
