"""The suite throughput index (verdicts.suite_index) and its [suite_floor] config table.

The figures are checked against scipy's geometric mean, not against the module's own formula;
the plugin item that fails a session on it is tested on real vLLM in test_suite_index_vllm.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.stats import gmean

from pytest_llmperf.config import ConfigError, load_config
from pytest_llmperf.config.defaults import (
    DEFAULT_MEASURED,
    SUITE_FLOOR_FRACTION,
    SUITE_MIN_CASES,
    default_config,
)
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.suite_index import SuiteFloor, judge_suite


def case(model: str, c: int, tok_s: float | None, *, workload: str = "text") -> CaseResult:
    runs = () if tok_s is None else ({"output_throughput": tok_s},)
    return CaseResult(f"{model}-{workload}-c{c}", model, workload, c, runs)


REF = {("a", "text", c): 100.0 * c for c in (1, 2, 4, 8)} | {("b", "text", 1): 50.0}


def floor(fraction: float = 0.85, min_cases: int = 3) -> SuiteFloor:
    return SuiteFloor(reference=REF, fraction=fraction, min_cases=min_cases)


def test_index_is_the_geometric_mean_of_the_ratios_with_per_model_means() -> None:
    cases = [case("a", 1, 90.0), case("a", 2, 260.0), case("a", 4, 300.0), case("b", 1, 40.0)]
    got = judge_suite(cases, floor())
    ratios = [0.9, 1.3, 0.75, 0.8]
    assert got.index == pytest.approx(gmean(ratios), rel=1e-12)
    ids = [c.case_id for c in cases]
    assert dict(got.ratios) == pytest.approx(dict(zip(ids, ratios, strict=True)))
    assert dict(got.per_model) == pytest.approx({"a": gmean(ratios[:3]), "b": 0.8})
    assert got.verdict == "PASS" and not got.failed  # 0.922 >= 0.85


def test_below_the_floor_fails_and_names_the_lowest_cases() -> None:
    cases = [case("a", 1, 70.0), case("a", 2, 140.0), case("a", 4, 290.0)]  # 0.7 0.7 0.725
    got = judge_suite(cases, floor())
    assert got.index == pytest.approx(gmean([0.7, 0.7, 0.725]))
    assert got.verdict == "FAIL" and got.failed
    assert "FAIL" in got.message and "a-text-c1 0.70" in got.message and "floor 0.85" in got.message


def test_at_the_floor_passes_just_below_fails() -> None:
    at = [case("a", c, 85.0 * c) for c in (1, 2, 4)]  # every ratio exactly 0.85
    assert judge_suite(at, floor()).verdict == "PASS"
    below = [case("a", c, 84.9 * c) for c in (1, 2, 4)]
    assert judge_suite(below, floor()).verdict == "FAIL"


def test_too_few_cases_are_reported_not_gated_however_low() -> None:
    got = judge_suite([case("a", 1, 10.0), case("a", 2, 20.0)], floor(min_cases=3))
    assert got.verdict == "NOT GATED" and not got.failed
    assert got.index == pytest.approx(0.1)
    assert "only 2 of the 3" in got.message


def test_cases_without_reference_or_measurement_are_listed_and_not_counted() -> None:
    cases = [
        case("a", 1, 100.0),
        case("a", 2, 200.0),
        case("a", 8, None),  # never measured
        case("zz", 1, 5.0),  # no reference
        case("a", 4, 400.0, workload="vision"),  # same model and level, other workload
    ]
    got = judge_suite(cases, floor(min_cases=2))
    assert [cid for cid, _ in got.ratios] == ["a-text-c1", "a-text-c2"]
    assert dict(got.uncounted) == {
        "a-text-c8": "no measurement",
        "zz-text-c1": "no reference for this case",
        "a-vision-c4": "no reference for this case",
    }
    assert got.verdict == "PASS"


def test_a_dead_case_drags_the_index_down_instead_of_breaking_it() -> None:
    cases = [case("a", 1, 100.0), case("a", 2, 200.0), case("a", 4, 0.0)]
    got = judge_suite(cases, floor())
    assert got.verdict == "FAIL" and got.index == pytest.approx((1e-6) ** (1 / 3))


def test_runs_are_averaged_before_the_ratio() -> None:
    two = CaseResult(
        "a-text-c1", "a", "text", 1, ({"output_throughput": 60.0}, {"output_throughput": 100.0})
    )
    got = judge_suite([two, case("a", 2, 200.0), case("a", 4, 400.0)], floor())
    assert dict(got.ratios)["a-text-c1"] == pytest.approx(0.8)


def test_json_carries_every_figure() -> None:
    got = judge_suite([case("a", c, 90.0 * c) for c in (1, 2, 4)], floor())
    doc = got.to_json()
    assert doc["verdict"] == "PASS" and doc["index"] == pytest.approx(0.9)
    assert doc["cases"][0] == {"case_id": "a-text-c1", "ratio": pytest.approx(0.9)}
    assert doc["per_model"] == {"a": pytest.approx(0.9)} and doc["min_cases"] == 3


@pytest.mark.parametrize(
    "kw",
    [
        {"fraction": 0.0},
        {"fraction": -1.0},
        {"min_cases": 0},
        {"reference": {("a", "text", 1): 0.0}},
        {"reference": {("a", "text", 1): math.nan}},
    ],
)
def test_bad_floors_are_refused(kw: dict[str, object]) -> None:
    args: dict[str, object] = {"reference": REF, "fraction": 0.85} | kw
    with pytest.raises(ValueError, match="suite floor"):
        SuiteFloor(**args)  # type: ignore[arg-type]


def test_the_built_in_default_gates_its_twenty_cases_on_its_measured_table() -> None:
    sf = default_config().suite_floor
    assert sf is not None
    assert sf.fraction == SUITE_FLOOR_FRACTION and sf.min_cases == SUITE_MIN_CASES
    assert sf.reference == {k: m.output_throughput for k, m in DEFAULT_MEASURED.items() if m}
    cases = list(default_config().cases())
    assert len(cases) == 20 and all(
        (c.model.name, c.workload.name, c.concurrency) in sf.reference for c in cases
    )


# -- the [suite_floor] config table ----------------------------------------------------------

BASE = """\
concurrency = [1]
[[models]]
name = "dense-gqa"
tiny = "dense-gqa"
[[workloads]]
name = "text"
preset = "text"
"""


def load(tmp_path: Path, tail: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "llmperf.toml"
    p.write_text(tail + BASE if tail.startswith("suite_floor =") else BASE + tail)
    return load_config(tmp_path, p)


def test_a_user_file_has_no_suite_floor_unless_it_asks(tmp_path: Path) -> None:
    assert load(tmp_path, "").suite_floor is None


def test_a_user_table_of_references(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "[suite_floor]\nfraction = 0.9\nmin_cases = 1\n"
        '[suite_floor.reference]\n"dense-gqa/text/1" = 150\n',
    )
    assert cfg.suite_floor == SuiteFloor(
        reference={("dense-gqa", "text", 1): 150.0},
        fraction=0.9,
        min_cases=1,
        source="[suite_floor.reference]",
    )


def test_built_in_references_with_own_fraction(tmp_path: Path) -> None:
    sf = load(tmp_path, '[suite_floor]\nreference = "built-in"\nfraction = 0.7\n').suite_floor
    assert sf is not None and sf.fraction == 0.7 and sf.min_cases == SUITE_MIN_CASES
    assert sf.reference[("dense-gqa", "text", 64)] == DEFAULT_MEASURED[
        ("dense-gqa", "text", 64)
    ].output_throughput  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "where", "says"),
    [
        ("[suite_floor]\nfractoin = 0.9\n", "suite_floor.fractoin", "did you mean 'fraction'"),
        (
            "[suite_floor]\nfraction = 0\n",
            "suite_floor.fraction",
            "out of range for the suite floor fr",
        ),
        (
            "[suite_floor]\nfraction = true\n",
            "suite_floor.fraction",
            "expected the suite floor fraction",
        ),
        (
            "[suite_floor]\nmin_cases = 0\n",
            "suite_floor.min_cases",
            "out of range for the suite floor's",
        ),
        ('[suite_floor]\nreference = "builtin"\n', "suite_floor.reference", '"built-in" or'),
        (
            '[suite_floor.reference]\n"dense-gqa/text" = 1\n',
            'suite_floor.reference."dense-gqa/text"',
            "model/workload/concurrency",
        ),
        (
            '[suite_floor.reference]\n"dense-gqa/text/1" = -3\n',
            "dense-gqa/text/1",
            "out of range for a reference output tok/s",
        ),
        ("suite_floor = 3\n", "suite_floor", "expected a table"),
    ],
)
def test_bad_tables_say_where_and_what_to_do(
    tmp_path: Path, tail: str, where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, tail)
    text = str(err.value)
    assert where.replace('"', "") in text.replace('"', "") and says.lower() in text.lower(), text
