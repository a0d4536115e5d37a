"""The server's own account of a run, from vLLM's Prometheus ``/metrics`` text (pure).

- ``parse_exposition``: text → ``Scrape`` (samples by name; ``prometheus_client``'s parser is
  the reference it is tested against, this one is the line scanner the 2 Hz sampler can afford).
- ``guardrails``: per-run counter deltas and sampled gauge peaks — preemptions, prefix-cache
  queries/hits, peak running/waiting requests, peak KV-cache usage, speculative-decoding
  acceptance where the server reports it.
- ``witness``: the server's latency histograms (deltas over the run) against the client's
  samples binned into the server's bucket edges: quantiles read from each by interpolation,
  the largest CDF gap, a lower bound on how late the client was (judged on ITL only), and
  the API server's admission gap in TTFT / E2E (reported, not judged; see ``witness``).

Nothing here does I/O: the load generator scrapes, this module judges the text it got. The
series sampled during a run (the server timeline) is ``metrics.timeline``'s.

Why one module of ~500 lines: the parser, the guardrails and the witness share the same
``Scrape``/``Histogram`` records and metric-name constants, and each part is short. The
witness (``_excess_ms``, ``witness_metric``, ``witness``, ``client_samples``: over a third of
the file) is the seam to cut next, into ``metrics/witness.py``, when it grows again.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

Labels = tuple[tuple[str, str], ...]

#: Counters (``_total``), summed over label sets.
PREEMPTIONS: Final = "vllm:num_preemptions_total"
PREFIX_QUERIES: Final = "vllm:prefix_cache_queries_total"
PREFIX_HITS: Final = "vllm:prefix_cache_hits_total"
SPEC_DRAFTS: Final = "vllm:spec_decode_num_drafts_total"
SPEC_DRAFT_TOKENS: Final = "vllm:spec_decode_num_draft_tokens_total"
SPEC_ACCEPTED: Final = "vllm:spec_decode_num_accepted_tokens_total"
COUNTERS: Final = (
    PREEMPTIONS,
    PREFIX_QUERIES,
    PREFIX_HITS,
    SPEC_DRAFTS,
    SPEC_DRAFT_TOKENS,
    SPEC_ACCEPTED,
)
#: Gauges sampled during the run (peaks). vLLM 0.32 calls the KV-cache fill
#: ``kv_cache_usage_perc`` (a fraction 0-1 despite the name); older versions
#: ``gpu_cache_usage_perc``.
RUNNING: Final = "vllm:num_requests_running"
WAITING: Final = "vllm:num_requests_waiting"
KV_USAGE: Final = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
GAUGES: Final = (RUNNING, WAITING, *KV_USAGE)
#: The latency histograms the witness reads, by the client's metric name. vLLM 0.32 has
#: ``inter_token_latency_seconds``; older ones only ``time_per_output_token_seconds``.
HISTOGRAMS: Final[dict[str, tuple[str, ...]]] = {
    "ttft": ("vllm:time_to_first_token_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "e2el": ("vllm:e2e_request_latency_seconds",),
}

#: The client's own timing error, per metric, in ms: the p99 of the client's stamp minus a
#: scripted server's send stamp at 1,000 concurrent streams (README, "client timing error":
#: TTFT p99 3.82 ms, ITL p99 5.44 ms; ``benchmarks/client_timing_error.py``). E2E ends on a
#: chunk stamp like TTFT's, so it carries TTFT's error. Part of ``client_late``'s allowance on
#: ITL (``witness_metric``); recorded with TTFT and E2E, which are not judged.
CLIENT_TIMING_ERROR_MS: Final[dict[str, float]] = {"ttft": 3.82, "itl": 5.44, "e2el": 3.82}

#: What vLLM 0.32's histograms measure, from/to (vllm/v1/metrics/stats.py, ``IterationStats``;
#: ``arrival_time`` is stamped by the renderer, ``renderers/base.py`` ``render_cmpl``/
#: ``render_chat``, when the API server's handler starts rendering and tokenizing the prompt
#: — after its event loop got to the request and parsed the HTTP body and JSON; the end stamps
#: are taken when the API server's output handler takes the engine's step outputs, before
#: detokenizing and the SSE write). ITL is stamped at both ends by the engine core, so whatever
#: the API server adds before the arrival stamp cancels in it; TTFT and E2E include none of it.
SERVER_CLOCK: Final[dict[str, str]] = {
    "ttft": "arrival stamp (API server, after HTTP parsing) -> first step output taken",
    "itl": "engine-core step stamp -> next step stamp, per request",
    "e2el": "arrival stamp (API server, after HTTP parsing) -> last step output taken",
}
#: The metrics ``client_late`` is judged on (frontend admission cancels in them).
JUDGED: Final = ("itl",)
#: The share of a judged metric's samples the lateness bound leaves out: one late token in a
#: hundred is a hiccup (a GC pause, the API server's own stall), not a late client.
LATE_FRACTION: Final = 0.01

#: Quantiles the witness reads from both sides.
WITNESS_QUANTILES: Final = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Scrape:
    """One ``/metrics`` exposition: every sample's value by name, then by label set."""

    samples: Mapping[str, Mapping[Labels, float]]

    def has(self, name: str) -> bool:
        return name in self.samples

    def total(self, name: str) -> float | None:
        """A counter summed over its label sets (None when the server has no such series)."""
        got = self.samples.get(name)
        return None if got is None else float(sum(got.values()))

    def gauge(self, name: str, *, combine: str = "sum") -> float | None:
        """A gauge over label sets: ``sum`` (requests across engines) or ``max`` (a fill level)."""
        got = self.samples.get(name)
        if not got:
            return None
        return float(sum(got.values()) if combine == "sum" else max(got.values()))

    def histogram(self, name: str) -> Histogram | None:
        """A histogram (``name`` without suffix) summed over label sets other than ``le``."""
        buckets = self.samples.get(name + "_bucket")
        if not buckets:
            return None
        by_le: dict[float, float] = {}
        for labels, v in buckets.items():
            le = dict(labels).get("le")
            if le is None:
                continue
            edge = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
            by_le[edge] = by_le.get(edge, 0.0) + v
        edges = tuple(sorted(by_le))
        return Histogram(
            edges=edges,
            cumulative=tuple(by_le[e] for e in edges),
            sum=self.total(name + "_sum") or 0.0,
            count=self.total(name + "_count") or 0.0,
        )


