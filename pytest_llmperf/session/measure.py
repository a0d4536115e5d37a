"""One measured run, the step the engine's cases and the A/B blocks share.

``send_run`` sends one run to a server with the client on its own cores (when the session's
CPU layout gives it some) and returns the load generator's ``RunResult``; ``run_validity``
says why a run cannot count in a paired comparison. A caller asks the session only through
its public methods (``PerfEngine.client_cpus`` and ``forgives_scheduling_noise``), never through
the engine's private state. ``scheduling_noise_only`` is the shared-core rule both apply.

I/O: ``send_run`` runs the load generator; ``scheduling_noise_only`` and ``run_validity`` are
pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llmperf.core.cpu_layout import pinned
from pytest_llmperf.core.endpoint import Endpoint

#: Where client and server share cores, an event-loop lag past the client's limit that is at
#: most this fraction of the run's median end-to-end latency is still forgiven (e.g. 85 ms
#: against 43 s at concurrency 1,000), while one comparable to the latencies measured (145 ms
#: against 157 ms) fails the case.
SHARED_CPU_LAG_FRACTION = 0.1


def scheduling_noise_only(health: Any, thresholds: Any, metrics: Mapping[str, float]) -> bool:
    """Whether a client-bound flag is only the OS running an idle client late on cores it
    shares with the server, by too little to matter: the client was not busy (under half a
    core), kept to its schedule, and its event-loop lag p99 is at most
    ``SHARED_CPU_LAG_FRACTION`` of the median end-to-end latency, so no latency the gates
    judge moved by more than that. Pure; the caller decides whether cores are shared."""
    share = health.cpu_s / health.wall_s if health.wall_s > 0 else 1.0
    p50 = metrics.get("p50_e2el_ms", math.nan)
    return (
        share < 0.5
        and share <= thresholds.cpu_fraction
        and health.schedule_lag_p99_ms <= thresholds.schedule_lag_p99_ms
        and math.isfinite(p50)
        and health.loop_lag_p99_ms <= SHARED_CPU_LAG_FRACTION * p50
    )


def send_run(
    endpoint: Endpoint,
    workload: Any,
    spec: Any,
    *,
    client_cpus: tuple[int, ...] | None,
    records_path: Path | None,
    thresholds: Any,
    progress: Any = None,
    requests: Sequence[Any] | None = None,
    workers: Any = 1,
) -> Any:
    """One run of ``workload`` under ``spec`` (a ``loadgen.LoadSpec``) against ``endpoint``,
    the client pinned to ``client_cpus``: the ``loadgen.RunResult``. Raises what
    ``loadgen.run_load`` raises (``ServerHung`` with what was measured, ``ImageLimitError``)."""
    from pytest_llmperf.loadgen.run import run_load

    with pinned(client_cpus):
        return run_load(
            endpoint,
            workload,
            spec,
            records_path=records_path,
            progress=progress,
            thresholds=thresholds,
            requests=requests,
            workers=workers,
        )


def run_validity(result: Any, session: Any, thresholds: Any) -> tuple[str, ...]:
    """Why a run cannot count (empty when it can): client-bound beyond the scheduling noise
    the session forgives where client and server share cores, or token counts that disagree.
    ``session`` without ``forgives_scheduling_noise`` forgives by the shared-core rule alone
    (``shares_cores_with_server``, if it has it)."""
    reasons: list[str] = []
    health = result.health
    if health.client_bound:
        metrics = result.summary.metrics()
        judge = getattr(session, "forgives_scheduling_noise", None)
        if callable(judge):
            forgiven = bool(judge(health, thresholds, metrics))  # the engine's own rule
        else:
            shares = getattr(session, "shares_cores_with_server", None)
            shared = bool(shares()) if callable(shares) else False
            forgiven = (
                shared
                and not getattr(health, "late_reads", False)
                and scheduling_noise_only(health, thresholds, metrics)
            )
        if not forgiven:
            reasons += ["client-bound: " + r for r in health.reasons] or ["client-bound"]
    check = getattr(result, "token_check", None)
    if check is not None and getattr(check, "status", "ok") == "mismatch":
        reasons.append("token counts disagree: " + "; ".join(check.reasons))
    return tuple(reasons)
