"""First token vs first content token on real vLLM (issue 15, item 8).

- An ordinary model (the session's shared dense server, no reasoning parser): the first
  content token is the first token, for chat and completions.
- A reasoning model: the dense tiny checkpoint with ``<think>`` / ``</think>`` added to its
  tokenizer, served with vLLM's ``--reasoning-parser deepseek_r1``. That parser calls every
  token before ``</think>`` reasoning (DeepSeek-R1's template opens the ``<think>`` itself), and
  a ``logit_bias`` on ``</think>`` with sampling makes the random-weight model end its thinking
  after a few tokens. vLLM then streams ``reasoning`` deltas, then ``content``: the record's
  first token must be the first reasoning chunk and its first content the first content chunk,
  both checked against the raw bytes decoded independently here. This test boots its own
  server (about a minute), so it runs with ``LLMPERF_SLOW=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.workload.prompts import PreparedRequest, Workload

pytestmark = pytest.mark.vllm


def _events(raw: tuple[tuple[float, ...], tuple[bytes, ...]]) -> list[tuple[float, dict[str, Any]]]:
    """(time of the read that completed it, decoded JSON) per event, decoded the slow way."""
    times, chunks = raw
    out: list[tuple[float, dict[str, Any]]] = []
    buf = b""
    for t, data in zip(times, chunks, strict=True):
        buf += data
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if ev.startswith(b"data: {"):
                out.append((t, json.loads(ev[6:])))
    return out


def _delta(obj: dict[str, Any]) -> dict[str, Any]:
    choices = obj.get("choices") or [{}]
    return choices[0].get("delta") or {"content": choices[0].get("text")}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_ordinary_model_first_content_is_first_token(dense_server: Any, endpoint: str) -> None:
    w = Workload("fc", endpoint=endpoint, input_tokens=40, output_tokens=8)  # type: ignore[arg-type]
    r = run_load(dense_server.endpoint, w, LoadSpec(concurrency=4, num_requests=8), keep_raw=True)
    assert r.summary.success_rate == 1.0, r.summary.errors
    assert r.raw is not None
    for rec in r.records:
        evs = _events(r.raw[rec.index])
        assert not any("reasoning" in _delta(o) for _, o in evs)
        # a stream of the random-weight model may carry only empty-text tokens
        first_text = next((t for t, o in evs if _delta(o).get("content")), None)
        # the first token is content even where its text is empty (a partial UTF-8 character
        # or a skipped special token: the random-weight model streams those)
        assert rec.first_content == rec.first_token is not None
        assert first_text is None or first_text >= rec.first_content
    assert r.summary.latency["ttfct"] == r.summary.latency["ttft"]


def _reasoning_model(tmp: Path) -> tuple[Path, int]:
    """The dense tiny checkpoint with ``<think>``/``</think>`` added (weights linked); returns
    its folder and the id of ``</think>``."""
    from transformers import AutoTokenizer

    from pytest_llmperf.server.tiny_models import build_tiny_model

    src = build_tiny_model("dense-gqa")
    out = tmp / "dense-reasoning"
    out.mkdir()
    for f in src.iterdir():
        if f.suffix == ".safetensors":
            (out / f.name).symlink_to(f)
        elif f.is_file():
            shutil.copy(f, out / f.name)
    tok = AutoTokenizer.from_pretrained(out)
    tok.add_tokens(["<think>", "</think>"])
    vocab = json.loads((out / "config.json").read_text())["vocab_size"]
    assert len(tok) <= vocab, "no room for the think tokens in the tiny model's embedding"
    tok.save_pretrained(out)
    return out, int(tok.convert_tokens_to_ids("</think>"))


@pytest.mark.skipif(
    not os.environ.get("LLMPERF_SLOW"), reason="boots its own vLLM server; LLMPERF_SLOW=1 runs it"
)
def test_reasoning_model_ends_ttft_at_thinking_and_ttfct_at_content(
    tmp_path: Path, vllm_cache_root: str
) -> None:
    from conftest import tiny_plan_args
    from pytest_llmperf.core.cpu_layout import choose_layout, pinned
    from pytest_llmperf.server.process import VLLMServer

    model, end_id = _reasoning_model(tmp_path)
    _, planned, env = tiny_plan_args("dense-gqa", extra_args=("--reasoning-parser", "deepseek_r1"))
    args = list(planned)
    for flag, value in (("--model", str(model)), ("--served-model-name", "reasoner")):
        args[args.index(flag) + 1] = value
    env["VLLM_CACHE_ROOT"] = vllm_cache_root
    layout = choose_layout("auto", os.sched_getaffinity(0))
    if layout is not None:
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", layout.omp_threads_bind)
    server = VLLMServer(
        model, args=args, env=env, served_model_name="reasoner", log_path=tmp_path / "vllm.log"
    )
    n_out, n = 24, 12
    with pinned(layout.server if layout is not None else None):
        server.start()
    try:
        reqs = []
        for i in range(n):
            body = {
                "model": "reasoner",
                "messages": [{"role": "user", "content": f"question {i}: the river and the city"}],
                "max_tokens": n_out,
                "min_tokens": n_out,
                "ignore_eos": True,
                "temperature": 1.0,
                "seed": i,
                "logit_bias": {str(end_id): 6.0},
                "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            }
            reqs.append(
                PreparedRequest(i, "/v1/chat/completions", json.dumps(body).encode(), 0, n_out)
            )
        w = Workload("reasoning", endpoint="chat", input_tokens=10, output_tokens=n_out)
        r = run_load(
            server.endpoint,
            w,
            LoadSpec(concurrency=4, num_requests=n),
            requests=reqs,
            keep_raw=True,
        )
    finally:
        server.stop()
    assert r.summary.success_rate == 1.0, r.summary.errors
    assert r.raw is not None
    thought = 0
    for rec in r.records:
        evs = _events(r.raw[rec.index])
        tokens, done = [], 0  # token-carrying events: a positive usage delta
        for t, o in evs:
            n_done = (o.get("usage") or {}).get("completion_tokens", 0)
            if o.get("choices") and n_done > done:
                tokens.append((t, _delta(o)))
                done = n_done
        thinking = [isinstance(d.get("reasoning"), str) and not d.get("content") for _, d in tokens]
        assert rec.first_token == tokens[0][0]
        first_answer = next(
            (t for (t, _), th in zip(tokens, thinking, strict=True) if not th), None
        )
        assert rec.first_content == first_answer
        if thinking[0] and first_answer is not None:
            thought += 1
            assert rec.first_token < rec.first_content
    # the bias ends thinking early but not at once: most requests think, then answer
    assert thought >= n // 2, f"only {thought} of {n} requests streamed reasoning, then content"
    s = r.summary
    assert s.latency["ttfct"].count >= thought and s.latency["ttfct"].p50 > s.latency["ttft"].p50
    print(
        f"reasoning model: {thought} of {n} requests thought first; TTFT p50 "
        f"{s.latency['ttft'].p50:.1f} ms, TTFCT p50 {s.latency['ttfct'].p50:.1f} ms"
    )
