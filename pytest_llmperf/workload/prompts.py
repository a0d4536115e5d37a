"""What to send: named workloads and the exact-length requests built from them.

Prompts are seeded, unique per request and exact in token count *for the server's own
tokenizer*: lengths are measured with the server's ``/tokenize`` endpoint and converged with a
decode/re-encode loop (as ``vllm bench serve`` does), so no local tokenizer can disagree with the
server. A length the loop cannot reach raises ``PromptLengthError`` instead of sending a wrong
workload. All requests are built once, before the load phase.

Size (about 460 lines), stated: one pipeline from a workload to its prepared requests (the
server's tokenizer, the exact-length loop, the image payloads and the image-limit preflight
that must agree with them); each step is short, and the named workloads are in
``workload.presets``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.workload.presets import ENDPOINT_PATHS as ENDPOINT_PATHS  # re-exported
from pytest_llmperf.workload.presets import WORKLOADS as WORKLOADS  # re-exported
from pytest_llmperf.workload.presets import Workload

_WORDS: Final[tuple[str, ...]] = tuple(
    """the of and to in is was for on that with as by at from his her an were are which this be
    or has had not but one two new first after more also can other time into all its than
    over most some such only when about many then them these so would may city river house
    light model system value paper music water field state world group small large early late
    north south east west under between during through without against along across around
    number result market energy policy theory island garden window mountain forest signal
    station engine pattern reason season letter animal history village company language
    question summer winter bridge record report market simple quiet bright narrow heavy""".split()
)


class PromptLengthError(RuntimeError):
    """The server's tokenizer would not give a prompt of exactly the requested length."""


class TokenizeUnavailable(RuntimeError):
    """The endpoint has no working ``/tokenize``: exact prompt lengths cannot be guaranteed."""


