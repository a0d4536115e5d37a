"""vLLM's /metrics as guardrails and second witness (pure: metrics.server, verdicts.guardrails,
config [guardrails], the report section).

The fixtures under tests/data are real scrapes of the tiny dense vLLM 0.32 CPU server
(tests/_capture_metrics.py, 2 Dec 2026): ``before``, ``during`` (1 s into a 48-request run at
c=16, 256 prompt / 32 output tokens), ``after`` that run, ``resent`` after the same 48 prompts
were sent again; ``vllm_records_run1.jsonl`` is the client's records of the first run."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.metrics.server import (
    CLIENT_TIMING_ERROR_MS,
    GAUGES,
    Histogram,
    bin_samples,
    client_samples,
    gauge_values,
    guardrails,
    parse_exposition,
    witness,
    witness_metric,
)
from pytest_llmperf.verdicts.guardrails import FLAGS, judge

DATA = Path(__file__).parent / "data"


def scrape(name: str):  # type: ignore[no-untyped-def]
    return parse_exposition((DATA / f"vllm_metrics_{name}.txt").read_text())


def records() -> list[RequestRecord]:
    lines = (DATA / "vllm_records_run1.jsonl").read_text().splitlines()
    return [RequestRecord.from_json(json.loads(line)) for line in lines]


def test_parser_agrees_with_prometheus_client_on_a_real_scrape() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    text = (DATA / "vllm_metrics_after.txt").read_text()
    ours = parse_exposition(text)
    n = 0
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_created"):
                assert s.name not in ours.samples
                continue
            labels = tuple(sorted(s.labels.items()))
            got = ours.samples[s.name][labels]
            assert got == s.value or (math.isnan(got) and math.isnan(s.value)), s
            n += 1
    assert n > 300  # the whole exposition, not a few lines
    assert sum(len(v) for v in ours.samples.values()) == n


def test_gauge_only_parse_keeps_just_the_gauges() -> None:
    text = (DATA / "vllm_metrics_during.txt").read_text()
    s = parse_exposition(text, GAUGES)
    assert set(s.samples) <= set(GAUGES)  # not vllm:num_requests_waiting_by_reason
    g = gauge_values(s)
    assert g["vllm:num_requests_running"] == 16.0  # c=16, mid-run
    assert g["vllm:num_requests_waiting"] == 0.0
    assert 0 < g["vllm:kv_cache_usage_perc"] < 0.05


def test_guardrails_of_a_fresh_run_and_of_a_resent_one() -> None:
    before, during, after, resent = (scrape(n) for n in ("before", "during", "after", "resent"))
    fresh = guardrails(before, after, gauge_values(during))
    assert fresh["preemptions"] == 0
    assert fresh["prefix_cache_queries"] == 48 * 256
    assert fresh["prefix_cache_hits"] == 0
    assert fresh["peak_running"] == 16 and fresh["peak_waiting"] == 0
    assert fresh["spec_decode"] is None  # no speculative decoding on this server
    again = guardrails(after, resent, {})
    # The same 48 prompts again: each prompt's first full 128-token block comes from the cache
    # (vLLM never serves a prompt's last block from it).
    assert again["prefix_cache_queries"] == 48 * 256
    assert again["prefix_cache_hits"] == 48 * 128
    assert again["prefix_cache_hit_rate"] == 0.5
    assert judge({"guardrails": fresh}) == []
    flags = judge({"guardrails": again})
    assert [f.name for f in flags] == ["unexpected_cache_hits"] and not flags[0].fails
    assert "6144 prompt tokens (50%" in flags[0].message
    assert judge({"guardrails": again}, fail_on=["unexpected_cache_hits"])[0].fails
    # A shared prefix or a multi-turn conversation is meant to hit the cache.
    assert judge({"guardrails": again}, shared_prefix_tokens=64) == []
    assert judge({"guardrails": again}, turns=3) == []


def test_preemptions_flag_and_spec_decode_acceptance() -> None:
    before = parse_exposition(
        "vllm:num_preemptions_total 2\nvllm:spec_decode_num_draft_tokens_total 100\n"
        "vllm:spec_decode_num_accepted_tokens_total 40\nvllm:spec_decode_num_drafts_total 50\n"
    )
    after = parse_exposition(
        'vllm:num_preemptions_total{engine="0"} 5\nvllm:spec_decode_num_draft_tokens_total 300\n'
        "vllm:spec_decode_num_accepted_tokens_total 190\nvllm:spec_decode_num_drafts_total 150\n"
    )
    g = guardrails(before, after, {})
    assert g["preemptions"] == 3
    assert g["spec_decode"] == {
        "drafts": 100,
        "draft_tokens": 200,
        "accepted_tokens": 150,
        "acceptance_rate": 0.75,
    }
    flags = judge({"guardrails": g}, fail_on=["preemptions"])
    assert [(f.name, f.fails) for f in flags] == [("preemptions", True)]
    assert "preempted 3 requests" in flags[0].message
    assert guardrails(None, after, {})["source"] == "unavailable"


def test_histogram_quantiles_deltas_and_binning() -> None:
    h = Histogram((0.1, 0.2, 0.4, math.inf), (10, 30, 40, 40), 8.0, 40)
    assert h.quantile(0.25) == pytest.approx(0.1)  # rank 10 = the first edge
    assert h.quantile(0.5) == pytest.approx(0.15)  # rank 20: halfway into (0.1, 0.2]
    assert h.quantile(0.875) == pytest.approx(0.3)
    h2 = Histogram((0.1, 0.2, 0.4, math.inf), (10, 30, 40, 41), 9.0, 41)
    assert h2.quantile(1.0) == 0.4  # the +Inf bucket reads as the last finite edge
    d = h2.minus(h)
    assert d.cumulative == (0, 0, 0, 1) and d.count == 1
    assert h.minus(h2) is h  # counters went down: a restart, taken as is
    b = bin_samples([0.05, 0.1, 0.15, 0.5], (0.1, 0.2, 0.4, math.inf))
    assert b.cumulative == (2, 3, 3, 4)  # le is inclusive


def test_second_witness_on_a_real_run() -> None:
    w = witness(scrape("before"), scrape("after"), client_samples(records()))
    assert set(w["metrics"]) == {"ttft", "itl", "e2el"}
    tt = w["metrics"]["ttft"]
    assert tt["histogram"] == "vllm:time_to_first_token_seconds"
    assert tt["matched"] and tt["client_count"] == tt["server_count"] == 48
    itl = w["metrics"]["itl"]
    assert itl["histogram"] == "vllm:inter_token_latency_seconds"
    assert itl["server_count"] == 48 * 31 == itl["client_count"]
    assert itl["judged"] and itl["comparable"] and itl["client_late_ms"] is not None
    assert itl["allowance_ms"] > CLIENT_TIMING_ERROR_MS["itl"]  # + one engine step
    for m in ("ttft", "e2el"):
        wm = w["metrics"][m]
        # The client's clock starts before vLLM stamps the arrival and stops after the token left
        # the server: its median is not below the server's, and that gap is the frontend's.
        assert wm["quantiles"]["p50"]["gap_ms"] >= 0
        assert 0 <= wm["max_cdf_gap"] <= 1
        assert not wm["judged"] and "client_late_ms" not in wm
        assert w["frontend_gap_ms"][m] == wm["frontend_gap_ms"] == wm["excess_ms"] > 0
        assert "after HTTP parsing" in wm["server_clock"]
    assert w["late"] == [] and judge({"witness": w}) == []


#: vLLM 0.32's ``inter_token_latency_seconds`` buckets (tests/data/vllm_metrics_after.txt).
ITL_EDGES = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0, math.inf)  # fmt: skip


def streams(step_s: float, n_req: int = 40, tokens: int = 64) -> list[list[float]]:
    """Engine-core stamps of ``n_req`` streams of ``tokens`` tokens, one per step (± 10%)."""
    rng = random.Random(7)
    out = []
    for _ in range(n_req):
        t, times = 0.0, []
        for _ in range(tokens):
            t += step_s * rng.uniform(0.9, 1.1)
            times.append(t)
        out.append(times)
    return out


def gaps(all_times: list[list[float]]) -> list[float]:
    return [b - a for times in all_times for a, b in itertools.pairwise(times)]


def itl_verdict(server_times: list[list[float]], client_times: list[list[float]]):  # type: ignore[no-untyped-def]
    server = bin_samples(gaps(server_times), ITL_EDGES)
    return witness_metric(gaps(client_times), server, CLIENT_TIMING_ERROR_MS["itl"])


def test_itl_witness_flags_a_stopped_client_and_not_a_busy_frontend() -> None:
    srv = streams(0.005)  # an idle engine: a token every ~5 ms
    rng = random.Random(3)
    # On time: each read 0.2-1 ms after the engine's stamp.
    on_time = itl_verdict(srv, [[t + rng.uniform(2e-4, 1e-3) for t in s] for s in srv])
    assert on_time["comparable"] and not on_time["late"]
    assert on_time["client_late_ms"] < CLIENT_TIMING_ERROR_MS["itl"]
    # A busy API server (c=256: a step every ~40 ms) hands each step's tokens out one stream
    # after another: up to a step late, a different amount each token. That is the server,
    # and it is allowed.
    busy = streams(0.04)
    frontend = itl_verdict(busy, [[t + rng.uniform(0, 0.04) for t in s] for s in busy])
    assert not frontend["late"] and frontend["client_late_ms"] > 2 * CLIENT_TIMING_ERROR_MS["itl"]

    # A client stopped 60 ms of every 80 ms (SIGSTOP): the tokens wait in the socket and are
    # read together when it runs again: one long gap, then gaps of ~0.
    def stopped(t: float) -> float:
        return t if t % 0.08 < 0.02 else t - t % 0.08 + 0.08

    late = itl_verdict(srv, [[stopped(t) for t in s] for s in srv])
    assert late["late"] and late["client_late_ms"] > 30, late
    assert late["client_late_ms"] > late["allowance_ms"] > CLIENT_TIMING_ERROR_MS["itl"]
    # A few hiccups (under 1% of the tokens, e.g. a GC pause): seen, not a late client.
    hiccup = [list(s) for s in srv]
    for s in hiccup[:10]:
        s[30:] = [t + 0.05 for t in s[30:]]
    few = itl_verdict(srv, hiccup)
    assert few["excess_ms"] > 40 and not few["late"]
    # Another client on the server (counts differ): reported, never flagged.
    server = bin_samples(gaps(srv), ITL_EDGES)
    other = witness_metric(gaps(late_streams := [[stopped(t) for t in s] for s in srv[:20]]),
                           server, 5.44)  # fmt: skip
    assert late_streams and not other["matched"] and not other["late"]
    flags = judge({"witness": {"late": ["itl"], "metrics": {"itl": late}}})
    assert [f.name for f in flags] == ["client_late"]
    assert "itl by at least" in flags[0].message and "one engine step" in flags[0].message


def test_ttft_e2e_excess_is_the_frontend_gap_not_a_late_client() -> None:
    edges = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, math.inf)
    server_s = [0.011 + 0.0005 * i for i in range(40)]  # 11-30.5 ms in vLLM's clock
    server = bin_samples(server_s, edges)
    # The API server's queue held each request ~300 ms before vLLM stamped its arrival.
    queued = witness_metric([s + 0.3 for s in server_s], server, 3.82, judged=False)
    assert queued["frontend_gap_ms"] >= 250 and queued["excess_ms"] == queued["frontend_gap_ms"]
    assert not queued["late"] and "client_late_ms" not in queued
    one = witness_metric([*server_s[:-1], server_s[-1] + 0.05], server, 3.82, judged=False)
    assert one["frontend_gap_ms"] > 20  # the bound is exact per request


def hist_text(name: str, samples: list[float], edges: tuple[float, ...]) -> str:
    b = bin_samples(samples, edges)
    lines = [
        f'{name}_bucket{{le="{"+Inf" if math.isinf(e) else e}"}} {c}'
        for e, c in zip(b.edges, b.cumulative, strict=True)
    ]
    return "\n".join([*lines, f"{name}_sum {b.sum}", f"{name}_count {b.count}"])


def test_witness_judges_itl_only_when_both_sides_saw_the_same_requests() -> None:
    srv = streams(0.005)
    ttft_s = [0.02] * len(srv)
    edges = (0.01, 0.025, 0.05, 0.1, math.inf)

    def exposition(ttft: list[float], itl: list[float]):  # type: ignore[no-untyped-def]
        return parse_exposition(
            hist_text("vllm:time_to_first_token_seconds", ttft, edges)
            + "\n"
            + hist_text("vllm:inter_token_latency_seconds", itl, ITL_EDGES)
        )

    before = exposition([], [])
    after = exposition(ttft_s, gaps(srv))

    def stopped(t: float) -> float:
        return t if t % 0.08 < 0.02 else t - t % 0.08 + 0.08

    late_itl = gaps([[stopped(t) for t in s] for s in srv])
    w = witness(before, after, {"ttft": ttft_s, "itl": late_itl})
    assert w["late"] == ["itl"] and w["metrics"]["itl"]["comparable"]
    # vLLM sent a first event with two tokens in a few streams: the client has a few gaps
    # fewer than the engine (it cannot split them), the requests are the same: still judged.
    fewer = witness(before, after, {"ttft": ttft_s, "itl": late_itl[5:]})
    assert not fewer["metrics"]["itl"]["matched"] and fewer["late"] == ["itl"]
    # Another client's requests on the server: the TTFT counts differ, ITL is not judged.
    other = witness(before, after, {"ttft": ttft_s[:-1], "itl": late_itl[:-63]})
    assert not other["metrics"]["itl"]["comparable"] and other["late"] == []
    assert set(other["frontend_gap_ms"]) == {"ttft"}


def _cfg(extra: str):  # type: ignore[no-untyped-def]
    import tomllib

    text = '[[models]]\nname = "dense-gqa"\ntiny = "dense-gqa"\n' + extra
    return parse_config(tomllib.loads(text), source="t.toml")


def test_guardrails_config_fail_on_is_validated() -> None:
    assert _cfg("").guardrails.fail_on == ()
    cfg = _cfg('[guardrails]\nfail_on = ["preemptions", "unexpected_cache_hits"]\n')
    assert cfg.guardrails.fail_on == ("preemptions", "unexpected_cache_hits")
    with pytest.raises(ConfigError, match=r"fail_on\[0\].*[Dd]id you mean 'preemptions'"):
        _cfg('[guardrails]\nfail_on = ["preemption"]\n')
    with pytest.raises(ConfigError, match=r"[Dd]id you mean 'fail_on'"):
        _cfg('[guardrails]\nfailon = ["preemptions"]\n')
    with pytest.raises(ConfigError, match="list of flag names"):
        _cfg('[guardrails]\nfail_on = "preemptions"\n')
    assert set(FLAGS) == {"preemptions", "unexpected_cache_hits", "client_late"}


def test_report_section_shows_the_figures_and_flags() -> None:
    from pytest_llmperf.report.server_section import server_section
    from pytest_llmperf.verdicts.case_result import CaseResult

    before, after, resent = scrape("after"), scrape("resent"), scrape("resent")
    g = guardrails(before, after, {"vllm:num_requests_running": 16.0})
    flags = judge({"guardrails": g}, fail_on=["unexpected_cache_hits"])
    detail = {
        "server": {
            "guardrails": g,
            "witness": witness(before, resent, {}),
            "flags": [f.to_json() for f in flags],
        }
    }
    case = CaseResult(
        case_id="dense-gqa-small-c16",
        model="dense-gqa",
        workload="small",
        concurrency=16,
        runs=({"output_throughput": 1.0},),
        details=(detail,),
    )
    page = server_section([case])
    assert "Server guardrails" in page and "6,144 / 12,288" in page
    assert "FAIL the prefix cache served 6144" in page and "gatefail" in page
    assert server_section([]) == ""
