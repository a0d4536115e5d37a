"""Every reported percentile carries its sample count: a p99 from too few samples for its
bound is marked in the terminal table and the HTML report, an INCONCLUSIVE gate is shown as
such, and results.json carries the counts and bounds (valid against its schema, and read
back)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_llmperf.config import Gates
from pytest_llmperf.metrics.quantile_bounds import percentile_table
from pytest_llmperf.report import (
    read_results,
    render_html,
    schema,
    terminal_summary_lines,
    write_results,
)
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.gates import evaluate_gates

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test dependency)")


def _case(n: int, limit: float = 1e6) -> CaseResult:
    rng = np.random.default_rng(n)
    samples = {m: rng.exponential(10.0, n) for m in ("ttft", "itl", "e2el")}
    run = {
        f"{s}_{m}_ms": float(np.percentile(v, p))
        for m, v in samples.items()
        for s, p in (("p50", 50), ("p99", 99))
    }
    run.update(success_rate=1.0, total_token_throughput=100.0, output_throughput=10.0)
    gates = evaluate_gates(Gates(p99_ttft_ms_max=limit), run, samples)
    return CaseResult(
        f"m-text-c{n}", "m", "text", n, (run,), gates=tuple(gates),
        percentiles=percentile_table(samples),
    )  # fmt: skip


def test_terminal_marks_a_thin_p99_and_an_inconclusive_gate() -> None:
    lines = terminal_summary_lines([_case(10), _case(400)])
    text = "\n".join(lines)
    row10 = next(ln for ln in lines if " m " in f" {ln} " and "text" in ln and "  10 " in ln)
    assert row10.startswith("??") and "*" in row10
    row400 = next(ln for ln in lines if "text" in ln and " 400 " in ln)
    assert "*" not in row400 and not row400.startswith("??")
    assert "* m-text-c10: p99 from too few samples (TTFT n=10" in text
    assert "needs n >= 299" in text and "not a p99 claim" in text
    assert "?? m-text-c10: gate INCONCLUSIVE" in text and "--llmperf-strict" in text
    assert "m-text-c400: p99 from too few" not in text


def test_html_marks_the_same() -> None:
    page = render_html([_case(10), _case(400)], environment={}, images={})
    assert "INCONCLUSIVE: p99_ttft_ms" in page
    assert "m-text-c10: p99 from too few samples" in page
    assert "m-text-c400: p99 from too few" not in page


def test_results_json_carries_counts_and_bounds(tmp_path: Path) -> None:
    path = write_results(tmp_path, [_case(10), _case(400, limit=1000.0)], environment={})
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    thin, full = doc["cases"]
    assert thin["percentiles"]["ttft"]["n"] == 10
    assert thin["percentiles"]["ttft"]["p99"]["enough"] is False
    assert thin["percentiles"]["ttft"]["p50"]["enough"] is True
    assert thin["gates"][0]["verdict"] == "INCONCLUSIVE" and thin["gates"][0]["passed"]
    assert thin["gates"][0]["bound"]["upper"] is None
    assert full["gates"][0]["verdict"] == "PASS"
    assert full["gates"][0]["bound"]["upper_k"] == full["percentiles"]["ttft"]["p99"]["upper_k"]
    cases, _ = read_results(path)
    back = {g.name: g for g in cases[0].gates}["p99_ttft_ms_max"]
    assert back.verdict == "INCONCLUSIVE" and back.bound is not None and back.bound.n == 10
    assert cases[0].percentiles["ttft"]["n"] == 10
    bad = json.loads(path.read_text())
    bad["cases"][0]["gates"][0]["verdict"] = "MAYBE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema(), cls=jsonschema.Draft202012Validator)
