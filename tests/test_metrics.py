"""Metrics are pure: checked exhaustively with hand-made records and hypothesis."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.summary import (
    STATS,
    Stats,
    direction,
    inter_chunk,
    itl_per_token,
    metric_names,
    peak_window_tokens,
    summarize,
)


def rec(
    index: int = 0,
    *,
    start: float = 0.0,
    chunks: list[tuple[float, int]] | None = None,
    end: float | None = None,
    prompt: int = 10,
    error: str | None = None,
) -> RequestRecord:
    chunks = chunks if chunks is not None else [(0.1, 1), (0.2, 1), (0.3, 1)]
    times = tuple(t for t, _ in chunks)
    toks = tuple(k for _, k in chunks)
    ok = error is None
    return RequestRecord(
        index=index,
        intended_start=start,
        start=start,
        first_token=times[0] if times and ok else None,
        end=end if end is not None else (times[-1] if times else start),
        chunk_times=times if ok else (),
        chunk_tokens=toks if ok else (),
        prompt_tokens=prompt if ok else None,
        completion_tokens=sum(toks) if ok else None,
        expected_output_tokens=sum(toks),
        status=200,
        error_kind=error,  # type: ignore[arg-type]
    )


chunk_lists = st.lists(
    st.tuples(st.floats(1e-4, 0.5), st.integers(1, 8)), min_size=1, max_size=40
).map(lambda gaps: [(sum(g for g, _ in gaps[: i + 1]), k) for i, (_, k) in enumerate(gaps)])


@given(chunk_lists)
def test_itl_per_token_spreads_each_chunk_interval_over_its_tokens(chunks):
    r = rec(chunks=chunks)
    itl = itl_per_token(r)
    assert len(itl) == sum(k for _, k in chunks[1:])
    assert math.isclose(sum(itl), chunks[-1][0] - chunks[0][0], rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(sum(inter_chunk(r)), sum(itl), rel_tol=1e-9, abs_tol=1e-12)
    assert len(inter_chunk(r)) == len(chunks) - 1


def test_batched_chunk_gives_per_token_itl_not_per_chunk():
    # one token at 100 ms, then a chunk of 4 tokens 40 ms later: 4 gaps of 10 ms, 1 chunk gap of 40
    s = summarize([rec(chunks=[(0.1, 1), (0.14, 4)])], duration_s=1.0)
    assert s.latency["itl"].count == 4
    assert s.latency["itl"].median == pytest.approx(10.0)
    assert s.latency["ichunk"].median == pytest.approx(40.0)
    assert s.latency["ttft"].median == pytest.approx(100.0)
    # TPOT = (E2E - TTFT) / (out - 1) = 40 ms / 4
    assert s.latency["tpot"].median == pytest.approx(10.0)
    assert s.peak_output_throughput == 5  # a chunk counts its tokens, not one
    # two tokens have one gap, so a TPOT; one token has none
    two, one = rec(chunks=[(0.1, 1), (0.3, 1)]), rec(1, chunks=[(0.1, 1)])
    assert summarize([two, one], duration_s=1.0).latency["tpot"].count == 1


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_monotone_and_bounded(values):
    s = Stats.of_seconds(values)
    lo, hi = min(values) * 1000, max(values) * 1000
    seq = [s.p50, s.p90, s.p95, s.p99, s.p99_9]
    tol = 1e-6 * max(1.0, hi)
    assert all(a <= b + tol for a, b in itertools.pairwise(seq))
    assert lo - tol <= s.p50 <= hi + tol and lo - tol <= s.p99_9 <= hi + tol
    assert s.median == pytest.approx(s.p50)
    assert s.count == len(values)


def test_stats_match_numpy_and_empty_is_nan():
    vals = [0.001 * i for i in range(1, 101)]
    s = Stats.of_seconds(vals)
    assert s.p99 == pytest.approx(float(np.percentile(np.array(vals) * 1000, 99)))
    assert s.std == pytest.approx(float(np.std(np.array(vals) * 1000)))
    assert math.isnan(Stats.of_seconds([]).mean)


@given(chunk_lists, st.floats(0.1, 5.0))
@settings(max_examples=50)
def test_peak_window_is_between_mean_rate_and_total(chunks, window):
    times = [t for t, _ in chunks]
    toks = [k for _, k in chunks]
    peak = peak_window_tokens(times, toks, window)
    assert max(toks) <= peak <= sum(toks)
    # brute force
    best = max(sum(k for t2, k in chunks if t <= t2 < t + window) for t in times)
    assert peak == best


def test_throughput_success_and_errors():
    records = [rec(i, chunks=[(0.1, 1), (0.2, 1)]) for i in range(3)]
    records.append(rec(3, error="http_5xx"))
    records.append(rec(4, error="timeout"))
    s = summarize(records, duration_s=2.0)
    assert s.completed == 3 and s.failed == 2
    assert s.success_rate == pytest.approx(0.6)
    assert s.errors == {"http_5xx": 1, "timeout": 1}
    assert s.request_throughput == pytest.approx(1.5)
    assert s.output_throughput == pytest.approx(3.0)
    assert s.total_token_throughput == pytest.approx((30 + 6) / 2)
    assert s.peak_output_throughput == 6
    m = s.metrics()
    assert set(m) == set(metric_names())
    for name in m:
        assert direction(name) in ("higher", "lower")
    assert direction("output_throughput") == "higher"
    assert direction("success_rate") == "higher"
    assert direction("p99_ttft_ms") == "lower"
    with pytest.raises(ValueError, match="unknown metric"):
        direction("bogus")


def test_queue_wait_is_not_latency():
    r = RequestRecord(
        index=0,
        intended_start=0.0,
        start=5.0,
        first_token=5.1,
        end=5.2,
        chunk_times=(5.1, 5.2),
        chunk_tokens=(1, 1),
        prompt_tokens=1,
        completion_tokens=2,
        expected_output_tokens=2,
        status=200,
        queue_wait=5.0,
    )
    s = summarize([r], duration_s=6.0)
    assert s.latency["ttft"].mean == pytest.approx(100.0)
    assert s.latency["e2el"].mean == pytest.approx(200.0)
    assert s.queue_wait.mean == pytest.approx(5000.0)


def test_vllm_bench_json_layout():
    s = summarize([rec(i) for i in range(5)], duration_s=1.0)
    j = s.to_vllm_bench_json()
    for key in (
        "duration",
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
    ):
        assert key in j
    for m in ("ttft", "tpot", "itl", "e2el"):
        for s_ in ("mean", "median", "std", "p99"):
            assert f"{s_}_{m}_ms" in j
    assert "p99.9_ttft_ms" in j
    assert j["completed"] == 5


@given(st.lists(chunk_lists, min_size=1, max_size=5))
@settings(max_examples=30)
def test_record_json_roundtrip(lists):
    for i, chunks in enumerate(lists):
        r = rec(i, chunks=chunks)
        assert RequestRecord.from_json(r.to_json()) == r


def test_record_rejects_unknown_error_kind_and_fields():
    with pytest.raises(ValueError, match="error_kind"):
        rec(error="weird")
    data = rec().to_json() | {"surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        RequestRecord.from_json(data)


def test_record_from_json_coerces_chunks_and_names_every_unknown_field():
    written = rec(chunks=[(1, 1), (2, 2)]).to_json()
    assert type(written["chunk_times"]) is list and type(written["chunk_tokens"]) is list
    data = written | {"chunk_tokens": [1.0, 2.0]}
    back = RequestRecord.from_json(data)
    assert back.chunk_times == (1.0, 2.0) and back.chunk_tokens == (1, 2)
    assert [type(t) for t in back.chunk_times] == [float, float]
    assert [type(n) for n in back.chunk_tokens] == [int, int]
    assert isinstance(back.chunk_times, tuple) and isinstance(back.chunk_tokens, tuple)
    with pytest.raises(ValueError, match=r"unknown RequestRecord fields: \['aa', 'zz'\]"):
        RequestRecord.from_json(data | {"zz": 1, "aa": 2})
    bare = {k: v for k, v in data.items() if k not in ("chunk_times", "chunk_tokens")}
    empty = RequestRecord.from_json(bare | {"first_token": None, "completion_tokens": 0})
    assert empty.chunk_times == () and empty.chunk_tokens == ()
    with pytest.raises(ValueError, match="1 chunk token counts"):
        RequestRecord.from_json(data | {"chunk_tokens": [1]})


def test_stats_names_cover_all():
    assert STATS == ("mean", "median", "std", "p50", "p90", "p95", "p99", "p99_9")


def test_every_percentile_is_numpys_at_its_own_rank():
    # 1..1000 ms: each percentile lands on a different value, so a wrong rank shows
    vals = [0.001 * i for i in range(1, 1001)]
    s = Stats.of_seconds(vals)
    ms = np.array(vals) * 1000
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99_9", 99.9)):
        assert getattr(s, name) == pytest.approx(float(np.percentile(ms, q))), name


def test_no_samples_count_zero_and_summaries_are_frozen():
    import dataclasses

    empty = Stats.of_seconds([])
    assert empty.count == 0
    s = summarize([rec()], duration_s=1.0)
    for obj, attr in ((empty, "count"), (s, "completed")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, 5)


def test_unknown_metric_error_lists_the_known_names():
    with pytest.raises(ValueError) as err:
        direction("p99_ttft")  # the unit suffix forgotten
    text = str(err.value)
    assert text.startswith("unknown metric 'p99_ttft'")
    assert "request_throughput, output_throughput" in text and "p99_ttft_ms" in text


def test_flat_metrics_and_vllm_json_carry_the_summary_values():
    records = [rec(i, chunks=[(0.1 * (i + 1), 1), (0.1 * (i + 1) + 0.05, 2)]) for i in range(6)]
    records.append(rec(6, error="timeout"))
    s = summarize(records, duration_s=2.0)
    m = s.metrics()
    assert m["success_rate"] == pytest.approx(6 / 7)
    for lat in ("ttft", "tpot", "itl", "ichunk", "e2el"):
        st_ = s.latency[lat]
        for name in STATS:
            assert m[f"{name}_{lat}_ms"] == getattr(st_, name), (lat, name)
    j = s.to_vllm_bench_json()
    assert j["max_output_tokens_per_s"] == s.peak_output_throughput
    for lat in ("ttft", "tpot", "itl", "ichunk", "e2el"):
        st_ = s.latency[lat]
        assert j[f"mean_{lat}_ms"] == st_.mean
        assert j[f"median_{lat}_ms"] == st_.median
        assert j[f"std_{lat}_ms"] == st_.std
        assert j[f"p99_{lat}_ms"] == st_.p99 and j[f"p99.9_{lat}_ms"] == st_.p99_9


def test_a_hand_built_summary_has_no_chunks_and_its_own_extra():
    from pytest_llmperf.metrics.summary import RunSummary

    s = summarize([rec()], duration_s=1.0)
    fields = {f: getattr(s, f) for f in s.__dataclass_fields__ if f not in ("chunks", "extra")}
    a, b = RunSummary(**fields), RunSummary(**fields)
    assert a.chunks == 0 and a.extra == {}
    a.extra["note"] = 1
    assert b.extra == {}  # not one shared dict
    assert a.to_json()["chunks"] == 0


def test_results_json_summary_layout():
    records = [rec(i, chunks=[(0.1, 1), (0.2, 2)]) for i in range(2)]
    records.append(rec(2, error="timeout"))
    s = summarize(records, duration_s=4.0, extra={"server": "x"})
    j = s.to_json()
    assert set(j) == {
        "duration_s", "num_requests", "completed", "failed", "total_input_tokens",
        "total_output_tokens", "errors", "chunks", "metrics", "queue_wait_ms", "extra",
    }  # fmt: skip
    assert (j["duration_s"], j["num_requests"], j["completed"], j["failed"]) == (4.0, 3, 2, 1)
    assert (j["total_input_tokens"], j["total_output_tokens"], j["chunks"]) == (20, 6, 4)
    assert j["errors"] == {"timeout": 1} and j["extra"] == {"server": "x"}
    assert j["metrics"] == s.metrics()
    assert j["queue_wait_ms"] == {name: getattr(s.queue_wait, name) for name in STATS}


def test_server_reported_tokens_win_over_the_chunk_sum():
    from pytest_llmperf.metrics.summary import output_tokens

    r = rec(chunks=[(0.1, 1), (0.2, 1)])
    assert output_tokens(r) == 2
    assert output_tokens(dataclasses_replace(r, completion_tokens=7)) == 7
    assert output_tokens(dataclasses_replace(r, completion_tokens=None)) == 2


def dataclasses_replace(r: RequestRecord, **kw: object) -> RequestRecord:
    import dataclasses

    return dataclasses.replace(r, **kw)  # type: ignore[arg-type]


def test_a_chunk_without_tokens_adds_no_itl_and_does_not_stop_the_count():
    # a 0-token chunk in a hand-built or loaded record (the load generator keeps only chunks
    # with tokens): it contributes no gap of its own, the time before it stays in the next
    # token's gap (the gaps still sum to first-to-last token chunk), and the tokens after it
    # are still counted; a leading 0-token chunk (a role-only chunk) starts no gap
    r = rec(chunks=[(0.1, 1), (0.15, 0), (0.2, 1), (0.4, 2)])
    assert itl_per_token(r) == pytest.approx([0.1, 0.1, 0.1])
    r = rec(chunks=[(0.05, 0), (0.1, 1), (0.3, 2), (0.35, 0)])
    assert itl_per_token(r) == pytest.approx([0.1, 0.1])


def test_peak_is_tokens_per_one_second_window_and_zero_without_tokens():
    assert peak_window_tokens([0.0, 0.5, 1.5], [1, 1, 1]) == 2
    assert peak_window_tokens([], []) == 0
    s = summarize([rec(0, error="timeout")], duration_s=1.0)
    assert s.peak_output_throughput == 0.0


def test_duration_must_be_positive():
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"^duration_s must be > 0, got"):
            summarize([rec()], duration_s=bad)


def test_tpot_needs_two_output_tokens_and_missing_prompt_counts_are_zero():
    one = summarize([rec(chunks=[(0.1, 1)], end=0.3)], duration_s=1.0)
    assert one.latency["tpot"].count == 0  # one token: no time per output token
    two = summarize([rec(chunks=[(0.1, 1), (0.3, 1)])], duration_s=1.0)
    assert two.latency["tpot"].count == 1
    assert two.latency["tpot"].mean == pytest.approx(200.0)  # (E2E - TTFT) / (2 - 1)
    unknown = dataclasses_replace(rec(), prompt_tokens=None)
    assert summarize([unknown, rec(1)], duration_s=1.0).total_input_tokens == 10
