"""The ``compare`` command: exit codes, tolerance parsing, clear errors, and a real subprocess."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmperf.cli.compare import main, parse_tolerances
from pytest_llmperf.verdicts.baseline import from_runs, save
from pytest_llmperf.verdicts.fingerprint import Fingerprint

FP = Fingerprint(platform="cpu", host_cpu="test cpu")


def write(path: Path, tput: list[float], fp: Fingerprint = FP) -> str:
    runs = [{"output_throughput": t, "success_rate": 1.0} for t in tput]
    save(from_runs("smoke", fp, {"test_perf[c16]": runs}), path)
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return {
        "base": write(tmp_path / "base.json", [1000.0, 1010.0, 990.0, 1005.0, 995.0]),
        "same": write(tmp_path / "same.json", [1001.0, 1004.0, 996.0, 1000.0, 999.0]),
        "slow": write(tmp_path / "slow.json", [900.0, 905.0, 895.0, 902.0, 898.0]),
        "noisy": write(tmp_path / "noisy.json", [700.0, 1300.0, 900.0, 1200.0, 800.0]),
        "other": write(
            tmp_path / "other.json",
            [1000.0, 1001.0, 999.0, 1002.0, 998.0],
            dataclasses.replace(FP, vllm_version="0.33.0"),
        ),
    }


def test_no_change_exits_0(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([files["base"], files["same"]]) == 0
    out = capsys.readouterr().out
    assert "NO CHANGE" in out and "test_perf[c16]" in out


def test_regression_exits_1(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([files["base"], files["slow"]]) == 1
    assert "REGRESSION: test_perf[c16] output_throughput -10" in capsys.readouterr().out


def test_tolerance_per_metric_can_accept_the_drop(files: dict[str, str]) -> None:
    assert main([files["base"], files["slow"], "--tolerance", "output_throughput=15%"]) == 0
    assert main([files["base"], files["slow"], "--tolerance", "15"]) == 0


def test_strict_fails_on_inconclusive_and_not_comparable(files: dict[str, str]) -> None:
    assert main([files["base"], files["noisy"]]) == 0
    assert main([files["base"], files["noisy"], "--strict"]) == 1
    assert main([files["base"], files["other"]]) == 0
    assert main([files["base"], files["other"], "--strict"]) == 1
    assert main([files["base"], files["other"], "--strict", "--ignore-field", "vllm_version"]) == 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--tolerance", "five"], "not a percentage"),
        (["--tolerance", "=5"], "METRIC=PCT"),
        (["--tolerance", "-3"], ">= 0"),
        (["--ignore-field", "gpu"], "known fields"),
        (["--alpha", "0.9"], "alpha"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    files: dict[str, str], capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    assert main([files["base"], files["same"], *extra]) == 2
    assert match in capsys.readouterr().err


def test_bad_files_exit_2_naming_the_file(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torn = tmp_path / "torn.json"
    torn.write_text('{"schema_version": 1, "cas')
    assert main([files["base"], str(torn)]) == 2
    assert "torn.json" in capsys.readouterr().err
    assert main([files["base"], str(tmp_path / "missing.json")]) == 2
    assert main([files["base"]]) == 2  # argparse usage error
    assert main(["--help"]) == 0


def test_parse_tolerances() -> None:
    assert parse_tolerances([]) == (0.05, {})
    assert parse_tolerances(["10", "p99_e2el_ms=20%"]) == (0.10, {"p99_e2el_ms": 0.20})


def test_runs_as_a_real_process(files: dict[str, str]) -> None:
    code = "import sys; from pytest_llmperf.cli.compare import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, files["base"], files["slow"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "REGRESSION" in done.stdout


@pytest.mark.parametrize(
    ("current", "code", "says"), [("same", 0, "NO CHANGE"), ("slow", 1, "REGRESSION")]
)
def test_python_dash_m_compare(files: dict[str, str], current: str, code: int, says: str) -> None:
    """``python -m pytest_llmperf compare BASELINE CURRENT`` as users run it: the package entry
    point dispatches to the command and passes its exit code on."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf", "compare", files["base"], files[current]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert says in done.stdout
