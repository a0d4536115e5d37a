"""The load generator against real vLLM CPU servers (tiny models; the lead's session fixtures
``dense_server`` and ``vision_server`` from tests/conftest.py)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

pytestmark = pytest.mark.vllm

BLIP2_TOKENS_PER_IMAGE = 32


def endpoint_of(server: Any) -> Endpoint:
    return server if isinstance(server, Endpoint) else server.endpoint


def server_count(ep: Endpoint, payload: dict[str, Any]) -> int:
    """Ask the server's /tokenize directly (independently of the workload module)."""
    import urllib.request

    req = urllib.request.Request(
        ep.url("/tokenize"),
        data=json.dumps({"model": ep.model, **payload}).encode(),
        headers={"Content-Type": "application/json", **ep.headers()},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(json.loads(resp.read())["count"])


@pytest.mark.parametrize(
    ("endpoint", "n_in"), [("completions", 100), ("completions", 517), ("chat", 100)]
)
def test_exact_input_lengths_verified_by_tokenize(
    dense_server: Any, endpoint: str, n_in: int
) -> None:
    ep = endpoint_of(dense_server)
    w = Workload("exact", endpoint=endpoint, input_tokens=n_in, output_tokens=4)  # type: ignore[arg-type]
    for r in prepare_requests_sync(ep, w, 12):
        body = json.loads(r.body)
        if endpoint == "chat":
            payload = {"messages": body["messages"], "add_generation_prompt": True}
        else:
            payload = {"prompt": body["prompt"]}
        assert server_count(ep, payload) == n_in


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_output_lengths_exact_and_token_totals_agree(dense_server: Any, endpoint: str) -> None:
    ep = endpoint_of(dense_server)
    w = Workload("out", endpoint=endpoint, input_tokens=120, output_tokens=16)  # type: ignore[arg-type]
    r = run_load(ep, w, LoadSpec(concurrency=8, num_requests=24, warmup_requests=4))
    assert r.summary.success_rate == 1.0, r.summary.errors
    for rec in r.records:
        assert rec.prompt_tokens == 120
        assert rec.completion_tokens == 16 == sum(rec.chunk_tokens)
    r.check()
    tc = r.token_check
    assert tc.metrics_status == "ok", tc.reasons
    assert tc.metrics_prompt_delta == tc.usage_prompt_tokens == tc.client_input_tokens == 24 * 120
    assert tc.metrics_generation_delta == tc.usage_completion_tokens == 24 * 16
    s = r.summary
    # One ITL sample per token after the first chunk. vLLM's frontend merges the deltas a lagging
    # stream has not sent yet, so now and then a chunk carries 2 tokens (CI saw 359 of 360).
    after_first = sum(sum(rec.chunk_tokens[1:]) for rec in r.records)
    assert s.latency["ttft"].count == 24 and s.latency["itl"].count == after_first
    assert after_first >= 24 * 15 - 24  # nearly every first chunk is a single token
    assert s.output_throughput > 0 and s.peak_output_throughput >= 16


def test_vision_prompt_tokens_include_image_tokens(vision_server: Any) -> None:
    ep = endpoint_of(vision_server)
    w = Workload(
        "vis",
        kind="vision",
        endpoint="chat",
        input_tokens=40,
        output_tokens=8,
        images_per_request=1,
    )
    reqs = prepare_requests_sync(ep, w, 8)
    r = run_load(ep, w, LoadSpec(concurrency=4, num_requests=8), requests=reqs)
    assert r.summary.success_rate == 1.0, r.summary.errors
    r.check()
    for req, rec in zip(reqs, r.records, strict=True):
        messages = json.loads(req.body)["messages"]
        parts = messages[0]["content"]
        text_only = [{"role": "user", "content": parts[0]["text"]}]
        # the chat template writes an image part as an "<image>" marker in the text
        with_marker = [{"role": "user", "content": [parts[0], {"type": "text", "text": "<image>"}]}]
        marker = server_count(ep, {"messages": with_marker}) - server_count(
            ep, {"messages": text_only}
        )
        assert server_count(ep, {"messages": text_only}) == 40
        assert rec.prompt_tokens == req.expected_prompt_tokens
        assert rec.prompt_tokens == server_count(ep, {"messages": messages})
        assert rec.prompt_tokens - 40 - marker == BLIP2_TOKENS_PER_IMAGE
    assert r.token_check.image_tokens_per_image is not None


def test_thousand_concurrent_requests_all_succeed_without_fd_leak(dense_server: Any) -> None:
    ep = endpoint_of(dense_server)
    w = Workload("c1000", input_tokens=100, output_tokens=16)
    reqs = prepare_requests_sync(ep, w, 1000)
    before = len(os.listdir("/proc/self/fd"))
    r = run_load(ep, w, LoadSpec(concurrency=1000, num_requests=1000, timeout_s=900), requests=reqs)
    assert len(os.listdir("/proc/self/fd")) == before
    assert r.summary.completed == 1000 and r.summary.success_rate == 1.0, r.summary.errors
    r.check()
    assert r.token_check.metrics_status == "ok", r.token_check.reasons
    assert r.summary.total_output_tokens == 16_000
