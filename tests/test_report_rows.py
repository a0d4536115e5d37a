"""The report's smaller pieces, each checked where its own code decides: the peaks of a series
that never saturated, a client-bound case's row and mark, benchmark.json's rounds, and the A/B
section of report.html (verdict rows, excluded runs, drift, what served each variant)."""

from __future__ import annotations

import dataclasses
import html
import re

from test_ab import runs
from test_report import COMMIT, MACHINE, make_cases, metrics

from pytest_llmperf.report import benchmark_document, render_html, terminal_summary_lines
from pytest_llmperf.report.ab_outputs import ab_section_html
from pytest_llmperf.session.ab import ab_report
from pytest_llmperf.verdicts.case_result import CaseResult


def _growing_series() -> list[CaseResult]:
    """Two levels, throughput x4 from c=1 to c=4: a peak, no saturation."""
    return [
        CaseResult("m-t-c1", "m", "t", 1, (metrics(100.0, 10.0),)),
        CaseResult("m-t-c4", "m", "t", 4, (metrics(400.0, 10.0),)),
    ]


def test_unsaturated_series_peak_in_html_and_terminal() -> None:
    page = render_html(_growing_series(), environment={}, images={})
    assert (
        "<tr><td class='l'>m</td><td class='l'>t</td>"
        "<td>400 tok/s at c=4</td><td>not reached</td></tr>"
    ) in page
    lines = terminal_summary_lines(_growing_series())
    assert "m/t: peak 400 tok/s at c=4" in lines  # no ", saturated from"


def test_client_bound_case_row_is_marked_in_html_and_terminal() -> None:
    cases = make_cases()
    page = render_html(cases, environment={}, images={})
    assert "<tr class='clientbound' id='moe-mla-text-c1000'" in page
    rows = terminal_summary_lines(cases)[2 : 2 + len(cases)]
    bound = [r for r in rows if re.search(r"\smoe-mla\s+text\s+1000\s", r)]
    assert len(bound) == 1 and bound[0].startswith("!!"), rows
    plain = terminal_summary_lines(_growing_series())[2:4]
    assert [r.split()[0] for r in plain] == ["m", "m"], plain  # no mark: no gate, not bound


def test_benchmark_rounds_are_the_runs() -> None:
    cases = make_cases(runs=3)
    doc = benchmark_document(cases, machine_info=MACHINE, commit_info=COMMIT)
    first = doc["benchmarks"][0]
    assert first["options"] == {"timer": "llmperf", "min_rounds": 3, "warmup": True}
    assert first["stats"]["iterations"] == 1
    assert first["stats"]["data"] == [r["mean_e2el_ms"] / 1000 for r in cases[0].runs]
    assert first["stats"]["rounds"] == 3


def _comparison(**extra: object) -> dict[str, object]:
    verdicts, _ = ab_report(
        {1: runs(100), 4: runs(100)}, {1: runs(80, cov=0.05), 4: ()}, name="chat"
    )
    plain = [
        {**{f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, "verdict": str(v.verdict)}
        for v in verdicts
    ]
    comp: dict[str, object] = {
        "name": "chat",
        "a": "base",
        "b": "<new>",
        "blocks": "interleaved",
        "blocks_wanted": 5,
        "verdicts": plain,
        "excluded": [],
        "drift": [],
        "identity": {},
    }
    return {**comp, **extra}


def test_ab_section_verdict_rows() -> None:
    page = ab_section_html([_comparison()], png=b"\x89PNG")
    assert page.startswith("<h2>A/B comparisons</h2><img alt='A/B ratio per level' src='data:")
    assert (
        "<h3>&lt;new&gt; (B) vs base (A), chat: interleaved blocks, 5 wanted per level</h3>" in page
    )
    head = re.search(r"<table><tr>(.*?)</tr>", page)
    assert head is not None
    assert head.group(1).startswith(
        "<th class='l'>case</th><th class='l'>metric</th><th class='l'>verdict</th><th class=''>B/A"
    )
    assert head.group(1).endswith("<th class=''>blocks to decide</th>")
    regression = re.search(
        r"<tr><td class='l'>chat@c1</td><td class='l'>p99_ttft_ms</td>.*?</tr>", page
    )
    assert regression is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", regression.group(0))
    v = next(
        v
        for v in _comparison()["verdicts"]  # type: ignore[attr-defined]
        if v["case_id"] == "chat@c1" and v["metric"] == "p99_ttft_ms"
    )
    assert v["verdict"] == "REGRESSION" and v["cov_baseline"] < 0.01 < 0.03 < v["cov_current"]
    assert cells == [
        "chat@c1", "p99_ttft_ms", "REGRESSION", f"{v['ratio']:.3f}",
        f"{v['ci_low']:.3f}–{v['ci_high']:.3f}", f"{v['p']:.3g}", f"{v['p_adj']:.3g}",
        f"{v['cov_baseline']:.1%}", f"{v['cov_current']:.1%}", "5", str(v["runs_needed"]),
    ]  # fmt: skip
    assert f"style='background:#ffc7c7' title='{html.escape(v['message'])}'>" in regression.group(0)
    plain = _comparison()
    plain["verdicts"][0]["message"] = "it's <odd>"  # type: ignore[index]
    assert "title='it&#x27;s &lt;odd&gt;'" in ab_section_html([plain])
    missing = re.search(
        r"<tr><td class='l'>chat@c4</td><td class='l'>success_rate</td>.*?</tr>", page
    )
    assert missing is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", missing.group(0))
    assert cells == ["chat@c4", "success_rate", "NOT COMPARABLE", "–", "–", "–", "–", "–", "–",
                     "0", "–"]  # fmt: skip
    for absent in ("Excluded runs", "Drift of A", "What served each variant"):
        assert absent not in page
    assert "<img" not in ab_section_html([_comparison()])


def test_ab_section_excluded_drift_and_identity() -> None:
    comp = _comparison(
        excluded=[{"variant": "B", "level": 4, "block": 0, "reasons": ["client-bound", "lag"]}],
        drift=[{"case_id": "chat@c1", "message": "A drifted <5%>"}],
        identity={
            "base": {"served_vllm": "0.32.0", "launcher": ["env"], "argv": ["vllm", "serve"]},
            "<new>": {},
        },
    )
    page = ab_section_html([comp, _comparison()])
    assert (
        "</table><p>Excluded runs (their block partner too):</p>"
        "<ul><li>B c=4 block 1: client-bound; lag</li></ul>"
        "<p>Drift of A over the session:</p><ul><li>chat@c1 A drifted &lt;5%&gt;</li></ul>"
        "<p>What served each variant:</p><ul>"
        "<li>base: vLLM 0.32.0 — <code>env vllm serve</code></li>"
        "<li>&lt;new&gt;: vLLM unknown — <code></code></li></ul><h3>"
    ) in page
    assert page.count("Excluded runs") == 1  # the second comparison has none
