"""Workloads that build their own requests, on a real vLLM CPU server (the shared
``dense_server``): a file dataset whose per-request prompt tokens (counted by the server's
tokenizer when the requests were built) match what the server reports in ``usage``, and a
multi-turn workload with a shared system prompt whose prefix-cache hit rate (``/metrics``
deltas) is reported beside TTFT and is far above a control workload's.

Inner ``pytest --llmperf`` sessions point at the shared server (nothing is launched), one
small matrix each (closed loop at concurrency 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.workload.datasets import generate_dataset, load_dataset

pytestmark = pytest.mark.vllm

TOML = """\
concurrency = [2]
min_requests = {requests}
warmup_requests = 2
[client]
loop_lag_p99_ms = 60000

[[models]]
name = "dense-gqa"
tiny = "dense-gqa"

{workloads}
"""


def inner(pytester: pytest.Pytester, server: Any, workloads: str, requests: int) -> Any:
    pytester.path.joinpath("llmperf.toml").write_text(
        TOML.format(workloads=workloads, requests=requests)
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--llmperf",
        "--llmperf-endpoint",
        server.base_url,
        "--llmperf-served-model",
        server.served_model_name,
        timeout=600,
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    data = json.loads(Path(pytester.path, ".llmperf", "results.json").read_text())
    return {c["workload"]: c for c in data["cases"]}


def test_file_dataset_token_counts_match_through_the_servers_tokenizer(
    pytester: pytest.Pytester, dense_server: Any
) -> None:
    path = generate_dataset(pytester.path / "prompts.jsonl", n=20, fmt="sharegpt", seed=5)
    assert len(load_dataset(path)) == 20
    cases = inner(
        pytester,
        dense_server,
        '[[workloads]]\nname = "file"\npreset = "text"\nendpoint = "chat"\n'
        'input_tokens = 1024\noutput_tokens = 8\ndataset = "prompts.jsonl"\n',
        requests=20,
    )
    (run,) = cases["file"]["runs"]
    detail = run["detail"]
    rows = detail["requests"]["rows"]
    assert len(rows) == 20
    assert detail["requests"]["agree"] == 20, rows  # tokenized == usage, request by request
    assert len({tokenized for _, tokenized, _ in rows}) > 5  # the file's prompts differ
    assert detail["token_check"]["status"] == "ok", detail["token_check"]
    assert detail["token_check"]["metrics_status"] == "ok"  # /metrics agrees in total
    assert detail["token_check"]["usage_prompt_tokens"] == sum(t for _, t, _ in rows)


def test_multi_turn_prefix_cache_hit_rate_is_reported(
    pytester: pytest.Pytester, dense_server: Any
) -> None:
    workloads = (
        '[[workloads]]\nname = "chat3"\npreset = "text"\nendpoint = "chat"\n'
        "input_tokens = 160\noutput_tokens = 16\nshared_prefix_tokens = 140\nturns = 3\n\n"
        '[[workloads]]\nname = "lengths"\npreset = "text"\noutput_tokens = 16\n'
        'input_lengths = { distribution = "uniform", low = 150, high = 400 }\n'
    )
    cases = inner(pytester, dense_server, workloads, requests=24)
    multi = cases["chat3"]["runs"][0]
    control = cases["lengths"]["runs"][0]
    pc = multi["detail"]["prefix_cache"]
    print(
        f"multi-turn prefix-cache hit rate {pc['hit_rate']:.3f} ({pc['hits']:.0f}/"
        f"{pc['queries']:.0f} tokens), TTFT p50 {multi['metrics']['p50_ttft_ms']:.1f} ms; "
        f"control {control['detail']['prefix_cache']['hit_rate']:.3f}, TTFT p50 "
        f"{control['metrics']['p50_ttft_ms']:.1f} ms"
    )
    assert pc["source"] == "/metrics deltas" and pc["queries"] > 0
    assert multi["metrics"]["prefix_cache_hit_rate"] == pc["hit_rate"]
    assert pc["hit_rate"] > 0.3  # shared system prompt + earlier turns come from the cache
    assert control["detail"]["prefix_cache"]["hit_rate"] < 0.1  # distinct prompts barely hit
    assert pc["hit_rate"] > 3 * control["detail"]["prefix_cache"]["hit_rate"]
    # synthetic lengths: exact per request against the server's tokenizer, inside the bounds
    rows = control["detail"]["requests"]["rows"]
    assert all(150 <= t <= 400 and t == u for _, t, u in rows), rows
    assert len({t for _, t, _ in rows}) > 10
    # turns carry the conversation: later turns are longer
    turns = [t for _, t, _ in multi["detail"]["requests"]["rows"]]
    assert turns[-1] > turns[0] + 2 * 160
