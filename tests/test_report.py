"""The report directory, checked the way its readers meet it: results.json against its schema,
benchmark.json through pytest-benchmark's own loader and CLI, report.html in real headless
Chromium (skipped, with the install step, when Chromium is absent)."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.config import Gates
from pytest_llmperf.report import (
    benchmark_document,
    read_results,
    render_html,
    results_document,
    schema,
    terminal_summary_lines,
    throughput_png,
    write_report,
    write_results,
)
from pytest_llmperf.verdicts.case_result import CaseResult, with_status
from pytest_llmperf.verdicts.gates import evaluate_gates

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test dependency)")

MACHINE = {"node": "ci", "machine": "x86_64", "python_version": "3.11", "cpu": {"brand_raw": "x"}}
COMMIT = {"id": "abc123", "dirty": False, "project": "demo", "branch": "main", "time": None,
          "author_time": None}  # fmt: skip
ENV = {"vllm": "0.32.0", "device": "cpu", "cores": 2, "flags": ["--max-num-seqs", "256"]}


def metrics(tp: float, p99_ms: float, success: float = 1.0) -> dict[str, float]:
    """A full ``RunSummary.metrics()``-shaped dict scaled from two numbers."""
    out = {
        "total_token_throughput": tp,
        "output_throughput": tp / 6,
        "request_throughput": tp / 600,
        "peak_output_throughput": tp / 4,
        "success_rate": success,
    }
    for lat, scale in (("ttft", 0.1), ("tpot", 0.01), ("itl", 0.01), ("ichunk", 0.01),
                       ("e2el", 1.0)):  # fmt: skip
        for stat, f in (("mean", 0.6), ("median", 0.5), ("std", 0.1), ("p50", 0.5), ("p90", 0.8),
                        ("p95", 0.9), ("p99", 1.0), ("p99_9", 1.1)):  # fmt: skip
            out[f"{stat}_{lat}_ms"] = p99_ms * scale * f
    return out


LEVELS = [(1, 300.0, 500.0), (16, 1800.0, 700.0), (64, 2900.0, 900.0), (256, 2950.0, 1500.0)]


def make_cases(runs: int = 3) -> list[CaseResult]:
    gates = Gates(output_throughput_min=100, p99_e2el_ms_max=1200)
    cases = []
    for model, workload, k in (("dense-gqa", "text", 1.0), ("vision", "vision", 0.5)):
        for c, tp, p99 in LEVELS:
            rs = tuple(metrics(tp * k * (1 + 0.03 * (i - 1)), p99) for i in range(runs))
            cases.append(
                CaseResult(
                    case_id=f"{model}-{workload}-c{c}",
                    model=model,
                    workload=workload,
                    concurrency=c,
                    runs=rs,
                    gates=tuple(evaluate_gates(gates, rs[0])),
                    environment={"server_args": ["--max-num-seqs", "256"]},
                    errors={"timeout": 1} if c == 256 else {},
                    details=tuple({"duration_s": 1.5, "num_requests": c} for _ in rs),
                    nodeid=f"tests/test_perf.py::test_perf[{model}-{workload}-c{c}]",
                )
            )
    # A client-bound case, and one whose latencies could not be measured (NaN).
    cases.append(
        CaseResult("moe-mla-text-c1000", "moe-mla", "text", 1000,
                   (metrics(100.0, 9000.0, success=0.5),), client_bound=True,
                   client_reasons=("event loop lag p99 250 ms",))
    )  # fmt: skip
    nan_run = {**metrics(0.0, 1.0, success=0.0), "p99_e2el_ms": math.nan, "mean_e2el_ms": math.nan}
    cases.append(CaseResult("moe-mla-text-c1", "moe-mla", "text", 1, (nan_run,)))
    return cases


def no_nan(text: str) -> Any:
    def bad(token: str) -> None:
        raise AssertionError(f"non-JSON constant {token} in output")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(out, make_cases(), environment=ENV, machine_info=MACHINE, commit_info=COMMIT)
    return out


# --------------------------------------------------------------------------------------------
# results.json
# --------------------------------------------------------------------------------------------


def test_results_validate_against_schema(report: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    doc = no_nan((report / "results.json").read_text())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    assert doc["complete"] is True
    assert len(doc["cases"]) == len(make_cases())
    case = doc["cases"][0]
    assert case["summary"]["total_token_throughput"]["n"] == 3
    assert case["runs"][0]["detail"] == {"duration_s": 1.5, "num_requests": 1}
    nan_case = next(c for c in doc["cases"] if c["case_id"] == "moe-mla-text-c1")
    assert nan_case["runs"][0]["metrics"]["p99_e2el_ms"] is None
    series = {(s["model"], s["workload"]): s for s in doc["saturation"]}
    assert series[("dense-gqa", "text")]["peak_concurrency"] == 256


def test_schema_rejects_a_broken_document(report: Path) -> None:
    doc = json.loads((report / "results.json").read_text())
    doc["cases"][0]["concurrency"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def test_results_rewritten_after_each_case(tmp_path: Path) -> None:
    """An interrupted session leaves a valid file with every case measured so far."""
    cases = make_cases()
    path = tmp_path / "results.json"
    started = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for i in range(1, 4):
        write_results(tmp_path, cases[:i], environment=ENV, started=started)
        doc = no_nan(path.read_text())
        jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
        assert doc["complete"] is False and len(doc["cases"]) == i
        assert doc["created"] == "2026-01-01T12:00:00+00:00" < doc["updated"]
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp files left


def test_read_results_round_trip(report: Path) -> None:
    cases, env = read_results(report / "results.json")
    original = with_status(make_cases())
    assert env == json.loads(json.dumps(ENV))
    assert [c.case_id for c in cases] == [c.case_id for c in original]
    assert [c.status for c in cases] == [c.status for c in original]
    assert [c.passed for c in cases] == [c.passed for c in original]
    assert cases[0].runs == original[0].runs
    assert math.isnan(cases[-1].runs[0]["p99_e2el_ms"])


def test_status_derived_from_series_unless_given() -> None:
    cases = with_status(make_cases())
    by_id = {c.case_id: c.status for c in cases}
    assert by_id["dense-gqa-text-c1"] == "OK"
    assert by_id["dense-gqa-text-c256"] == "DEGRADED"  # p99 1500 > 2 x 500 at c=1
    assert by_id["moe-mla-text-c1000"] == "FAILING"
    kept = with_status([CaseResult("a-t-c1", "a", "t", 1, (metrics(1, 1),), status="SATURATED")])
    assert kept[0].status == "SATURATED"


def test_document_is_deterministic_given_a_clock() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    a = results_document(make_cases(), environment=ENV, complete=True, now=now)
    b = results_document(make_cases(), environment=ENV, complete=True, now=now)
    assert a == b and a["created"] == "2026-01-01T00:00:00+00:00"


# --------------------------------------------------------------------------------------------
# Plots and HTML
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["throughput.png", "latency.png"])
def test_plots_are_real_pngs(report: Path, name: str) -> None:
    from PIL import Image

    data = (report / name).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    with Image.open(io.BytesIO(data)) as im:
        assert im.width > 500 and im.height > 300
        # not a blank canvas: a plot has many colours
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_plot_of_nothing_still_renders() -> None:
    assert throughput_png([]).startswith(b"\x89PNG")


def test_html_is_self_contained(report: Path) -> None:
    page = (report / "report.html").read_text()
    for c in make_cases():
        assert f"id='{c.case_id}'" in page
    assert page.count("src='data:image/png;base64,") == 2
    refs = re.findall(r"""(?:src|href)=['"]([^'"]*)""", page)
    assert all(r.startswith("data:") for r in refs), refs
    assert "<script" not in page
    assert "client-bound: event loop lag p99 250 ms" in page
    assert "FAIL: p99_e2el_ms" in page  # the c=256 case is over its ceiling
    for status in ("OK", "DEGRADED", "FAILING"):
        assert f">{status}</td>" in page


