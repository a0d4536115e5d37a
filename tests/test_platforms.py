"""Accelerator detection against fake vendor tools: real executables with scripted output, put
first on PATH, so the subprocess path (timeouts, exit codes, parsing) runs for real."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from platform_fixtures import bindir_fixture  # noqa: F401 (the ``bindir`` fixture)

from pytest_llmperf.plan import platforms
from pytest_llmperf.plan.platforms import Accelerators, detect_accelerators, host_cpu_model

NVIDIA_HEADER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""

ROCM_PRODUCT = {
    f"card{i}": {
        "Card Series": "AMD Instinct MI325X",
        "Card Model": "0x74a5",
        "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]",
        "GFX Version": "gfx942",
    }
    for i in range(8)
}


def _tool(bindir: Path, name: str, script: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _nvidia(bindir: Path, rows: list[str]) -> None:
    body = "\n".join(rows)
    header = NVIDIA_HEADER.replace("\n", "\\n")
    _tool(
        bindir,
        "nvidia-smi",
        f'if [ "$1" = "--query-gpu=name,driver_version" ]; then printf "%s\\n" "{body}"; '
        f'else printf "{header}"; fi\n',
    )


def test_cuda_from_nvidia_smi(bindir: Path) -> None:
    _nvidia(bindir, ["NVIDIA H100 80GB HBM3, 550.54.15", "NVIDIA H100 80GB HBM3, 550.54.15"])
    acc = detect_accelerators()
    assert acc.platform == "cuda"
    assert acc.model == "NVIDIA H100 80GB HBM3"
    assert acc.count == 2
    assert acc.driver == "550.54.15"
    assert acc.runtime_version == "12.4"
    assert acc.host_cpu


def test_cuda_visible_devices_limits_count(bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _nvidia(bindir, ["NVIDIA H100, 550.54.15"] * 8)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert detect_accelerators().count == 2


def test_rocm_from_rocm_smi(bindir: Path, tmp_path: Path) -> None:
    (tmp_path / "rocm-version").write_text("6.4.2-120\n", encoding="utf-8")
    product = json.dumps(ROCM_PRODUCT)
    driver = json.dumps({"system": {"Driver version": "6.10.5"}})
    _tool(
        bindir,
        "rocm-smi",
        'echo "WARNING: AMD GPU device(s) is/are in a low-power state"\n'
        f"case \"$1\" in --showproductname) echo '{product}';; "
        f"--showdriverversion) echo '{driver}';; *) exit 1;; esac\n",
    )
    acc = detect_accelerators()
    assert acc == Accelerators("rocm", "AMD Instinct MI325X", 8, "6.10.5", "6.4.2", acc.host_cpu)


def test_amd_smi_when_rocm_smi_is_absent(bindir: Path) -> None:
    asic = json.dumps(
        [{"gpu": i, "asic": {"market_name": "AMD Instinct MI300X"}} for i in range(4)]
    )
    _tool(
        bindir,
        "amd-smi",
        f"case \"$2\" in --asic) echo '{asic}';; "
        '--driver) echo \'[{"gpu": 0, "driver": {"version": "6.8.5"}}]\';; esac\n',
    )
    acc = detect_accelerators()
    assert (acc.platform, acc.model, acc.count, acc.driver) == (
        "rocm",
        "AMD Instinct MI300X",
        4,
        "6.8.5",
    )


def test_no_tools_means_cpu(bindir: Path) -> None:
    acc = detect_accelerators()
    assert (acc.platform, acc.model, acc.count, acc.driver) == ("cpu", None, 0, None)


@pytest.mark.parametrize("script", ["exit 9\n", "echo 'garbage without commas'\nexit 0\n", ""])
def test_broken_tool_does_not_raise(bindir: Path, script: str) -> None:
    _tool(bindir, "nvidia-smi", script)
    _tool(bindir, "rocm-smi", "echo '{not json'\n")
    acc = detect_accelerators()
    # exit 9, a line that is not "name, driver" and no output are all "no GPU found"
    assert (acc.platform, acc.model, acc.count) == ("cpu", None, 0)


def test_hanging_tool_times_out(bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tool(bindir, "nvidia-smi", "exec sleep 30\n")
    monkeypatch.setattr(platforms, "PROBE_TIMEOUT_S", 0.5)
    start = time.monotonic()
    assert detect_accelerators().platform == "cpu"
    assert time.monotonic() - start < 5


def test_env_forces_cpu(bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _nvidia(bindir, ["NVIDIA H100, 550.54.15"])
    monkeypatch.setenv("LLMPERF_PLATFORM", "cpu")
    assert detect_accelerators().platform == "cpu"


def test_env_forces_rocm_without_tools(bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPERF_PLATFORM", "ROCm")
    monkeypatch.setenv("LLMPERF_ACCELERATOR_COUNT", "8")
    acc = detect_accelerators()
    assert (acc.platform, acc.count, acc.model) == ("rocm", 8, None)


def test_bad_env_value_says_what_to_do(bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPERF_PLATFORM", "tpu")
    with pytest.raises(ValueError, match="cuda, rocm, cpu"):
        detect_accelerators()


def test_host_cpu_model(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    )
    assert host_cpu_model(info) == "AMD EPYC 9654 96-Core Processor"
    assert host_cpu_model(tmp_path / "missing")
