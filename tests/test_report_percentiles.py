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


def test_an_inconclusive_gate_passes_with_a_warning_and_fails_strict(
    pytester: pytest.Pytester,
) -> None:
    """A whole pytest session against the measuring instrument (known timings): a matrix case
    and a marker test, each with a p99 TTFT ceiling far above the instrument's 20 ms and 8
    requests. Not a failure, but warned (``LLMPerfInconclusive``) and shown; a failure under
    --llmperf-strict."""
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(
        "concurrency = [2]\nmin_requests = 8\nwarmup_requests = 2\n"
        "[client]\nloop_lag_p99_ms = 60000\n"
        '[[models]]\nname = "dense-gqa"\ntiny = "dense-gqa"\n'
        '[[workloads]]\nname = "text"\npreset = "text"\ninput_tokens = 32\noutput_tokens = 8\n'
        "[[gates]]\np99_ttft_ms_max = 60000\n"
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llmperf(model="dense-gqa", requests=8, concurrency=2, p99_ttft_ms=60000)
        def test_marker(llmperf_run):
            llmperf_run()
        """
    )
    with running_instrument() as inst:
        args = (
            "-p", "no:cacheprovider", "--llmperf", "--llmperf-endpoint", inst.base_url,
            "--llmperf-served-model", "instrument?ttft=0.02&itl=0.01",
        )  # fmt: skip
        ok = pytester.runpytest_subprocess(*args, timeout=300)
        strict = pytester.runpytest_subprocess(*args, "--llmperf-strict", timeout=300)
    text = ok.stdout.str()
    assert ok.ret == 0, text
    ok.assert_outcomes(passed=2, warnings=2)
    assert text.count("LLMPerfInconclusive") >= 2 and "INCONCLUSIVE p99_ttft_ms" in text
    strict.assert_outcomes(failed=2)
    assert "FAIL INCONCLUSIVE (strict) p99_ttft_ms" in strict.stdout.str()
