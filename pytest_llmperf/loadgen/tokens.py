"""Three-way token agreement after a run: what the client built, what ``usage`` reported,
and what the server's ``/metrics`` counters moved by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.resources import TOKEN_COUNTERS
from pytest_llmperf.loadgen.spec import TokenCheck
from pytest_llmperf.workload.prompts import PreparedRequest, Workload


def check_tokens(
    records: Sequence[RequestRecord],
    continuous: Sequence[bool],
    prepared: dict[int, PreparedRequest],
    workload: Workload,
    before: dict[str, float] | None,
    after: dict[str, float] | None,
) -> TokenCheck:
    reasons: list[str] = []
    ok_recs = [(r, c) for r, c in zip(records, continuous, strict=True) if r.ok]
    client_in = sum(
        prepared[r.index].expected_prompt_tokens or prepared[r.index].input_tokens
        for r, _ in ok_recs
    )
    client_out = sum(prepared[r.index].output_tokens for r, _ in ok_recs)
    usage_in = sum(r.prompt_tokens or 0 for r, _ in ok_recs)
    usage_out = sum(r.completion_tokens or 0 for r, _ in ok_recs)
    bad_in = bad_out = bad_stream = 0
    per_image: set[int] = set()
    for r, cont in ok_recs:
        req = prepared[r.index]
        if req.num_images:
            per_image.add(((r.prompt_tokens or 0) - req.input_tokens) // req.num_images)
        want = req.expected_prompt_tokens
        if want is None:
            bad, built = (r.prompt_tokens or 0) <= req.input_tokens, f"more than {req.input_tokens}"
        else:
            bad, built = r.prompt_tokens != want, str(want)
        if bad:
            bad_in += 1
            if bad_in == 1:
                reasons.append(
                    f"request {r.index}: server counted {r.prompt_tokens} prompt tokens, the "
                    f"client built {built}"
                )
        if r.completion_tokens != req.output_tokens:
            bad_out += 1
            if bad_out == 1:
                reasons.append(
                    f"request {r.index}: server generated {r.completion_tokens} tokens, "
                    f"{req.output_tokens} were forced (ignore_eos, min_tokens)"
                )
        if cont and sum(r.chunk_tokens) != r.completion_tokens:
            bad_stream += 1
            if bad_stream == 1:
                reasons.append(
                    f"request {r.index}: streamed usage deltas sum to {sum(r.chunk_tokens)}, "
                    f"final usage says {r.completion_tokens}"
                )
    if bad_in > 1 or bad_out > 1 or bad_stream > 1:
        reasons.append(
            f"{bad_in} prompt, {bad_out} output and {bad_stream} stream mismatches in "
            f"{len(ok_recs)} successful requests"
        )
    m_prompt = m_gen = None
    metrics_status: Literal["ok", "mismatch", "unavailable", "skipped"]
    if before is None or after is None:
        metrics_status = "unavailable"
    else:
        m_prompt = after[TOKEN_COUNTERS[0]] - before[TOKEN_COUNTERS[0]]
        m_gen = after[TOKEN_COUNTERS[1]] - before[TOKEN_COUNTERS[1]]
        if len(ok_recs) != len(records):
            metrics_status = "skipped"
            reasons.append(
                f"/metrics check skipped: {len(records) - len(ok_recs)} requests failed "
                "(the server counts their partial tokens)"
            )
        elif m_prompt != usage_in or m_gen != usage_out:
            metrics_status = "mismatch"
            reasons.append(
                f"server /metrics counted {m_prompt:.0f} prompt and {m_gen:.0f} generation "
                f"tokens during the run; usage reported {usage_in} and {usage_out} (another "
                "client on the same server also causes this)"
            )
        else:
            metrics_status = "ok"
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
        image_tokens_per_image=(float(per_image.pop()) if len(per_image) == 1 else None)
        if workload.images_per_request
        else None,
    )
