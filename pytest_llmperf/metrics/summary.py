"""Request records -> latency and throughput figures (pure: no I/O, no clock).

Definitions follow ``vllm bench serve`` where it is right and depart where it is not:

- TTFT = first token-carrying chunk - request sent (client queue time excluded). A token of
  any kind counts: a reasoning model's thinking and tool-call deltas end TTFT too.
- TTFCT (time to first content token) = first chunk with answer text - request sent: after a
  reasoning model's thinking; equal to TTFT for other models (``RequestRecord.first_content``).
- TPOT = (E2E - TTFT) / (output tokens - 1), per request.
- ITL is per *token*: a chunk carrying k tokens after a gap d contributes k gaps of d/k, so
  batched chunks (vLLM under load, speculative decoding) do not inflate it. The raw gap between
  chunks is kept as its own metric, ``ichunk``.

``RunSummary.to_json`` (a run's ``detail.summary`` in results.json) is built as the ``msgspec``
struct ``RunSummaryRecord``, from which the results.json schema types it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec
import numpy as np
from msgspec import Meta, Struct

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.directions import Better, better

LATENCIES: Final[tuple[str, ...]] = ("ttft", "tpot", "itl", "ichunk", "e2el", "ttfct")
STATS: Final[tuple[str, ...]] = ("mean", "median", "std", "p50", "p90", "p95", "p99", "p99_9")
PERCENTILES: Final[dict[str, float]] = {
    "p50": 50.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p99_9": 99.9,
}
THROUGHPUTS: Final[tuple[str, ...]] = (
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "peak_output_throughput",
)
HIGHER_IS_BETTER: Final[frozenset[str]] = frozenset((*THROUGHPUTS, "success_rate"))


def metric_names() -> tuple[str, ...]:
    """Every name ``RunSummary.metrics()`` returns, in a stable order."""
    lat = tuple(f"{s}_{m}_ms" for m in LATENCIES for s in STATS)
    return (*THROUGHPUTS, "success_rate", *lat)


def direction(metric_name: str) -> Better:
    """Which way is better for a metric of ``RunSummary.metrics()``: the answer of
    ``metrics.directions.better`` (the success rate is higher-is-better), for the names a summary
    can hold (a throughput, the success rate, a latency in ms)."""
    if metric_name in HIGHER_IS_BETTER or metric_name.endswith("_ms"):
        return better(metric_name)
    raise ValueError(f"unknown metric {metric_name!r}; known metrics: {', '.join(metric_names())}")


@dataclass(frozen=True, slots=True)
class Stats:
    """Distribution summary in milliseconds; NaN everywhere when there are no samples."""

    count: int
    mean: float
    median: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float

    @classmethod
    def of_seconds(cls, values: Sequence[float] | np.ndarray) -> Stats:
        arr = np.asarray(values, dtype=np.float64) * 1000.0
        if arr.size == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan)
        pct = np.percentile(arr, list(PERCENTILES.values()))
        return cls(
            count=int(arr.size),
            mean=float(arr.mean()),
            median=float(np.median(arr)),
            std=float(arr.std()),
            p50=float(pct[0]),
            p90=float(pct[1]),
            p95=float(pct[2]),
            p99=float(pct[3]),
            p99_9=float(pct[4]),
        )


Ms = Annotated[
    float | None,
    Meta(description="Milliseconds; NaN (null in results.json) when there were no samples."),
]


class StatsMs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A distribution summary in ms (``Stats`` without its count)."""

    mean: Ms
    median: Ms
    std: Ms
    p50: Ms
    p90: Ms
    p95: Ms
    p99: Ms
    p99_9: Ms


