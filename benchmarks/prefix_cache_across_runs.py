"""Prefix-cache hits across the runs and levels of a session, before and after fresh prompts.

Before issue 10 a case's prompts depended only on ``Workload.seed`` (always 0) and the request
index, so every run and every level re-sent the same prompts and vLLM's prefix cache served
them. Now each run draws its prompts from ``prompt_seed(case, run)``. This sends the same
session twice to one real tiny vLLM server (launched with the engine's CPU layout) — 3 runs x 2
levels (c=1, c=16) of 500-token prompts — once with seed 0 everywhere (the old behaviour) and
once with the engine's seeds, and prints the share of prompt tokens the server's
``vllm:prefix_cache_hits`` / ``vllm:prefix_cache_queries`` deltas say came from the cache:

    .venv/bin/python benchmarks/prefix_cache_across_runs.py

Goal: with fresh prompts, zero hits beyond a request's own block-rounding (< 1% of tokens).
"""

from __future__ import annotations

import sys
from dataclasses import replace

from _tiny_server import pin_client, start_tiny_server

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.probe import http_get
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.metrics.server import (
    PREFIX_HITS,
    PREFIX_QUERIES,
    Scrape,
    guardrails,
    parse_exposition,
)
from pytest_llmperf.session.engine import prompt_seed
from pytest_llmperf.workload.prompts import Workload

LEVELS = ((1, 8), (16, 48))
RUNS = 3


def scrape(ep: Endpoint) -> Scrape:
    status, body = http_get(ep, "/metrics", timeout=10)
    assert status == 200, f"/metrics answered {status}"
    return parse_exposition(body.decode("utf-8", "replace"), (PREFIX_HITS, PREFIX_QUERIES))


def session(ep: Endpoint, fresh: bool) -> tuple[float, float]:
    base = Workload("text", input_tokens=500, output_tokens=16)
    before = scrape(ep)
    for c, n in LEVELS:
        case = f"tiny-text-c{c}"
        for run in range(RUNS):
            w = replace(base, seed=prompt_seed(case, run)) if fresh else base
            r = run_load(ep, w, LoadSpec(concurrency=c, num_requests=n, warmup_requests=0))
            assert r.summary.success_rate == 1.0, r.summary.errors
    g = guardrails(before, scrape(ep), {})
    hits, queries = g["prefix_cache_hits"], g["prefix_cache_queries"]
    assert hits is not None and queries, "the server has no prefix-cache counters on /metrics"
    return hits, queries


def main() -> int:
    print(pin_client())
    server, _ = start_tiny_server("dense-gqa")
    try:
        ep = Endpoint(server.base_url, "tiny")
        old = session(ep, fresh=False)
        # a new server would be cleaner, but the old session's prompts (seed 0) are not among
        # the fresh ones, so its cache entries cannot serve them
        new = session(ep, fresh=True)
    finally:
        server.stop()
    for label, (hits, queries) in (("seed 0 in every run (before)", old), ("fresh (after)", new)):
        print(
            f"{label:30s}: {hits:8.0f} of {queries:8.0f} prompt tokens from the prefix cache "
            f"({100 * hits / queries:.1f}%), {RUNS} runs x levels {[c for c, _ in LEVELS]}"
        )
    share = new[0] / new[1]
    print(f"goal: fresh prompts < 1% from the cache -> {'MET' if share < 0.01 else 'NOT MET'}")
    return 0 if share < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
