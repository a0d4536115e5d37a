"""The ``--llmperf-*`` command-line options. Imports only pytest: the entry point
(``plugin.py``) loads it at start-up, before any option says whether to measure."""

from __future__ import annotations

import pytest


def add_options(parser: pytest.Parser) -> None:
    """Declare every ``--llmperf-*`` option in pytest's "llmperf" group (in ``--help`` order)."""
    group = parser.getgroup("llmperf", "LLM-serving performance tests (pytest-llmperf)")
    _matrix_options(group)
    _endpoint_options(group)
    _launch_options(group)
    _baseline_options(group)
    _ab_and_history_options(group)


def _matrix_options(group: pytest.OptionGroup) -> None:
    """What to measure: the matrix, its selection, run counts and where results go."""
    group.addoption(
        "--llmperf",
        action="store_true",
        default=False,
        help="run LLM-serving perf tests (the configured matrix and @pytest.mark.llmperf tests)",
    )
    group.addoption(
        "--llmperf-config",
        default=None,
        metavar="PATH",
        help="perf matrix file (default: llmperf.toml or [tool.llmperf] in pyproject.toml, "
        "else the built-in CPU default of four tiny models)",
    )
    group.addoption(
        "--llmperf-no-matrix",
        action="store_true",
        default=False,
        help="do not add the configured matrix; run only hand-written perf tests",
    )
    group.addoption(
        "--llmperf-models",
        default=None,
        metavar="A,B",
        help="only these configured models (comma-separated names)",
    )
    group.addoption("--llmperf-workloads", default=None, metavar="A,B", help="only these workloads")
    group.addoption(
        "--llmperf-concurrency",
        default=None,
        metavar="1,10,100",
        help="concurrency levels, replacing the configured ones",
    )
    group.addoption(
        "--llmperf-rate",
        default=None,
        metavar="1,4",
        help="open-loop request rates (requests/s), replacing the concurrency levels ([load]); "
        "capacity*F runs at F times the measured closed-loop capacity (capacity*0.5,capacity*1)",
    )
    group.addoption(
        "--llmperf-runs",
        type=int,
        default=None,
        metavar="N",
        help="fresh load runs per level (n for mean, 95%% CI and CoV)",
    )
    group.addoption(
        "--llmperf-multiplier",
        default=None,
        metavar="quick|default|thorough|X",
        help="request-count multiplier: quick 0.5, default 1, thorough 3, or a number",
    )
    group.addoption(
        "--llmperf-report-dir",
        default=None,
        metavar="DIR",
        help="where results.json, records, plots and report.html go (default .llmperf)",
    )


def _endpoint_options(group: pytest.OptionGroup) -> None:
    """A server that is already running: where, which model, the API key."""
    group.addoption(
        "--llmperf-endpoint",
        default=None,
        metavar="URL",
        help="measure a server that is already running at URL; launch nothing",
    )
    group.addoption(
        "--llmperf-served-model",
        default=None,
        metavar="NAME",
        help="model name at --llmperf-endpoint (default: the first one /v1/models lists)",
    )
    group.addoption(
        "--llmperf-api-key-file",
        default=None,
        metavar="PATH",
        help="file holding the API key (else the LLMPERF_API_KEY environment variable)",
    )


