"""The report's "Server guardrails" section: per run, what vLLM's ``/metrics`` said
(``detail.server``: guardrails and the second witness) and the flags it raised."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmperf.verdicts.case_result import CaseResult

_HEAD = (
    "case", "run", "preemptions", "prefix-cache hits / queried tokens", "peak running",
    "peak waiting", "peak KV cache", "spec-decode acceptance",
    "client late by ≥ (ITL ms, 1% of tokens / allowed)",
    "frontend/queue gap ≥ (TTFT / E2E ms)", "max CDF gap (TTFT / ITL / E2E)", "flags",
)  # fmt: skip


def _n(x: Any, digits: int = 0, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.{digits}f}%" if pct else f"{x:,.{digits}f}"


def _witness(w: Mapping[str, Any], key: str, digits: int, metrics: Sequence[str]) -> str:
    ms = w.get("metrics") or {}
    return " / ".join(_n((ms.get(m) or {}).get(key), digits) for m in metrics)


def _late(w: Mapping[str, Any]) -> str:
    itl = (w.get("metrics") or {}).get("itl") or {}
    if itl.get("client_late_ms") is None:
        return "–"
    mark = "!" if "itl" in (w.get("late") or ()) else ""
    return f"{_n(itl['client_late_ms'], 1)}{mark} / {_n(itl.get('allowance_ms'), 1)}"


def _row(c: CaseResult, i: int, s: Mapping[str, Any]) -> str:
    e = html.escape
    g = s.get("guardrails") or {}
    w = s.get("witness") or {}
    hits, q = g.get("prefix_cache_hits"), g.get("prefix_cache_queries")
    cache = "–" if hits is None else f"{_n(hits)} / {_n(q)}"
    spec = g.get("spec_decode") or {}
    flags = s.get("flags") or []
    flag_text = "; ".join(
        ("FAIL " if f.get("fails") else "warn ") + str(f.get("message", "")) for f in flags
    )
    cls = " class='gatefail'" if any(f.get("fails") for f in flags) else ""
    cells = [
        _n(g.get("preemptions")),
        cache,
        _n(g.get("peak_running")),
        _n(g.get("peak_waiting")),
        _n(g.get("peak_kv_cache_usage"), 1, pct=True),
        _n(spec.get("acceptance_rate"), 1, pct=True),
        _late(w),
        _witness(w, "frontend_gap_ms", 1, ("ttft", "e2el")),
        _witness(w, "max_cdf_gap", 2, ("ttft", "itl", "e2el")),
    ]
    return (
        f"<tr{cls}><td class='l'>{e(c.case_id)}</td><td>{i + 1}</td>"
        + "".join(f"<td>{e(x)}</td>" for x in cells)
        + f"<td class='l gates'>{e(flag_text) or 'none'}</td></tr>"
    )


def server_section(cases: Sequence[CaseResult]) -> str:
    """The section's HTML (empty when no run recorded the server's figures)."""
    rows = [
        _row(c, i, d["server"])
        for c in cases
        for i, d in enumerate(c.details)
        if isinstance(d, Mapping) and isinstance(d.get("server"), Mapping)
    ]
    if not rows:
        return ""
    head = "".join(f"<th class='l'>{html.escape(h)}</th>" for h in _HEAD)
    return (
        "<h2>Server guardrails</h2><p>From vLLM's own <code>/metrics</code> over each run: "
        "counter deltas, gauge peaks sampled at 2 Hz, and its latency histograms as a second "
        'witness of the client\'s figures. "Client late by ≥": a lower bound on how far at '
        "least 1% of the client's inter-token gaps trail vLLM's engine-stamped ones, against "
        "what is allowed (the client's timing error + one engine step; ! = beyond it: the "
        'client_late flag). "Frontend/queue gap ≥": how much longer at least one request\'s '
        "TTFT / E2E was on the client than in vLLM's histograms, whose clock starts only after "
        "its API server admitted and parsed the request: the server slow to admit (its queue, "
        "HTTP parsing on a busy core), reported, not a client fault.</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )
