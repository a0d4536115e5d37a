"""``[suite_floor]`` parsing at its edges, found by mutation testing (docs/mutation.md,
config/suite_floor): each bound inclusive or open as documented, the defaults a table leaves
out, the built-in floor's source, and the whole refusal text where the text is the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_suite_index import load

from pytest_llmperf.config import ConfigError
from pytest_llmperf.config.defaults import SUITE_FLOOR_FRACTION, SUITE_MIN_CASES


@pytest.mark.parametrize(
    ("tail", "fraction", "min_cases"),
    [
        ("[suite_floor]\nfraction = 10\n", 10.0, SUITE_MIN_CASES),
        ("[suite_floor]\nmin_cases = 100000\n", SUITE_FLOOR_FRACTION, 100_000),
    ],
)
def test_the_upper_bounds_are_inclusive(
    tmp_path: Path, tail: str, fraction: float, min_cases: int
) -> None:
    sf = load(tmp_path, tail).suite_floor
    assert sf is not None and (sf.fraction, sf.min_cases) == (fraction, min_cases)
    assert sf.source == "config.defaults.DEFAULT_MEASURED"


def test_a_user_table_without_fraction_or_min_cases_takes_the_defaults(tmp_path: Path) -> None:
    sf = load(tmp_path, '[suite_floor.reference]\n"a/b/1" = 1e12\n').suite_floor
    assert sf is not None and sf.reference == {("a", "b", 1): 1e12}
    assert (sf.fraction, sf.min_cases) == (SUITE_FLOOR_FRACTION, SUITE_MIN_CASES)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (
            "[suite_floor]\nfraction = 10.5\n",
            "suite_floor.fraction: 10.5 is out of range for the suite floor fraction. "
            "Use a number above 0 and at most 10",
        ),
        (
            "[suite_floor]\nmin_cases = 100001\n",
            "suite_floor.min_cases: 100001 is out of range for the suite floor's min_cases. "
            "Use an integer from 1 to 100,000",
        ),
        (
            '[suite_floor.reference]\n"a/b/1" = 1.5e12\n',
            "suite_floor.reference.a/b/1: 1500000000000.0 is out of range for a reference "
            "output tok/s. Use a number above 0 and at most 1e+12",
        ),
        (
            '[suite_floor.reference]\n"a/b/1" = 0\n',
            "suite_floor.reference.a/b/1: 0 is out of range for a reference output tok/s. "
            "Use a number above 0 and at most 1e+12",
        ),
        (
            '[suite_floor.reference]\n"dense-gqa/text" = 1\n',
            "suite_floor.reference.dense-gqa/text: expected a case key "
            "'model/workload/concurrency', got 'dense-gqa/text'. "
            'Write it like "dense-gqa/text/64" = 2296.5 (output tok/s at that level)',
        ),
        (
            "[suite_floor]\nreference = {}\n",
            'suite_floor.reference: expected "built-in" or a table of case keys, got {}. '
            'Write reference = "built-in", or [suite_floor.reference] with '
            '"model/workload/concurrency" = output tok/s lines',
        ),
    ],
)
def test_refusals_in_full(tmp_path: Path, tail: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, tail)
    assert str(err.value) == f"{tmp_path / 'llmperf.toml'}: {message}"