def test_html_escapes_names() -> None:
    case = CaseResult("x-c1", "<b>m</b>", "t&t", 1, (metrics(1, 1),))
    page = render_html([case], environment={"k": "<i>"}, images={})
    assert "<b>m</b>" not in page and "&lt;b&gt;m&lt;/b&gt;" in page and "&lt;i&gt;" in page


# --------------------------------------------------------------------------------------------
# pytest-benchmark export
# --------------------------------------------------------------------------------------------


def test_benchmark_json_loads_with_pytest_benchmark(report: Path) -> None:
    from pytest_benchmark.logger import Logger
    from pytest_benchmark.stats import Stats
    from pytest_benchmark.storage.file import FileStorage

    path = report / "benchmark.json"
    doc = no_nan(path.read_text())
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["machine_info"]["llmperf"]["vllm"] == "0.32.0"
    storage = FileStorage(report, logger=Logger(Logger.QUIET))
    loaded = list(storage.load_benchmarks(str(path)))
    # the NaN-latency case has no time to report and is left out, as pytest-benchmark does
    assert len(loaded) == len(make_cases()) - 1
    first = loaded[0]
    assert first["name"] == "test_perf[dense-gqa-text-c1]"
    assert first["fullname"] == "tests/test_perf.py::test_perf[dense-gqa-text-c1]"
    assert first["group"] == "dense-gqa-text"
    assert first["params"] == {"model": "dense-gqa", "workload": "text", "concurrency": 1}
    for key in (*Stats.fields, "data", "iterations"):
        assert key in first, key
    assert first["rounds"] == 3 and len(first["data"]) == 3
    assert first["mean"] == pytest.approx(0.3)  # mean e2e latency: 500 ms x 0.6, in seconds
    assert first["extra_info"]["llmperf_metrics"]["total_token_throughput"] == pytest.approx(300)


