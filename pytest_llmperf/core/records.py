"""One request's measured life: the immutable record every metric is computed from.

Timestamps are ``time.perf_counter()`` seconds; on Linux that is ``CLOCK_MONOTONIC``, one clock
for every process of the machine, so records of the load generator's worker processes share it
(``loadgen.workers`` checks this before it starts any). The record keeps the raw per-chunk
timestamps and token deltas so metrics can be recomputed later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

ErrorKind = Literal[
    "http_4xx",
    "http_429",
    "http_5xx",
    "timeout",
    "connection",
    "malformed_stream",
    "early_stop",
    "stream_error",
    "usage_missing",
    "server_died",
]

ERROR_KINDS: Final[tuple[str, ...]] = get_args(ErrorKind)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A finished (or failed) request.

    ``intended_start`` is when the schedule wanted the request sent, ``start`` when it was
    written to the socket; ``queue_wait = start - intended_start`` is client-side waiting (for a
    concurrency slot or a late event loop) and is never counted as server latency.
    ``chunk_tokens[i]`` is the number of tokens chunk ``i`` carried (from the usage deltas).
    ``first_token`` is the first token of any kind (content, reasoning, tool call: it ends
    TTFT); ``first_content`` the first event carrying answer text (``content`` in chat,
    ``text`` in completions), later than ``first_token`` when a reasoning model thinks first,
    None when no answer text came (or in records written before it existed).
    """

    index: int
    intended_start: float
    start: float
    first_token: float | None
    end: float
    chunk_times: tuple[float, ...]
    chunk_tokens: tuple[int, ...]
    prompt_tokens: int | None
    completion_tokens: int | None
    expected_output_tokens: int | None
    status: int | None
    error_kind: ErrorKind | None = None
    error_detail: str | None = None
    queue_wait: float = 0.0
    first_content: float | None = None

    def __post_init__(self) -> None:
        if self.error_kind is not None and self.error_kind not in ERROR_KINDS:
            raise ValueError(
                f"unknown error_kind {self.error_kind!r}; expected one of {ERROR_KINDS}"
            )
        if len(self.chunk_times) != len(self.chunk_tokens):
            raise ValueError(
                f"record {self.index}: {len(self.chunk_times)} chunk times but "
                f"{len(self.chunk_tokens)} chunk token counts"
            )

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.start

    @property
    def ttfct(self) -> float | None:
        """Time to the first content token (after any reasoning or tool-call tokens)."""
        return None if self.first_content is None else self.first_content - self.start

    @property
    def e2e(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        """The record as records.jsonl keeps it: every field, chunks as lists."""
        import msgspec  # here, not at module level: core/ is loaded when the plugin starts

        data: dict[str, Any] = msgspec.to_builtins(self)
        data["chunk_times"] = list(self.chunk_times)
        data["chunk_tokens"] = list(self.chunk_tokens)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        """A record back from ``to_json``'s dict (older records may lack later fields; missing
        chunk lists are empty). Unknown fields are refused by name; chunk times become float
        tuples, token counts int tuples, and a value of the wrong type is refused."""
        import msgspec

        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown RequestRecord fields: {sorted(unknown)}")
        return msgspec.convert({"chunk_times": (), "chunk_tokens": (), **data}, cls, strict=False)
