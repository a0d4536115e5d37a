"""Long context for real: the study's 8K preset (8,192 prompt tokens, 512 out) on the shared
dense tiny server (32K positions; its plan's ``--max-model-len`` is the preset's 8,960).

Each prompt is built exact against the server's own tokenizer and the server's ``usage``
reports exactly that many prompt tokens; the 4K preset's plan fits the same server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_llmperf.config.records import WorkloadRef
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.session.engine import context_needed, to_load_workload
from pytest_llmperf.workload.prompts import prepare_requests_sync

pytestmark = pytest.mark.vllm


def served_max_len(server: Any) -> int:
    import urllib.request

    with urllib.request.urlopen(server.endpoint.url("/v1/models"), timeout=30) as resp:
        return int(json.loads(resp.read())["data"][0]["max_model_len"])


def test_8k_prompts_are_served_with_exact_prompt_token_counts(dense_server: Any) -> None:
    ep = dense_server.endpoint
    ref = WorkloadRef.from_preset("long-context-8k")
    assert served_max_len(dense_server) == context_needed([ref]) == 8960
    # 512 output tokens as the preset says; 3 requests, 2 at a time: 24K prompt tokens
    w = to_load_workload(ref)
    reqs = prepare_requests_sync(ep, w, 3)
    r = run_load(ep, w, LoadSpec(concurrency=2, num_requests=3, timeout_s=600), requests=reqs)
    assert r.summary.success_rate == 1.0, r.summary.errors
    r.check()
    for req, rec in zip(reqs, r.records, strict=True):
        assert req.input_tokens == req.expected_prompt_tokens == 8192
        assert rec.prompt_tokens == 8192
        assert rec.completion_tokens == 512
    # the 4K preset needs less context than the server has
    assert context_needed([WorkloadRef.from_preset("long-context-4k")]) <= 8960
