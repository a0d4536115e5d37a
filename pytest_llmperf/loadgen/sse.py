"""After a request ends: split its raw reads into SSE events and turn them into a
``RequestRecord`` (token-carrying chunks from the usage deltas, errors classified).

Two first-token times per request. The first token of any kind (answer text, a reasoning
model's ``reasoning`` / ``reasoning_content`` deltas, tool-call deltas) ends TTFT: it is the
first event whose usage delta is positive. The first *content* token is the first such event
that is not thinking: a thinking event carries reasoning (a string under ``reasoning`` or
``reasoning_content``) or a tool call, and no non-empty answer text. An answer token whose
text is still empty (a partial UTF-8 character, a skipped special token: real vLLM streams
these, seen with the tiny models) is content, so without reasoning the first content token is
the first token. Both are read from the whole body after the request ended by C-level regex
scans; a stream without thinking costs one (a JSON key inside a string value is escaped,
``\\"reasoning\\":``, so it cannot match).

``parse_sse_full`` (about 75 lines) is left whole on purpose: it is on the measured path. The
run's event loop calls it, through ``to_record`` and ``parse_sse``, once for each request as
that request ends, while the other requests are still streaming on the same loop. It is the
whole parse for a stream without continuous usage or with anything unusual, and the fast path
calls it for a first event without usage (a chat stream's role chunk). Its loop runs once per
SSE event and keeps the stream's state in locals (the previous completion count, whether usage
deltas or text without usage were seen, the first content time). Helpers would pass that state
back and forth on each event, on the loop whose promptness the client-health checks judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from pytest_llmperf.core.records import ErrorKind, RequestRecord
from pytest_llmperf.loadgen.transport import RawResponse
from pytest_llmperf.workload.prompts import PreparedRequest


@dataclass(slots=True)
class ParsedStream:
    chunk_times: list[float]
    chunk_tokens: list[int]
    prompt_tokens: int | None
    completion_tokens: int | None
    done: bool
    error_kind: ErrorKind | None
    error_detail: str | None
    continuous_usage: bool
    first_content: float | None = None


_USAGE_RE: Final = re.compile(rb'"prompt_tokens":\s*(\d+).*"completion_tokens":\s*(\d+)')
_EMPTY_CHOICES: Final[tuple[bytes, bytes]] = (b'"choices":[]', b'"choices": []')
#: A non-empty answer-text string: chat ``content`` or completions ``text``.
_CONTENT_RE: Final = re.compile(rb'"(?:content|text)":\s*"(?!")')
#: Thinking output: a reasoning string (even empty) or a tool call.
_THINK_RE: Final = re.compile(rb'"(?:reasoning|reasoning_content)":\s*"|"tool_calls":\s*\[\s*\{')


def _thinking(event: bytes) -> bool:
    """Whether a token-carrying event is thinking (reasoning or a tool call, no answer text)."""
    return _THINK_RE.search(event) is not None and _CONTENT_RE.search(event) is None


def _first_content(body: bytes, token_events: Sequence[tuple[int, int, float]]) -> float | None:
    """Time of the first token-carrying event ``(start, end, time)`` that is not thinking."""
    if _THINK_RE.search(body) is None:
        return token_events[0][2] if token_events else None
    for a, b, t in token_events:
        if not _thinking(body[a:b]):
            return t
    return None


def _fast_usage(payload: bytes) -> tuple[int, int, bool] | None:
    """(prompt, completion, has_choices) read from a well-formed usage event without a JSON
    decode (the common case: one per streamed chunk), or None to take the full parse."""
    if not (payload.startswith(b"{") and payload.endswith(b"}")) or b'"error"' in payload:
        return None
    i = payload.rfind(b'"usage":')
    if i < 0:
        return None
    m = _USAGE_RE.search(payload, i)
    if m is None:
        return None
    has_choices = _EMPTY_CHOICES[0] not in payload and _EMPTY_CHOICES[1] not in payload
    return int(m.group(1)), int(m.group(2)), has_choices


def _events(times: Sequence[float], chunks: Sequence[bytes]) -> Iterator[tuple[float, bytes]]:
    """SSE events with the time of the read that completed each (incomplete tail dropped)."""
    body = b"".join(chunks)
    if b"\r" in body:  # CRLF framing: normalise per read, keeping each event's read
        buf = b""
        for t, data in zip(times, chunks, strict=True):
            buf = (buf + data).replace(b"\r\n", b"\n")
            if b"\n\n" in buf:
                *evs, buf = buf.split(b"\n\n")
                for ev in evs:
                    yield t, ev
        return
    ends = list(accumulate(map(len, chunks)))
    evs = body.split(b"\n\n")
    evs.pop()  # b"" after the final separator, or an incomplete event
    pos = 0
    i = 0
    for ev in evs:
        pos += len(ev) + 2
        while ends[i] < pos:
            i += 1
        yield times[i], ev


_COMPLETION_RE: Final = re.compile(rb'"completion_tokens":\s*(\d+)')
_PROMPT_RE: Final = re.compile(rb'"prompt_tokens":\s*(\d+)')
_DONE: Final = b"data: [DONE]\n\n"


def _parse_sse_fast(times: Sequence[float], chunks: Sequence[bytes]) -> ParsedStream | None:
    """Whole-body fast path for a clean stream in which every JSON event but the first
    carries usage (vLLM with continuous usage stats): C-level scans, then a few operations
    per event. Returns None whenever anything is unusual; the full parser then decodes and
    validates every event."""
    body = b"".join(chunks)
    if not body.endswith(_DONE) or b"\r" in body or b'"error"' in body:
        return None
    found = list(_COMPLETION_RE.finditer(body))
    if not found:
        return None
    n_events = body.count(b"\n\n") - 1  # JSON events, [DONE] excluded
    unmatched = n_events - len(found)
    head_end = body.find(b"\n\n") + 2
    if unmatched == 1:
        # the first event (e.g. a chat role chunk without usage): decode and validate it
        if found[0].start() < head_end:
            return None
        first = parse_sse_full([times[0]], [body[:head_end]])
        if first.error_kind is not None or first.chunk_tokens:
            return None
    elif unmatched != 0:
        return None
    out = ParsedStream([], [], None, None, True, None, None, True)
    ends = list(accumulate(map(len, chunks)))
    ct = out.chunk_times
    ck = out.chunk_tokens
    i = 0
    prev = 0
    token_events: list[tuple[int, int, float]] = []
    for m in found:
        completion = int(m.group(1))
        k = completion - prev
        if k > 0:
            pos = body.find(b"\n\n", m.end()) + 2  # the event counts when it is complete
            while ends[i] < pos:
                i += 1
            ct.append(times[i])
            ck.append(k)
            token_events.append((body.rfind(b"\n\n", 0, m.start()) + 2, pos, times[i]))
            prev = completion
        elif k < 0:
            return None
    last = found[-1]
    pm = _PROMPT_RE.search(body, body.rfind(b"\n\ndata: {", 0, last.start()))
    if pm is None:
        return None
    out.prompt_tokens = int(pm.group(1))
    out.completion_tokens = prev
    out.first_content = _first_content(body, token_events)
    return out


def parse_sse(times: Sequence[float], chunks: Sequence[bytes]) -> ParsedStream:
    """Split raw reads into SSE events (an event's time is the read that completed it) and
    derive token-carrying chunks from the usage deltas (one token per text chunk without)."""
    fast = _parse_sse_fast(times, chunks)
    return fast if fast is not None else parse_sse_full(times, chunks)


def parse_sse_full(times: Sequence[float], chunks: Sequence[bytes]) -> ParsedStream:
    """Split raw reads into SSE events (an event's time is the read that completed it) and
    derive token-carrying chunks from the usage deltas (one token per text chunk without).

    Usage-carrying events are read with a byte-level fast path; every other event (the first,
    errors, events without usage) is decoded as JSON and validated."""
    out = ParsedStream([], [], None, None, False, None, None, True)
    prev_completion = 0
    saw_usage_delta = False
    saw_text_without_usage = False
    first = True
    chunk_times = out.chunk_times
    chunk_tokens = out.chunk_tokens
    for t, ev in _events(times, chunks):
        if ev.startswith(b"data: ") and b"\n" not in ev:
            payload = ev[6:]
        else:
            payload = b"\n".join(
                line[5:].lstrip(b" ") for line in ev.split(b"\n") if line.startswith(b"data:")
            )
            if not payload:
                continue
        if payload == b"[DONE]":
            out.done = True
            break
        fast = None if first else _fast_usage(payload)
        first = False
        if fast is not None:
            out.prompt_tokens, completion, has_choices = fast
            out.completion_tokens = completion
            if has_choices:
                k = completion - prev_completion
                prev_completion = completion
                saw_usage_delta = True
                if k > 0 and out.first_content is None and not _thinking(payload):
                    out.first_content = t
                if k > 0:
                    chunk_times.append(t)
                    chunk_tokens.append(k)
            continue
        try:
            obj = json.loads(payload)
        except ValueError:
            out.error_kind = "malformed_stream"
            out.error_detail = f"invalid JSON in SSE event: {payload[:200]!r}"
            return out
        if not isinstance(obj, dict):
            out.error_kind = "malformed_stream"
            out.error_detail = f"SSE event is not a JSON object: {payload[:200]!r}"
            return out
        if "error" in obj or obj.get("object") == "error":
            err = obj.get("error", obj)
            msg = err.get("message", err) if isinstance(err, dict) else err
            out.error_kind, out.error_detail = "stream_error", f"server error: {msg}"[:500]
            return out
        choices = obj.get("choices") or []
        usage = obj.get("usage")
        if usage:
            out.prompt_tokens = usage.get("prompt_tokens", out.prompt_tokens)
            out.completion_tokens = usage.get("completion_tokens", out.completion_tokens)
        if not choices:
            continue
        if usage and "completion_tokens" in usage:
            k = int(usage["completion_tokens"]) - prev_completion
            prev_completion = int(usage["completion_tokens"])
            saw_usage_delta = True
        else:
            k = 1 if _any_token(choices[0]) else 0
            saw_text_without_usage = saw_text_without_usage or bool(k)
        if k > 0 and out.first_content is None and not _thinking_choice(choices[0]):
            out.first_content = t
        if k > 0:
            chunk_times.append(t)
            chunk_tokens.append(k)
    out.continuous_usage = saw_usage_delta and not saw_text_without_usage
    return out


def _answer_text(choice: Any) -> bool:
    """Whether a decoded choice carries non-empty answer text (chat content, completion text)."""
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta")
    text = choice.get("text") or (delta.get("content") if isinstance(delta, dict) else None)
    return isinstance(text, str) and bool(text)


def _thinking_choice(choice: Any) -> bool:
    """A decoded choice's ``_thinking``: reasoning or a tool call, and no answer text."""
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict) or _answer_text(choice):
        return False
    return (
        isinstance(delta.get("reasoning"), str)
        or isinstance(delta.get("reasoning_content"), str)
        or bool(delta.get("tool_calls"))
    )


def _any_token(choice: Any) -> bool:
    """Whether a decoded choice carries output of any kind: answer text, reasoning or a tool
    call (the one-token-per-chunk count of a stream without usage)."""
    if _answer_text(choice):
        return True
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        return False
    return bool(delta.get("reasoning") or delta.get("reasoning_content") or delta.get("tool_calls"))


def to_record(
    req: PreparedRequest, intended: float, start: float, raw: RawResponse
) -> tuple[RequestRecord, bool]:
    """Raw response -> record. Returns the record and whether per-chunk usage was present."""
    base: dict[str, Any] = {
        "index": req.index,
        "intended_start": intended,
        "start": start,
        "end": raw.end,
        "expected_output_tokens": req.output_tokens,
        "status": raw.status,
        "queue_wait": max(0.0, start - intended),
    }
    empty: dict[str, Any] = {
        "first_token": None,
        "chunk_times": (),
        "chunk_tokens": (),
        "prompt_tokens": None,
        "completion_tokens": None,
    }
    if raw.error_kind is not None:
        return RequestRecord(
            **base, **empty, error_kind=raw.error_kind, error_detail=raw.error_detail
        ), False
    status = raw.status or 0
    if status != 200:
        kind: ErrorKind = (
            "http_429" if status == 429 else "http_5xx" if status >= 500 else "http_4xx"
        )
        detail = b"".join(raw.chunks)[:300].decode("utf-8", "replace")
        return RequestRecord(
            **base, **empty, error_kind=kind, error_detail=f"HTTP {status}: {detail}"
        ), False
    p = parse_sse(raw.times, raw.chunks)
    err, detail = p.error_kind, p.error_detail
    if err is None and raw.content_type != "text/event-stream" and not p.chunk_times:
        err, detail = "malformed_stream", f"expected text/event-stream, got {raw.content_type!r}"
    if err is None and not p.done:
        err, detail = "early_stop", "stream ended without [DONE]"
    if err is None and p.completion_tokens is None:
        err, detail = "usage_missing", "no usage in the stream (stream_options.include_usage)"
    if err is None and p.completion_tokens is not None and p.completion_tokens < req.output_tokens:
        err = "early_stop"
        detail = f"{p.completion_tokens} of {req.output_tokens} output tokens"
    rec = RequestRecord(
        **base,
        first_token=p.chunk_times[0] if p.chunk_times else None,
        first_content=p.first_content,
        chunk_times=tuple(p.chunk_times),
        chunk_tokens=tuple(p.chunk_tokens),
        prompt_tokens=p.prompt_tokens,
        completion_tokens=p.completion_tokens,
        error_kind=err,
        error_detail=detail,
    )
    return rec, p.continuous_usage
