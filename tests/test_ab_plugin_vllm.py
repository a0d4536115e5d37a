"""The runnable example, docs/examples/ab-cpu.toml, as users run it: ``pytest --llmperf`` with
the config's [ab] section, on two real vLLM CPU servers (the tiny dense model, B started with
``--max-num-seqs 4``). B serves at most 4 of 16 concurrent requests at a time, so it must be
convicted on throughput, and the outputs (ab.json, ab.png, report.html's section, JUnit
properties, the terminal section) must say so."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "ab-cpu.toml"


def test_the_example_convicts_a_small_max_num_seqs(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", llmperf=EXAMPLE.read_text())
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--llmperf", "-m", "llmperf", "--junitxml=junit.xml",
        timeout=1200,
    )  # fmt: skip
    text = res.stdout.str()
    print(text)
    assert res.ret == pytest.ExitCode.TESTS_FAILED, text  # the session fails on REGRESSION
    assert "llmperf A/B: dense-seqs4 (B) vs dense-default (A)" in text
    report = pytester.path / ".llmperf"
    doc = json.loads((report / "ab.json").read_text())
    (comp,) = doc["comparisons"]
    verdicts = {(v["case_id"], v["metric"]): v for v in comp["verdicts"]}
    metrics = ("total_token_throughput", "output_throughput", "p99_ttft_ms", "p99_e2el_ms",
               "success_rate")  # fmt: skip
    assert set(verdicts) == {("short@c16", m) for m in metrics}  # one per case and metric
    tput = verdicts[("short@c16", "total_token_throughput")]
    assert tput["verdict"] == "REGRESSION", tput["message"]
    assert tput["ratio"] < 0.95 and tput["ci_high"] < 1.0
    assert tput["n_current"] == len(comp["runs"]["b"]["16"])
    for side in ("dense-default", "dense-seqs4"):
        assert comp["identity"][side]["served_vllm"]  # the server's own /version
    assert "--max-num-seqs" in comp["identity"]["dense-seqs4"]["argv"]
    assert (report / "ab.png").read_bytes().startswith(b"\x89PNG")
    page = (report / "report.html").read_text()
    assert "A/B comparisons" in page and "REGRESSION" in page
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    (case,) = [c for c in junit.iter("testcase") if "test_ab[" in c.get("name", "")]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["llmperf.ab.short@c16.total_token_throughput"].startswith("REGRESSION B/A 0.")
    assert case.find("failure") is not None
