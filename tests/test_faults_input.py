"""Bad input through the real plugin: every mistake is a clear error naming the file, key or
value and what to do, raised before anything is launched or measured.

The loaders themselves are fuzzed elsewhere: the config in tests/test_config.py
(``test_errors_name_file_key_and_fix``, ``test_fuzz_structured``, ``test_fuzz_arbitrary``), the
baseline in tests/test_baseline.py (``test_unusable_file_names_file_problem_and_remedy``,
``test_fuzz_bytes_load_or_baseline_error``, ``test_fuzz_json_load_or_baseline_error``). Here the
same mistakes go through ``pytest --llmperf`` as users make them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from pytest_llmperf.testing.instrument import Instrument

GOOD_WORKLOAD = """
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
    ("toml", "key", "fragment"),
    [
        ("[[gates]]\noutput_throughput_min = nan", "gates[0].output_throughput_min", "finite"),
        ("[[gates]]\np99_ttft_ms_max = -1.0", "gates[0].p99_ttft_ms_max", "above 0"),
        ("concurrency = [-5]", "concurrency[0]", "out of range"),
        ("runs = 0", "runs", "out of range"),
        ("concurency = [1]", "concurency", "did you mean 'concurrency'"),
        ("models = ['gpt-5']", "models[0]", "unknown model"),
        ("concurrency = [1", "", "TOML"),
    ],
)
def test_bad_config_is_a_usage_error_naming_file_and_key(
    pytester: pytest.Pytester, toml: str, key: str, fragment: str
) -> None:
    pytester.makefile(".toml", llmperf=toml)
    t0 = time.monotonic()
    result = pytester.runpytest("--llmperf")
    assert time.monotonic() - t0 < 30
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "pytest-llmperf:" in err
    assert "llmperf.toml" in err
    assert key in err
    assert fragment.lower() in err.lower()


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("--llmperf-runs=0", "runs"),
        ("--llmperf-concurrency=-5", "concurrency"),
        ("--llmperf-concurrency=ten", "--llmperf-concurrency"),
        ("--llmperf-multiplier=nan", "multiplier"),
        ("--llmperf-api-key-file=/nonexistent/key", "/nonexistent/key"),
    ],
)
def test_bad_command_line_value_is_a_usage_error(
    pytester: pytest.Pytester, option: str, fragment: str
) -> None:
    result = pytester.runpytest("--llmperf", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "pytest-llmperf:" in err
    assert fragment in err


def test_model_dir_without_a_tokenizer_fails_fast_naming_the_dir(
    pytester: pytest.Pytester,
) -> None:
    """No 60-second boot ending in a tokenizer traceback: the case fails before launch, and
    the next case for the same model fails fast instead of trying again."""
    from pytest_llmperf.server.tiny_models import build_tiny_model

    bare = pytester.path / "no-tokenizer"
    shutil.copytree(
        build_tiny_model("dense-gqa"), bare, ignore=shutil.ignore_patterns("tokenizer*")
    )
    pytester.makefile(
        ".toml",
        llmperf=f"""
concurrency = [1, 2]
warmup_requests = 0
[[models]]
name = "bare"
path = "{bare}"
{GOOD_WORKLOAD}""",
    )
    t0 = time.monotonic()
    result = pytester.runpytest(
        "--llmperf",
        "-p",
        "no:cacheprovider",
        "--llmperf-platform=cpu",
        "--llmperf-gpus=0",
        "--llmperf-vllm-version=0.32.0",
    )
    assert time.monotonic() - t0 < 60
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert f"model directory {bare} has no tokenizer" in out
    assert "not retrying" in out
    assert "tokenizer.save_pretrained" in out


def test_unwritable_report_dir_fails_within_seconds_naming_it(
    pytester: pytest.Pytester, instrument: Instrument
) -> None:
    (pytester.path / "blocker").write_text("a file where the report folder should be")
    pytester.makefile(
        ".toml",
        llmperf=f"""
concurrency = [2]
warmup_requests = 0
requests_per_level = {{ "2" = 4 }}
models = ["dense-gqa"]
{GOOD_WORKLOAD}""",
    )
    t0 = time.monotonic()
    result = pytester.runpytest_subprocess(
        "--llmperf",
        "-p",
        "no:cacheprovider",
        f"--llmperf-endpoint={instrument.base_url}",
        "--llmperf-served-model=instrument?ttft=0.001&itl=0.001",
        "--llmperf-report-dir=blocker/out",
        timeout=120,
    )
    assert time.monotonic() - t0 < 60
    # A usage error (exit 4) from the folder check itself, before any request: without the
    # check the run starts, fails writing its records and exits 1 naming the path too.
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    err = result.stderr.str()
    assert "cannot write the report folder" in err and "blocker/out" in err
    assert "choose a writable one with --llmperf-report-dir" in err
    assert "test_perf" not in result.stdout.str()  # nothing was collected or run
