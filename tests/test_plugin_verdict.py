"""The session's family-wise baseline verdict through real ``pytest --llmperf`` sessions.

The server is the measuring instrument (``testing.instrument``), a scripted OpenAI-compatible
server with KNOWN timings: its inter-token delay is set to 2 ms for the baseline and 4 ms for
the "slower server", so the expected change is known (about -40% output throughput) and these
tests check the plugin's wiring (the final ``llmperf::baseline_comparison`` item, pytest's exit
code, JUnit, comparison.json, strictness, config keys), not vLLM's performance. The same checks
on real vLLM are in tests/test_plugin_baseline.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_plugin import out, perf_toml, run

from pytest_llmperf.testing.instrument import Instrument

CASE = "dense-gqa-text-c4"
FAST = "instrument?ttft=0.005&itl=0.002"
SLOW = "instrument?ttft=0.005&itl=0.004"
TOML = perf_toml(levels="4", requests=24)


@pytest.fixture(scope="module")
def instrument() -> Iterator[Instrument]:
    with Instrument() as inst:
        yield inst


def session(
    pytester: pytest.Pytester, inst: Instrument, model: str, *args: str
) -> pytest.RunResult:
    return run(
        pytester,
        "--llmperf",
        "--llmperf-endpoint",
        inst.base_url,
        "--llmperf-served-model",
        model,
        "--llmperf-runs",
        "5",
        *args,
    )


def junit(path: Path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """testcase name -> (its properties, its failure messages)."""
    out_: dict[str, tuple[dict[str, str], list[str]]] = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in tc.iter("property")}
        fails = [f.get("message", "") + (f.text or "") for f in tc.iter("failure")]
        out_[tc.get("name", "")] = (props, fails)
    return out_


def test_a_slower_server_fails_the_final_verdict_item_in_exit_code_and_junit(
    pytester: pytest.Pytester, instrument: Instrument
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(TOML)
    saved = session(pytester, instrument, FAST, "--llmperf-save-baseline")
    saved.assert_outcomes(passed=1)

    same = session(pytester, instrument, FAST, "--llmperf-compare", "--junitxml=same.xml")
    assert same.ret == 0, out(same)
    same.assert_outcomes(passed=2)  # the case and llmperf::baseline_comparison
    props, fails = junit(pytester.path / "same.xml")["baseline_comparison"]
    assert fails == [] and props["llmperf.convicted"] == ""
    assert props["llmperf.family"].startswith("holm, 1 tests")

    # The instrument's model name is part of the case fingerprint: allowed to differ here.
    slow = session(
        pytester,
        instrument,
        SLOW,
        "--llmperf-compare",
        "--llmperf-ignore-field",
        "model_name",
        "--junitxml=slow.xml",
    )
    assert slow.ret == pytest.ExitCode.TESTS_FAILED, out(slow)
    slow.assert_outcomes(passed=1, failed=1)
    assert "FAILED llmperf::baseline_comparison" in slow.stdout.str()
    cases = junit(pytester.path / "slow.xml")
    props, fails = cases["baseline_comparison"]
    assert props["llmperf.convicted"] == CASE
    assert "output_throughput" in props[f"llmperf.regression[{CASE}]"]
    assert "model_name" in props[f"llmperf.changed_since_baseline[{CASE}]"]
    (failure,) = fails
    assert "performance REGRESSION in 1 case(s), Holm over 1 tests" in failure and CASE in failure
    assert cases[f"test_perf[{CASE}]"][0]["llmperf.baseline"].startswith("PENDING")
    comparison = json.loads((pytester.path / ".llmperf" / "comparison.json").read_text())
    assert comparison["convicted"] == [CASE]
    assert comparison["cases"][0]["status"] == "REGRESSION"


def test_no_baseline_is_listed_and_fails_under_strict_from_the_config(
    pytester: pytest.Pytester, instrument: Instrument
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(TOML)
    listed = session(pytester, instrument, FAST, "--llmperf-compare", "--junitxml=j.xml")
    assert listed.ret == 0, out(listed)
    assert f"NO BASELINE: {CASE}" in listed.stdout.str()
    props, _ = junit(pytester.path / "j.xml")["baseline_comparison"]
    assert props["llmperf.no_baseline"] == CASE
    assert json.loads((pytester.path / ".llmperf" / "comparison.json").read_text())[
        "no_baseline"
    ] == [CASE]

    pytester.path.joinpath("llmperf.toml").write_text(TOML + "\n[baseline]\nstrict = true\n")
    strict = session(pytester, instrument, FAST, "--llmperf-compare")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED, out(strict)
    assert "--llmperf-strict: NO BASELINE " + CASE in strict.stdout.str()


@pytest.mark.parametrize(
    ("args", "toml_tail", "named"),
    [
        (["--llmperf-alpha", "0.9"], "", "--llmperf-alpha 0.9"),
        (["--llmperf-tolerance", "p99_ttft_ms=lots"], "", "'lots' is not a percentage"),
        (["--llmperf-metrics", "colour"], "", "'colour' has no known direction"),
        ([], "[baseline]\nalpha = 0\n", "baseline.alpha"),
        ([], "[baseline]\nmay_differ = ['gpu']\n", "baseline.may_differ[0]"),
        ([], "[baseline]\ntolerance_percent = -1\n", "baseline.tolerance_percent"),
    ],
)
def test_bad_statistics_settings_are_usage_errors_naming_them(
    pytester: pytest.Pytester, args: list[str], toml_tail: str, named: str
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(TOML + "\n" + toml_tail)
    result = run(
        pytester,
        "--llmperf",
        "--llmperf-endpoint",
        "http://127.0.0.1:9",
        "--llmperf-compare",
        *args,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out(result)
    assert named in out(result)
