"""The suite throughput index's messages and record in full, and its edges, found by mutation
testing (docs/mutation.md, verdicts/suite_index). The expected figures come from scipy's
geometric mean; the ratios are exact binary fractions."""

from __future__ import annotations

import math

import pytest
from scipy.stats import gmean
from test_suite_index import REF, case

from pytest_llmperf.verdicts.suite_index import SuiteFloor, judge_suite

# Ratios a-c1 1.0, a-c2 1.5, a-c4 0.5, a-c8 2.0, b-c1 0.5.
CASES = [case("a", 1, 100.0), case("a", 2, 300.0), case("a", 4, 200.0), case("a", 8, 1600.0),
         case("b", 1, 25.0)]  # fmt: skip
INDEX = float(gmean([1.0, 1.5, 0.5, 2.0, 0.5]))
DETAIL = (
    f"geometric mean of 5 cases' output tok/s / reference = {INDEX:.3f} (floor {{f}}; lowest: "
    "a-text-c4 0.50, b-text-c1 0.50, a-text-c1 1.00; per model: "
    f"a {float(gmean([1.0, 1.5, 0.5, 2.0])):.2f}, b 0.50)"
)


def test_pass_message_with_its_source() -> None:
    got = judge_suite(CASES, SuiteFloor(REF, 0.85, min_cases=3, source="S"))
    assert got.verdict == "PASS" and not got.failed
    assert got.message == f"suite throughput index PASS: {DETAIL.format(f='0.85')} [references: S]"


def test_fail_message_without_a_source() -> None:
    sf = SuiteFloor(REF, 0.95, min_cases=3)
    assert sf.source == "" and SuiteFloor(REF, 0.95).min_cases == 10
    got = judge_suite(CASES, sf)
    assert got.verdict == "FAIL" and got.failed
    assert got.message == (
        f"suite throughput index FAIL: {DETAIL.format(f='0.95')}. Every case is slower than its "
        "reference on average: a slower server, vLLM or machine. Compare with the per-model "
        "figures to see which server moved."
    )


def test_not_gated_message() -> None:
    got = judge_suite(CASES, SuiteFloor(REF, 0.85, min_cases=6))
    assert got.verdict == "NOT GATED" and got.index == pytest.approx(INDEX)
    assert got.message == (
        f"suite throughput index NOT GATED: {DETAIL.format(f='0.85')}; only 5 of the 6 cases it "
        "needs ran, and so few cases are too noisy to gate on"
    )


def test_no_reference_one_case_and_a_nan_measurement() -> None:
    none = judge_suite([case("z", 1, 5.0)], SuiteFloor(REF, 0.85, min_cases=1))
    assert (none.verdict, none.index) == ("NOT GATED", None)
    assert none.message == "suite throughput index: no case has a reference; not gated"
    one = judge_suite([case("a", 1, 50.0)], SuiteFloor(REF, 0.85, min_cases=1))
    assert (one.verdict, one.index) == ("FAIL", 0.5)
    nan = judge_suite([case("a", 1, math.nan), case("a", 2, 200.0)], SuiteFloor(REF, 0.5, 1))
    assert nan.uncounted == (("a-text-c1", "no measurement"),) and nan.index == 1.0


def test_the_record_in_full() -> None:
    got = judge_suite([*CASES, case("z", 1, 5.0)], SuiteFloor(REF, 0.85, min_cases=3))
    assert got.to_json() == {
        "metric": "output_throughput",
        "verdict": "PASS",
        "index": got.index,
        "fraction": 0.85,
        "min_cases": 3,
        "cases": [
            {"case_id": "a-text-c1", "ratio": 1.0},
            {"case_id": "a-text-c2", "ratio": 1.5},
            {"case_id": "a-text-c4", "ratio": 0.5},
            {"case_id": "a-text-c8", "ratio": 2.0},
            {"case_id": "b-text-c1", "ratio": 0.5},
        ],
        "per_model": {"a": got.per_model[0][1], "b": 0.5},
        "uncounted": [{"case_id": "z-text-c1", "why": "no reference for this case"}],
        "message": got.message,
    }


def test_a_reference_below_one_is_valid_and_bad_floors_say_which() -> None:
    assert SuiteFloor({("a", "t", 1): 0.5}, 0.85).reference[("a", "t", 1)] == 0.5
    with pytest.raises(ValueError) as err:
        SuiteFloor({("a", "t", c): 0.0 for c in (1, 2, 3, 4)}, 0.85)
    assert str(err.value) == (
        "suite floor references must be positive numbers: "
        "[('a', 't', 1), ('a', 't', 2), ('a', 't', 3)]"
    )
    with pytest.raises(ValueError) as err:
        SuiteFloor(REF, 0.0)
    assert str(err.value) == "suite floor fraction must be > 0, got 0.0"
    with pytest.raises(ValueError) as err:
        SuiteFloor(REF, 0.85, min_cases=0)
    assert str(err.value) == "suite floor min_cases must be >= 1, got 0"
