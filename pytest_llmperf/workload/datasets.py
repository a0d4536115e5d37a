"""Prompts from a user's file, and synthetic prompt-length distributions.

File formats (one JSON object per line, ``.jsonl``; or one JSON array of such objects in a
``.json`` file, as ShareGPT is distributed). Each entry is ONE of:

- ``{"prompt": "text"}``: sent as is to ``/v1/completions`` (or as one user turn to chat);
- ``{"messages": [{"role": "system"|"user"|"assistant", "content": "text"}, ...]}``: a chat
  conversation, sent to ``/v1/chat/completions``; the last message must be the user's;
- ``{"conversations": [{"from": "system"|"human"|"gpt", "value": "text"}, ...]}``: ShareGPT;
  a trailing ``gpt`` turn is the recorded answer and is dropped (its length is not used).

Any entry may add ``"output_tokens": N`` (1..); otherwise the workload's output length is
used. Unknown keys are refused (a typo would silently change what is sent). Every problem is
reported as ``file:line: what is wrong; what to do``.

Each request's prompt length is counted by the server's own tokenizer (``/tokenize``), chat
template included, and the load generator's token check then compares it with what the
server reports in ``usage`` and ``/metrics`` for that request.

Synthetic lengths (``LengthDistribution``): fixed, uniform in [low, high], normal or lognormal
with a mean and a standard deviation, bounded to [low, high] (by redrawing, so the bounds do
not pile up mass at the edges). Each drawn length is then built exactly against the server's
tokenizer (``prompts._exact_text``).

``python -m pytest_llmperf.workload.datasets OUT.jsonl --format sharegpt -n 40`` writes a small
seeded test file (nothing is downloaded).

Size (about 500 lines), stated: most of it is the file format's validation (every entry kind,
each with a ``file:line`` error that says what to do) and the test-data generator that writes
the same format; keeping reader and writer together keeps them in step. ``python -m`` runs this
module, so its small CLI stays here.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.workload.lengths import LengthDistribution
from pytest_llmperf.workload.prompts import (
    _WORDS,
    PreparedRequest,
    PromptLengthError,
    ServerTokenizer,
    Workload,
    _body,
    _exact_text,
    _word_costs,
)

__all__ = ["DatasetEntry", "DatasetError", "LengthDistribution", "load_dataset"]

ROLES: Final[tuple[str, ...]] = ("system", "user", "assistant")
SHAREGPT_ROLES: Final[dict[str, str]] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}
_ENTRY_KEYS: Final[frozenset[str]] = frozenset(
    {"prompt", "messages", "conversations", "output_tokens", "id"}
)


class DatasetError(ValueError):
    """A dataset file that cannot be used, with the file and line it is about."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        super().__init__(f"{where}: {problem}; {fix}")
        self.where, self.problem, self.fix = where, problem, fix


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One request from a file: a completions ``prompt`` or chat ``messages``."""

    where: str  # "file:line"
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content)
    output_tokens: int | None = None

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def message_dicts(self) -> list[dict[str, str]]:
        if self.messages is None:
            return [{"role": "user", "content": self.prompt or ""}]
        return [{"role": r, "content": c} for r, c in self.messages]


def _text(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(
            where,
            f"{what} must be a non-empty string, got {value!r:.60}",
            "give the text as a JSON string",
        )
    return value


def parse_entry(obj: object, where: str) -> DatasetEntry:
    """One decoded JSON value into a ``DatasetEntry`` (see the module doc for the schema)."""
    if not isinstance(obj, dict):
        raise DatasetError(
            where,
            f"expected a JSON object, got {type(obj).__name__}",
            'write {"prompt": "..."} or {"messages": [...]}',
        )
    unknown = set(obj) - _ENTRY_KEYS
    if unknown:
        raise DatasetError(
            where,
            f"unknown key(s) {', '.join(sorted(unknown))}",
            f"use only {', '.join(sorted(_ENTRY_KEYS))}",
        )
    kinds = [k for k in ("prompt", "messages", "conversations") if k in obj]
    if len(kinds) != 1:
        raise DatasetError(
            where,
            "an entry needs exactly one of prompt, messages, conversations"
            + (f" (found {', '.join(kinds)})" if kinds else ""),
            "keep one of them",
        )
    out_tokens = obj.get("output_tokens")
    if out_tokens is not None and (
        isinstance(out_tokens, bool) or not isinstance(out_tokens, int) or out_tokens < 1
    ):
        raise DatasetError(
            where,
            f"output_tokens must be an integer >= 1, got {out_tokens!r}",
            "fix the number or remove the key",
        )
    if "prompt" in obj:
        return DatasetEntry(
            where, prompt=_text(obj["prompt"], where, "prompt"), output_tokens=out_tokens
        )
    key = kinds[0]
    msgs = _entry_turns(obj[key], key, where)
    if key == "conversations" and len(msgs) > 1 and msgs[-1][0] == "assistant":
        msgs.pop()  # the recorded answer: the server writes its own
    if msgs[-1][0] != "user":
        raise DatasetError(
            where,
            f"the conversation ends with a {msgs[-1][0]} turn",
            "end it with the user's turn the server should answer",
        )
    return DatasetEntry(where, messages=tuple(msgs), output_tokens=out_tokens)


def _entry_turns(turns: object, key: str, where: str) -> list[tuple[str, str]]:
    """An entry's ``messages`` (OpenAI roles) or ``conversations`` (ShareGPT speakers) as
    ``(role, text)`` pairs, each turn checked and named by its index."""
    if not isinstance(turns, list) or not turns:
        raise DatasetError(where, f"{key} must be a non-empty list", f"write {key}: [...]")
    msgs: list[tuple[str, str]] = []
    for i, t in enumerate(turns):
        at = f"{where}: {key}[{i}]"
        if not isinstance(t, dict):
            raise DatasetError(at, "expected an object", "write each turn as a JSON object")
        if key == "messages":
            role, content = t.get("role"), t.get("content")
            if role not in ROLES:
                raise DatasetError(
                    at, f"role {role!r} is not one of {', '.join(ROLES)}", "fix the role"
                )
        else:
            src = t.get("from")
            if src not in SHAREGPT_ROLES:
                raise DatasetError(
                    at,
                    f'"from" {src!r} is not a ShareGPT speaker',
                    f"use one of {', '.join(SHAREGPT_ROLES)}",
                )
            role, content = SHAREGPT_ROLES[str(src)], t.get("value")
        msgs.append((str(role), _text(content, at, "the turn's text")))
    return msgs


def load_dataset(path: str | Path) -> list[DatasetEntry]:
    """Read and validate a dataset file (``.jsonl`` lines, or a ``.json`` array)."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(str(p), "no such file", "check the dataset path") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            str(p), f"not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8"
        ) from None
    entries: list[DatasetEntry] = []
    if raw.lstrip().startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{p}:{exc.lineno}", f"invalid JSON ({exc.msg})", "fix the JSON array"
            ) from None
        entries = [parse_entry(obj, f"{p}[{i}]") for i, obj in enumerate(items)]
    else:
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{p}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    where,
                    f"invalid JSON ({exc.msg}, column {exc.colno})",
                    "write one JSON object per line",
                ) from None
            entries.append(parse_entry(obj, where))
    if not entries:
        raise DatasetError(str(p), "the file holds no entries", "add at least one request")
    return entries