def _launch_options(group: pytest.OptionGroup) -> None:
    """How to plan and launch a server, and how long to wait for it and its requests."""
    group.addoption(
        "--llmperf-launcher",
        default=None,
        metavar="CMD",
        help="command prefix that starts vLLM's OpenAI server, split like a shell (never run "
        "by a shell), e.g. '/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server' or "
        "'docker run --rm ... vllm/vllm-openai-rocm:v0.14.1'",
    )
    group.addoption(
        "--llmperf-platform",
        default=None,
        choices=("cpu", "cuda", "rocm"),
        help="platform the launch plans are for (default: detected)",
    )
    group.addoption(
        "--llmperf-gpus",
        type=int,
        default=None,
        metavar="N",
        help="GPUs per server (default: detected)",
    )
    group.addoption(
        "--llmperf-vllm-version",
        default=None,
        metavar="X.Y.Z",
        help="vLLM version the plans are for (default: the installed one)",
    )
    group.addoption(
        "--llmperf-server-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds a server may take to become ready",
    )
    group.addoption(
        "--llmperf-request-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds one request may take before it counts as a timeout",
    )
    group.addoption(
        "--llmperf-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address launched servers bind to (default 127.0.0.1, loopback only)",
    )
    group.addoption(
        "--llmperf-plan",
        action="store_true",
        default=False,
        help="print the launch plan of every server the selected tests would start, then exit",
    )


def _baseline_options(group: pytest.OptionGroup) -> None:
    """The stored baseline and the gate that compares with it."""
    group.addoption(
        "--llmperf-save-baseline",
        action="store_true",
        default=False,
        help="write or update the stored baseline from this run",
    )
    group.addoption(
        "--llmperf-compare",
        action="store_true",
        default=False,
        help="compare every case with the stored baseline; a regression fails the test",
    )
    group.addoption(
        "--llmperf-strict",
        action="store_true",
        default=None,
        help="an INCONCLUSIVE percentile gate (too few samples for its bound) fails the case; "
        "with --llmperf-compare, NO BASELINE, NOT COMPARABLE and INCONCLUSIVE fail too "
        "(config: [baseline] strict = true)",
    )
    group.addoption(
        "--llmperf-alpha",
        type=float,
        default=None,
        metavar="A",
        help="family-wise false-alarm rate of the baseline gate (default 0.05; config: "
        "[baseline] alpha)",
    )
    group.addoption(
        "--llmperf-tolerance",
        action="append",
        default=[],
        metavar="[METRIC=]PCT",
        help="change that matters, in percent: bare PCT for every metric (default 5), "
        "METRIC=PCT for one; repeatable (config: [baseline] tolerance_percent, "
        "metric_tolerance_percent)",
    )
    group.addoption(
        "--llmperf-metrics",
        default=None,
        metavar="A,B",
        help="metrics the baseline gate tests (default output_throughput,success_rate; "
        "config: [baseline] metrics); each one adds a test per case to the Holm family",
    )
    group.addoption(
        "--llmperf-baseline-dir",
        default=None,
        metavar="DIR",
        help="baseline folder (default: baselines, or baseline_dir in the config)",
    )
    group.addoption(
        "--llmperf-ignore-field",
        action="append",
        default=[],
        metavar="FIELD",
        help="fingerprint field that may differ from the baseline's (repeatable)",
    )


def _ab_and_history_options(group: pytest.OptionGroup) -> None:
    """The A/B comparison and the history store."""
    group.addoption(
        "--llmperf-ab",
        default=None,
        metavar="A,B",
        help="the two variants of the config's [ab] section to compare, A first (default: its "
        "a and b); the A/B runs interleaved and B/A is judged per level and metric",
    )
    group.addoption(
        "--llmperf-ab-blocks",
        default=None,
        choices=("interleaved", "fresh"),
        help="A/B blocks: 'interleaved' keeps both servers up (A B, B A, ...); 'fresh' starts "
        "both anew for every block (default: the [ab] section's blocks)",
    )
    group.addoption(
        "--llmperf-history",
        default=None,
        metavar="PATH|URL",
        help="history store every session is recorded in: a SQLite file or a database URL "
        "(default: $LLMPERF_HISTORY_URL, [history] store, else llmperf-history.sqlite beside "
        "the report folder)",
    )
    group.addoption(
        "--llmperf-no-history",
        action="store_true",
        default=False,
        help="do not record this session in the history store",
    )
    group.addoption(
        "--llmperf-drift-guard",
        action="store_true",
        default=False,
        help="fail a case whose history shows a significant shift since the blessed baseline, "
        "even when tonight's pairwise comparison passes",
    )
