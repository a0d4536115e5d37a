"""A token-count mismatch fails the perf test (README: "Token totals are checked three ways
(client, ``usage``, vLLM's ``/metrics`` counters); a mismatch fails the test"), end to end
through ``pytest --llmperf``.

vLLM counts tokens correctly, so the disagreement comes from the scripted instrument, which
can be told to over-report prompt tokens in ``usage`` (``usage_skew``) or to count extra
generation tokens in ``/metrics`` (``metrics_skew``). The same session against the honest
instrument passes: the skew, nothing else, fails it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pytest_llmperf.testing.instrument import Instrument

CONFIG = """\
concurrency = [2]
runs = 1
warmup_requests = 0
requests_per_level = { "2" = 6 }
models = ["dense-gqa"]

[client]
loop_lag_p99_ms = 60000

[[workloads]]
name = "small"
preset = "text"
input_tokens = 8
output_tokens = 4
"""


@pytest.fixture(scope="module")
def instrument() -> Iterator[Instrument]:
    with Instrument() as inst:
        yield inst


@pytest.mark.parametrize(
    ("script", "passes", "says"),
    [
        ("", True, None),
        ("&usage_skew=1", False, "server counted 9 prompt tokens, the client built 8"),
        ("&metrics_skew=2", False, "server /metrics counted"),
    ],
    ids=["honest", "usage-skew", "metrics-skew"],
)
def test_token_mismatch_fails_the_perf_test(
    pytester: pytest.Pytester, instrument: Instrument, script: str, passes: bool, says: str | None
) -> None:
    pytester.makefile(".toml", llmperf=CONFIG)
    result = pytester.runpytest_subprocess(
        "--llmperf",
        "-p",
        "no:cacheprovider",
        f"--llmperf-endpoint={instrument.base_url}",
        f"--llmperf-served-model=instrument?ttft=0.001&itl=0.001{script}",
        timeout=120,
    )
    out = result.stdout.str()
    case = json.loads((pytester.path / ".llmperf" / "results.json").read_text())["cases"][0]
    status = case["runs"][0]["detail"]["token_check"]["status"]
    if passes:
        result.assert_outcomes(passed=1)
        assert status == "ok"
        return
    result.assert_outcomes(failed=1)
    assert status == "mismatch"
    assert "token counts disagree" in out and says in out, out[-3000:]
