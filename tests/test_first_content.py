"""First token vs first *content* token (issue 15, item 8): a reasoning model's thinking and
tool-call deltas end TTFT; the first answer text ends TTFCT.

The streams with ``reasoning`` / ``reasoning_content`` / ``tool_calls`` deltas here come from
the measuring instrument (``pytest_llmperf.testing.instrument``, ``think=N``), which knows when
it sent each chunk: a scripted stand-in for a reasoning model's bytes, used because its timing
is known. The real-vLLM checks are in ``tests/test_first_content_vllm.py``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmperf.core.atomic import read_jsonl
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.loadgen.sse import parse_sse, parse_sse_full
from pytest_llmperf.metrics.summary import metric_names, summarize
from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import Workload

CHAT = Workload("chat", endpoint="chat", input_tokens=30, output_tokens=12)


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i


def _send_times(raw: tuple[tuple[float, ...], tuple[bytes, ...]]) -> list[tuple[float, dict]]:
    """(client read time, decoded event) for every JSON event of a kept raw stream."""
    out = []
    times, chunks = raw
    for t, data in zip(times, chunks, strict=True):
        for ev in data.split(b"\n\n"):
            if ev.startswith(b"data: {"):
                out.append((t, json.loads(ev[6:])))
    return out


@pytest.mark.parametrize("key", ["reasoning", "reasoning_content", "tool_calls"])
def test_thinking_ends_ttft_and_content_ends_ttfct(
    inst: Instrument, key: str, tmp_path: Path
) -> None:
    itl, think = 0.01, 5  # k=1: the content chunk is the (think + 1)-th
    records_path = tmp_path / "r.jsonl"
    r = run_load(
        inst.endpoint(ttft=0.03, itl=itl, think=think, think_key=key),
        CHAT,
        LoadSpec(concurrency=4, num_requests=8),
        keep_raw=True,
        records_path=records_path,
    )
    r.check()
    assert r.summary.success_rate == 1.0, r.summary.errors
    assert r.raw is not None
    for rec in r.records:
        assert rec.first_token is not None and rec.first_content is not None
        events = _send_times(r.raw[rec.index])
        thinking = [e for e in events if key in (e[1]["choices"] or [{}])[0].get("delta", {})]
        content = [
            e for e in events if (e[1]["choices"] or [{}])[0].get("delta", {}).get("content")
        ]
        assert len(thinking) == think
        # the first thinking chunk ends TTFT, the first content chunk TTFCT (their read times)
        assert rec.first_token == thinking[0][0]
        assert rec.first_content == content[0][0]
        # each read after the instrument sent it; the content was due think * itl after the
        # first thinking chunk (by the instrument's clock; its timers fire up to 1 ms early)
        first_sent = content[0][1]["instrument_send_t"]
        assert rec.first_token >= thinking[0][1]["instrument_send_t"]
        assert rec.first_content >= first_sent
        assert first_sent >= content[0][1]["instrument_recv_t"] + 0.03 + think * itl - 0.002
    s = r.summary
    assert s.latency["ttfct"].count == s.latency["ttft"].count == 8
    assert s.latency["ttfct"].p50 > s.latency["ttft"].p50
    m = s.metrics()
    assert m["p99_ttfct_ms"] == s.latency["ttfct"].p99 and "p99_ttfct_ms" in metric_names()
    # the records file holds both times, and a record round-trips through it
    lines = read_jsonl(records_path)
    assert {d["index"]: d["first_content"] for d in lines} == {
        x.index: x.first_content for x in r.records
    }
    assert RequestRecord.from_json(lines[0]).ttfct == next(
        x.ttfct for x in r.records if x.index == lines[0]["index"]
    )


def test_ordinary_stream_has_first_content_at_first_token(inst: Instrument) -> None:
    for w in (CHAT, Workload("c", input_tokens=30, output_tokens=12)):
        r = run_load(
            inst.endpoint(ttft=0.02, itl=0.005), w, LoadSpec(concurrency=4, num_requests=8)
        )
        assert r.summary.success_rate == 1.0
        assert all(x.first_content == x.first_token is not None for x in r.records)
        assert r.summary.latency["ttfct"] == r.summary.latency["ttft"]


@pytest.mark.parametrize("usage", [True, False])
def test_an_empty_first_answer_token_is_still_the_first_content_token(usage: bool) -> None:
    """Real vLLM (tiny random-weight models) streams tokens whose text is empty: a partial
    UTF-8 character or a skipped special token. Without reasoning, the first content token is
    still the first token."""
    blob = _reasoning_stream([1] * 4, 0, "reasoning", usage=usage, empty_first=True)
    assert b'"content":""}' in blob
    p = parse_sse([float(i) for i in range(len(blob))], [blob[i : i + 1] for i in range(len(blob))])
    assert p.first_content == p.chunk_times[0] if usage else p.first_content is not None
    # after thinking, the empty first answer chunk is where content starts, too
    blob = _reasoning_stream([1] * 4, 2, "reasoning", usage=True, empty_first=True)
    evs = blob.split(b"\n\n")
    q = parse_sse([float(i) for i in range(len(blob))], [blob[i : i + 1] for i in range(len(blob))])
    assert q.first_content == sum(len(e) + 2 for e in evs[:4]) - 1


def test_old_records_without_first_content_still_load_and_summarise() -> None:
    rec = RequestRecord(0, 0.0, 0.0, 0.1, 0.5, (0.1, 0.2), (1, 1), 3, 2, 2, 200)
    data = rec.to_json()
    del data["first_content"]
    back = RequestRecord.from_json(data)
    assert back.first_content is None and back.ttfct is None
    s = summarize([back], duration_s=1.0)
    assert s.latency["ttft"].count == 1 and s.latency["ttfct"].count == 0


def _reasoning_stream(
    deltas: list[int], think: int, key: str, usage: bool, empty_first: bool = False
) -> bytes:
    """vLLM's byte layout: a role chunk, ``think`` thinking chunks under ``key``, then content;
    usage on every chunk (continuous usage stats) or none. A thinking text holds an escaped
    ``"content":"x"`` (a JSON key inside a string value, which must not count as content).
    ``empty_first``: the first answer chunk's text is empty (a partial UTF-8 character, as
    real vLLM streams them), which is still the first content token."""
    events = [b'data: {"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}']
    done = 0
    for i, k in enumerate(deltas):
        done += k
        if i < think:
            value = json.dumps('"content":"x' + "w" * k)
            delta = (
                f'{{"tool_calls":[{{"index":0,"function":{{"arguments":{value}}}}}]}}'
                if key == "tool_calls"
                else f'{{"{key}":{value}}}'
            )
        elif i == think and empty_first:
            delta = '{"content":""}'
        else:
            delta = f'{{"content":"{"w" * k}"}}'
        tail = (
            f',"usage":{{"prompt_tokens":7,"total_tokens":{7 + done},"completion_tokens":{done}}}'
            if usage
            else ""
        )
        events.append(
            f'data: {{"id":"x","choices":[{{"index":0,"delta":{delta}}}]{tail}}}'.encode()
        )
    if usage:
        events.append(
            f'data: {{"id":"x","choices":[],"usage":{{"prompt_tokens":7,'
            f'"total_tokens":{7 + done},"completion_tokens":{done}}}}}'.encode()
        )
    events.append(b"data: [DONE]")
    return b"\n\n".join(events) + b"\n\n"


@given(
    deltas=st.lists(st.integers(1, 4), min_size=1, max_size=20),
    think=st.integers(0, 20),
    key=st.sampled_from(["reasoning", "reasoning_content", "tool_calls"]),
    cuts=st.lists(st.floats(0, 1), max_size=30),
    empty_first=st.booleans(),
)
def test_fast_and_full_parsers_agree_on_first_content(
    deltas: list[int], think: int, key: str, cuts: list[float], empty_first: bool
) -> None:
    blob = _reasoning_stream(deltas, think, key, usage=True, empty_first=empty_first)
    points = sorted({int(c * len(blob)) for c in cuts} | {0, len(blob)})
    chunks = [blob[a:b] for a, b in itertools.pairwise(points) if b > a]
    times = [float(i) for i in range(len(chunks))]
    fast, full = parse_sse(times, chunks), parse_sse_full(times, chunks)
    assert fast == full
    assert fast.chunk_tokens == deltas
    # the event that completes the first content chunk, found independently
    ends = list(itertools.accumulate(map(len, chunks)))
    evs = blob.split(b"\n\n")
    if think >= len(deltas):
        assert fast.first_content is None
    else:
        end = sum(len(e) + 2 for e in evs[: 2 + think])  # role chunk + thinking + 1st content
        want = times[next(i for i, e in enumerate(ends) if e >= end)]
        assert fast.first_content == want
        assert fast.first_content >= fast.chunk_times[0]


@pytest.mark.parametrize("key", ["reasoning", "reasoning_content", "tool_calls"])
def test_without_usage_thinking_chunks_count_as_tokens(key: str) -> None:
    blob = _reasoning_stream([1] * 6, 4, key, usage=False)
    p = parse_sse([0.0], [blob])
    # one token per chunk of any kind (no usage to count them), content from the fifth
    assert p.chunk_tokens == [1] * 6 and not p.continuous_usage
    times = [float(i) for i in range(len(blob))]
    one_byte = [blob[i : i + 1] for i in range(len(blob))]
    q = parse_sse(times, one_byte)
    evs = blob.split(b"\n\n")
    assert q.chunk_times[0] == sum(len(e) + 2 for e in evs[:2]) - 1
    assert q.first_content == sum(len(e) + 2 for e in evs[:6]) - 1


@pytest.mark.parametrize("usage", [True, False])
def test_first_content_is_the_read_that_completes_its_event(usage: bool) -> None:
    """Read one byte at a time: the first content event counts at its final ``\\n\\n`` byte,
    not at a read that ends between its two newlines."""
    blob = _reasoning_stream([1] * 5, 2, "reasoning", usage=usage)
    one_byte = [blob[i : i + 1] for i in range(len(blob))]
    p = parse_sse([float(i) for i in range(len(blob))], one_byte)
    evs = blob.split(b"\n\n")
    assert p.continuous_usage is usage
    assert p.chunk_times[0] == sum(len(e) + 2 for e in evs[:2]) - 1
    assert p.first_content == sum(len(e) + 2 for e in evs[:4]) - 1