def _labels(text: str) -> Labels:
    """``a="x",b="y"`` → (("a","x"),("b","y")); handles escaped quotes and commas in values."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lstrip(",").strip()
        j = text.find('"', eq) + 1
        val: list[str] = []
        while j < n and text[j] != '"':
            if text[j] == "\\" and j + 1 < n:
                j += 1
                val.append({"n": "\n"}.get(text[j], text[j]))
            else:
                val.append(text[j])
            j += 1
        out.append((key, "".join(val)))
        i = j + 1
    return tuple(sorted(out))


def parse_exposition(text: str, names: Iterable[str] | None = None) -> Scrape:
    """Parse Prometheus text exposition. ``names`` keeps only those sample names (the cheap
    path for the gauge sampler); comments, ``_created`` series and bad lines are skipped."""
    keep = None if names is None else frozenset(names)
    prefixes = ("",) if keep is None else tuple(keep)
    samples: dict[str, dict[Labels, float]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#" or not line.startswith(prefixes):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace >= 0 and (space < 0 or brace < space):
            name = line[:brace]
            close = line.rfind("}")
            if close < brace:
                continue
            labels = _labels(line[brace + 1 : close])
            rest = line[close + 1 :].split()
        else:
            name = line[:space] if space > 0 else line
            labels = ()
            rest = line[space + 1 :].split() if space > 0 else []
        if (keep is not None and name not in keep) or name.endswith("_created") or not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        samples.setdefault(name, {})[labels] = value
    return Scrape(samples)


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts at upper edges (the last is +Inf), as Prometheus keeps them."""

    edges: tuple[float, ...]
    cumulative: tuple[float, ...]
    sum: float
    count: float

    def minus(self, before: Histogram | None) -> Histogram:
        """This histogram's increase since ``before`` (a reset or new edges: taken as is)."""
        if before is None or before.edges != self.edges:
            return self
        cum = tuple(a - b for a, b in zip(self.cumulative, before.cumulative, strict=True))
        if any(c < 0 for c in cum):  # the server restarted between the scrapes
            return self
        return Histogram(self.edges, cum, self.sum - before.sum, self.count - before.count)

    @property
    def total(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    def cdf(self, edge_index: int) -> float:
        return self.cumulative[edge_index] / self.total if self.total > 0 else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile by linear interpolation inside its bucket (``histogram_quantile``'s
        rule: the first bucket starts at 0; a quantile in the +Inf bucket is the last finite
        edge). NaN for an empty histogram."""
        n = self.total
        if n <= 0 or not self.edges:
            return math.nan
        rank = q * n
        i = bisect.bisect_left(self.cumulative, rank)
        i = min(i, len(self.edges) - 1)
        if math.isinf(self.edges[i]):
            finite = [e for e in self.edges if math.isfinite(e)]
            return finite[-1] if finite else math.nan
        lo_edge = self.edges[i - 1] if i > 0 else 0.0
        lo_count = self.cumulative[i - 1] if i > 0 else 0.0
        in_bucket = self.cumulative[i] - lo_count
        if in_bucket <= 0:
            return self.edges[i]
        return lo_edge + (self.edges[i] - lo_edge) * (rank - lo_count) / in_bucket


def bin_samples(samples_s: Sequence[float], edges: Sequence[float]) -> Histogram:
    """The client's samples (seconds) in the server's buckets (``le`` is inclusive)."""
    ordered = sorted(samples_s)
    cum = tuple(float(bisect.bisect_right(ordered, e)) for e in edges)
    return Histogram(tuple(edges), cum, float(sum(ordered)), float(len(ordered)))


def guardrails(
    before: Scrape | None, after: Scrape | None, peaks: Mapping[str, float]
) -> dict[str, Any]:
    """A run's server-side figures: counter deltas between the two scrapes and the gauges'
    peaks sampled during the run. ``source`` says what was available."""
    out: dict[str, Any] = {
        "source": "unavailable" if before is None or after is None else "/metrics deltas",
        "preemptions": None,
        "prefix_cache_queries": None,
        "prefix_cache_hits": None,
        "prefix_cache_hit_rate": None,
        "peak_running": peaks.get(RUNNING),
        "peak_waiting": peaks.get(WAITING),
        "peak_kv_cache_usage": next((peaks[k] for k in KV_USAGE if k in peaks), None),
        "spec_decode": None,
    }
    if before is None or after is None:
        return out

    def delta(name: str) -> float | None:
        a, b = after.total(name), before.total(name)
        return None if a is None else a - (b or 0.0)

    out["preemptions"] = delta(PREEMPTIONS)
    q, h = delta(PREFIX_QUERIES), delta(PREFIX_HITS)
    out["prefix_cache_queries"], out["prefix_cache_hits"] = q, h
    out["prefix_cache_hit_rate"] = h / q if q and h is not None else None
    draft = delta(SPEC_DRAFT_TOKENS)
    if draft is not None:
        acc = delta(SPEC_ACCEPTED) or 0.0
        out["spec_decode"] = {
            "drafts": delta(SPEC_DRAFTS),
            "draft_tokens": draft,
            "accepted_tokens": acc,
            "acceptance_rate": acc / draft if draft > 0 else None,
        }
    return out


def gauge_values(scrape: Scrape) -> dict[str, float]:
    """The sampled gauges of one scrape (requests summed over engines, KV fill the max)."""
    out: dict[str, float] = {}
    for name in GAUGES:
        v = scrape.gauge(name, combine="max" if name in KV_USAGE else "sum")
        if v is not None:
            out[name] = v
    return out


def peak(into: dict[str, float], values: Mapping[str, float]) -> None:
    """Fold one sample's gauges into the running peaks."""
    for k, v in values.items():
        if k not in into or v > into[k]:
            into[k] = v


def _excess_ms(ordered: Sequence[float], server: Histogram, allowed: int) -> float | None:
    """A lower bound on how far the client's samples trail their server twins, ``allowed`` of
    them excepted: at each finite edge e the server counted k samples at or under e; were all
    but ``allowed`` client samples at most L later than their twins, at least k - allowed of
    the client's would be at most e + L, so L ≥ x_(k - allowed) - e. None without a usable edge."""
    n_c, n_s = len(ordered), server.total
    best = -math.inf
    for i, e in enumerate(server.edges):
        if math.isinf(e):
            continue
        k = round(server.cumulative[i] * n_c / n_s) - allowed  # scaled when the counts differ
        if k >= 1:
            best = max(best, (ordered[min(k, n_c) - 1] - e) * 1000.0)
    return None if math.isinf(best) else best


def witness_metric(
    client_s: Sequence[float],
    server: Histogram,
    tolerance_ms: float,
    *,
    judged: bool = True,
    comparable: bool | None = None,
) -> dict[str, Any]:
    """One latency metric, client against server, on the server's bucket edges.

    - ``quantiles``: per q in ``WITNESS_QUANTILES``, the server's and the binned client's
      interpolated quantile and the client's exact one (ms), and their gap (binned client -
      server: the like-for-like figure);
    - ``max_cdf_gap``: the largest |F_client(e) - F_server(e)| over the edges;
    - ``excess_ms``: a lower bound on the largest per-sample amount by which the client's
      figure trails the server's (at least one sample is this much longer on the client);
      ``excess_p99_ms``: the same with ``LATE_FRACTION`` (1%) of the client's samples excepted
      (at least 1% of the samples are this much longer). See ``_excess_ms``.

    What the excess means depends on where vLLM's clock starts (``SERVER_CLOCK``):

    - ``judged`` (ITL: engine-core stamps at both ends, so the frontend's admission queue
      cancels): ``client_late_ms`` = ``excess_p99_ms``; ``allowance_ms`` = the client's timing
      error + one engine step (the server's median ITL: the API-server process hands each
      step's tokens to its streams one after another, so a token can leave up to a step after
      its stamp without the client being late); ``late`` when ``comparable`` (both sides saw
      the same tokens; default: equal counts) and ``client_late_ms`` > ``allowance_ms``;
    - not judged (TTFT, E2E: vLLM's clock starts at its arrival stamp, after the frontend
      parsed the HTTP request, in its event loop): ``frontend_gap_ms`` = ``excess_ms``, the
      time the API server's queue and parsing (plus the network and the client) added before
      vLLM started counting. Informational: a server slow to admit, not a late client."""
    binned = bin_samples(client_s, server.edges)
    ordered = sorted(client_s)
    n_c, n_s = len(ordered), server.total
    matched = n_c > 0 and n_s == n_c
    out: dict[str, Any] = {
        "client_count": n_c,
        "server_count": n_s,
        "matched": matched,
        "judged": judged,
        "tolerance_ms": tolerance_ms,
    }
    if n_c == 0 or n_s <= 0:
        out.update(_no_witness(judged))
        return out
    out.update(_witness_figures(ordered, binned, server))
    if not judged:
        out.update(frontend_gap_ms=out["excess_ms"], late=False)
        return out
    comparable = matched if comparable is None else comparable
    out.update(_late_verdict(server, tolerance_ms, out["excess_p99_ms"], comparable))
    return out


def _no_witness(judged: bool) -> dict[str, Any]:
    """The figures of a metric one side has no samples of: none, and never late."""
    return {
        "quantiles": {},
        "max_cdf_gap": None,
        "excess_ms": None,
        "excess_p99_ms": None,
        **(
            {"client_late_ms": None, "allowance_ms": None, "late": False}
            if judged
            else {"frontend_gap_ms": None, "late": False}
        ),
    }


def _witness_figures(
    ordered: Sequence[float], binned: Histogram, server: Histogram
) -> dict[str, Any]:
    """Quantiles side by side, the largest CDF gap over the edges, and the excess (all of the
    client's samples, then ``LATE_FRACTION`` of them excepted); ``ordered`` is sorted."""
    gaps = [abs(binned.cdf(i) - server.cdf(i)) for i in range(len(server.edges))]
    return {
        "quantiles": _witness_quantiles(ordered, binned, server),
        "max_cdf_gap": max(gaps) if gaps else None,
        "excess_ms": _excess_ms(ordered, server, 0),
        "excess_p99_ms": _excess_ms(ordered, server, math.floor(LATE_FRACTION * len(ordered))),
    }


def _late_verdict(
    server: Histogram, tolerance_ms: float, excess99: float | None, comparable: bool
) -> dict[str, Any]:
    """A judged metric's verdict: late when ``comparable`` and the client trails the server
    (``excess99``, ms) by more than its timing error plus one engine step (the median)."""
    step = server.quantile(0.5) * 1000.0
    allowance = tolerance_ms + (step if math.isfinite(step) else 0.0)
    return {
        "client_late_ms": excess99,
        "allowance_ms": allowance,
        "comparable": comparable,
        "late": bool(comparable and excess99 is not None and excess99 > allowance),
    }


def _witness_quantiles(
    ordered: Sequence[float], binned: Histogram, server: Histogram
) -> dict[str, dict[str, float]]:
    """Per q in ``WITNESS_QUANTILES`` (key ``p50`` ...): the server's and the binned client's
    interpolated quantile, the client's exact one (``ordered``: sorted seconds) and the gap, ms."""
    ms, n_c = 1000.0, len(ordered)
    qs: dict[str, dict[str, float]] = {}
    for q in WITNESS_QUANTILES:
        s, c = server.quantile(q) * ms, binned.quantile(q) * ms
        exact = ordered[min(n_c - 1, max(0, math.ceil(q * n_c) - 1))] * ms
        qs[f"p{round(q * 100)}"] = {
            "server_ms": s,
            "client_binned_ms": c,
            "client_ms": exact,
            "gap_ms": c - s,
        }
    return qs


def witness(
    before: Scrape | None,
    after: Scrape | None,
    client: Mapping[str, Sequence[float]],
    tolerance_ms: Mapping[str, float] = CLIENT_TIMING_ERROR_MS,
) -> dict[str, Any]:
    """Per metric (``ttft``, ``itl``, ``e2el``; client samples in seconds): the server's
    histogram delta over the run against the client's samples (``witness_metric``). A metric
    the server does not export is left out.

    - ``late``: the judged metrics (ITL) whose client figures trail the server's beyond the
      allowance, where both sides saw the same tokens: the same requests (TTFT counts equal)
      and no more client gaps than the server's (the client cannot split the gaps of tokens
      vLLM sent together in its first event, so it may count a few fewer);
    - ``frontend_gap_ms``: per TTFT / E2E, the lower bound on what the API server's admission
      (queue, HTTP parsing) added before vLLM's clock started — the server being slow to
      admit, reported, never a ``client_late`` flag."""
    out: dict[str, Any] = {
        "source": "unavailable",
        "metrics": {},
        "late": [],
        "frontend_gap_ms": {},
    }
    if before is None or after is None:
        return out
    out["source"] = "/metrics histogram deltas"
    deltas: dict[str, tuple[str, Histogram]] = {}
    for metric, names in HISTOGRAMS.items():
        name = next((n for n in names if after.histogram(n) is not None), None)
        if name is None or metric not in client:
            continue
        hist = after.histogram(name)
        assert hist is not None
        deltas[metric] = (name, hist.minus(before.histogram(name)))
    ttft = deltas.get("ttft")
    same_requests = None if ttft is None else ttft[1].total == len(client["ttft"]) > 0
    for metric, (name, delta) in deltas.items():
        judged = metric in JUDGED
        comparable = None
        if judged and same_requests is not None:
            comparable = same_requests and 0 < len(client[metric]) <= delta.total
        w = witness_metric(
            client[metric],
            delta,
            tolerance_ms.get(metric, 0.0),
            judged=judged,
            comparable=comparable,
        )
        w["histogram"] = name
        w["server_clock"] = SERVER_CLOCK.get(metric, "")
        w["edges"] = [e if math.isfinite(e) else "+Inf" for e in delta.edges]
        w["server_cumulative"] = list(delta.cumulative)
        out["metrics"][metric] = w
        if w["late"]:
            out["late"].append(metric)
        if not judged:
            out["frontend_gap_ms"][metric] = w["frontend_gap_ms"]
    return out


def client_samples(records: Iterable[Any]) -> dict[str, list[float]]:
    """The client's TTFT, per-token ITL and E2E samples (seconds) of the successful requests,
    as ``metrics.summary`` counts them."""
    from pytest_llmperf.metrics.summary import itl_per_token

    out: dict[str, list[float]] = {"ttft": [], "itl": [], "e2el": []}
    for r in records:
        if not r.ok:
            continue
        out["e2el"].append(r.e2e)
        if r.ttft is not None:
            out["ttft"].append(r.ttft)
        out["itl"].extend(itl_per_token(r))
    return out
