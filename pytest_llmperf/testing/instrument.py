"""A measuring instrument: a scripted OpenAI-compatible SSE server with KNOWN timings and faults.

It is not a mock of vLLM and never stands in for one in a performance claim. It exists to
(1) calibrate the load generator's own timing error, because the instrument knows exactly when
it sent each byte (``perf_counter`` is system-wide on Linux, so the send stamps it embeds in
each chunk as ``instrument_send_t`` are comparable with the client's), and (2) produce
byte-level faults a healthy vLLM cannot: HTTP 4xx/5xx/429, malformed SSE, a stream ending
without ``[DONE]``, a JSON error object inside the stream, a connection reset, usage missing,
a hang mid-stream and a dying server.

The script travels in the model name, so one instrument serves every case::

    Endpoint(inst.base_url, "instrument?ttft=0.05&itl=0.01&k=2&fault=reset&fault_after=3")

Parameters: ``ttft`` (s, from request receipt to first token chunk), ``itl`` (s per token),
``k`` (tokens per chunk), ``fault`` (one of ``FAULTS``), ``fault_after`` (chunks before the
fault), ``usage_skew`` (added to reported prompt tokens), ``metrics_skew`` (extra generation
tokens counted in /metrics per request), ``think`` (chat: the first ``think`` tokens stream as
a reasoning model's thinking, under the delta key ``think_key``: ``reasoning`` as vLLM names it,
``reasoning_content`` as older vLLM and DeepSeek do, or ``tool_calls`` for tool-call deltas;
answer ``content`` follows, so the first content token is due ``think * itl`` after the
first). The tokenizer is one token per word (with its leading whitespace), plus BOS for
completions, plus the chat template's two markers for chat.

``_serve`` (about 170 lines, the child process's whole aiohttp app) and its ``generate``
handler (about 100) are left long on purpose. ``generate`` is the instrument's timed loop: it
sleeps to each chunk's due time, stamps ``instrument_send_t`` and writes, and its faults are cut
in between those steps at exact chunk counts. The calibration of the client's timing error
rests on that loop doing nothing else between stamp and write, and splitting it would put
calls (and, for the faults, extra awaits) on the stamped path. ``_serve``'s other handlers are
short closures over the same counters and stamp clock, which is why they live in one function:
the child process imports aiohttp only there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from pytest_llmperf.core.endpoint import Endpoint

FAULTS: Final[tuple[str, ...]] = (
    "http_400",
    "http_429",
    "http_500",
    "malformed",
    "no_done",
    "stream_error",
    "reset",
    "no_usage",
    "hang",
    "die",
    "short",
)
CHAT_TEMPLATE: Final[tuple[str, str]] = ("<|user|>", "<|assistant|>")
THINK_KEYS: Final[tuple[str, ...]] = ("reasoning", "reasoning_content", "tool_calls")


@dataclass(frozen=True, slots=True)
class Script:
    ttft: float = 0.01
    itl: float = 0.005
    k: int = 1
    fault: str | None = None
    fault_after: int = 2
    usage_skew: int = 0
    metrics_skew: int = 0
    think: int = 0
    think_key: str = "reasoning"

    @classmethod
    def from_model(cls, model: str) -> Script:
        q = parse_qs(urlsplit(model).query)

        def get(name: str, conv: Any, default: Any) -> Any:
            return conv(q[name][0]) if name in q else default

        fault = get("fault", str, None)
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown instrument fault {fault!r}; known: {FAULTS}")
        think_key = get("think_key", str, "reasoning")
        if think_key not in THINK_KEYS:
            raise ValueError(f"unknown instrument think_key {think_key!r}; known: {THINK_KEYS}")
        return cls(
            ttft=get("ttft", float, 0.01),
            itl=get("itl", float, 0.005),
            k=max(1, get("k", int, 1)),
            fault=fault,
            fault_after=get("fault_after", int, 2),
            usage_skew=get("usage_skew", int, 0),
            metrics_skew=get("metrics_skew", int, 0),
            think=max(0, get("think", int, 0)),
            think_key=think_key,
        )


_WORD = re.compile(r"\s*\S+|\s+")
_VOCAB: dict[str, int] = {"<s>": 1}
_INVERSE: dict[int, str] = {1: ""}


def encode(text: str) -> list[int]:
    """Word-level tokenizer: each word with its leading whitespace is one token."""
    out = []
    for piece in _WORD.findall(text):
        tid = _VOCAB.setdefault(piece, len(_VOCAB) + 1)
        _INVERSE[tid] = piece
        out.append(tid)
    return out


def decode(tokens: list[int]) -> str:
    return "".join(_INVERSE.get(t, "") for t in tokens)


def prompt_tokens(body: dict[str, Any]) -> list[int]:
    """Tokens of a completions prompt (BOS first) or of a templated chat prompt."""
    if "messages" in body:
        ids: list[int] = []
        for m in body["messages"]:
            content = m.get("content", "")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
            ids += [*encode(CHAT_TEMPLATE[0]), *encode(str(content))]
        return ids + encode(CHAT_TEMPLATE[1])
    bos = [1] if body.get("add_special_tokens", True) else []
    return bos + encode(str(body.get("prompt", "")))


# --------------------------------------------------------------------------- server (subprocess)


def _serve(port: int, metrics: bool) -> None:  # pragma: no cover - runs in the child
    from aiohttp import web

    counters = {"prompt": 0, "generation": 0}
    loop_time = time.perf_counter

    def sse(obj: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    async def tokenize(request: web.Request) -> web.Response:
        tokens = prompt_tokens(await request.json())
        return web.json_response({"count": len(tokens), "tokens": tokens, "max_model_len": 10**6})

    async def detokenize(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"prompt": decode(body["tokens"])})

    async def prom(request: web.Request) -> web.Response:
        text = (
            "# TYPE vllm:prompt_tokens_total counter\n"
            f'vllm:prompt_tokens_total{{model_name="instrument"}} {float(counters["prompt"])}\n'
            "# TYPE vllm:generation_tokens_total counter\n"
            f'vllm:generation_tokens_total{{model_name="instrument"}} '
            f"{float(counters['generation'])}\n"
        )
        return web.Response(text=text, content_type="text/plain")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "instrument"}]})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def generate(request: web.Request) -> web.StreamResponse:
        t0 = loop_time()
        body = await request.json()
        script = Script.from_model(str(body.get("model", "")))
        chat = "messages" in body
        n_out = int(body.get("max_tokens", 16))
        n_in = len(prompt_tokens(body))
        fault = script.fault
        if fault in ("http_400", "http_429", "http_500"):
            status = int(fault[5:])
            return web.json_response(
                {"error": {"message": f"scripted {fault}", "type": "Scripted", "code": status}},
                status=status,
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if fault == "short":
            n_out = max(1, n_out // 2)
        counters["prompt"] += n_in
        counters["generation"] += n_out + script.metrics_skew
        rid = f"cmpl-{id(request)}"
        usage_on = bool((body.get("stream_options") or {}).get("include_usage"))
        continuous = usage_on and bool(body["stream_options"].get("continuous_usage_stats"))
        prompt_reported = n_in + script.usage_skew
        sent = 0
        chunk_no = 0
        while sent < n_out:
            k = min(script.k, n_out - sent)
            due = t0 + script.ttft + (sent + k - 1) * script.itl
            delay = due - loop_time()
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None and chunk_no == script.fault_after:
                if fault == "malformed":
                    await resp.write(b'data: {"choices": [{"text": "x"\n\n')
                elif fault == "stream_error":
                    await resp.write(
                        sse({"error": {"message": "scripted error", "type": "X", "code": 500}})
                    )
                    await resp.write(b"data: [DONE]\n\n")
                    return resp
                elif fault == "reset":
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                elif fault == "hang":
                    await asyncio.Event().wait()
                elif fault == "die":
                    os._exit(3)
            thinking = chat and sent < script.think
            sent += k
            text = "t" * k
            delta: dict[str, Any] = {"content": text}
            if thinking:  # a chunk that crosses the boundary stays thinking (k tokens at once)
                key = script.think_key
                if key == "tool_calls":
                    call = {"index": 0, "function": {"arguments": text}}
                    delta = {"tool_calls": [call]}
                else:
                    delta = {key: text}
            choice: dict[str, Any] = (
                {"index": 0, "delta": delta, "finish_reason": None}
                if chat
                else {"index": 0, "text": text, "finish_reason": None}
            )
            obj: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "model": body.get("model"),
                "choices": [choice],
                "instrument_send_t": loop_time(),
                "instrument_recv_t": t0,
            }
            if continuous and fault != "no_usage":
                obj["usage"] = {
                    "prompt_tokens": prompt_reported,
                    "completion_tokens": sent,
                    "total_tokens": prompt_reported + sent,
                }
            await resp.write(sse(obj))
            chunk_no += 1
        if usage_on and fault != "no_usage":
            await resp.write(
                sse(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk" if chat else "text_completion",
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt_reported,
                            "completion_tokens": sent,
                            "total_tokens": prompt_reported + sent,
                        },
                    }
                )
            )
        if fault != "no_done":
            await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/v1/completions", generate)
    app.router.add_post("/v1/chat/completions", generate)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/detokenize", detokenize)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    if metrics:
        app.router.add_get("/metrics", prom)

    async def main() -> None:
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=4096)
        await site.start()
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class Instrument:
    """Runs the instrument in a child process on 127.0.0.1 (its CPU is not the client's)."""

    def __init__(self, *, metrics: bool = True) -> None:
        self.metrics = metrics
        self._proc: subprocess.Popen[str] | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("instrument not started")
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, **script: Any) -> Endpoint:
        """An endpoint whose model name carries ``script`` (see module docstring)."""
        query = "&".join(f"{k}={v}" for k, v in script.items() if v is not None)
        return Endpoint(self.base_url, f"instrument?{query}" if query else "instrument")

    @property
    def pid(self) -> int:
        """The instrument process's pid (e.g. to pin it to cores the client does not use)."""
        if self._proc is None:
            raise RuntimeError("instrument not started")
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> Instrument:
        cmd = [sys.executable, "-m", "pytest_llmperf.testing.instrument", "0"]
        if not self.metrics:
            cmd.append("--no-metrics")
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # blocks until the child has bound its socket
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"instrument failed to start (printed {line!r})")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Instrument:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_instrument(*, metrics: bool = True) -> Iterator[Instrument]:
    with Instrument(metrics=metrics) as inst:
        yield inst


if __name__ == "__main__":  # pragma: no cover
    _serve(int(sys.argv[1]), metrics="--no-metrics" not in sys.argv)
