"""A hung server ends the run: a liveness probe with its own short timeout.

A server that stops answering (SIGSTOP, a wedged engine, a dead network path) does not refuse
connections: the kernel still accepts them, and every request waits out its full timeout. At
c=32 with 2,000 requests left and a 20 s timeout that is ~21 minutes for one run, and prompt
preparation (``/tokenize``) for the next run waits for ever. The watchdog probes ``/health``
with a short timeout while a phase runs; when the server has given no answer *and* no request
has succeeded for ``hung_after_s``, it stops the sending, gives requests in flight a grace
period, cancels what is left and says which phase hung.

An answer of any status counts as alive (a 503 is an answer), and so does a refused connection:
a server that refuses is dead, not hung, and the death handling names that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.records import RequestRecord

T = TypeVar("T")
ProbeOutcome = Literal["answered", "refused", "silent"]


class ServerHung(RuntimeError):
    """The server stopped answering during ``phase``; ``result`` holds what was measured
    (a ``RunResult`` for the load phase, None when no request was sent yet)."""

    def __init__(self, message: str, *, phase: str, result: Any = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.result = result


@dataclass(frozen=True)
class LivenessPolicy:
    """How often to probe, how long a probe may take, and how long a silence means a hang."""

    interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    hung_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and self.probe_timeout_s > 0 and self.hung_after_s > 0):
            raise ValueError("liveness interval, probe timeout and hang window must be > 0")

    @classmethod
    def for_request_timeout(cls, timeout_s: float) -> LivenessPolicy:
        """A hang is declared after one request timeout of silence (at least 5 s, at most
        30 s): in-flight requests then get one more timeout, so a hung server ends the run
        within about two request timeouts of the moment it stopped."""
        return cls(hung_after_s=min(max(timeout_s, 5.0), 30.0))


async def probe(
    session: aiohttp.ClientSession, endpoint: Endpoint, timeout_s: float
) -> ProbeOutcome:
    """One ``GET /health`` with its own timeout."""
    try:
        async with session.get(
            endpoint.url("/health"),
            headers=endpoint.headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            await resp.read()
            return "answered"
    except TimeoutError:
        return "silent"
    except (aiohttp.ClientConnectorError, ConnectionRefusedError):
        return "refused"
    except (aiohttp.ClientError, OSError):
        return "silent"  # accepted, then dropped or stalled: not an answer


class Watchdog:
    """Runs a phase and watches the server while it runs (see the module docstring).

    ``progress`` returns a number that grows when a request succeeds (successful records so
    far); its growth counts as a sign of life like an answered probe.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        policy: LivenessPolicy,
        progress: Callable[[], int] | None = None,
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.policy = policy
        self.progress = progress
        self.hung_message: str | None = None

    async def guard(
        self,
        work: Awaitable[T],
        *,
        phase: str,
        stop_sending: Callable[[], None] | None = None,
        grace_s: float = 0.0,
    ) -> T | None:
        """Await ``work``; if the server hangs meanwhile, call ``stop_sending``, wait up to
        ``grace_s`` for ``work`` to finish on its own, cancel it, and return None with
        ``hung_message`` set (naming the phase)."""
        task = asyncio.ensure_future(work)
        pol = self.policy
        last_alive = time.monotonic()
        seen = self.progress() if self.progress else 0
        silent_probes = 0
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=pol.interval_s)
                if done:
                    return task.result()
                outcome = await probe(self.session, self.endpoint, pol.probe_timeout_s)
                now = time.monotonic()
                count = self.progress() if self.progress else 0
                if outcome != "silent" or count > seen:
                    last_alive, silent_probes = now, 0
                else:
                    silent_probes += 1
                seen = count
                if task.done():
                    return task.result()
                if silent_probes >= 2 and now - last_alive >= pol.hung_after_s:
                    break
            self.hung_message = (
                f"server at {self.endpoint.base_url} hung during {phase}: /health gave no "
                f"answer within {pol.probe_timeout_s:g} s for {now - last_alive:.0f} s "
                f"({silent_probes} probes) and no request succeeded meanwhile; stopped sending"
            )
            if stop_sending is not None:
                stop_sending()
            if grace_s > 0:
                await asyncio.wait({task}, timeout=grace_s)
            if task.done():
                return task.result()
            return None
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def successes(records: Sequence[RequestRecord]) -> Callable[[], int]:
    """A counter of the successful records in ``records`` (a list the run appends to), read
    incrementally so each probe tick costs only the records added since the last one."""
    state = [0, 0]  # records looked at, successes among them

    def count() -> int:
        seen, ok = state
        for rec in records[seen:]:
            ok += rec.error_kind is None
        state[0], state[1] = len(records), ok
        return ok

    return count
