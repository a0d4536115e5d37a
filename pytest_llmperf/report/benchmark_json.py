"""A pytest-benchmark-compatible ``benchmark.json``, so existing tooling can read our runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pytest_llmperf.report.results_json import _jsonable, _num, gate_json
from pytest_llmperf.verdicts.case_result import CaseResult, with_status


def benchmark_document(
    cases: Sequence[CaseResult],
    *,
    machine_info: Mapping[str, Any] | None = None,
    commit_info: Mapping[str, Any] | None = None,
    environment: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The file ``pytest-benchmark`` 5.x writes with ``--benchmark-json``, for its
    ``compare`` command and the dashboards that read it.

    A round is one run and its "time" is that run's mean end-to-end request latency in
    seconds, so lower is better as pytest-benchmark assumes, and ``ops`` x concurrency is the
    request throughput (Little's law). Every metric's mean, the status and the gates are in
    ``extra_info``. ``machine_info``/``commit_info`` default to pytest-benchmark's own.
    """
    from pytest_benchmark import __version__ as pb_version

    if machine_info is None:
        from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

        machine_info = pytest_benchmark_generate_machine_info()
    if commit_info is None:
        from pytest_benchmark.utils import get_commit_info

        commit_info = get_commit_info()
    machine = dict(machine_info)
    if environment:
        machine["llmperf"] = _jsonable(environment)
    benchmarks = [b for b in (_benchmark(c) for c in with_status(cases)) if b is not None]
    return {
        "machine_info": _jsonable(machine),
        "commit_info": _jsonable(dict(commit_info)),
        "benchmarks": benchmarks,
        "datetime": (now or datetime.now(UTC)).isoformat(),
        "version": pb_version,
    }


def _benchmark(c: CaseResult) -> dict[str, Any] | None:
    """``c`` as one pytest-benchmark entry (a round per run, its time the run's mean E2E
    latency in s), or None when no run has one: pytest-benchmark skips benchmarks that
    errored; so do we."""
    from pytest_benchmark.stats import Stats

    data = [r["mean_e2el_ms"] / 1000 for r in c.runs if _finite(r.get("mean_e2el_ms"))]
    if not data:
        return None
    st = Stats()
    for d in data:
        st.update(d)
    stats = st.as_dict()
    stats["data"] = data
    stats["iterations"] = 1
    name = c.nodeid.rpartition("::")[2] if c.nodeid else f"llmperf[{c.case_id}]"
    extra = {k: _num(c.mean(k)) for k in sorted(set().union(*c.runs))}
    return {
        "group": f"{c.model}-{c.workload}",
        "name": name,
        "fullname": c.nodeid or f"pytest_llmperf::{name}",
        "params": {"model": c.model, "workload": c.workload, "concurrency": c.concurrency},
        "param": c.case_id,
        "extra_info": {
            "llmperf_metrics": extra,
            "status": c.status,
            "passed": c.passed,
            "client_bound": c.client_bound,
            "errors": dict(c.errors),
            "gates": [gate_json(g) for g in c.gates],
        },
        "options": {"timer": "llmperf", "min_rounds": len(data), "warmup": True},
        "stats": {k: _jsonable(v) for k, v in stats.items()},
    }


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0
