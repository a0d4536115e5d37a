"""Outputs: results.json, plots, HTML, benchmark.json, terminal lines — one module per output.

Every output reads a list of ``CaseResult`` records (``verdicts.case_result``) and nothing else.
Import from this package; matplotlib is imported only when a plot is drawn.
"""

from pytest_llmperf.report.benchmark_json import benchmark_document
from pytest_llmperf.report.directory import ReportPaths, write_report
from pytest_llmperf.report.html_page import render_html
from pytest_llmperf.report.plots import latency_png, throughput_png
from pytest_llmperf.report.results_json import read_results, results_document, schema, write_results
from pytest_llmperf.report.terminal import terminal_summary_lines

__all__ = [
    "ReportPaths",
    "benchmark_document",
    "latency_png",
    "read_results",
    "render_html",
    "results_document",
    "schema",
    "terminal_summary_lines",
    "throughput_png",
    "write_report",
    "write_results",
]
