"""The baseline gate on real vLLM through ``pytest --llmperf``: does an identical server pass
and a slower one fail, in pytest's exit code and JUnit?

One tiny dense model (random weights, built locally), two vLLM CPU servers started here: the
reference and a "slower" one (the same model and flags plus ``--max-num-seqs`` below the
concurrency, so it serves fewer sequences at once; an unnoticed launch change, as after an
upgrade that changes a default). Every pytest session measures through
``--llmperf-endpoint`` (the servers' fingerprints look alike from outside, as a silent
regression would), one case, ``--llmperf-runs 5`` per session:

1. save a baseline against the reference server;
2. ``SAME`` compare sessions against the same server: each must give no REGRESSION (exit 0);
3. a fresh baseline on the reference server (the shared machine drifts over minutes), then
   one compare session against the slower server: must be convicted (exit 1, the JUnit
   testcase ``baseline_comparison`` failing and naming the case).

The servers are pinned to core 0 and the pytest sessions to core 1 (``taskset``): on 2 shared
cores an unpinned client is starved by vLLM's busy threads (docs: measurement notes).

Run under the shared lock: flock /tmp/llmperf-vllm.lock python benchmarks/baseline_gate_vllm.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pytest_llmperf.core.versions import installed_vllm_version
from pytest_llmperf.plan.architectures import detect
from pytest_llmperf.plan.launch_plan import PlanOverrides, make_plan
from pytest_llmperf.server.process import VLLMServer
from pytest_llmperf.server.tiny_models import build_tiny_model

CONCURRENCY = 16
TOML = f"""\
concurrency = [{CONCURRENCY}]
min_requests = 64
warmup_requests = 8

[client]
loop_lag_p99_ms = 60000

[[models]]
name = "dense-gqa"
tiny = "dense-gqa"

[[workloads]]
name = "text"
preset = "text"
input_tokens = 64
output_tokens = 32
"""
CASE = f"dense-gqa-text-c{CONCURRENCY}"


def server(extra: tuple[str, ...], log: Path) -> VLLMServer:
    model = str(build_tiny_model("dense-gqa"))
    plan = make_plan(
        detect(model, name="dense-gqa"),
        platform="cpu",
        vllm_version=installed_vllm_version(local_label=False) or "0.32.0",
        gpus=0,
        model=model,
        served_model_name="dense-gqa",
        workload_max_len=2048,
        overrides=PlanOverrides(extra_args=extra),
    )
    env = dict(plan.env)
    cache = Path.home() / ".cache" / "pytest-llmperf" / "vllm-cache"
    env["VLLM_CACHE_ROOT"] = str(cache)
    launcher = ("taskset", "-c", "0", sys.executable, "-m", "vllm.entrypoints.openai.api_server")
    return VLLMServer(
        model,
        args=plan.args,
        env=env,
        served_model_name="dense-gqa",
        launcher=launcher,
        log_path=log,
    )


def session(work: Path, url: str, *args: str) -> dict[str, object]:
    junit = work / "junit.xml"
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    cmd += ["--llmperf", "--llmperf-endpoint", url, "--llmperf-served-model", "dense-gqa"]
    cmd += ["--llmperf-runs", "5", f"--junitxml={junit}", *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    out: dict[str, object] = {"rc": proc.returncode, "s": time.monotonic() - start}
    comparison = work / ".llmperf" / "comparison.json"
    if "--llmperf-compare" in args and comparison.is_file():
        data = json.loads(comparison.read_text())
        gate = [v for v in data["session_verdicts"] if v["metric"] == "output_throughput"]
        out.update(
            convicted=data["convicted"],
            verdict=gate[0]["verdict"] if gate else None,
            ratio=gate[0]["ratio"] if gate else None,
            p_adj=gate[0]["p_adj"] if gate else None,
            cov=(gate[0]["cov_baseline"], gate[0]["cov_current"]) if gate else None,
        )
        failed = [
            tc.get("name")
            for tc in ET.parse(junit).getroot().iter("testcase")
            if tc.find("failure") is not None
        ]
        out["junit_failed"] = failed
    if proc.returncode not in (0, 1):
        out["tail"] = (proc.stdout + proc.stderr)[-2000:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--same", type=int, default=5, help="identical-server sessions")
    parser.add_argument("--max-num-seqs", type=int, default=8, help="the slower server's")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="llmperf-gate-"))
    (work / "llmperf.toml").write_text(TOML)
    ref = server((), work / "ref.log").start()
    try:
        saved = session(work, ref.base_url, "--llmperf-save-baseline")
        print(f"baseline: rc={saved['rc']} ({saved['s']:.0f} s)")
        same = [session(work, ref.base_url, "--llmperf-compare") for _ in range(args.same)]
        # A fresh baseline right before the slower server, so the machine's drift over the
        # identical sessions (other jobs on this shared box) is not mistaken for its change.
        fresh = session(work, ref.base_url, "--llmperf-save-baseline")
        print(f"fresh baseline before the slower server: rc={fresh['rc']}")
    finally:
        ref.stop()
    for i, r in enumerate(same, 1):
        print(f"identical {i}: {r}")
    slow = server(("--max-num-seqs", str(args.max_num_seqs)), work / "slow.log").start()
    try:
        slower = session(work, slow.base_url, "--llmperf-compare")
    finally:
        slow.stop()
    print(f"slower (--max-num-seqs {args.max_num_seqs}): {slower}")
    print(f"load: {os.getloadavg()}")
    false_alarms = sum(1 for r in same if r.get("convicted") or r["rc"] != 0)
    print(
        f"identical server: {args.same - false_alarms}/{args.same} sessions without a "
        f"REGRESSION: {'OK' if false_alarms == 0 else 'NOT MET'}"
    )
    convicted = (
        slower.get("convicted") == [CASE]
        and slower["rc"] == 1
        and "baseline_comparison" in (slower.get("junit_failed") or [])
    )
    print(
        f"slower server (output throughput ratio {slower.get('ratio')}): convicted in the exit "
        f"code and JUnit: {'YES' if convicted else 'NO'}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
