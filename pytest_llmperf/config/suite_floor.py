"""The ``[suite_floor]`` table: one throughput floor over the whole session.

```toml
[suite_floor]
fraction = 0.85          # the session's index (geometric mean of output tok/s / reference) floor
min_cases = 10           # fewer matching cases: reported, NOT GATED (default 10)
reference = "built-in"   # the shipped CPU default's measured table (config.defaults), or a table:

[suite_floor.reference]  # "model/workload/concurrency" = output tok/s measured on your machine
"dense-gqa/text/64" = 2296.5
```

The built-in default config has this floor already (``reference = "built-in"``, fraction
``SUITE_FLOOR_FRACTION``); a user's own file has none unless it says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pytest_llmperf.config.validate import KeyPath, _int, _number, _table
from pytest_llmperf.verdicts.suite_index import CaseKey, SuiteFloor

SUITE_FLOOR_KEYS: Final[tuple[str, ...]] = ("fraction", "min_cases", "reference")
BUILT_IN: Final[str] = "built-in"


def built_in_floor(fraction: float | None = None, min_cases: int | None = None) -> SuiteFloor:
    """The shipped default's floor: references from ``config.defaults.DEFAULT_MEASURED``."""
    from pytest_llmperf.config import defaults

    return SuiteFloor(
        reference={k: m.output_throughput for k, m in defaults.DEFAULT_MEASURED.items() if m},
        fraction=defaults.SUITE_FLOOR_FRACTION if fraction is None else fraction,
        min_cases=defaults.SUITE_MIN_CASES if min_cases is None else min_cases,
        source="config.defaults.DEFAULT_MEASURED",
    )


def _case_key(text: str, at: KeyPath) -> CaseKey:
    parts = text.split("/")
    if len(parts) != 3 or not all(parts) or not parts[2].isdigit() or int(parts[2]) < 1:
        at.fail(
            f"expected a case key 'model/workload/concurrency', got {text!r}",
            'write it like "dense-gqa/text/64" = 2296.5 (output tok/s at that level)',
        )
    return (parts[0], parts[1], int(parts[2]))


def parse_suite_floor(value: object, at: KeyPath) -> SuiteFloor:
    """Validate ``[suite_floor]``; ``at`` is the config parser's key-path position."""
    table = _table(value, at, SUITE_FLOOR_KEYS)
    fraction: float | None = None
    if "fraction" in table:
        fraction = _number(
            table["fraction"], at.key("fraction"), minimum=0, maximum=10, open_min=True,
            what="the suite floor fraction",
        )  # fmt: skip
    min_cases: int | None = None
    if "min_cases" in table:
        min_cases = _int(
            table["min_cases"], at.key("min_cases"), minimum=1, maximum=100_000,
            what="the suite floor's min_cases",
        )  # fmt: skip
    ref = table.get("reference", BUILT_IN)
    if ref == BUILT_IN:
        return built_in_floor(fraction, min_cases)
    rat = at.key("reference")
    if not isinstance(ref, Mapping) or not ref:
        rat.fail(
            f'expected "{BUILT_IN}" or a table of case keys, got {ref!r}',
            f'write reference = "{BUILT_IN}", or [suite_floor.reference] with '
            '"model/workload/concurrency" = output tok/s lines',
        )
    reference: dict[CaseKey, float] = {}
    for key, tok_s in ref.items():
        kat = rat.key(str(key))
        reference[_case_key(str(key), kat)] = _number(
            tok_s, kat, minimum=0, maximum=1e12, open_min=True, what="a reference output tok/s"
        )
    from pytest_llmperf.config import defaults

    return SuiteFloor(
        reference=reference,
        fraction=defaults.SUITE_FLOOR_FRACTION if fraction is None else fraction,
        min_cases=defaults.SUITE_MIN_CASES if min_cases is None else min_cases,
        source="[suite_floor.reference]",
    )
