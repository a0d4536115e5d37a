"""Percentile gates as confidence statements on a real vLLM CPU server (the shared
``dense_server``; inner ``pytest --llmperf`` sessions point at it, nothing is launched): a p99
TTFT ceiling a minute wide is INCONCLUSIVE from 10 requests (too few for any 95% upper bound:
p99 needs 299) and PASSes from 300; under ``--llmperf-strict`` the INCONCLUSIVE one fails the
test; a level sized by ``min_duration_s`` keeps sending until the duration is reached.

The gate verdicts are read from results.json, so a run the client-bound check flags on a busy
machine (a separate verdict) does not hide what the gates said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.vllm

TOML = """\
concurrency = {levels}
warmup_requests = 2
{extra}
[client]
loop_lag_p99_ms = 60000

[requests_per_level]
{per_level}

[[models]]
name = "dense-gqa"
tiny = "dense-gqa"

[[workloads]]
name = "short"
preset = "text"
input_tokens = 32
output_tokens = 16

[[gates]]
p99_ttft_ms_max = 60000
"""


def inner(
    pytester: pytest.Pytester, server: Any, *args: str, levels: str, per_level: str, extra: str = ""
) -> tuple[Any, dict[str, Any]]:
    pytester.path.joinpath("llmperf.toml").write_text(
        TOML.format(levels=levels, per_level=per_level, extra=extra)
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--llmperf",
        "--llmperf-endpoint",
        server.base_url,
        "--llmperf-served-model",
        server.served_model_name,
        *args,
        timeout=600,
    )
    data = json.loads(Path(pytester.path, ".llmperf", "results.json").read_text())
    return result, {c["concurrency"]: c for c in data["cases"]}


def p99_gate(case: dict[str, Any]) -> dict[str, Any]:
    (gate,) = [g for g in case["gates"] if g["name"] == "p99_ttft_ms_max"]
    return gate


def test_p99_gate_is_inconclusive_at_small_n_and_passes_at_300(
    pytester: pytest.Pytester, dense_server: Any
) -> None:
    result, cases = inner(
        pytester, dense_server, levels="[2, 16]", per_level='"2" = 10\n"16" = 300'
    )
    out = result.stdout.str()
    small, big = p99_gate(cases[2]), p99_gate(cases[16])
    assert small["verdict"] == "INCONCLUSIVE", small
    assert small["passed"] is True  # not a failure by default ...
    assert small["bound"]["n"] == 10 and small["bound"]["upper"] is None
    assert small["bound"]["min_n"] == 299
    assert "INCONCLUSIVE p99_ttft_ms <= 60,000 ms at 95% confidence" in out  # ... but shown
    assert "LLMPerfInconclusive" in out
    assert cases[2]["percentiles"]["ttft"]["n"] == 10
    assert big["verdict"] == "PASS", big
    assert big["bound"]["n"] == 300 and big["bound"]["upper_k"] == 300
    assert big["bound"]["upper"] <= 60000
    assert cases[16]["percentiles"]["ttft"]["p99"]["enough"] is True
    assert [d["detail"]["samples"]["ttft"] for d in cases[16]["runs"]] == [300]
    for c in cases.values():  # a case fails only for another reason (client-bound)
        assert c["passed"] == (not c["client_bound"]), c["client_reasons"]


def test_strict_fails_an_inconclusive_gate(pytester: pytest.Pytester, dense_server: Any) -> None:
    result, cases = inner(
        pytester, dense_server, "--llmperf-strict", levels="[2]", per_level='"2" = 10'
    )
    gate = p99_gate(cases[2])
    assert gate["verdict"] == "INCONCLUSIVE" and gate["passed"] is False
    assert cases[2]["passed"] is False and result.ret != 0
    assert "FAIL INCONCLUSIVE (strict) p99_ttft_ms" in result.stdout.str()


def test_min_duration_keeps_the_level_sending(pytester: pytest.Pytester, dense_server: Any) -> None:
    _, cases = inner(
        pytester, dense_server, levels="[2]", per_level='"2" = 4', extra="min_duration_s = 4"
    )
    (run,) = cases[2]["runs"]
    summary = run["detail"]["summary"]
    assert summary["duration_s"] >= 4.0
    assert summary["num_requests"] > 4  # the count alone would have stopped at 4
    assert run["detail"]["token_check"]["status"] == "ok"
    assert cases[2]["percentiles"]["ttft"]["n"] == summary["completed"]
