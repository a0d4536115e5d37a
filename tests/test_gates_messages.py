"""What a gate failure says, to the character: written to kill the mutants of
``verdicts/gates.py`` that ``tests/test_gates.py`` let survive (``scripts/mutation.sh``): the
words for each side of a limit, the margin at exactly the limit, a passed exact gate without
a margin, and the unit formats at their boundaries."""

from __future__ import annotations

import math

import pytest

from pytest_llmperf.verdicts.gates import GateResult, _fmt


def gate(kind: str, measured: float, limit: float, passed: bool, margin: float | None) -> str:
    metric = {"floor": "output_throughput", "ceiling": "p99_e2el_ms", "exact": "success_rate"}
    return GateResult(
        name=f"{metric[kind]}_x", metric=metric[kind], measured=measured, limit=limit,
        kind=kind, passed=passed, margin_pct=margin,  # type: ignore[arg-type]
    ).describe()  # fmt: skip


def test_each_side_of_a_limit_has_its_words() -> None:
    assert (
        gate("ceiling", 120, 100, False, -20.0)
        == "FAIL p99_e2el_ms <= 100 ms: measured 120 ms (20.0% over the ceiling)"
    )
    assert (
        gate("floor", 80, 100, False, -20.0)
        == "FAIL output_throughput >= 100 tok/s: measured 80 tok/s (20.0% below the floor)"
    )
    assert (
        gate("floor", 100, 100, True, 0.0)
        == "ok   output_throughput >= 100 tok/s: measured 100 tok/s (0.0% headroom)"
    )
    assert gate("exact", 1.0, 1.0, True, 0.0) == "ok   success_rate == 100.0%: measured 100.0%"
    assert gate("exact", 0.5, 1.0, False, -50.0).endswith("(50.0% below the floor)")
    unmeasured = gate("ceiling", math.nan, 100, False, None)
    assert unmeasured.endswith(": not measured (no successful request produced it)")


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("p99_e2el_ms", 99.94, "99.9 ms"),
        ("p99_e2el_ms", 100.0, "100 ms"),
        ("p99_e2el_ms", 12345.6, "12,346 ms"),
        ("request_throughput", 1234.5, "1,234.50 req/s"),
        ("output_throughput", 1234.5, "1,234 tok/s"),
        ("success_rate", 0.995, "99.5%"),
        ("other", 0.25, "0.25"),
        ("p99_e2el_ms", math.nan, "n/a"),
    ],
)
def test_units_at_their_boundaries(metric: str, value: float, text: str) -> None:
    assert _fmt(metric, value) == text