class RunSummaryRecord(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One run's summary (metrics.summary.RunSummary): request and token counts, failures by
    error kind, the flat metrics of results.json's run.metrics and the client's queue wait."""

    duration_s: Annotated[float, Meta(gt=0, description="The measured window, seconds.")]
    num_requests: Annotated[int, Meta(ge=0)]
    completed: Annotated[int, Meta(ge=0)]
    failed: Annotated[int, Meta(ge=0)]
    total_input_tokens: Annotated[int, Meta(ge=0)]
    total_output_tokens: Annotated[int, Meta(ge=0)]
    errors: Annotated[dict[str, int], Meta(description="Failed requests by error kind.")]
    chunks: Annotated[int, Meta(ge=0, description="Stream chunks of the successful requests.")]
    metrics: Annotated[
        dict[str, float | None],
        Meta(description="RunSummary.metrics(): the names of run.metrics, before extras."),
    ]
    queue_wait_ms: Annotated[
        StatsMs,
        Meta(description="Client-side wait from the scheduled to the actual send, all requests."),
    ]
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunSummary:
    duration_s: float
    num_requests: int
    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    peak_output_throughput: float
    success_rate: float
    errors: dict[str, int]
    latency: dict[str, Stats]
    queue_wait: Stats
    chunks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat ``name -> value`` (see ``metric_names()``); ``direction(name)`` says which way
        is better."""
        out: dict[str, float] = {name: float(getattr(self, name)) for name in THROUGHPUTS}
        out["success_rate"] = float(self.success_rate)
        for m in LATENCIES:
            st = self.latency[m]
            for s in STATS:
                out[f"{s}_{m}_ms"] = float(getattr(st, s))
        return out

    def to_vllm_bench_json(self) -> dict[str, Any]:
        """The key layout of ``vllm bench serve --save-result`` (ITL there is per chunk; ours is
        per token, so ``itl`` here is the per-token figure and ``ichunk`` the vLLM-like one)."""
        out: dict[str, Any] = {
            "duration": self.duration_s,
            "completed": self.completed,
            "failed": self.failed,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
            "request_throughput": self.request_throughput,
            "output_throughput": self.output_throughput,
            "total_token_throughput": self.total_token_throughput,
            "max_output_tokens_per_s": self.peak_output_throughput,
        }
        for m in LATENCIES:
            st = self.latency[m]
            out[f"mean_{m}_ms"] = st.mean
            out[f"median_{m}_ms"] = st.median
            out[f"std_{m}_ms"] = st.std
            for key, p in PERCENTILES.items():
                word = str(int(p)) if int(p) == p else str(p)
                out[f"p{word}_{m}_ms"] = getattr(st, key)
        return out

    def record(self) -> RunSummaryRecord:
        """The summary as its JSON record (NaN kept; results.json writes it as null)."""
        return RunSummaryRecord(
            duration_s=self.duration_s,
            num_requests=self.num_requests,
            completed=self.completed,
            failed=self.failed,
            total_input_tokens=self.total_input_tokens,
            total_output_tokens=self.total_output_tokens,
            errors=dict(self.errors),
            chunks=self.chunks,
            metrics=self.metrics(),
            queue_wait_ms=StatsMs(**{s: getattr(self.queue_wait, s) for s in STATS}),
            extra=dict(self.extra),
        )

    def to_json(self) -> dict[str, Any]:
        """``record()`` as plain JSON data: a run's ``detail.summary``."""
        return msgspec.to_builtins(self.record())


def output_tokens(rec: RequestRecord) -> int:
    """Server-reported completion tokens, else the sum of per-chunk deltas."""
    if rec.completion_tokens is not None:
        return rec.completion_tokens
    return sum(rec.chunk_tokens)


def itl_per_token(rec: RequestRecord) -> list[float]:
    """Inter-token gaps: a token-carrying chunk with k tokens, d after the previous
    token-carrying chunk, gives k gaps of d/k (a chunk without tokens is skipped, its time
    stays in the next gap). Their sum is the time from the first to the last token-carrying
    chunk."""
    out: list[float] = []
    prev: float | None = None
    for t, k in zip(rec.chunk_times, rec.chunk_tokens, strict=False):
        if k <= 0:
            continue
        if prev is not None:
            out.extend([(t - prev) / k] * k)
        prev = t
    return out


def inter_chunk(rec: RequestRecord) -> list[float]:
    t = rec.chunk_times
    return [t[i] - t[i - 1] for i in range(1, len(t))]


def peak_window_tokens(times: Sequence[float], tokens: Sequence[int], window_s: float = 1.0) -> int:
    """Most tokens arriving within any half-open window ``[t, t + window_s)``."""
    if not times:
        return 0
    order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
    ts = np.asarray(times, dtype=np.float64)[order]
    ks = np.asarray(tokens, dtype=np.int64)[order]
    csum = np.concatenate(([0], np.cumsum(ks)))
    ends = np.searchsorted(ts, ts + window_s, side="left")
    return int((csum[ends] - csum[np.arange(ts.size)]).max())


def summarize(
    records: Iterable[RequestRecord], *, duration_s: float, extra: dict[str, Any] | None = None
) -> RunSummary:
    """Summarise one measured window of ``duration_s`` seconds. Only successful requests
    contribute latencies and tokens; failures are counted by kind."""
    recs = list(records)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    ok = [r for r in recs if r.ok]
    errors = Counter(r.error_kind for r in recs if r.error_kind is not None)

    got = _Samples()
    for r in ok:
        got.add(r)

    n = len(recs)
    return RunSummary(
        duration_s=duration_s,
        num_requests=n,
        completed=len(ok),
        failed=n - len(ok),
        total_input_tokens=got.in_tok,
        total_output_tokens=got.out_tok,
        request_throughput=len(ok) / duration_s,
        output_throughput=got.out_tok / duration_s,
        total_token_throughput=(got.in_tok + got.out_tok) / duration_s,
        peak_output_throughput=float(peak_window_tokens(got.all_times, got.all_toks)),
        success_rate=(len(ok) / n) if n else math.nan,
        errors=dict(sorted(errors.items())),
        latency={
            "ttft": Stats.of_seconds(got.ttft),
            "tpot": Stats.of_seconds(got.tpot),
            "itl": Stats.of_seconds(got.itl),
            "ichunk": Stats.of_seconds(got.ichunk),
            "e2el": Stats.of_seconds(got.e2el),
            "ttfct": Stats.of_seconds(got.ttfct),
        },
        queue_wait=Stats.of_seconds([r.queue_wait for r in recs]),
        chunks=got.chunks,
        extra=dict(extra or {}),
    )


@dataclass
class _Samples:
    """What the successful requests contribute to a summary: latency samples (seconds),
    every token-carrying chunk's time and token count, and the token totals."""

    ttft: list[float] = field(default_factory=list)
    ttfct: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    ichunk: list[float] = field(default_factory=list)
    e2el: list[float] = field(default_factory=list)
    all_times: list[float] = field(default_factory=list)
    all_toks: list[int] = field(default_factory=list)
    in_tok: int = 0
    out_tok: int = 0
    chunks: int = 0

    def add(self, r: RequestRecord) -> None:
        """One successful request's samples and tokens."""
        n_out = output_tokens(r)
        self.in_tok += r.prompt_tokens or 0
        self.out_tok += n_out
        self.chunks += len(r.chunk_times)
        self.e2el.append(r.e2e)
        if r.ttft is not None:
            self.ttft.append(r.ttft)
            if n_out > 1:
                self.tpot.append((r.e2e - r.ttft) / (n_out - 1))
        if r.first_content is not None:
            self.ttfct.append(r.first_content - r.start)
        self.itl.extend(itl_per_token(r))
        self.ichunk.extend(inter_chunk(r))
        self.all_times.extend(r.chunk_times)
        self.all_toks.extend(r.chunk_tokens)


def latency_samples_ms(records: Iterable[RequestRecord]) -> dict[str, np.ndarray]:
    """The per-latency samples ``summarize`` builds its ``Stats`` from, in ms (successful
    requests only), so a caller can pool runs for confidence bounds (``quantile_bounds``)."""
    out: dict[str, list[float]] = {m: [] for m in LATENCIES}
    for r in records:
        if not r.ok:
            continue
        n_out = output_tokens(r)
        out["e2el"].append(r.e2e)
        if r.ttft is not None:
            out["ttft"].append(r.ttft)
            if n_out > 1:
                out["tpot"].append((r.e2e - r.ttft) / (n_out - 1))
        if r.first_content is not None:
            out["ttfct"].append(r.first_content - r.start)
        out["itl"].extend(itl_per_token(r))
        out["ichunk"].extend(inter_chunk(r))
    return {m: np.asarray(v, dtype=np.float64) * 1000.0 for m, v in out.items()}
