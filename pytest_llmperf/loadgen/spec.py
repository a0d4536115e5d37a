"""The load generator's records: what to send (``LoadSpec``), the client's own health, the
token cross-check, and a run's result. Plain frozen dataclasses; no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import msgspec

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.summary import RunSummary
from pytest_llmperf.workload.presets import MULTIPLIERS, Workload

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
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    #: Gamma arrivals' shape (the gaps' CoV is 1 / sqrt(burstiness)); 1 for the others.
    burstiness: float = 1.0
    #: Open loop: the rate climbs linearly from 0 over this many seconds (``loadgen.arrivals``).
    ramp_up_s: float = 0.0
    num_requests: int = 100
    warmup_requests: int = 0
    timeout_s: float = 600.0
    seed: int = 0
    #: Closed loop: keep sending past ``num_requests`` until the measured phase has lasted
    #: this long (both the count and the duration are reached); 0: the count alone.
    min_duration_s: float = 0.0
    #: How often the server's ``/metrics`` gauges are sampled during the measured phase (s).
    metrics_interval_s: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("closed", "open"):
            raise ValueError(f"mode must be 'closed' or 'open', got {self.mode!r}")
        if self.mode == "closed" and (self.concurrency is None or self.concurrency < 1):
            raise ValueError("closed-loop load needs concurrency >= 1")
        if self.mode == "open" and (self.rate is None or not self.rate > 0):
            raise ValueError("open-loop load needs rate > 0 (requests per second)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1 (or None for an uncapped open loop)")
        if self.arrival not in ("poisson", "constant", "gamma"):
            raise ValueError(
                f"arrival must be 'poisson', 'constant' or 'gamma', got {self.arrival!r}"
            )
        if not (math.isfinite(self.burstiness) and self.burstiness > 0):
            raise ValueError(f"burstiness must be > 0, got {self.burstiness}")
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ValueError(f"burstiness shapes gamma arrivals; arrival is {self.arrival!r}")
        if not (math.isfinite(self.ramp_up_s) and self.ramp_up_s >= 0):
            raise ValueError(f"ramp_up_s must be >= 0 seconds, got {self.ramp_up_s}")
        if self.ramp_up_s and self.mode != "open":
            raise ValueError("ramp_up_s ramps an open loop's rate; a closed loop has no rate")
        if self.num_requests < 1 or self.warmup_requests < 0:
            raise ValueError("num_requests must be >= 1 and warmup_requests >= 0")
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        if not (math.isfinite(self.min_duration_s) and self.min_duration_s >= 0):
            raise ValueError(f"min_duration_s must be >= 0 seconds, got {self.min_duration_s}")
        if not (math.isfinite(self.metrics_interval_s) and self.metrics_interval_s > 0):
            raise ValueError(
                f"metrics_interval_s must be > 0 seconds, got {self.metrics_interval_s}"
            )
        if self.min_duration_s and self.mode != "closed":
            raise ValueError(
                "min_duration_s sizes a closed-loop level; an open loop's length is its "
                "num_requests at its rate"
            )

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
    #: Requests whose token chunks all arrived in one read (late reads, see ``late_reads``)
    #: a run may have; any is a wrong measurement, so the default is none.
    one_read_requests: int = 0
    #: Most token events one read may carry before the run counts as read late.
    max_events_per_read: int = 16


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
    one_read_requests: int = 0
    max_events_per_read: int = 0
    multi_event_read_fraction: float = 0.0
    #: Whether the late-read evidence (not only the ticker) flagged the run.
    late_reads: bool = False
    #: Processes that sent the measured phase (``loadgen.workers``), and why that many.
    workers: int = 1
    workers_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return cast("dict[str, Any]", msgspec.to_builtins(self))


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
        return cast("dict[str, Any]", msgspec.to_builtins(self))


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
    #: The server's own account (``metrics.server``): ``guardrails`` (counter deltas, gauge
    #: peaks) and ``witness`` (its latency histograms against the client's); None without it.
    server: dict[str, Any] | None = field(default=None, repr=False)

    def check(self) -> None:
        """Raise ``TokenCountMismatch`` when token counts disagree."""
        self.token_check.check()

    def to_json(self) -> dict[str, Any]:
        """Everything but the per-request records (those go to the JSON-lines file)."""
        return {
            "workload": msgspec.to_builtins(self.workload),
            "spec": msgspec.to_builtins(self.spec),
            "summary": self.summary.to_json(),
            "vllm_bench": self.summary.to_vllm_bench_json(),
            "client_health": self.health.to_json(),
            "token_check": self.token_check.to_json(),
            "server": self.server,
        }