# --------------------------------------------------------------------------- requests


def _prepared(
    index: int, workload: Workload, body: dict[str, Any], n_in: int, n_out: int, preview: str
) -> PreparedRequest:
    return PreparedRequest(
        index=index,
        path="/v1/chat/completions" if "messages" in body else "/v1/completions",
        body=json.dumps(body, separators=(",", ":")).encode(),
        input_tokens=n_in,
        output_tokens=n_out,
        expected_prompt_tokens=n_in,
        prompt_preview=preview[:80],
    )


async def prepare_dataset_requests(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    workload: Workload,
    entries: Sequence[DatasetEntry],
    count: int,
    *,
    start_index: int = 0,
    parallel: int = 16,
) -> list[PreparedRequest]:
    """``count`` requests from ``entries`` (cycled in order from ``start_index``), each with
    its prompt length counted by the server's tokenizer. Entries with ``messages`` go to the
    chat endpoint; plain prompts go to the workload's endpoint."""
    if not entries:
        raise ValueError("no dataset entries")
    tok = ServerTokenizer(session, endpoint)
    sem = asyncio.Semaphore(parallel)

    async def one(index: int) -> PreparedRequest:
        e = entries[index % len(entries)]
        n_out = e.output_tokens or workload.output_tokens
        wl = replace(workload, output_tokens=n_out)
        chat = e.is_chat or workload.endpoint == "chat"
        body = _body(
            replace(wl, endpoint="chat" if chat else "completions"),
            endpoint.model,
            e.prompt or "",
            [],
        )
        async with sem:
            if chat:
                body["messages"] = e.message_dicts()
                n_in = await tok.count_messages(body["messages"])
                if n_in is None:
                    raise DatasetError(
                        e.where,
                        "the server cannot count this chat prompt",
                        "check that the model has a chat template",
                    )
            else:
                n_in = await tok.count_prompt(e.prompt or "")
        preview = e.prompt if e.prompt is not None else e.message_dicts()[-1]["content"]
        return _prepared(index, wl, body, n_in, n_out, preview)

    return list(await asyncio.gather(*(one(start_index + i) for i in range(count))))