def test_benchmark_json_through_pytest_benchmark_cli(report: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "--storage", str(tmp_path), "compare",
         str(report / "benchmark.json"), "--columns=min,mean,max,rounds"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "test_perf[dense-gqa-text-c256]" in proc.stdout
    assert "benchmark 'dense-gqa-text'" in proc.stdout


def test_benchmark_defaults_to_pytest_benchmarks_machine_info() -> None:
    doc = benchmark_document(make_cases()[:1])
    assert {"node", "machine", "python_version", "cpu"} <= set(doc["machine_info"])
    assert "id" in doc["commit_info"]


# --------------------------------------------------------------------------------------------
# Terminal
# --------------------------------------------------------------------------------------------


def test_terminal_summary_lines() -> None:
    lines = terminal_summary_lines(make_cases())
    assert lines[0] == f"llmperf: {len(make_cases())} cases, 5 failing"
    header, rows = lines[1], lines[2 : 2 + len(make_cases())]
    assert "total tok/s" in header and "E2E p50/p99 ms" in header and "status" in header
    assert all(len(r) <= len(lines[1]) + 40 for r in rows)
    dense_256 = next(r for r in rows if "dense-gqa" in r and " 256 " in r)
    assert dense_256.startswith("!!") and dense_256.endswith("DEGRADED")
    assert "2,950 ± " in dense_256
    # c=256 is DEGRADED and also gained < 10%: it counts as saturated, c=64 is the knee
    assert "dense-gqa/text: peak 2,950 tok/s at c=256, saturated from c=256 (knee c=64)" in lines
    assert any(line.startswith("!! moe-mla-text-c1000: client-bound") for line in lines)
    assert any(
        line.startswith("!! dense-gqa-text-c256: gate failed: p99_e2el_ms") for line in lines
    )
    assert "moe-mla/text: no level succeeded" in lines
    assert terminal_summary_lines([]) == ["llmperf: no performance cases ran"]


# --------------------------------------------------------------------------------------------
# Real browser
# --------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>window.addEventListener('load', function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    out.push(im.complete + ':' + im.naturalWidth + 'x' + im.naturalHeight);
  }
  var p = document.createElement('pre'); p.id = 'llmperf-probe';
  p.textContent = out.join(','); document.body.appendChild(p);
});</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (CI: apt-get install -y chromium)"
)
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    page = (report / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="llmperf-probe">([^<]*)</pre>', dom.stdout)
    assert m, dom.stderr[-2000:]
    images = m.group(1).split(",")
    assert len(images) == 2
    for im in images:  # every embedded PNG decoded to a real size
        complete, size = im.split(":")
        w, h = map(int, size.split("x"))
        assert complete == "true" and w > 500 and h > 300, images

    shot = tmp_path / "shot.png"
    res = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", probe.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 2000)
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50  # not blank