class ImageLimitError(ValueError):
    """The server will not take as many images in one prompt as the workload sends.

    Found before any load by ``check_image_limit``: a ``ValueError`` like the other faults of
    the user's input, so the engine fails the case with this message instead of sending
    requests that would all be refused."""

    def __init__(self, message: str, *, limit: int | None, images: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.images = images


#: vLLM's refusal (``multimodal/processing/context.py``, ``validate_num_items``): the limit is
#: the smaller of the model's own (its processing info's ``get_supported_mm_limits``) and the
#: server's ``--limit-mm-per-prompt``; the hint is added only when the model itself takes more.
_IMAGE_LIMIT_RE = re.compile(r"At most (\d+) image\(s\) may be provided in one prompt\.")
_RAISE_LIMIT_HINT = "--limit-mm-per-prompt"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request ready to send: the serialised body is built once, outside the hot path."""

    index: int
    path: str
    body: bytes
    input_tokens: int  # exact, as the server's /tokenize counts the text (images excluded)
    output_tokens: int
    num_images: int = 0
    # the whole prompt as the server's /tokenize counts it, images expanded; None when the
    # server cannot count image prompts (then only "more than input_tokens" is checked)
    expected_prompt_tokens: int | None = None
    prompt_preview: str = field(default="", repr=False)


# --------------------------------------------------------------------------- server tokenizer


class ServerTokenizer:
    """The server's tokenizer, reached over ``/tokenize`` and ``/detokenize``."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> None:
        self._s = session
        self._ep = endpoint

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {"model": self._ep.model, **payload}
        try:
            async with self._s.post(
                self._ep.url(path), json=payload, headers=self._ep.headers()
            ) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise TokenizeUnavailable(
                        f"{self._ep.url(path)} answered HTTP {resp.status}: {text[:300]}; exact "
                        "prompt lengths need a server with vLLM's /tokenize and /detokenize"
                    )
                return json.loads(text)
        except aiohttp.ClientError as exc:
            raise TokenizeUnavailable(f"cannot reach {self._ep.url(path)}: {exc}") from exc

    async def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        data = await self._post(
            "/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens}
        )
        return list(data["tokens"])

    async def count_prompt(self, text: str) -> int:
        """Tokens the server will count for ``text`` sent to /v1/completions."""
        return int((await self._post("/tokenize", {"prompt": text}))["count"])

    async def count_messages(self, messages: list[dict[str, Any]]) -> int | None:
        """Tokens of a full chat prompt, images included (vLLM runs its multimodal processor
        for /tokenize); None when the server will not count it."""
        try:
            data = await self._post(
                "/tokenize", {"messages": messages, "add_generation_prompt": True}
            )
        except TokenizeUnavailable:
            return None
        return int(data["count"])

    async def try_count_messages(self, messages: list[dict[str, Any]]) -> tuple[int | None, str]:
        """``(count, "")`` for a chat prompt the server accepts, ``(None, its error text)`` for
        one it refuses (``TokenizeUnavailable`` when it cannot be reached at all)."""
        payload = {"model": self._ep.model, "messages": messages, "add_generation_prompt": True}
        url = self._ep.url("/tokenize")
        try:
            async with self._s.post(url, json=payload, headers=self._ep.headers()) as resp:
                text = await resp.text()
        except aiohttp.ClientError as exc:
            raise TokenizeUnavailable(f"cannot reach {url}: {exc}") from exc
        if resp.status == 200:
            return int(json.loads(text)["count"]), ""
        return None, f"HTTP {resp.status}: {text[:500]}"

    async def count_chat(self, text: str) -> int:
        """Tokens of the templated chat prompt (generation prompt included) for one user turn."""
        data = await self._post(
            "/tokenize",
            {"messages": [{"role": "user", "content": text}], "add_generation_prompt": True},
        )
        return int(data["count"])

    async def decode(self, tokens: Sequence[int]) -> str:
        return str((await self._post("/detokenize", {"tokens": list(tokens)}))["prompt"])


# --------------------------------------------------------------------------- prompts and images


async def _word_costs(tok: ServerTokenizer) -> tuple[dict[str, int], list[str]]:
    """Token cost of each `` word`` (the server's pre-tokenizer splits at spaces, so costs add
    up) and the words that cost exactly one token, used to fill the last few tokens."""
    counts = await asyncio.gather(*(tok.encode(" " + w, add_special_tokens=False) for w in _WORDS))
    costs = {w: len(t) for w, t in zip(_WORDS, counts, strict=True)}
    ones = [w for w, c in costs.items() if c == 1]
    if not ones:
        raise PromptLengthError(
            "the server's tokenizer has no single-token word in the prompt word list, so "
            "exact prompt lengths cannot be reached; report this tokenizer to pytest-llmperf"
        )
    return costs, ones


async def _exact_text(
    *,
    head: str,
    rng: random.Random,
    target: int,
    count_full: Callable[[str], Awaitable[int]],
    costs: dict[str, int],
    ones: list[str],
    what: str,
    max_rounds: int = 8,
) -> str:
    """``head`` + seeded words whose full count (``count_full``: template and special tokens
    included) is exactly ``target``: assemble from known word costs, then verify with the
    server and correct by whole words until the server agrees."""
    base = await count_full(head)
    want = target - base
    if want < 0:
        raise PromptLengthError(
            f"{what}: {target} tokens cannot hold the {base} template, special and header "
            "tokens every prompt starts with; ask for a longer input"
        )
    words: list[str] = []
    total = 0
    while total < want:
        w = rng.choice(_WORDS)
        if total + costs[w] > want:
            w = rng.choice(ones)
        words.append(w)
        total += costs[w]
    n = -1
    for _ in range(max_rounds):
        text = head + "".join(" " + w for w in words)
        n = await count_full(text)
        if n == target:
            return text
        if n < target:
            words += [rng.choice(ones) for _ in range(target - n)]
        else:
            removed = 0
            while words and removed < n - target:
                removed += costs[words.pop()]
            words += [rng.choice(ones) for _ in range(removed - (n - target))]
    raise PromptLengthError(
        f"{what}: could not build a prompt of exactly {target} tokens with the server's "
        f"tokenizer (last attempt: {n} tokens after {max_rounds} rounds of server-verified "
        "correction); the tokenizer merges across word boundaries"
    )


def make_image_png(seed: str, size: tuple[int, int]) -> bytes:
    """A deterministic picture (coloured rectangles on a gradient) that differs per seed and
    compresses well, so request bodies stay small."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = rng.randrange(x0, w + 1), rng.randrange(y0, h + 1)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _body(workload: Workload, model: str, text: str, images: list[str]) -> dict[str, Any]:
    n = workload.output_tokens
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": n,
        "min_tokens": n,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    if workload.endpoint == "completions":
        body["prompt"] = text
    elif images:
        body["messages"] = image_messages(text, images)
    else:
        body["messages"] = [{"role": "user", "content": text}]
    return body


def image_messages(text: str, images: Sequence[str]) -> list[dict[str, Any]]:
    """One user turn: the text, then each image (a data URL) as an ``image_url`` part."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in images]
    return [{"role": "user", "content": parts}]


def image_limit_message(
    workload: Workload, url: str, limit: int, server_text: str, *, model_takes_more: bool
) -> str:
    """What, why and what to do when the server takes fewer images than the workload sends.

    vLLM's limit is the smaller of the model's own and the server's ``--limit-mm-per-prompt``;
    it says which only when the model's own is larger than the flag (``model_takes_more``)."""
    n = workload.images_per_request
    head = (
        f"workload {workload.name!r} sends {n} images per request, but the server at {url} "
        f"takes at most {limit} per prompt (its own words: {server_text.strip()!r})"
    )
    flag = f"--limit-mm-per-prompt '{{\"image\":{n}}}'"
    if model_takes_more:
        return (
            f"{head}. The model takes more: the server's --limit-mm-per-prompt is {limit}. "
            f"Start it with {flag} (a server pytest-llmperf launches gets it from the "
            "workload; check the model's extra_args), or set "
            f"images_per_request = {limit} or fewer"
        )
    return (
        f"{head}. The limit is the smaller of the model's own (vLLM's code for its "
        "architecture: BLIP-2, the tiny 'vision' model, takes one) and the server's "
        f"--limit-mm-per-prompt. Set images_per_request = {limit} or fewer for this model, or "
        f"serve a model that takes {n} images per prompt (the tiny 'vision-multi' model, "
        f"Idefics3, takes any number) started with {flag} (a server pytest-llmperf launches "
        "gets it from the workloads)"
    )


async def check_image_limit(
    tok: ServerTokenizer, endpoint: Endpoint, workload: Workload
) -> int | None:
    """Preflight, before any request is sent: ask the server's ``/tokenize`` (which runs the
    model's multimodal processor and its per-prompt item check) to count one prompt carrying
    the workload's images. Returns that prompt's token count (None when the server will not
    count image prompts: nothing can be checked). Raises ``ImageLimitError`` when the server
    says it takes fewer images than the workload sends: the limit it names is the one its
    requests would meet, whether it comes from the model or from ``--limit-mm-per-prompt``."""
    n = workload.images_per_request
    if n < 1:
        return None
    images = [
        png_data_url(make_image_png(f"preflight:{workload.seed}:{j}", workload.image_size))
        for j in range(n)
    ]
    count, error = await tok.try_count_messages(image_messages("preflight", images))
    if count is not None:
        return count
    found = _IMAGE_LIMIT_RE.search(error)
    if found is None:
        return None  # refused for another reason (or no multimodal /tokenize): not ours to say
    limit = int(found.group(1))
    message = image_limit_message(
        workload,
        endpoint.url("/tokenize"),
        limit,
        found.group(0),
        model_takes_more=_RAISE_LIMIT_HINT in error,
    )
    raise ImageLimitError(message, limit=limit, images=n)


async def prepare_requests(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    workload: Workload,
    count: int,
    *,
    start_index: int = 0,
    parallel: int = 16,
) -> list[PreparedRequest]:
    """Build ``count`` exact-length requests (indices ``start_index..``), verified against the
    server's tokenizer. Raises ``PromptLengthError`` / ``TokenizeUnavailable``, and
    ``ImageLimitError`` (before building anything) when the server takes fewer images per
    prompt than the workload sends."""
    tok = ServerTokenizer(session, endpoint)
    await check_image_limit(tok, endpoint, workload)
    count_full = tok.count_chat if workload.endpoint == "chat" else tok.count_prompt
    costs, ones = await _word_costs(tok)
    shared = await _shared_prefix(tok, workload, costs, ones)
    sem = asyncio.Semaphore(parallel)

    async def one(index: int) -> PreparedRequest:
        tag = f"[{workload.seed}-{index}]"
        async with sem:
            text = await _request_text(
                workload, index, f"{shared}\n{tag}" if shared else tag, count_full, costs, ones
            )
        images = _request_images(workload, index)
        body = _body(workload, endpoint.model, text, images)
        expected: int | None = workload.input_tokens
        if images:
            async with sem:
                expected = await tok.count_messages(body["messages"])
        return PreparedRequest(
            index=index,
            path=workload.path,
            body=json.dumps(body, separators=(",", ":")).encode(),
            input_tokens=workload.input_tokens,
            output_tokens=workload.output_tokens,
            num_images=len(images),
            expected_prompt_tokens=expected,
            prompt_preview=text[:80],
        )

    return list(await asyncio.gather(*(one(start_index + i) for i in range(count))))


async def _shared_prefix(
    tok: ServerTokenizer, workload: Workload, costs: dict[str, int], ones: list[str]
) -> str:
    """The text every request of the workload starts with (``shared_prefix_tokens`` long,
    counted without special tokens: it sits inside the prompt), or "" when it has none."""
    if not workload.shared_prefix_tokens:
        return ""

    async def raw_count(text: str) -> int:
        return len(await tok.encode(text, add_special_tokens=False))

    return await _exact_text(
        head="",
        rng=random.Random(f"shared:{workload.name}:{workload.seed}"),
        target=workload.shared_prefix_tokens,
        count_full=raw_count,
        costs=costs,
        ones=ones,
        what=f"workload {workload.name!r} shared prefix",
    )


async def _request_text(
    workload: Workload,
    index: int,
    head: str,
    count_full: Callable[[str], Awaitable[int]],
    costs: dict[str, int],
    ones: list[str],
) -> str:
    """Request ``index``'s prompt text, exactly ``input_tokens`` long as the server counts it.

    A rare word sequence can merge across a boundary and never converge; a fresh, still
    seeded, choice of words almost always does. Fail only if three do not."""

    def attempt(n: int) -> Awaitable[str]:
        suffix = f":{n}" if n else ""
        return _exact_text(
            head=head,
            rng=random.Random(f"{workload.name}:{workload.seed}:{index}{suffix}"),
            target=workload.input_tokens,
            count_full=count_full,
            costs=costs,
            ones=ones,
            what=f"workload {workload.name!r} request {index}",
        )

    for n in (0, 1):
        try:
            return await attempt(n)
        except PromptLengthError:
            pass
    return await attempt(2)


def _request_images(workload: Workload, index: int) -> list[str]:
    """Request ``index``'s images as data URLs: seeded, different per request and per image."""
    return [
        png_data_url(make_image_png(f"{workload.seed}:{index}:{j}", workload.image_size))
        for j in range(workload.images_per_request)
    ]


def prepare_requests_sync(
    endpoint: Endpoint, workload: Workload, count: int, *, start_index: int = 0
) -> list[PreparedRequest]:
    """Blocking wrapper of ``prepare_requests`` with its own session."""

    async def go() -> list[PreparedRequest]:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await prepare_requests(
                session, endpoint, workload, count, start_index=start_index
            )

    return asyncio.run(go())