async def prepare_length_requests(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    workload: Workload,
    lengths: Sequence[int],
    *,
    start_index: int = 0,
    parallel: int = 16,
) -> list[PreparedRequest]:
    """One request per entry of ``lengths``, each prompt exactly that many tokens as the
    server counts them (chat template included on the chat endpoint)."""
    tok = ServerTokenizer(session, endpoint)
    count_full = tok.count_chat if workload.endpoint == "chat" else tok.count_prompt
    costs, ones = await _word_costs(tok)
    sem = asyncio.Semaphore(parallel)

    async def one(i: int, target: int) -> PreparedRequest:
        index = start_index + i
        async with sem:
            for attempt in range(3):
                try:
                    text = await _exact_text(
                        head=f"[{workload.seed}-{index}]",
                        rng=random.Random(f"{workload.name}:{workload.seed}:{index}:{attempt}"),
                        target=target,
                        count_full=count_full,
                        costs=costs,
                        ones=ones,
                        what=f"workload {workload.name!r} request {index} ({target} tokens)",
                    )
                    break
                except PromptLengthError:
                    if attempt == 2:
                        raise
        body = _body(workload, endpoint.model, text, [])
        return _prepared(index, workload, body, target, workload.output_tokens, text)

    return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(lengths))))


def run_sync(coro_fn: Any, endpoint: Endpoint, *args: Any, **kw: Any) -> list[PreparedRequest]:
    """Blocking wrapper: ``run_sync(prepare_dataset_requests, ep, workload, entries, n)``."""

    async def go() -> list[PreparedRequest]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
            return list(await coro_fn(s, endpoint, *args, **kw))

    return asyncio.run(go())


# --------------------------------------------------------------------------- test data


