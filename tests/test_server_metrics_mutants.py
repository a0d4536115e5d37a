"""metrics.server's details, found by mutation testing (docs/mutation.md, metrics/server): the
parser on bad and escaped lines, histograms read exactly, quantiles at their edges, guardrails
and the witness with every field they write, including their empty and one-sample cases.

Pure: no server. Dyadic values (0.5, 0.25, ...) keep the expected figures exact."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.server import (
    CLIENT_TIMING_ERROR_MS,
    HISTOGRAMS,
    SERVER_CLOCK,
    Histogram,
    bin_samples,
    client_samples,
    gauge_values,
    guardrails,
    parse_exposition,
    peak,
    witness,
    witness_metric,
)

ROOT = Path(__file__).parent.parent


# --- the parser -------------------------------------------------------------------------------


def test_comments_short_names_and_bad_lines_are_skipped_and_parsing_goes_on() -> None:
    text = "\n".join(
        [
            "# 1",  # a comment whose second word is a number is still a comment
            "#x 2",
            "x 5",  # a one-letter name
            'y{a="b" 3',  # no closing brace: skipped, the next lines still read
            "z NaNx",  # not a number: skipped
            " 7",  # no name
            ' w{a="b"} 4',
            "v 6",
        ]
    )
    s = parse_exposition(text)
    assert {k: dict(v) for k, v in s.samples.items()} == {"x": {(): 5.0}, "v": {(): 6.0}}


def test_label_values_with_escapes_and_names_that_start_with_x() -> None:
    s = parse_exposition('m{XPU="0",say="a \\"b\\", c",nl="l1\\nl2",bs="\\\\"} 1')
    ((labels, value),) = s.samples["m"].items()
    assert dict(labels) == {"XPU": "0", "say": 'a "b", c', "nl": "l1\nl2", "bs": "\\"}
    assert value == 1.0


def test_a_trailing_comma_in_labels_and_an_unterminated_value_never_raise() -> None:
    s = parse_exposition('m{a="1",} 2\nn{a="b} 3\no{a="b\\} 4')
    assert dict(s.samples["m"]) == {(("a", "1"),): 2.0}
    assert set(s.samples) == {"m", "n", "o"}


def test_scrape_lookups() -> None:
    s = parse_exposition('g{engine="0"} 2\ng{engine="1"} 3\n')
    assert s.has("g") and not s.has("h")
    assert s.gauge("g") == 5.0  # the default sums over engines
    assert s.gauge("g", combine="max") == 3.0
    assert s.gauge("h") is None and s.total("h") is None


def test_histogram_read_exactly_summed_over_label_sets() -> None:
    text = "\n".join(
        [
            'h_bucket{engine="0"} 9',  # a bucket without le: ignored, the rest still read
            'h_bucket{engine="0",le="0.5"} 1',
            'h_bucket{engine="0",le="+Inf"} 2',
            'h_bucket{engine="1",le="0.5"} 3',
            'h_bucket{engine="1",le="+Inf"} 4',
            'h_sum{engine="0"} 0.75',
            'h_sum{engine="1"} 1.5',
            'h_count{engine="0"} 2',
            'h_count{engine="1"} 4',
            'k_bucket{le="1.0"} 2',
            'k_bucket{le="+Inf"} 2',
        ]
    )
    s = parse_exposition(text)
    h = s.histogram("h")
    assert h == Histogram((0.5, math.inf), (4.0, 6.0), 2.25, 6.0)
    # No _sum / _count series: 0, not a made-up figure.
    assert s.histogram("k") == Histogram((1.0, math.inf), (2.0, 2.0), 0.0, 0.0)
    assert s.histogram("nope") is None


# --- histograms -------------------------------------------------------------------------------


def test_minus_exactly_and_what_it_takes_as_is() -> None:
    after = Histogram((0.5, math.inf), (3.0, 5.0), 2.0, 5.0)
    before = Histogram((0.5, math.inf), (1.0, 2.0), 0.5, 2.0)
    assert after.minus(before) == Histogram((0.5, math.inf), (2.0, 3.0), 1.5, 3.0)
    assert after.minus(None) is after
    assert after.minus(Histogram((0.25, math.inf), (1.0, 2.0), 0.5, 2.0)) is after


def test_total_cdf_and_quantile_edges() -> None:
    h = Histogram((0.5, 1.0, math.inf), (2.0, 3.0, 4.0), 0.0, 4.0)
    assert h.total == 4.0
    assert h.cdf(0) == 0.5 and h.cdf(1) == 0.75
    assert Histogram((), (), 0.0, 0.0).total == 0.0
    assert math.isnan(Histogram((0.5, math.inf), (0.0, 0.0), 0.0, 0.0).cdf(0))
    one = Histogram((0.5, math.inf), (1.0, 1.0), 0.25, 1.0)
    assert one.cdf(0) == 1.0
    # One sample in (0, 0.5]: interpolated inside the bucket, from 0.
    assert one.quantile(0.5) == 0.25
    assert math.isnan(Histogram((0.5, math.inf), (0.0, 0.0), 0.0, 0.0).quantile(0.5))
    # Inside the first bucket: from 0 to its edge.
    four = Histogram((1.0, 2.0, math.inf), (4.0, 5.0, 5.0), 0.0, 5.0)
    assert four.quantile(0.4) == 0.5
    # A bucket holding one sample is interpolated too, not read as its edge.
    assert four.quantile(0.9) == 1.5


# --- guardrails and peaks ---------------------------------------------------------------------


def test_guardrails_without_scrapes_has_every_field() -> None:
    assert guardrails(None, parse_exposition(""), {"vllm:gpu_cache_usage_perc": 0.5}) == {
        "source": "unavailable",
        "preemptions": None,
        "prefix_cache_queries": None,
        "prefix_cache_hits": None,
        "prefix_cache_hit_rate": None,
        "peak_running": None,
        "peak_waiting": None,
        "peak_kv_cache_usage": 0.5,  # the older vLLM name
        "spec_decode": None,
    }


def test_guardrails_zero_queries_zero_drafts_one_draft_and_no_accepted_counter() -> None:
    before = parse_exposition("")
    zero = parse_exposition(
        "vllm:prefix_cache_queries_total 0\nvllm:prefix_cache_hits_total 0\n"
        "vllm:spec_decode_num_draft_tokens_total 0\n"
    )
    g = guardrails(before, zero, {})
    assert g["source"] == "/metrics deltas"
    assert g["prefix_cache_hit_rate"] is None
    assert g["spec_decode"] == {
        "drafts": None,
        "draft_tokens": 0.0,
        "accepted_tokens": 0.0,
        "acceptance_rate": None,
    }
    one = parse_exposition("vllm:spec_decode_num_draft_tokens_total 1\n")
    sd = guardrails(before, one, {})["spec_decode"]
    assert sd["accepted_tokens"] == 0.0 and sd["acceptance_rate"] == 0.0


def test_old_kv_gauge_name_is_read_as_the_max_and_peaks_fold() -> None:
    s = parse_exposition(
        'vllm:gpu_cache_usage_perc{engine="0"} 0.25\nvllm:gpu_cache_usage_perc{engine="1"} 0.5\n'
    )
    assert gauge_values(s) == {"vllm:gpu_cache_usage_perc": 0.5}
    into: dict[str, float] = {}
    peak(into, {"a": 1.0, "b": 2.0})
    peak(into, {"a": 3.0, "b": 1.0})
    assert into == {"a": 3.0, "b": 2.0}


# --- the witness ------------------------------------------------------------------------------


def test_witness_metric_exact_figures() -> None:
    # 10 client samples, 0.05..0.5 s; the server saw the same, binned at 0.25, 0.5, +Inf.
    client = [0.05 * i for i in range(1, 11)]
    server = Histogram((0.25, 0.5, math.inf), (4.0, 10.0, 10.0), sum(client), 10.0)
    w = witness_metric(client, server, 2.0, judged=False)
    assert set(w["quantiles"]) == {"p50", "p90", "p99"}
    p50, p90, p99 = (w["quantiles"][k] for k in ("p50", "p90", "p99"))
    assert set(p50) == {"server_ms", "client_binned_ms", "client_ms", "gap_ms"}
    # Server p50: rank 5 in (0.25, 0.5] holding 6: 0.25 + 0.25/6.
    assert p50["server_ms"] == pytest.approx((0.25 + 0.25 / 6) * 1000)
    assert p50["client_ms"] == pytest.approx(250.0)  # nearest rank: the 5th sample
    assert p90["client_ms"] == pytest.approx(450.0)  # the 9th
    assert p99["client_ms"] == pytest.approx(500.0)  # the 10th, the last
    assert p50["gap_ms"] == pytest.approx(p50["client_binned_ms"] - p50["server_ms"])
    assert w["matched"] and w["tolerance_ms"] == 2.0


def test_nearest_rank_with_two_samples_and_the_excess_from_the_first_edge() -> None:
    server = Histogram((0.01, math.inf), (1.0, 2.0), 0.0, 2.0)
    w = witness_metric([0.05, 0.0625], server, 0.0, judged=False)
    assert w["quantiles"]["p50"]["client_ms"] == pytest.approx(50.0)  # the 1st of 2
    # The server had 1 of 2 at or under 10 ms; the client's smallest is 50 ms: 40 ms late.
    assert w["excess_ms"] == pytest.approx(40.0)


def test_witness_metric_with_one_sample_is_measured() -> None:
    server = Histogram((0.5, math.inf), (1.0, 1.0), 0.25, 1.0)
    w = witness_metric([0.25], server, 0.0)
    assert w["matched"] and w["comparable"]
    assert w["quantiles"]["p50"]["server_ms"] == pytest.approx(250.0)
    assert w["quantiles"]["p50"]["client_ms"] == pytest.approx(250.0)


@pytest.mark.parametrize("judged", [True, False])
def test_witness_metric_with_nothing_on_one_side(judged: bool) -> None:
    srv = Histogram((0.5, math.inf), (1.0, 1.0), 0.25, 1.0)
    empty_srv = Histogram((0.5, math.inf), (0.0, 0.0), 0.0, 0.0)
    tail = (
        {"client_late_ms": None, "allowance_ms": None, "late": False}
        if judged
        else {"frontend_gap_ms": None, "late": False}
    )
    for client, server in (([], srv), ([0.25], empty_srv), ([], empty_srv)):
        n_s = server.total
        assert witness_metric(client, server, 1.0, judged=judged) == {
            "client_count": len(client),
            "server_count": n_s,
            "matched": False,
            "judged": judged,
            "tolerance_ms": 1.0,
            "quantiles": {},
            "max_cdf_gap": None,
            "excess_ms": None,
            "excess_p99_ms": None,
            **tail,
        }


def test_allowance_without_a_finite_step_and_late_only_past_it() -> None:
    only_inf = Histogram((math.inf,), (4.0,), 1.0, 4.0)
    w = witness_metric([0.25] * 4, only_inf, 2.0)
    assert w["allowance_ms"] == 2.0 and w["client_late_ms"] is None and not w["late"]
    # Exactly at the allowance is not late: server all at or under 0.5 s, median 0.25 s;
    # client 4 samples at 1.0 s: excess 500 ms; allowance 250 + 250.
    server = Histogram((0.5, math.inf), (4.0, 4.0), 1.0, 4.0)
    at = witness_metric([1.0] * 4, server, 250.0)
    assert at["client_late_ms"] == 500.0 == at["allowance_ms"] and not at["late"]
    past = witness_metric([1.0] * 4, server, 249.0)
    assert past["late"]


def hist_lines(name: str, samples: list[float], edges: tuple[float, ...]) -> list[str]:
    b = bin_samples(samples, edges)
    return [
        *(
            f'{name}_bucket{{le="{"+Inf" if math.isinf(e) else e}"}} {c}'
            for e, c in zip(b.edges, b.cumulative, strict=True)
        ),
        f"{name}_sum {b.sum}",
        f"{name}_count {b.count}",
    ]


EDGES = (0.25, 0.5, math.inf)


def scrape_of(**hists: list[float]):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    for name, samples in hists.items():
        lines += hist_lines(name.replace("__", ":"), samples, EDGES)
    return parse_exposition("\n".join(lines))


def test_witness_unavailable_and_its_fields() -> None:
    after = scrape_of(vllm__time_to_first_token_seconds=[0.25])
    for before, aft in ((None, after), (after, None), (None, None)):
        assert witness(before, aft, {"ttft": [0.25]}) == {
            "source": "unavailable",
            "metrics": {},
            "late": [],
            "frontend_gap_ms": {},
        }


def test_witness_itl_alone_under_its_older_name_and_every_field_it_writes() -> None:
    empty = scrape_of(vllm__time_per_output_token_seconds=[])
    after = scrape_of(vllm__time_per_output_token_seconds=[0.25, 0.25, 0.75])
    w = witness(empty, after, {"ttft": [], "itl": [0.25, 0.25, 0.75]}, tolerance_ms={})
    assert w["source"] == "/metrics histogram deltas"
    assert set(w["metrics"]) == {"itl"}  # no TTFT histogram: ITL is still read
    m = w["metrics"]["itl"]
    assert m["histogram"] == "vllm:time_per_output_token_seconds"
    assert m["server_clock"] == SERVER_CLOCK["itl"]
    assert m["edges"] == [0.25, 0.5, "+Inf"]
    assert m["server_cumulative"] == [2.0, 2.0, 3.0]
    assert m["tolerance_ms"] == 0.0  # a metric the mapping leaves out gets no allowance
    # No TTFT to tell whether the requests were the same: the counts decide.
    assert m["comparable"] is True


def test_witness_comparable_with_one_request_and_one_gap() -> None:
    def w(ttft: list[float], itl: list[float]):  # type: ignore[no-untyped-def]
        after = scrape_of(
            vllm__time_to_first_token_seconds=ttft, vllm__inter_token_latency_seconds=itl
        )
        before = scrape_of(
            vllm__time_to_first_token_seconds=[], vllm__inter_token_latency_seconds=[]
        )
        return witness(before, after, {"ttft": ttft, "itl": itl})["metrics"]

    assert w([0.25], [0.25])["itl"]["comparable"] is True
    assert w([0.25], [0.25, 0.25])["itl"]["comparable"] is True
    # No TTFT samples on either side: not the same requests, whatever ITL says.
    assert w([], [0.25])["itl"]["comparable"] is False
    ttft = w([0.25], [0.25])["ttft"]
    assert ttft["server_clock"] == SERVER_CLOCK["ttft"]
    assert ttft["tolerance_ms"] == CLIENT_TIMING_ERROR_MS["ttft"]


def test_server_clock_names_every_histogram_metric() -> None:
    assert set(SERVER_CLOCK) == set(HISTOGRAMS) == set(CLIENT_TIMING_ERROR_MS)
    assert "engine-core" in SERVER_CLOCK["itl"]


def test_client_timing_error_is_the_readme_figure() -> None:
    """The allowance is the measured figure the README reports (benchmarks/client_timing_error.py);
    E2E ends on a chunk stamp like TTFT's, so it carries TTFT's."""
    line = next(
        ln for ln in (ROOT / "README.md").read_text().splitlines() if "client timing error" in ln
    )
    ttft = float(re.search(r"TTFT p50 [\d.]+ ms, p99 ([\d.]+) ms", line).group(1))  # type: ignore[union-attr]
    itl = float(re.search(r"ITL p99 ([\d.]+) ms", line).group(1))  # type: ignore[union-attr]
    assert CLIENT_TIMING_ERROR_MS == {"ttft": ttft, "itl": itl, "e2el": ttft}


def test_client_samples_skip_failed_requests_and_go_on() -> None:
    def rec(i: int, ok: bool) -> RequestRecord:
        return RequestRecord(
            index=i,
            intended_start=0.0,
            start=0.0,
            first_token=0.25,
            end=1.0,
            chunk_times=(0.25, 0.5, 1.0),
            chunk_tokens=(1, 1, 2),
            prompt_tokens=4,
            completion_tokens=4,
            expected_output_tokens=4,
            status=200 if ok else 500,
            error_kind=None if ok else "http_5xx",
        )

    got = client_samples([rec(0, False), rec(1, True)])
    assert got == {"ttft": [0.25], "itl": [0.25, 0.25, 0.25], "e2el": [1.0]}


def test_cdf_gap_is_the_largest_and_the_p99_excess_excepts_one_in_a_hundred_rounded_down() -> None:
    # 150 requests, all at or under 10 ms on the server; the client saw 147 at 5 ms and three
    # late ones. 1% of 150 is 1.5: one sample is excepted, so the p99 excess is the second
    # largest's lateness; TTFT/E2E (not judged) report the excess over all as the frontend gap.
    server = Histogram((0.01, math.inf), (150.0, 150.0), 1.0, 150.0)
    client = [0.005] * 147 + [0.1, 0.2, 0.3]
    w = witness_metric(client, server, 0.0, judged=False)
    assert w["max_cdf_gap"] == pytest.approx(0.02)  # 147/150 against 150/150 at 10 ms
    assert w["excess_ms"] == pytest.approx(290.0)
    assert w["excess_p99_ms"] == pytest.approx(190.0)
    assert w["frontend_gap_ms"] == w["excess_ms"] and not w["late"]
