"""Several images per request on real vLLM (CPU, tiny random-weight models).

- BLIP-2 (the shared ``vision_server``) takes one image per prompt: a 3-image workload is
  refused by the preflight before any request is built or sent, with the server's own limit.
- Idefics3 (tiny ``vision-multi``, one server boot) takes any number: 3- and 5-image requests
  are served, each request's prompt is counted exactly (text + 19 tokens per 112 px image),
  and a 6-image workload meets the server's ``--limit-mm-per-prompt`` (5, set by the plan from
  the workloads), which the preflight reports with "raise the flag" advice.

The Idefics3 tests need their own server boot (about 60-90 s on a quiet machine with a warm
compile cache, 6 minutes under load with a fresh one), so they are opt-in:
``LLMPERF_SLOW=1 pytest tests/test_vision_multi_vllm.py``. The BLIP-2 tests use the shared
session server and run by default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.server.process import VLLMServer
from pytest_llmperf.server.tiny_models import IDEFICS3_IMAGE_SEQ_LEN
from pytest_llmperf.workload.prompts import ImageLimitError, Workload, prepare_requests_sync

pytestmark = pytest.mark.vllm

#: ``<fake_token_around_image><global-img>`` + 16 ``<image>`` + ``<fake_token_around_image>``
IDEFICS3_TOKENS_PER_IMAGE = IDEFICS3_IMAGE_SEQ_LEN + 3
SERVER_IMAGE_LIMIT = 5
SLOW = pytest.mark.skipif(
    not os.environ.get("LLMPERF_SLOW"),
    reason="boots its own Idefics3 tiny server (1-6 min): run with LLMPERF_SLOW=1",
)


def vision(n: int, *, input_tokens: int = 40, output_tokens: int = 8) -> Workload:
    return Workload(
        f"vis{n}",
        kind="vision",
        endpoint="chat",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        images_per_request=n,
    )


def tokenize(ep: Endpoint, messages: list[dict[str, Any]]) -> tuple[int, str]:
    """The server's /tokenize, asked directly (independently of the workload module)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        ep.url("/tokenize"),
        data=json.dumps(
            {"model": ep.model, "messages": messages, "add_generation_prompt": True}
        ).encode(),
        headers={"Content-Type": "application/json", **ep.headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(json.loads(resp.read())["count"]), ""
    except urllib.error.HTTPError as exc:
        return -1, exc.read().decode()


def test_blip2_refuses_three_images_before_any_load(vision_server: Any) -> None:
    ep = vision_server.endpoint
    before = vision_server_requests(ep)
    with pytest.raises(ImageLimitError) as info:
        prepare_requests_sync(ep, vision(3), 4)
    err = info.value
    assert (err.limit, err.images) == (1, 3)
    text = str(err)
    assert "sends 3 images per request" in text and "at most 1 per prompt" in text
    assert "images_per_request = 1 or fewer" in text and "vision-multi" in text
    assert vision_server_requests(ep) == before  # nothing was sent to the model
    # the same server takes the one image it supports
    assert len(prepare_requests_sync(ep, vision(1), 2)) == 2


def vision_server_requests(ep: Endpoint) -> float:
    """Requests the server has finished (``vllm:request_success_total``, all reasons)."""
    import urllib.request

    with urllib.request.urlopen(ep.url("/metrics"), timeout=30) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total")
    )


@pytest.fixture(scope="module")
def multi_server(tiny_server_factory: Callable[..., VLLMServer]) -> VLLMServer:
    """The Idefics3 tiny model, its image limit planned for 5 images (``PLAN_IMAGES``)."""
    return tiny_server_factory("vision-multi")


@SLOW
@pytest.mark.parametrize("n", [3, SERVER_IMAGE_LIMIT])
def test_several_images_per_request_are_served_and_counted_exactly(
    multi_server: Any, n: int
) -> None:
    ep = multi_server.endpoint
    w = vision(n)
    reqs = prepare_requests_sync(ep, w, 6)
    r = run_load(ep, w, LoadSpec(concurrency=3, num_requests=6), requests=reqs)
    assert r.summary.success_rate == 1.0, r.summary.errors
    r.check()
    for req, rec in zip(reqs, r.records, strict=True):
        messages = json.loads(req.body)["messages"]
        parts = messages[0]["content"]
        assert sum(p["type"] == "image_url" for p in parts) == n
        text_only, _ = tokenize(ep, [{"role": "user", "content": parts[0]["text"]}])
        assert text_only == 40
        # the chat template writes one "<image>" marker per image part; the processor turns
        # each marker into the image's 19 tokens
        assert rec.prompt_tokens == req.expected_prompt_tokens == tokenize(ep, messages)[0]
        assert rec.prompt_tokens == 40 + n * IDEFICS3_TOKENS_PER_IMAGE
        assert rec.completion_tokens == 8


@SLOW
def test_images_change_the_output(multi_server: Any) -> None:
    """The images reach the model: the same text with other pictures decodes differently."""
    import urllib.request

    from pytest_llmperf.workload.prompts import image_messages, make_image_png, png_data_url

    ep = multi_server.endpoint
    outs = []
    for seed in ("a", "b"):
        urls = [png_data_url(make_image_png(f"{seed}{j}", (112, 112))) for j in range(3)]
        body = {
            "model": ep.model,
            "messages": image_messages("describe them", urls),
            "max_tokens": 12,
            "temperature": 0.0,
            "ignore_eos": True,
        }
        req = urllib.request.Request(
            ep.url("/v1/chat/completions"),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **ep.headers()},
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            outs.append(json.loads(resp.read())["choices"][0]["message"]["content"])
    assert outs[0] != outs[1]


@SLOW
def test_more_images_than_the_server_flag_allows_is_refused_with_the_fix(
    multi_server: Any,
) -> None:
    ep = multi_server.endpoint
    with pytest.raises(ImageLimitError) as info:
        prepare_requests_sync(ep, vision(SERVER_IMAGE_LIMIT + 1), 2)
    assert info.value.limit == SERVER_IMAGE_LIMIT
    text = str(info.value)
    # vLLM names no source for a model without a limit of its own: both are offered
    assert "at most 5 per prompt" in text and "--limit-mm-per-prompt '{\"image\":6}'" in text


INNER = """\
concurrency = [2]
min_requests = 4
warmup_requests = 2

[[models]]
name = "vision"
tiny = "vision"

[[workloads]]
name = "three"
preset = "vision-3-images"
input_tokens = 40
output_tokens = 8
"""


def test_session_fails_the_case_before_any_load(
    pytester: pytest.Pytester, vision_server: Any
) -> None:
    """Through ``pytest --llmperf`` (the engine, pointed at the shared BLIP-2 server): the
    3-image case fails with the preflight's message and the server saw no request at all,
    not even the warm-up."""
    ep = vision_server.endpoint
    before = vision_server_requests(ep)
    pytester.path.joinpath("llmperf.toml").write_text(INNER)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--llmperf",
        "--llmperf-endpoint",
        vision_server.base_url,
        "--llmperf-served-model",
        vision_server.served_model_name,
        timeout=600,
    )
    out = result.stdout.str() + result.stderr.str()
    assert result.ret != 0, out
    assert "vision-three-c2" in out
    assert "sends 3 images per request" in out and "at most 1 per prompt" in out, out
    assert "Traceback" not in out and "prompts.py" not in out, out  # the message, not a trace
    assert vision_server_requests(ep) == before
