"""``loadgen.tokens.check_tokens`` on hand-built records: each disagreement, its reason and its
count (the end-to-end runs against the instrument and vLLM are in test_loadgen_instrument.py
and test_token_check_e2e.py; these pin the rules those runs only touch one case of)."""

from __future__ import annotations

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.resources import TOKEN_COUNTERS
from pytest_llmperf.loadgen.tokens import check_tokens
from pytest_llmperf.workload.presets import Workload
from pytest_llmperf.workload.prompts import PreparedRequest

TEXT = Workload("w", input_tokens=8, output_tokens=3)
VISION = Workload("v", kind="vision", endpoint="chat", input_tokens=8, images_per_request=2)


def _rec(
    index: int,
    prompt: int | None = 8,
    completion: int | None = 3,
    chunks: tuple[int, ...] = (1, 1, 1),
    error: bool = False,
) -> RequestRecord:
    return RequestRecord(
        index=index,
        intended_start=0.0,
        start=0.0,
        first_token=0.1,
        end=0.2,
        chunk_times=tuple(0.1 for _ in chunks),
        chunk_tokens=chunks,
        prompt_tokens=prompt,
        completion_tokens=completion,
        expected_output_tokens=3,
        status=200,
        error_kind="timeout" if error else None,
    )


def _prep(index: int, *, expected: int | None = 8, images: int = 0) -> PreparedRequest:
    return PreparedRequest(
        index, "/v1/completions", b"{}", 8, 3, num_images=images, expected_prompt_tokens=expected
    )


def _check(records, prepared=None, continuous=None, workload=TEXT, metrics=None):
    prepared = prepared or {r.index: _prep(r.index) for r in records}
    continuous = continuous if continuous is not None else [True] * len(records)
    before = after = None
    if metrics is not None:
        before = dict.fromkeys(TOKEN_COUNTERS, 100.0)
        after = {TOKEN_COUNTERS[0]: 100.0 + metrics[0], TOKEN_COUNTERS[1]: 100.0 + metrics[1]}
    return check_tokens(records, continuous, prepared, workload, before, after)


def test_agreeing_counts_pass_every_check() -> None:
    tc = _check([_rec(0), _rec(1)], metrics=(16, 6))
    assert (tc.status, tc.metrics_status, tc.reasons) == ("ok", "ok", ())
    assert (tc.client_input_tokens, tc.client_output_tokens) == (16, 6)
    assert (tc.usage_prompt_tokens, tc.usage_completion_tokens) == (16, 6)
    assert (tc.metrics_prompt_delta, tc.metrics_generation_delta) == (16, 6)


def test_only_the_first_mismatch_of_a_kind_is_told_then_the_counts() -> None:
    tc = _check([_rec(0, prompt=9), _rec(1, prompt=7), _rec(2)])
    assert tc.status == "mismatch"
    assert tc.reasons == (
        "request 0: server counted 9 prompt tokens, the client built 8",
        "2 prompt, 0 output and 0 stream mismatches in 3 successful requests",
    )


def test_reasons_come_in_the_order_met_and_one_of_each_needs_no_count() -> None:
    tc = _check([_rec(0, completion=2, chunks=(1, 1)), _rec(1, prompt=9)])
    assert tc.reasons == (
        "request 0: server generated 2 tokens, 3 were forced (ignore_eos, min_tokens)",
        "request 1: server counted 9 prompt tokens, the client built 8",
    )


def test_more_generated_than_forced_is_a_mismatch_too() -> None:
    tc = _check([_rec(0, completion=4, chunks=(1, 1, 2))])
    assert tc.reasons == (
        "request 0: server generated 4 tokens, 3 were forced (ignore_eos, min_tokens)",
    )


def test_stream_deltas_are_checked_only_where_usage_came_continuously() -> None:
    records = [_rec(0, chunks=(1, 1)), _rec(1, chunks=(2,))]
    tc = _check(records)
    assert tc.reasons == (
        "request 0: streamed usage deltas sum to 2, final usage says 3",
        "0 prompt, 0 output and 2 stream mismatches in 2 successful requests",
    )
    assert _check(records, continuous=[False, False]).status == "ok"


def test_without_an_exact_prompt_size_the_server_must_count_more() -> None:
    """A chat template adds tokens the client cannot count: only "more than built" is checked."""
    prepared = {0: _prep(0, expected=None), 1: _prep(1, expected=None)}
    tc = _check([_rec(0, prompt=8), _rec(1, prompt=12)], prepared)
    assert tc.reasons == (
        "request 0: server counted 8 prompt tokens, the client built more than 8",
    )
    assert tc.client_input_tokens == 16


def test_metrics_counters_are_skipped_after_a_failure_and_compared_otherwise() -> None:
    tc = _check([_rec(0), _rec(1, error=True)], metrics=(99, 99))
    assert (tc.status, tc.metrics_status) == ("ok", "skipped")
    assert tc.reasons == (
        "/metrics check skipped: 1 requests failed (the server counts their partial tokens)",
    )
    assert tc.usage_prompt_tokens == 8  # the failed request counts nowhere
    for moved in ((9, 3), (8, 4)):
        tc = _check([_rec(0)], metrics=moved)
        assert (tc.status, tc.metrics_status) == ("mismatch", "mismatch")
        assert tc.reasons[0].startswith(f"server /metrics counted {moved[0]} prompt and")
    tc = _check([_rec(0)])
    assert (tc.status, tc.metrics_status, tc.metrics_prompt_delta) == ("ok", "unavailable", None)


def test_image_tokens_per_image_when_every_image_request_agrees() -> None:
    prepared = {i: _prep(i, expected=None, images=2) for i in range(2)}
    same = [_rec(0, prompt=8 + 2 * 50), _rec(1, prompt=8 + 2 * 50)]
    assert _check(same, prepared, workload=VISION).image_tokens_per_image == 50.0
    differ = [_rec(0, prompt=8 + 2 * 50), _rec(1, prompt=8 + 2 * 60)]
    assert _check(differ, prepared, workload=VISION).image_tokens_per_image is None
    assert _check(same, prepared, workload=TEXT).image_tokens_per_image is None