def generate_dataset(
    path: str | Path,
    *,
    n: int = 40,
    fmt: Literal["prompt", "chat", "sharegpt"] = "sharegpt",
    seed: int = 0,
) -> Path:
    """Write a small seeded dataset (prompts of 5..60 words, 1..3 turns) to ``path``."""
    rng = random.Random(f"dataset:{fmt}:{seed}")

    def text() -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 60)))

    lines: list[str] = []
    for i in range(n):
        if fmt == "prompt":
            obj: dict[str, Any] = {"prompt": text(), "output_tokens": rng.randint(4, 24)}
        elif fmt == "chat":
            msgs = [{"role": "system", "content": text()}] if i % 3 == 0 else []
            for _ in range(rng.randint(0, 2)):
                msgs += [
                    {"role": "user", "content": text()},
                    {"role": "assistant", "content": text()},
                ]
            msgs.append({"role": "user", "content": text()})
            obj = {"messages": msgs, "output_tokens": rng.randint(4, 24)}
        else:
            conv = []
            for _ in range(rng.randint(1, 3)):
                conv += [{"from": "human", "value": text()}, {"from": "gpt", "value": text()}]
            obj = {"id": f"synthetic-{seed}-{i}", "conversations": conv}
        lines.append(json.dumps(obj))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pytest_llmperf.workload.datasets")
    ap.add_argument("out", help="file to write (.jsonl)")
    ap.add_argument("--format", choices=("prompt", "chat", "sharegpt"), default="sharegpt")
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    path = generate_dataset(a.out, n=a.n, fmt=a.format, seed=a.seed)
    print(f"wrote {a.n} {a.format} entries to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


async def prepare_multi_turn_requests(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    workload: Workload,
    count: int,
    *,
    turns: int,
    start_index: int = 0,
    parallel: int = 16,
) -> list[PreparedRequest]:
    """Multi-turn chat sessions: session ``s`` turn ``k`` sends the whole conversation so far
    (the workload's shared prefix as a system prompt, if any; user turns of exactly
    ``input_tokens`` text tokens; assistant turns of ``output_tokens`` seeded words standing
    for the earlier answers) plus its new user turn. Requests are ordered turn by turn
    (every session's turn 1, then turn 2, ...), so a turn's prefix was sent before it: the
    workload prefix caching serves. Each prompt is counted by the server's tokenizer."""
    if turns < 1:
        raise ValueError("turns must be >= 1")
    tok = ServerTokenizer(session, endpoint)
    sem = asyncio.Semaphore(parallel)
    sessions = -(-count // turns)
    system, users = await _multi_turn_texts(tok, workload, sem, sessions=sessions, turns=turns)
    answers = _seeded_answers(workload, sessions * turns)
    chat = replace(workload, endpoint="chat")

    async def one(i: int) -> PreparedRequest:
        k, s = divmod(i, sessions)  # turn-major order
        msgs = _conversation(system, users, answers, first=s * turns, turn=k)
        body = _body(chat, endpoint.model, "", [])
        body["messages"] = msgs
        async with sem:
            n_in = await tok.count_messages(msgs)
        if n_in is None:
            raise PromptLengthError("the server cannot count chat prompts (no /tokenize for chat)")
        return _prepared(
            start_index + i, chat, body, n_in, workload.output_tokens, msgs[-1]["content"]
        )

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _multi_turn_texts(
    tok: ServerTokenizer, workload: Workload, sem: asyncio.Semaphore, *, sessions: int, turns: int
) -> tuple[str | None, list[str]]:
    """(the system prompt of ``shared_prefix_tokens``, or None; the user turns of exactly
    ``input_tokens`` text tokens, session by session), each seeded by its own key and counted
    without special tokens (they sit inside the chat template)."""
    costs, ones = await _word_costs(tok)

    async def raw_count(text: str) -> int:
        return len(await tok.encode(text, add_special_tokens=False))

    async def text_of(key: str, target: int) -> str:
        async with sem:
            return await _exact_text(
                head="",
                rng=random.Random(f"{workload.name}:{workload.seed}:{key}"),
                target=target,
                count_full=raw_count,
                costs=costs,
                ones=ones,
                what=f"workload {workload.name!r} {key}",
            )

    system = (
        await text_of("system", workload.shared_prefix_tokens)
        if workload.shared_prefix_tokens
        else None
    )
    users = await asyncio.gather(
        *(
            text_of(f"s{s}u{k}", workload.input_tokens)
            for s in range(sessions)
            for k in range(turns)
        )
    )
    return system, list(users)


def _seeded_answers(workload: Workload, n: int) -> list[str]:
    """``n`` seeded stand-ins for earlier answers, ``output_tokens`` words each."""
    rng = random.Random(f"{workload.name}:{workload.seed}:answers")
    return [" ".join(rng.choice(_WORDS) for _ in range(workload.output_tokens)) for _ in range(n)]


def _conversation(
    system: str | None, users: Sequence[str], answers: Sequence[str], *, first: int, turn: int
) -> list[dict[str, str]]:
    """The messages of the session whose turns start at index ``first``, for its turn ``turn``
    (0-based): the system prompt if any, then ``users[first]``, ``answers[first]``, ... up to
    ``users[first + turn]`` (the new user turn, last)."""
    msgs: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for j in range(first, first + turn + 1):
        msgs.append({"role": "user", "content": users[j]})
        if j < first + turn:
            msgs.append({"role": "assistant", "content": answers[j]})
    return msgs
