"""Dataset files (schema, errors naming file:line) and synthetic length distributions.

The real-vLLM part (per-request prompt tokens through the server's tokenizer) is in
tests/test_load_modes_vllm.py.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from pytest_llmperf.testing.instrument import Instrument, prompt_tokens
from pytest_llmperf.workload.datasets import (
    DatasetError,
    LengthDistribution,
    generate_dataset,
    load_dataset,
    main,
    prepare_multi_turn_requests,
    run_sync,
)
from pytest_llmperf.workload.presets import Workload


def write(tmp_path: Path, *lines: object, name: str = "d.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return p


def test_the_three_formats(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        {"prompt": "hello there", "output_tokens": 7},
        "",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "q1"},
                {"from": "gpt", "value": "a1"},
                {"from": "human", "value": "q2"},
                {"from": "gpt", "value": "a2"},
            ]
        },
    )
    a, b, c = load_dataset(p)
    assert a.prompt == "hello there" and a.output_tokens == 7 and not a.is_chat
    assert a.where == f"{p}:1"
    assert b.messages == (("system", "be brief"), ("user", "hi")) and b.where == f"{p}:3"
    # ShareGPT: the recorded last answer is dropped; earlier turns are the context
    assert c.messages == (("user", "q1"), ("assistant", "a1"), ("user", "q2"))


def test_a_json_array_file(tmp_path: Path) -> None:
    p = tmp_path / "sg.json"
    p.write_text(json.dumps([{"conversations": [{"from": "human", "value": "q"}]}]))
    (e,) = load_dataset(p)
    assert e.messages == (("user", "q"),) and e.where == f"{p}[0]"


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("{not json", "invalid JSON"),
        ('"just a string"', "expected a JSON object"),
        ({"promt": "x"}, "unknown key(s) promt"),
        ({"prompt": "x", "messages": []}, "exactly one of prompt, messages, conversations"),
        ({"prompt": ""}, "prompt must be a non-empty string"),
        ({"prompt": "x", "output_tokens": 0}, "output_tokens must be an integer >= 1"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
         "ends with a assistant turn"),
        ({"conversations": [{"from": "bot", "value": "x"}]}, "not a ShareGPT speaker"),
        ({"conversations": []}, "must be a non-empty list"),
    ],
)  # fmt: skip
def test_bad_lines_are_named_by_file_and_line(tmp_path: Path, line: object, what: str) -> None:
    p = write(tmp_path, {"prompt": "fine"}, line)
    with pytest.raises(DatasetError) as err:
        load_dataset(p)
    assert str(err.value).startswith(f"{p}:2"), err.value
    assert what in str(err.value), err.value


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="holds no entries"):
        load_dataset(write(tmp_path, ""))


@pytest.mark.parametrize("fmt", ["prompt", "chat", "sharegpt"])
def test_generator_output_loads(tmp_path: Path, fmt: str) -> None:
    p = generate_dataset(tmp_path / f"{fmt}.jsonl", n=12, fmt=fmt, seed=3)  # type: ignore[arg-type]
    entries = load_dataset(p)
    assert len(entries) == 12
    assert all(e.is_chat == (fmt != "prompt") for e in entries)
    assert (
        p.read_text()
        == generate_dataset(tmp_path / "again.jsonl", n=12, fmt=fmt, seed=3).read_text()
    )  # type: ignore[arg-type]
    assert main([str(tmp_path / "cli.jsonl"), "--format", fmt, "-n", "3"]) == 0
    assert len(load_dataset(tmp_path / "cli.jsonl")) == 3


def test_length_distributions() -> None:
    assert LengthDistribution("fixed", mean=100).sample(5) == [100] * 5
    u = LengthDistribution("uniform", low=10, high=20).sample(2000)
    assert min(u) == 10 and max(u) == 20
    n = LengthDistribution("normal", mean=200, std=50, low=100, high=300).sample(4000, seed=1)
    assert 100 <= min(n) and max(n) <= 300
    assert statistics.mean(n) == pytest.approx(200, rel=0.03)
    assert statistics.stdev(n) == pytest.approx(50 * 0.88, rel=0.1)  # truncated at 2 sigma
    ln = LengthDistribution("lognormal", mean=300, std=150, low=1, high=100_000).sample(8000)
    assert statistics.mean(ln) == pytest.approx(300, rel=0.05)
    assert statistics.stdev(ln) == pytest.approx(150, rel=0.1)
    assert statistics.median(ln) < statistics.mean(ln)  # right-skewed
    assert LengthDistribution("normal", mean=50, std=5).sample(10, seed=2) == LengthDistribution(
        "normal", mean=50, std=5
    ).sample(10, seed=2)


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"kind": "zipf"}, "unknown length distribution"),
        ({"kind": "uniform", "low": 10, "high": 5}, "low <= high"),
        ({"kind": "normal", "mean": 10, "std": 0}, "std > 0"),
        ({"kind": "fixed", "mean": 5, "low": 10, "high": 20}, "outside"),
    ],
)
def test_bad_distributions(kw: dict[str, object], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        LengthDistribution(**kw)  # type: ignore[arg-type]


def test_multi_turn_sessions_carry_their_conversation_turn_by_turn() -> None:
    """Against the instrument's word-level tokenizer (one token per word): 7 requests of 2
    turns are 4 sessions, sent turn-major; each carries its session's earlier turns, and a
    session's prompts do not depend on how many sessions the run has."""
    w = Workload("mt", endpoint="chat", input_tokens=12, output_tokens=5, shared_prefix_tokens=9)
    with Instrument() as inst:
        reqs = run_sync(prepare_multi_turn_requests, inst.endpoint(), w, 7, turns=2, start_index=4)
        again = run_sync(prepare_multi_turn_requests, inst.endpoint(), w, 7, turns=2)
        fewer = run_sync(prepare_multi_turn_requests, inst.endpoint(), w, 3, turns=2)
        plain = run_sync(
            prepare_multi_turn_requests, inst.endpoint(), Workload("p", endpoint="chat"), 2, turns=1
        )
    assert [r.index for r in reqs] == list(range(4, 11))
    assert [r.body for r in reqs] == [r.body for r in again]
    convs = [json.loads(r.body)["messages"] for r in reqs]
    assert all(r.path == "/v1/chat/completions" for r in reqs)
    # request i is session i % 4, turn i // 4: two messages more per turn
    assert [len(m) for m in convs] == [2, 2, 2, 2, 4, 4, 4]
    for i, msgs in enumerate(convs):
        assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * (i // 4) + ["user"]
        assert convs[i % 4] == msgs[:2]  # the session's first turn is this one's prefix
        assert len(msgs[0]["content"].split()) == 9  # the shared system prompt
        assert all(len(m["content"].split()) == 12 for m in msgs if m["role"] == "user")
        assert all(len(m["content"].split()) == 5 for m in msgs if m["role"] == "assistant")
        assert reqs[i].expected_prompt_tokens == len(prompt_tokens({"messages": msgs}))
        assert reqs[i].input_tokens == reqs[i].expected_prompt_tokens
        assert reqs[i].output_tokens == 5
    assert len({m[0]["content"] for m in convs}) == 1  # one system prompt for every session
    assert len({m[1]["content"] for m in convs[:4]}) == 4  # sessions start differently
    assert convs[4][3] != convs[5][3]  # and go on differently
    # 3 requests of 2 turns: sessions 0 and 1, the same prompts as in the 4-session run
    assert [json.loads(r.body)["messages"] for r in fewer] == [convs[0], convs[1], convs[4]]
    assert [m["role"] for m in json.loads(plain[0].body)["messages"]] == ["user"]
    with pytest.raises(ValueError, match="turns must be >= 1"):
        run_sync(prepare_multi_turn_requests, inst.endpoint(), w, 2, turns=0)
