"""Regenerates the real /metrics fixtures of tests/test_server_metrics.py (not collected: run it
explicitly, under the vLLM lock: pytest tests/_capture_metrics.py)."""

import threading
import time
import urllib.request
from pathlib import Path

from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

OUT = Path(__file__).parent / "data"


def scrape(ep):
    with urllib.request.urlopen(ep.url("/metrics"), timeout=10) as r:
        return r.read().decode()


def test_capture(dense_server):
    ep = dense_server.endpoint
    w = Workload("cap", endpoint="completions", input_tokens=256, output_tokens=32, seed=123)
    reqs = prepare_requests_sync(ep, w, 48)
    (OUT / "vllm_metrics_before.txt").write_text(scrape(ep))
    mid = {}

    def sampler():
        time.sleep(1.0)
        mid["t"] = scrape(ep)

    th = threading.Thread(target=sampler)
    th.start()
    t0 = time.perf_counter()
    run_load(
        ep,
        w,
        LoadSpec(concurrency=16, num_requests=48, warmup_requests=0),
        requests=reqs,
        records_path=OUT / "vllm_records_run1.jsonl",
    )
    print("run1", time.perf_counter() - t0)
    th.join()
    (OUT / "vllm_metrics_during.txt").write_text(mid["t"])
    time.sleep(0.5)
    (OUT / "vllm_metrics_after.txt").write_text(scrape(ep))
    run_load(ep, w, LoadSpec(concurrency=16, num_requests=48, warmup_requests=0), requests=reqs)
    time.sleep(0.5)
    (OUT / "vllm_metrics_resent.txt").write_text(scrape(ep))
