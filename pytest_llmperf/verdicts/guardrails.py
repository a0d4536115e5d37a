"""Which server-side figures invalidate a run (pure rules).

A run's ``detail.server`` (``metrics.server.guardrails`` + ``witness``) is judged here:

- ``preemptions``: vLLM preempted requests during the run (KV cache too small for the load):
  the latencies measured include recomputation the configured server was not meant to do;
- ``unexpected_cache_hits``: the prefix cache served prompt tokens although the workload has
  no shared prefix and is single-turn: the run measured a warm cache, not the server;
- ``client_late``: the client's per-token ITL trails vLLM's engine-stamped ITL (at least 1%
  of the tokens) by more than the client's stated timing error plus one engine step: that gap
  is the client or the host being late. TTFT and E2E are not judged: vLLM's clock for them
  starts after its API server admitted and parsed the request, so the client's excess there
  (``witness.frontend_gap_ms``) is mostly the server being slow to admit; it is reported only.

Each flag is a warning unless the user lists it in ``[guardrails] fail_on``. A flag is a
``msgspec`` struct, the record of ``detail.server.flags`` in results.json (its schema there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
from msgspec import Struct

FLAGS: Final[tuple[str, ...]] = ("preemptions", "unexpected_cache_hits", "client_late")


class GuardrailFlag(Struct, frozen=True):
    """A guardrail verdict on the run."""

    name: str
    message: str
    fails: bool

    def to_json(self) -> dict[str, Any]:
        """The flag as plain JSON data: its fields in order."""
        return msgspec.to_builtins(self)


def judge(
    server: Mapping[str, Any],
    *,
    shared_prefix_tokens: int = 0,
    turns: int = 1,
    fail_on: Sequence[str] = (),
) -> list[GuardrailFlag]:
    """The flags one run's server figures raise (``server``: ``detail.server``)."""
    g = server.get("guardrails") or {}
    flags: list[tuple[str, str]] = []
    pre = g.get("preemptions")
    if pre:
        flags.append(
            (
                "preemptions",
                f"vLLM preempted {pre:.0f} requests during the run (KV cache too small for the "
                "load): latencies include recomputation; give the server more KV-cache memory "
                "or lower the concurrency",
            )
        )
    hits = g.get("prefix_cache_hits")
    if hits and shared_prefix_tokens == 0 and turns <= 1:
        rate = g.get("prefix_cache_hit_rate")
        share = f" ({100 * rate:.0f}% of queried prompt tokens)" if rate is not None else ""
        flags.append(
            (
                "unexpected_cache_hits",
                f"the prefix cache served {hits:.0f} prompt tokens{share} although the workload "
                "has no shared prefix: the run measured a warm cache (another client, or "
                "repeated prompts)",
            )
        )
    w = server.get("witness") or {}
    late = list(w.get("late") or ())
    if late:
        parts = []
        for m in late:
            wm = w["metrics"][m]
            step = wm["allowance_ms"] - wm["tolerance_ms"]
            parts.append(
                f"{m} by at least {wm['client_late_ms']:.1f} ms for 1% of the tokens (allowed "
                f"{wm['allowance_ms']:.1f} ms: timing error {wm['tolerance_ms']:.2f} ms + one "
                f"engine step {step:.1f} ms)"
            )
        flags.append(
            (
                "client_late",
                "client figures trail vLLM's own engine-stamped histograms: "
                + ", ".join(parts)
                + "; that gap is the client or the host being late, not the server being slow",
            )
        )
    return [GuardrailFlag(n, m, n in fail_on) for n, m in flags]
