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

import difflib
import math
from collections.abc import Mapping
from typing import Any, Final

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


def _case_key(text: str, at: Any) -> CaseKey:
    parts = text.split("/")
    if len(parts) != 3 or not all(parts) or not parts[2].isdigit() or int(parts[2]) < 1:
        at.fail(
            f"expected a case key 'model/workload/concurrency', got {text!r}",
            'write it like "dense-gqa/text/64" = 2296.5 (output tok/s at that level)',
        )
    return (parts[0], parts[1], int(parts[2]))


def parse_suite_floor(value: object, at: Any) -> SuiteFloor:
    """Validate ``[suite_floor]``; ``at`` is the config parser's key-path position."""
    if not isinstance(value, Mapping):
        at.fail(f"expected a table, got {value!r}", "write it as a TOML table: [suite_floor]")
    for k in value:
        if k not in SUITE_FLOOR_KEYS:
            close = difflib.get_close_matches(str(k), SUITE_FLOOR_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            at.key(str(k)).fail(
                "unknown key",
                f"{hint}Known keys here: {', '.join(SUITE_FLOOR_KEYS)}; remove or rename it",
            )
    fraction = value.get("fraction")
    if fraction is not None and (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not (0 < fraction <= 10 and math.isfinite(fraction))
    ):
        at.key("fraction").fail(
            f"expected a number in (0, 10], got {fraction!r}",
            "e.g. fraction = 0.85 (the index may fall 15% below the references)",
        )
    min_cases = value.get("min_cases")
    if min_cases is not None and (
        isinstance(min_cases, bool) or not isinstance(min_cases, int) or min_cases < 1
    ):
        at.key("min_cases").fail(
            f"expected a whole number >= 1, got {min_cases!r}", "e.g. min_cases = 10"
        )
    ref = value.get("reference", BUILT_IN)
    if ref == BUILT_IN:
        return built_in_floor(
            None if fraction is None else float(fraction),
            None if min_cases is None else int(min_cases),
        )
    rat = at.key("reference")
    if not isinstance(ref, Mapping) or not ref:
        rat.fail(
            f'expected "{BUILT_IN}" or a table of case keys, got {ref!r}',
            f'write reference = "{BUILT_IN}", or [suite_floor.reference] with '
            '"model/workload/concurrency" = output tok/s lines',
        )
    table: dict[CaseKey, float] = {}
    for key, tok_s in ref.items():
        kat = rat.key(str(key))
        case = _case_key(str(key), kat)
        if isinstance(tok_s, bool) or not isinstance(tok_s, int | float) or not tok_s > 0:
            kat.fail(f"expected output tok/s > 0, got {tok_s!r}", "e.g. 2296.5")
        table[case] = float(tok_s)
    from pytest_llmperf.config import defaults

    return SuiteFloor(
        reference=table,
        fraction=defaults.SUITE_FLOOR_FRACTION if fraction is None else float(fraction),
        min_cases=defaults.SUITE_MIN_CASES if min_cases is None else int(min_cases),
        source="[suite_floor.reference]",
    )
