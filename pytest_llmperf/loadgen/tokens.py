"""Three-way token agreement after a run: what the client built, what ``usage`` reported,
and what the server's ``/metrics`` counters moved by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.resources import TOKEN_COUNTERS
from pytest_llmperf.loadgen.spec import TokenCheck
from pytest_llmperf.workload.prompts import PreparedRequest, Workload

_MetricsStatus = Literal["ok", "mismatch", "unavailable", "skipped"]


def check_tokens(
    records: Sequence[RequestRecord],
    continuous: Sequence[bool],
    prepared: dict[int, PreparedRequest],
    workload: Workload,
    before: dict[str, float] | None,
    after: dict[str, float] | None,
) -> TokenCheck:
    ok_recs = [(r, c) for r, c in zip(records, continuous, strict=True) if r.ok]
    client_in = sum(
        prepared[r.index].expected_prompt_tokens or prepared[r.index].input_tokens
        for r, _ in ok_recs
    )
    client_out = sum(prepared[r.index].output_tokens for r, _ in ok_recs)
    usage_in = sum(r.prompt_tokens or 0 for r, _ in ok_recs)
    usage_out = sum(r.completion_tokens or 0 for r, _ in ok_recs)
    reasons, (bad_in, bad_out, bad_stream) = _request_mismatches(ok_recs, prepared)
    if bad_in > 1 or bad_out > 1 or bad_stream > 1:
        reasons.append(
            f"{bad_in} prompt, {bad_out} output and {bad_stream} stream mismatches in "
            f"{len(ok_recs)} successful requests"
        )
    metrics_status, m_prompt, m_gen, metrics_reason = _metrics_agreement(
        before, after, len(records) - len(ok_recs), usage_in, usage_out
    )
    if metrics_reason is not None:
        reasons.append(metrics_reason)
    mismatch = bad_in or bad_out or bad_stream or metrics_status == "mismatch"
    return TokenCheck(
        status="mismatch" if mismatch else "ok",
        metrics_status=metrics_status,
        reasons=tuple(reasons),
        client_input_tokens=client_in,
        client_output_tokens=client_out,
        usage_prompt_tokens=usage_in,
        usage_completion_tokens=usage_out,
        metrics_prompt_delta=m_prompt,
        metrics_generation_delta=m_gen,
        image_tokens_per_image=_image_tokens_per_image(ok_recs, prepared)
        if workload.images_per_request
        else None,
    )


def _request_mismatches(
    ok_recs: Sequence[tuple[RequestRecord, bool]], prepared: dict[int, PreparedRequest]
) -> tuple[list[str], tuple[int, int, int]]:
    """(the first reason of each kind, in the order met; (prompt, output, stream) counts)."""
    reasons: list[str] = []
    counts = [0, 0, 0]
    for r, cont in ok_recs:
        for kind, reason in enumerate(_mismatch_reasons(r, cont, prepared[r.index])):
            if reason is not None:
                counts[kind] += 1
                if counts[kind] == 1:
                    reasons.append(reason)
    return reasons, (counts[0], counts[1], counts[2])


def _mismatch_reasons(
    r: RequestRecord, cont: bool, req: PreparedRequest
) -> tuple[str | None, str | None, str | None]:
    """One successful request's (prompt, output, stream) disagreement, each None if it agrees.

    Without an exact expected prompt size (a chat template adds tokens) the server must count
    more than the client built; the stream is checked only where usage came continuously."""
    want = req.expected_prompt_tokens
    if want is None:
        bad, built = (r.prompt_tokens or 0) <= req.input_tokens, f"more than {req.input_tokens}"
    else:
        bad, built = r.prompt_tokens != want, str(want)
    prompt = (
        f"request {r.index}: server counted {r.prompt_tokens} prompt tokens, the "
        f"client built {built}"
        if bad
        else None
    )
    output = (
        f"request {r.index}: server generated {r.completion_tokens} tokens, "
        f"{req.output_tokens} were forced (ignore_eos, min_tokens)"
        if r.completion_tokens != req.output_tokens
        else None
    )
    stream = (
        f"request {r.index}: streamed usage deltas sum to {sum(r.chunk_tokens)}, "
        f"final usage says {r.completion_tokens}"
        if cont and sum(r.chunk_tokens) != r.completion_tokens
        else None
    )
    return prompt, output, stream


def _metrics_agreement(
    before: dict[str, float] | None,
    after: dict[str, float] | None,
    failed: int,
    usage_in: int,
    usage_out: int,
) -> tuple[_MetricsStatus, float | None, float | None, str | None]:
    """(status, prompt delta, generation delta, reason): ``/metrics`` counters against usage.

    Skipped when a request failed: the server counts a failed request's partial tokens."""
    if before is None or after is None:
        return "unavailable", None, None, None
    m_prompt = after[TOKEN_COUNTERS[0]] - before[TOKEN_COUNTERS[0]]
    m_gen = after[TOKEN_COUNTERS[1]] - before[TOKEN_COUNTERS[1]]
    if failed:
        return (
            "skipped",
            m_prompt,
            m_gen,
            f"/metrics check skipped: {failed} requests failed "
            "(the server counts their partial tokens)",
        )
    if m_prompt != usage_in or m_gen != usage_out:
        return (
            "mismatch",
            m_prompt,
            m_gen,
            f"server /metrics counted {m_prompt:.0f} prompt and {m_gen:.0f} generation "
            f"tokens during the run; usage reported {usage_in} and {usage_out} (another "
            "client on the same server also causes this)",
        )
    return "ok", m_prompt, m_gen, None


def _image_tokens_per_image(
    ok_recs: Sequence[tuple[RequestRecord, bool]], prepared: dict[int, PreparedRequest]
) -> float | None:
    """Prompt tokens per image beyond the text, if every image request agrees on one figure."""
    per_image: set[int] = set()
    for r, _ in ok_recs:
        req = prepared[r.index]
        if req.num_images:
            per_image.add(((r.prompt_tokens or 0) - req.input_tokens) // req.num_images)
    return float(per_image.pop()) if len(per_image) == 1 else None
