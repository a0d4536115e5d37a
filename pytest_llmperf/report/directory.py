"""Writing the whole report directory in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_llmperf.core.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from pytest_llmperf.report.benchmark_json import benchmark_document
from pytest_llmperf.report.html_page import render_html
from pytest_llmperf.report.layout import BENCHMARK_FILE, HTML_FILE, LATENCY_PNG, THROUGHPUT_PNG
from pytest_llmperf.report.plots import latency_png, throughput_png
from pytest_llmperf.report.results_json import write_results
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.suite_index import SuiteIndex


@dataclass(frozen=True)
class ReportPaths:
    results: Path
    html: Path
    benchmark: Path
    plots: tuple[Path, ...]


def write_report(
    report_dir: Path,
    cases: Sequence[CaseResult],
    *,
    environment: Mapping[str, Any],
    machine_info: Mapping[str, Any] | None = None,
    commit_info: Mapping[str, Any] | None = None,
    started: datetime | None = None,
    extra_html: str = "",
    suite: SuiteIndex | None = None,
) -> ReportPaths:
    """Write everything at session end: final results.json (``complete``), the two PNGs,
    report.html and benchmark.json."""
    report_dir = Path(report_dir)
    results = write_results(
        report_dir, cases, environment=environment, complete=True, started=started, suite=suite
    )
    images = {"Throughput": throughput_png(cases), "Latency": latency_png(cases)}
    plots = []
    for fname, png in zip((THROUGHPUT_PNG, LATENCY_PNG), images.values(), strict=True):
        plots.append(write_bytes_atomic(report_dir / fname, png))
    page = write_text_atomic(
        report_dir / HTML_FILE,
        render_html(cases, environment=environment, images=images, extra_html=extra_html),
    )
    bench = write_json_atomic(
        report_dir / BENCHMARK_FILE,
        benchmark_document(
            cases, machine_info=machine_info, commit_info=commit_info, environment=environment
        ),
    )
    return ReportPaths(results, page, bench, tuple(plots))
