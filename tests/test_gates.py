"""Absolute gates: floors, ceilings, exact success; messages that show measured, limit, margin
and the run's key numbers; client-bound runs blamed on the client."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmperf.config import Gates
from pytest_llmperf.verdicts.gates import (
    GateResult,
    case_passed,
    evaluate_gates,
    gate_failure_message,
    gate_metrics,
    key_numbers_line,
)

METRICS = {
    "total_token_throughput": 3000.0,
    "output_throughput": 500.0,
    "request_throughput": 5.0,
    "p50_ttft_ms": 20.0,
    "p99_ttft_ms": 80.0,
    "p50_itl_ms": 4.0,
    "p99_itl_ms": 9.0,
    "p50_e2el_ms": 400.0,
    "p99_e2el_ms": 1200.0,
    "success_rate": 1.0,
}


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def test_default_gates_only_check_success() -> None:
    (r,) = evaluate_gates(Gates(), METRICS)
    assert (r.name, r.metric, r.kind, r.passed, r.limit) == (
        "success_rate_min", "success_rate", "exact", True, 1.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gates", "name", "kind", "passed", "margin"),
    [
        (Gates(output_throughput_min=400), "output_throughput_min", "floor", True, 25.0),
        (Gates(output_throughput_min=500), "output_throughput_min", "floor", True, 0.0),
        (Gates(output_throughput_min=625), "output_throughput_min", "floor", False, -20.0),
        (Gates(total_token_throughput_min=0), "total_token_throughput_min", "floor", True, None),
        (Gates(p99_e2el_ms_max=1500), "p99_e2el_ms_max", "ceiling", True, 20.0),
        (Gates(p99_e2el_ms_max=1000), "p99_e2el_ms_max", "ceiling", False, -20.0),
        (Gates(p99_ttft_ms_max=80), "p99_ttft_ms_max", "ceiling", True, 0.0),
        (Gates(p99_itl_ms_max=3), "p99_itl_ms_max", "ceiling", False, -200.0),
        (Gates(success_rate_min=0.95), "success_rate_min", "floor", True,
         pytest.approx(5.263, 1e-3)),
    ],
)  # fmt: skip
def test_floor_and_ceiling(
    gates: Gates, name: str, kind: str, passed: bool, margin: float | None
) -> None:
    r = by_name(evaluate_gates(gates, METRICS))[name]
    assert (r.kind, r.passed) == (kind, passed)
    assert r.margin_pct == margin


def test_success_must_be_exact() -> None:
    r = by_name(evaluate_gates(Gates(), {**METRICS, "success_rate": 0.999}))["success_rate_min"]
    assert r.kind == "exact" and not r.passed


@pytest.mark.parametrize("metrics", [{}, {"p99_e2el_ms": math.nan}])
def test_missing_or_nan_metric_fails(metrics: dict[str, float]) -> None:
    r = by_name(evaluate_gates(Gates(p99_e2el_ms_max=10), metrics))["p99_e2el_ms_max"]
    assert not r.passed and r.margin_pct is None and math.isnan(r.measured)
    assert "not measured" in r.describe()


def test_gate_metrics_mean_but_worst_success() -> None:
    runs = [
        {"output_throughput": 100.0, "success_rate": 1.0, "only_here": 1.0},
        {"output_throughput": 300.0, "success_rate": 0.9},
    ]
    assert gate_metrics(runs) == {"output_throughput": 200.0, "success_rate": 0.9}
    with pytest.raises(ValueError, match="at least one run"):
        gate_metrics([])


def test_failure_message_shows_measured_limit_margin_and_key_numbers() -> None:
    results = evaluate_gates(Gates(output_throughput_min=625, p99_e2el_ms_max=1500), METRICS)
    msg = gate_failure_message("dense-gqa-text-c500", results, METRICS, errors={"timeout": 3})
    lines = msg.splitlines()
    assert lines[0] == "dense-gqa-text-c500: 1 of 3 gates failed"
    assert "FAIL output_throughput >= 625 tok/s: measured 500 tok/s (20.0% below the floor)" in msg
    assert "ok   p99_e2el_ms <= 1,500 ms: measured 1,200 ms (20.0% headroom)" in msg
    assert "ok   success_rate == 100.0%: measured 100.0%" in msg
    run = lines[-1]
    for text in ("3,000 tok/s", "5.00 req/s", "TTFT p50/p99 20.0 ms / 80.0 ms",
                 "ITL p50/p99 4.0 ms / 9.0 ms", "E2E p50/p99 400 ms / 1,200 ms",
                 "success 100.0%", "errors timeout x3"):  # fmt: skip
        assert text in run
    assert not case_passed(results)


def test_client_bound_is_not_blamed_on_the_server() -> None:
    results = evaluate_gates(Gates(output_throughput_min=625), METRICS)
    msg = gate_failure_message(
        "moe-mla-text-c1000",
        results,
        METRICS,
        client_bound=True,
        client_reasons=["event loop lag p99 120 ms", "CPU 100%"],
    )
    assert msg.startswith(
        "moe-mla-text-c1000: client-bound measurement: event loop lag p99 120 ms; CPU 100% "
        "(not the server's fault)"
    )
    assert "gates failed" not in msg
    assert not case_passed(evaluate_gates(Gates(), METRICS), client_bound=True)


def test_passing_message_and_key_line_without_errors() -> None:
    results = evaluate_gates(Gates(), METRICS)
    assert case_passed(results)
    assert gate_failure_message("x-c1", results, METRICS).startswith("x-c1: all 1 gates passed")
    assert key_numbers_line({"success_rate": 0.5}).endswith("success 50.0% | errors none")


@given(
    measured=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    limit=st.floats(min_value=1e-6, max_value=1e9),
)
def test_margin_sign_matches_verdict(measured: float, limit: float) -> None:
    for gates, name in ((Gates(output_throughput_min=limit), "output_throughput_min"),
                        (Gates(p99_itl_ms_max=limit), "p99_itl_ms_max")):  # fmt: skip
        metric = name.rsplit("_", 1)[0]
        r = by_name(evaluate_gates(gates, {metric: measured}))[name]
        assert r.margin_pct is not None
        assert r.passed == (r.margin_pct >= 0) or math.isclose(r.margin_pct, 0, abs_tol=1e-9)
