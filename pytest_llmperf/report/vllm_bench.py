"""One ``vllm bench serve --save-result --save-detailed`` file per measured run, so tooling
built for vLLM's benchmark reads our runs: ``<report dir>/vllm-bench/<case>-run<N>.json``.

The layout (key names, units: seconds in the per-request arrays, milliseconds in the
statistics) is vLLM 0.32's ``vllm/benchmarks/serve.py``; the test suite checks it against the
keys of a real ``vllm bench serve`` result produced on the same server
(tests/test_vllm_bench_json.py). Differences, on purpose: ``itl`` statistics are per token
(a chunk of k tokens counts k gaps), vLLM's per-chunk figure is ``ichunk``; the per-request
``itls`` arrays are inter-chunk gaps as vLLM's are; ``generated_texts`` are empty (the load
generator does not keep the text). Written atomically, right after each run.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_llmperf.core.atomic import write_json_atomic

FOLDER: Final[str] = "vllm-bench"


def _max_in_flight(records: Sequence[Any]) -> int:
    """Peak number of requests in flight (vLLM: ``max_concurrent_requests``)."""
    events = sorted(
        [(float(r.start), 1) for r in records] + [(float(r.end), -1) for r in records],
        key=lambda e: (e[0], e[1]),
    )
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _stats_ms(values: Sequence[float], name: str) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values or [0.0], dtype=np.float64) * 1000.0
    out = {
        f"mean_{name}_ms": float(arr.mean()),
        f"median_{name}_ms": float(np.median(arr)),
        f"std_{name}_ms": float(arr.std()),
    }
    for p in (50.0, 90.0, 95.0, 99.0, 99.9):
        word = str(int(p)) if int(p) == p else str(p)
        out[f"p{word}_{name}_ms"] = float(np.percentile(arr, p))
    return out


def vllm_bench_result(
    run: Any,
    *,
    model_id: str,
    tokenizer_id: str | None = None,
    date: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """The ``--save-result --save-detailed`` document of one run (a ``loadgen.run.RunResult``:
    ``summary``, ``records``, ``spec``, ``workload``)."""
    s = run.summary
    records = tuple(run.records)
    ok = [r for r in records if r.error_kind is None and r.first_token is not None]
    concurrency = getattr(run.spec, "concurrency", None)
    chat = getattr(run.workload, "endpoint", "completions") == "chat"
    doc: dict[str, Any] = {
        "date": date or time.strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": "openai-chat" if chat else "vllm",
        "backend": "openai-chat" if chat else "vllm",
        "label": label,
        "model_id": model_id,
        "tokenizer_id": tokenizer_id or model_id,
        "num_prompts": len(records),
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": concurrency,
        "duration": s.duration_s,
        "completed": s.completed,
        "failed": s.failed,
        "total_input_tokens": s.total_input_tokens,
        "total_output_tokens": s.total_output_tokens,
        "request_throughput": s.request_throughput,
        "request_goodput": None,
        "output_throughput": s.output_throughput,
        "total_token_throughput": s.total_token_throughput,
        "input_lens": [r.prompt_tokens or 0 for r in records],
        "output_lens": [
            r.completion_tokens if r.completion_tokens is not None else sum(r.chunk_tokens)
            for r in records
        ],
        "ttfts": [(r.first_token - r.start) if r.first_token is not None else 0.0 for r in records],
        "itls": [
            [b - a for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)] for r in records
        ],
        "latencies": [(r.end - r.start) if r.error_kind is None else 0.0 for r in records],
        "start_times": [r.start for r in records],
        "queue_times": [r.queue_wait for r in records],
        "generated_texts": ["" for _ in records],
        "errors": [
            "" if r.error_kind is None else f"{r.error_kind}: {r.error_detail or ''}".strip()
            for r in records
        ],
        "max_output_tokens_per_s": s.peak_output_throughput,
        "max_concurrent_requests": _max_in_flight(records),
        "rtfx": 0.0,
    }
    doc.update(s.to_vllm_bench_json())
    if concurrency is not None:
        doc.update(_stats_ms([r.queue_wait for r in ok], "client_queue_time"))
    return _clean(doc)


def write_run(
    report_dir: str | os.PathLike[str],
    case_id: str,
    run_index: int,
    run: Any,
    *,
    model_id: str,
    tokenizer_id: str | None = None,
) -> Path:
    """Write one run's file (``run_index`` from 1) and return its path."""
    safe = case_id.replace("/", "_")
    path = Path(report_dir) / FOLDER / f"{safe}-run{run_index}.json"
    return write_json_atomic(
        path, vllm_bench_result(run, model_id=model_id, tokenizer_id=tokenizer_id)
    )
