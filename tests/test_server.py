"""The vLLM server library against real vLLM on CPU: each tiny family boots and streams, and
start-up failures surface in seconds with their root cause."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_llmperf.server.process import ServerError, VLLMServer, find_root_cause
from pytest_llmperf.server.tiny_models import build_tiny_model

pytestmark = pytest.mark.vllm


def _stream(url: str, path: str, body: dict[str, object]) -> tuple[list[dict], dict]:
    """POST a streamed request; return the parsed chunks and the final usage."""
    req = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        text = resp.read().decode()
    chunks = [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    assert text.rstrip().endswith("data: [DONE]")
    usage = next(c["usage"] for c in reversed(chunks) if c.get("usage"))
    return chunks, usage


@pytest.mark.parametrize("arch", ["dense-gqa", "moe-gqa", "moe-mla", "vision"])
def test_each_tiny_family_boots_and_streams_exact_output(
    arch: str,
    tiny_server_factory: Callable[..., VLLMServer],
    own_tiny_server: Callable[..., VLLMServer],
) -> None:
    # dense-gqa and vision are shared with the rest of the suite; the MoE ones are only
    # needed here, so they are stopped right after (RAM).
    shared = arch in ("dense-gqa", "vision")
    server = tiny_server_factory(arch) if shared else own_tiny_server(arch)
    if server.startup_seconds is not None:
        print(f"\n{arch}: ready in {server.startup_seconds:.1f} s")
    assert server.host == "127.0.0.1"
    body = {
        "model": arch,
        "messages": [{"role": "user", "content": "the model server latency"}],
        "max_tokens": 24,
        "min_tokens": 24,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks, usage = _stream(server.base_url, "/v1/chat/completions", body)
    assert usage["completion_tokens"] == 24
    assert sum(1 for c in chunks if c.get("choices")) >= 2  # really streamed


def _png(seed: int) -> str:
    from PIL import Image

    img = Image.new("RGB", (112, 112), ((seed * 40) % 256, (seed * 90) % 256, 128))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_vision_model_counts_image_tokens(vision_server: VLLMServer) -> None:
    def ask(with_image: bool) -> int:
        content: list[dict[str, object]] = [{"type": "text", "text": "describe the image"}]
        if with_image:
            content.append({"type": "image_url", "image_url": {"url": _png(1)}})
        body = {
            "model": "vision",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 8,
            "min_tokens": 8,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        _, usage = _stream(vision_server.base_url, "/v1/chat/completions", body)
        assert usage["completion_tokens"] == 8
        return int(usage["prompt_tokens"])

    # BLIP-2: one image = 32 query tokens; the chat template's placeholder may add a joiner.
    added = ask(True) - ask(False)
    assert 32 <= added <= 34, f"an image added {added} prompt tokens, expected 32 (+<=2)"


def _failing_server(tmp_path: Path, model: str, *args: str) -> VLLMServer:
    return VLLMServer(
        model,
        args=["--gpu-memory-utilization", "0.2", "--max-model-len", "1024", *args],
        served_model_name="broken",
        log_path=tmp_path / "server.log",
        ready_timeout=300,
    )


def test_bad_model_path_fails_fast_with_root_cause(tmp_path: Path) -> None:
    server = _failing_server(tmp_path, str(tmp_path / "no-such-model"))
    t0 = time.monotonic()
    with pytest.raises(ServerError) as info:
        server.start()
    elapsed = time.monotonic() - t0
    assert elapsed < 90, f"took {elapsed:.0f} s: early death must not wait for the timeout"
    assert "no-such-model" in (info.value.root_cause or "")
    assert "exited with code" in str(info.value)
    assert not server.is_alive()


def test_rejected_flag_fails_fast_with_root_cause(tmp_path: Path) -> None:
    server = _failing_server(tmp_path, str(build_tiny_model("dense-gqa")), "--no-such-flag")
    t0 = time.monotonic()
    with pytest.raises(ServerError) as info:
        server.start()
    assert time.monotonic() - t0 < 90
    assert "unrecognized arguments: --no-such-flag" in (info.value.root_cause or "")


def test_root_cause_prefers_the_engine_error_over_the_wrapper() -> None:
    log = "\n".join(
        [
            "(EngineCore pid=7) ERROR 11-27 [core.py:1012] EngineCore failed to start.",
            "(EngineCore pid=7) ERROR 11-27 [core.py:1012] Traceback (most recent call last):",
            "(EngineCore pid=7) ERROR 11-27 [core.py:1012] RuntimeError: Unsupported CPU "
            "attention configuration: head_dim=16",
            "Traceback (most recent call last):",
            "RuntimeError: Engine core initialization failed. See root cause above.",
        ]
    )
    assert find_root_cause(log) == (
        "RuntimeError: Unsupported CPU attention configuration: head_dim=16"
    )


INNER_SESSION = """
import os, signal, pytest
from pytest_llmperf.server.process import VLLMServer

def test_starts_then_fails(tmp_path):
    s = VLLMServer({model!r}, args={args!r}, env={env!r},
                   served_model_name="inner", log_path=tmp_path / "s.log")
    s.start()
    open({pidfile!r}, "w").write(str(s.pid))
    assert False, "fail on purpose with the server still running"
"""


def test_no_server_outlives_a_failing_session(tmp_path: Path) -> None:
    """A test that leaves its server running and fails: the session still stops the group."""
    from conftest import tiny_plan_args

    model, args, env = tiny_plan_args("dense-gqa", name="inner")
    env["VLLM_CACHE_ROOT"] = str(tmp_path / "vc")
    pidfile = tmp_path / "pid"
    (tmp_path / "test_inner.py").write_text(
        INNER_SESSION.format(model=model, args=list(args), env=env, pidfile=str(pidfile))
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert "1 failed" in proc.stdout, proc.stdout[-2000:]
    assert pidfile.is_file(), "the inner server never started:\n" + proc.stdout[-3000:]
    pgid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
