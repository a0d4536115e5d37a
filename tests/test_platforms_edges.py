"""Accelerator detection at its edges, against strict fake vendor tools: each fake answers only
the exact command line the real tool is asked (anything else exits 2, as nvidia-smi, rocm-smi
and amd-smi do on an option they do not know), so a probe with a wrong argument finds nothing.
Also the other JSON layouts, the visibility variables, the forced platform's defaults, the CPU
model's fallbacks and the refusals in full."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from platform_fixtures import bindir_fixture  # noqa: F401 (the ``bindir`` fixture)

from pytest_llmperf.plan import platforms
from pytest_llmperf.plan.platforms import Accelerators, detect_accelerators, host_cpu_model

NVIDIA_QUERY = "--query-gpu=name,driver_version --format=csv,noheader"
NVIDIA_HEADER = "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |"


def _strict(bindir: Path, name: str, answers: dict[str, str]) -> None:
    """A fake ``name`` that prints ``answers[argv]`` for exactly those argument lines."""
    cases = "".join(f"  '{argv}') cat <<'EOF'\n{out}\nEOF\n  ;;\n" for argv, out in answers.items())
    path = bindir / name
    path.write_text(f'#!/bin/sh\ncase "$*" in\n{cases}  *) exit 2;;\nesac\n', encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _nvidia(bindir: Path, rows: list[str]) -> None:
    _strict(bindir, "nvidia-smi", {NVIDIA_QUERY: "\n".join(rows), "": NVIDIA_HEADER})


def _acc(bindir: Path) -> tuple[object, ...]:
    a = detect_accelerators()
    return (a.platform, a.model, a.count, a.driver, a.runtime_version)


def test_the_first_gpu_names_the_model_and_driver_rows_without_a_name_are_skipped(
    bindir: Path,
) -> None:
    _nvidia(bindir, [" , 999.9", "NVIDIA H100, 550.54.15", "NVIDIA A100, 535.1"])
    assert _acc(bindir) == ("cuda", "NVIDIA H100", 2, "550.54.15", "12.4")
    _nvidia(bindir, ["NVIDIA L4, "])  # one GPU, no driver column value
    assert _acc(bindir) == ("cuda", "NVIDIA L4", 1, None, "12.4")


@pytest.mark.parametrize(("visible", "count"), [("-1", 0), ("0,,1", 2), ("3", 1), ("", 0)])
def test_cuda_visible_devices_counts_ids_not_blanks_or_minus_one(
    bindir: Path, monkeypatch: pytest.MonkeyPatch, visible: str, count: int
) -> None:
    _nvidia(bindir, ["NVIDIA H100, 550.54.15"] * 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert detect_accelerators().count == count


def _rocm_smi(bindir: Path, card: dict[str, str], driver: str = "6.10.5") -> None:
    product = json.dumps({"card0": card, "card1": card})
    drv = json.dumps({"system": {"Driver version": driver}})
    _strict(
        bindir, "rocm-smi", {"--showproductname --json": product, "--showdriverversion --json": drv}
    )


@pytest.mark.parametrize("key", ["Card Series", "Card SKU", "Card Model"])
def test_rocm_smi_names_the_card_by_any_of_its_keys(bindir: Path, key: str) -> None:
    _rocm_smi(bindir, {key: "MI325X", "GFX Version": "gfx942"})
    assert _acc(bindir) == ("rocm", "MI325X", 2, "6.10.5", None)


@pytest.mark.parametrize(
    ("var", "value", "count"),
    [("HIP_VISIBLE_DEVICES", "1", 1), ("ROCR_VISIBLE_DEVICES", "0,1", 2)],
)
def test_rocm_visibility_variables_limit_the_count(
    bindir: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, count: int
) -> None:
    product = json.dumps({f"card{i}": {"Card Series": "MI325X"} for i in range(8)})
    _strict(
        bindir,
        "rocm-smi",
        {"--showproductname --json": product, "--showdriverversion --json": "{}"},
    )
    monkeypatch.setenv(var, value)
    assert detect_accelerators().count == count


def test_the_rocm_version_comes_from_the_first_file_that_exists(
    bindir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "version-dev").write_text("6.3.1-48\n", encoding="utf-8")
    files = (str(tmp_path / "missing"), str(tmp_path / "version-dev"))
    monkeypatch.setattr(platforms, "ROCM_VERSION_FILES", files)
    _rocm_smi(bindir, {"Card Series": "MI300X"})
    assert _acc(bindir)[4] == "6.3.1"


def _amd_smi(bindir: Path, asic: object, driver: object) -> None:
    _strict(
        bindir,
        "amd-smi",
        {"static --asic --json": json.dumps(asic), "static --driver --json": json.dumps(driver)},
    )


def test_amd_smi_layouts(bindir: Path) -> None:
    # a dict keyed per GPU, the model under product_name, the driver under driver_version
    gpus = {f"gpu_{i}": {"asic": {"product_name": "MI300X"}} for i in range(3)}
    _amd_smi(bindir, gpus, {"gpu_0": {"driver": {"driver_version": "6.8.5"}}})
    assert _acc(bindir) == ("rocm", "MI300X", 3, "6.8.5", None)
    # one GPU's dict without per-GPU keys: one device, because it names a model
    _amd_smi(bindir, {"asic": {"market_name": "MI300X"}}, {"driver": {"version": "6.8.5"}})
    assert _acc(bindir) == ("rocm", "MI300X", 1, "6.8.5", None)
    # ... and without a model it is not a GPU at all
    _amd_smi(bindir, {"asic": {"vendor_id": "0x1002"}}, {})
    assert _acc(bindir) == ("cpu", None, 0, None, None)


def test_a_forced_platform_without_tools_counts_one_device(
    bindir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMPERF_PLATFORM", "cuda")
    assert _acc(bindir) == ("cuda", None, 1, None, None)
    monkeypatch.setenv("LLMPERF_PLATFORM", "cpu")
    _nvidia(bindir, ["NVIDIA H100, 550.54.15"])
    a = detect_accelerators()
    assert a == Accelerators("cpu", None, 0, None, None, a.host_cpu)


def test_the_refusals_in_full(bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPERF_PLATFORM", "tpu")
    with pytest.raises(ValueError) as err:
        detect_accelerators()
    assert str(err.value) == (
        "LLMPERF_PLATFORM='tpu' is not a platform; use one of cuda, rocm, cpu or unset it to "
        "detect the platform"
    )
    monkeypatch.setenv("LLMPERF_PLATFORM", "rocm")
    monkeypatch.setenv("LLMPERF_ACCELERATOR_COUNT", "eight")
    with pytest.raises(ValueError) as err:
        detect_accelerators()
    assert str(err.value) == "LLMPERF_ACCELERATOR_COUNT='eight' is not a whole number of devices"


@pytest.mark.parametrize("key", ["model name", "Model", "cpu model"])
def test_cpu_model_spellings_and_bad_bytes(tmp_path: Path, key: str) -> None:
    info = tmp_path / "cpuinfo"
    info.write_bytes(b"processor\t: 0\nvendor\t: \xff\xfe\n" + f"{key}\t: Some CPU\n".encode())
    assert host_cpu_model(info) == "Some CPU"


def test_cpu_model_falls_back_to_the_processor_then_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setattr(platforms._platform, "processor", lambda: "Intel64 Family 6")
    monkeypatch.setattr(platforms._platform, "machine", lambda: "x86_64")
    assert host_cpu_model(missing) == "Intel64 Family 6"
    monkeypatch.setattr(platforms._platform, "processor", lambda: "")
    assert host_cpu_model(missing) == "x86_64"
    monkeypatch.setattr(platforms._platform, "machine", lambda: "")
    assert host_cpu_model(missing) == "unknown"


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="no /proc/cpuinfo on this host")
def test_the_default_is_this_hosts_proc_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [
        line.partition(":")[2].strip()
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
        if line.partition(":")[0].strip() in ("model name", "Model", "cpu model")
    ]
    monkeypatch.setattr(platforms._platform, "processor", lambda: "not from cpuinfo")
    expected = next((n for n in names if n), "not from cpuinfo")
    assert host_cpu_model() == expected


OVERRIDES = (
    "LLMPERF_PLATFORM",
    "LLMPERF_ACCELERATOR_COUNT",
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
)


def test_the_bindir_fixture_leaves_detection_only_the_fake_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """``bindir`` (tests/platform_fixtures.py) even on a machine that sets the overrides: none left,
    its folder first on PATH, no ROCm version file but the test's own."""
    for var in OVERRIDES:
        monkeypatch.setenv(var, "1")
    d = request.getfixturevalue("bindir")
    assert [v for v in OVERRIDES if v in os.environ] == []
    assert os.environ["PATH"].split(os.pathsep) == [str(d), "/usr/bin", "/bin"]
    assert platforms.ROCM_VERSION_FILES == (str(tmp_path / "rocm-version"),)
    assert detect_accelerators().platform == "cpu"
