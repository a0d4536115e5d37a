"""Workloads: presets, validation, and requests built against a server tokenizer (the
instrument's word-level one here; the real vLLM tokenizer in test_loadgen_vllm.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
from collections.abc import Iterator

import pytest
from PIL import Image

from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import (
    _WORDS,
    WORKLOADS,
    PromptLengthError,
    Workload,
    _exact_text,
    _request_text,
    make_image_png,
    prepare_requests_sync,
)


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i


def test_presets() -> None:
    assert (WORKLOADS["text"].input_tokens, WORKLOADS["text"].output_tokens) == (500, 100)
    v = WORKLOADS["vision"]
    assert (v.kind, v.endpoint, v.input_tokens, v.output_tokens) == ("vision", "chat", 100, 200)
    assert v.images_per_request == 1
    assert (
        WORKLOADS["long-context-2k"].input_tokens,
        WORKLOADS["long-context-2k"].output_tokens,
    ) == (
        2048,
        512,
    )
    assert WORKLOADS["long-context-4k"].input_tokens == 4096
    assert WORKLOADS["long-context-8k"].input_tokens == 8192
    assert WORKLOADS["long-output"].output_tokens == 1000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "vision", "endpoint": "completions", "images_per_request": 1}, "chat"),
        ({"kind": "vision", "endpoint": "chat", "images_per_request": 0}, "images_per_request"),
        ({"images_per_request": 2}, "no images"),
        ({"input_tokens": 0}, ">= 1"),
        ({"shared_prefix_tokens": 500}, "shared_prefix_tokens"),
        ({"endpoint": "responses"}, "endpoint"),
    ],
)
def test_invalid_workloads_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Workload("bad", **kwargs)


def _count(inst: Instrument, body: dict) -> int:
    from pytest_llmperf.testing.instrument import prompt_tokens

    return len(prompt_tokens(body))


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_requests_are_exact_unique_and_reproducible(inst: Instrument, endpoint: str) -> None:
    w = Workload("w", endpoint=endpoint, input_tokens=137, output_tokens=9, seed=7)  # type: ignore[arg-type]
    a = prepare_requests_sync(inst.endpoint(), w, 20)
    b = prepare_requests_sync(inst.endpoint(), w, 20)
    c = prepare_requests_sync(inst.endpoint(), Workload("w", endpoint=endpoint, seed=8), 3)  # type: ignore[arg-type]
    assert [r.body for r in a] == [r.body for r in b]
    assert len({r.body for r in a}) == 20
    assert a[0].body != c[0].body
    for r in a:
        body = json.loads(r.body)
        assert _count(inst, body) == 137
        assert body["max_tokens"] == body["min_tokens"] == 9
        assert body["ignore_eos"] is True and body["stream"] is True
        assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
        assert r.path == ("/v1/chat/completions" if endpoint == "chat" else "/v1/completions")


def test_shared_prefix_is_shared(inst: Instrument) -> None:
    w = Workload("sp", input_tokens=120, output_tokens=4, shared_prefix_tokens=60)
    reqs = prepare_requests_sync(inst.endpoint(), w, 5)
    prompts = [json.loads(r.body)["prompt"] for r in reqs]
    prefix = prompts[0].split("\n")[0]
    assert all(p.startswith(prefix + "\n") for p in prompts)
    assert len(prefix.split()) == 60  # word-level tokenizer: one token per word
    assert all(_count(inst, json.loads(r.body)) == 120 for r in reqs)


def test_vision_requests_carry_distinct_png_images(inst: Instrument) -> None:
    w = Workload(
        "v",
        kind="vision",
        endpoint="chat",
        input_tokens=50,
        images_per_request=3,
        image_size=(64, 48),
    )
    reqs = prepare_requests_sync(inst.endpoint(), w, 4)
    seen = set()
    for r in reqs:
        parts = json.loads(r.body)["messages"][0]["content"]
        assert parts[0]["type"] == "text"
        urls = [p["image_url"]["url"] for p in parts[1:]]
        assert len(urls) == 3 and r.num_images == 3
        for u in urls:
            assert u.startswith("data:image/png;base64,")
            img = Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1])))
            assert img.format == "PNG" and img.size == (64, 48)
            seen.add(u)
    assert len(seen) == 12
    assert make_image_png("a", (32, 32)) == make_image_png("a", (32, 32))


def test_too_short_input_fails_loudly(inst: Instrument) -> None:
    w = Workload("short", endpoint="chat", input_tokens=2, output_tokens=1)
    with pytest.raises(PromptLengthError, match="cannot hold"):
        prepare_requests_sync(inst.endpoint(), w, 1)


def test_unfixable_tokenizer_mismatch_fails_loudly() -> None:
    """A server whose counts never land on the target (here: every word costs 3 tokens
    whatever the table says) must raise, not send wrong-length prompts."""

    async def count(text: str) -> int:
        return 3 * len(text.split())

    with pytest.raises(PromptLengthError, match="exactly 100 tokens"):
        asyncio.run(
            _exact_text(
                head="x",
                rng=random.Random(0),
                target=100,
                count_full=count,
                costs=dict.fromkeys(_WORDS, 1),
                ones=list(_WORDS),
                what="test",
            )
        )


def _text_after_failed_attempts(failing: int) -> tuple[str, int]:
    """``_request_text`` against a server whose counts never converge (always one short of
    the 20 asked for) for the first ``failing`` attempts (each attempt starts by counting the
    bare head) and count words after: (the text, the attempts made)."""
    head = "[0-3]"
    attempts = 0

    async def count(text: str) -> int:
        nonlocal attempts
        attempts += text == head
        return 19 if attempts <= failing and text != head else len(text.split())

    w = Workload("retry", input_tokens=20, output_tokens=1)
    ones = list(_WORDS)
    text = asyncio.run(_request_text(w, 3, head, count, dict.fromkeys(_WORDS, 1), ones))
    return text, attempts


def test_a_prompt_that_will_not_converge_is_tried_with_fresh_words_three_times() -> None:
    first, tries = _text_after_failed_attempts(0)
    third, tries_third = _text_after_failed_attempts(2)
    assert (tries, tries_third) == (1, 3)
    assert len(third.split()) == len(first.split()) == 20
    assert len({first, _text_after_failed_attempts(1)[0], third}) == 3  # fresh words each
    assert third == _text_after_failed_attempts(2)[0]
    with pytest.raises(PromptLengthError, match="workload 'retry' request 3: could not build"):
        _text_after_failed_attempts(3)
