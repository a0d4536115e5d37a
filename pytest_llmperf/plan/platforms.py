"""Which accelerators this host has, asked of the vendor tools (never of torch: importing it
costs seconds, and on a CPU box it may not be installed at all).

Every probe has a timeout and every failure means "not this platform": detection must never hang
a pytest session on a wedged driver nor raise on a laptop without GPUs.
"""

from __future__ import annotations

import json
import os
import platform as _platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

Platform = Literal["cuda", "rocm", "cpu"]
PLATFORMS: Final[tuple[str, ...]] = ("cuda", "rocm", "cpu")
PROBE_TIMEOUT_S: Final[float] = 10.0
ROCM_VERSION_FILES: Final[tuple[str, ...]] = (
    "/opt/rocm/.info/version",
    "/opt/rocm/.info/version-dev",
)


@dataclass(frozen=True, slots=True)
class Accelerators:
    """What the launch plan sizes tensor parallelism with, and what the fingerprint records."""

    platform: Platform
    model: str | None
    count: int
    driver: str | None
    runtime_version: str | None  # CUDA or ROCm version, e.g. "12.4" or "6.4.2"
    host_cpu: str


def _run(argv: Sequence[str]) -> str | None:
    """stdout of a probe, or None when the tool is absent, fails, or does not answer in time."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout


def host_cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """CPU model name (the fingerprint of CPU runs); falls back to ``platform.processor()``."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return _platform.processor() or _platform.machine() or "unknown"


def _visible(count: int, env_var: str) -> int:
    """Devices this process may use: ``CUDA_VISIBLE_DEVICES=0,1`` on an 8-GPU box means 2."""
    value = os.environ.get(env_var)
    if value is None:
        return count
    ids = [v for v in value.split(",") if v.strip() and v.strip() != "-1"]
    return min(count, len(ids))


def _detect_cuda() -> tuple[str | None, int, str | None, str | None] | None:
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if out is None:
        return None
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    # name,driver_version: a line without both is not what the query asked for (an error
    # message printed with exit 0, a wrapper's banner), not a GPU
    rows = [row for row in rows if len(row) >= 2 and row[0]]
    if not rows:
        return None
    model = rows[0][0] or None
    driver = rows[0][1] if len(rows[0]) > 1 and rows[0][1] else None
    header = _run(["nvidia-smi"]) or ""
    m = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", header)
    count = _visible(len(rows), "CUDA_VISIBLE_DEVICES")
    return model, count, driver, m.group(1) if m else None


def _find_values(obj: Any, keys: tuple[str, ...]) -> list[str]:
    """Every string value under one of ``keys`` at any depth (vendor JSON layouts drift)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() in keys and isinstance(v, str) and v.strip():
                found.append(v.strip())
            else:
                found.extend(_find_values(v, keys))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(_find_values(v, keys))
    return found


def _json(text: str | None) -> Any:
    if not text:
        return None
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.loads(text[start:])  # rocm-smi may print warnings before the JSON
    except ValueError:
        return None


def _rocm_version() -> str | None:
    for name in ROCM_VERSION_FILES:
        try:
            text = Path(name).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if text:
            return text.split("-")[0]
    return None


def _detect_rocm() -> tuple[str | None, int, str | None, str | None] | None:
    data = _json(_run(["rocm-smi", "--showproductname", "--json"]))
    models: list[str] = []
    count = 0
    if isinstance(data, dict):
        cards = {k: v for k, v in data.items() if k.lower().startswith("card")}
        count = len(cards)
        models = _find_values(cards, ("card series", "card sku", "card model"))
    driver = None
    if count:
        drv = _json(_run(["rocm-smi", "--showdriverversion", "--json"]))
        found = _find_values(drv, ("driver version",))
        driver = found[0] if found else None
    else:
        # amd-smi replaces rocm-smi on newer ROCm; its JSON layout changes between releases.
        data = _json(_run(["amd-smi", "static", "--asic", "--json"]))
        models = _find_values(data, ("market_name", "product_name"))
        if isinstance(data, list):
            count = len(data)
        elif isinstance(data, dict):
            count = len([k for k in data if k.lower().startswith("gpu")]) or (1 if models else 0)
        if count:
            drv = _json(_run(["amd-smi", "static", "--driver", "--json"]))
            found = _find_values(drv, ("version", "driver_version"))
            driver = found[0] if found else None
    if count == 0:
        return None
    count = _visible(count, "HIP_VISIBLE_DEVICES")
    count = _visible(count, "ROCR_VISIBLE_DEVICES")
    return (models[0] if models else None), count, driver, _rocm_version()


def detect_accelerators() -> Accelerators:
    """Probe CUDA, then ROCm, else CPU. ``LLMPERF_PLATFORM=cuda|rocm|cpu`` forces the platform
    (e.g. a ROCm container where rocm-smi is missing) and ``LLMPERF_ACCELERATOR_COUNT`` the
    count when the tools cannot tell."""
    cpu = host_cpu_model()
    forced = os.environ.get("LLMPERF_PLATFORM", "").strip().lower()
    if forced and forced not in PLATFORMS:
        raise ValueError(
            f"LLMPERF_PLATFORM={forced!r} is not a platform; use one of {', '.join(PLATFORMS)} "
            "or unset it to detect the platform"
        )
    count_override = os.environ.get("LLMPERF_ACCELERATOR_COUNT", "").strip()
    if count_override and not count_override.isdigit():
        raise ValueError(
            f"LLMPERF_ACCELERATOR_COUNT={count_override!r} is not a whole number of devices"
        )
    if forced == "cpu":
        return Accelerators("cpu", None, 0, None, None, cpu)
    probes = {"cuda": _detect_cuda, "rocm": _detect_rocm}
    order = [forced] if forced else ["cuda", "rocm"]
    for name in order:
        found = probes[name]()
        if found is not None or forced:
            model, count, driver, runtime = found or (None, 0, None, None)
            if count_override:
                count = int(count_override)
            elif forced and count == 0:
                count = 1
            return Accelerators(name, model, count, driver, runtime, cpu)  # type: ignore[arg-type]
    return Accelerators("cpu", None, 0, None, None, cpu)
