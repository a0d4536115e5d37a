"""The ``[history]`` table of the perf config: where the history store is, whether sessions are
recorded, and the drift guard's settings.

```toml
[history]
store = "llmperf-history.sqlite"   # a path (relative to the rootdir) or a database URL;
                                   # default: llmperf-history.sqlite beside the report folder
record = true                      # write every --llmperf session into the store
drift_guard = false                # fail a case whose history drifted since the baseline
metrics = ["total_token_throughput", "p99_e2el_ms"]
tolerance = 0.05                   # drift beyond this (relative) fails the case
max_pvalue = 0.001                 # change-point significance (Otava's merge step)
window = 60                        # sessions the guard looks back at most
min_points = 4                     # baseline + nights needed before the guard judges
ignore_fields = []                 # fingerprint fields a series may change (e.g. "vllm_version")
plots = true                       # PNGs under <report dir>/history and a report section
```

A database URL with a password belongs in ``$LLMPERF_HISTORY_URL``, not in a committed file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

HISTORY_KEYS: Final[tuple[str, ...]] = (
    "store",
    "record",
    "drift_guard",
    "metrics",
    "tolerance",
    "max_pvalue",
    "window",
    "min_points",
    "ignore_fields",
    "plots",
)


@dataclass(frozen=True)
class HistorySettings:
    store: str | None = None
    record: bool = True
    drift_guard: bool = False
    metrics: tuple[str, ...] = ("total_token_throughput", "p99_e2el_ms")
    tolerance: float = 0.05
    max_pvalue: float = 0.001
    window: int = 60
    min_points: int = 4
    ignore_fields: tuple[str, ...] = ()
    plots: bool = True


def _fail_unknown(t: Mapping[str, Any], at: Any) -> None:
    import difflib

    for k in t:
        if k not in HISTORY_KEYS:
            close = difflib.get_close_matches(str(k), HISTORY_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            at.key(str(k)).fail(
                "unknown key",
                f"{hint}Known keys here: {', '.join(HISTORY_KEYS)}; remove or rename it",
            )


def _names(value: object, at: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        at.fail(f"expected a list of {what} (strings), got {value!r}", 'write ["...", "..."]')
    return tuple(value)  # type: ignore[arg-type]


def _number(value: object, at: Any, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        at.fail(
            f"expected {what} from {low:g} to {high:g}, got {value!r}", "write a number in range"
        )
    return float(value)  # type: ignore[arg-type]


def _whole(value: object, at: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        at.fail(
            f"expected {what} (a whole number from {low} to {high:,}), got {value!r}",
            "write an integer",
        )
    return int(value)  # type: ignore[arg-type]


def parse_history(value: object, at: Any) -> HistorySettings:
    """Validate ``[history]``; ``at`` is the config parser's key-path position (``key``,
    ``index``, ``fail``), so every error names the key and says what to write instead."""
    from pytest_llmperf.verdicts.baseline import metric_direction
    from pytest_llmperf.verdicts.fingerprint import FIELDS

    if not isinstance(value, Mapping):
        at.fail(f"expected a table, got {value!r}", "write it as a TOML table: [history]")
    t: Mapping[str, Any] = value  # type: ignore[assignment]
    _fail_unknown(t, at)
    kw: dict[str, Any] = {}
    if "store" in t:
        if not isinstance(t["store"], str) or not t["store"]:
            at.key("store").fail("expected a path or database URL (a string)", "quote it")
        kw["store"] = t["store"]
    for key in ("record", "drift_guard", "plots"):
        if key in t:
            if not isinstance(t[key], bool):
                at.key(key).fail(f"expected true or false, got {t[key]!r}", f"write {key} = true")
            kw[key] = t[key]
    if "metrics" in t:
        names = _names(t["metrics"], at.key("metrics"), "metric names")
        if not names:
            at.key("metrics").fail("no metrics given", 'e.g. metrics = ["total_token_throughput"]')
        for i, name in enumerate(names):
            try:
                metric_direction(name)
            except ValueError:
                at.key("metrics").index(i).fail(
                    f"metric {name!r} has no known direction (throughputs end in 'throughput', "
                    "latencies in '_ms')",
                    "use a metric name of results.json, e.g. total_token_throughput",
                )
        kw["metrics"] = names
    if "tolerance" in t:
        kw["tolerance"] = _number(
            t["tolerance"], at.key("tolerance"), 0.0, 1.0, "a relative tolerance"
        )
    if "max_pvalue" in t:
        kw["max_pvalue"] = _number(t["max_pvalue"], at.key("max_pvalue"), 1e-12, 0.5, "a p-value")
    if "window" in t:
        kw["window"] = _whole(t["window"], at.key("window"), 4, 100_000, "sessions")
    if "min_points" in t:
        kw["min_points"] = _whole(t["min_points"], at.key("min_points"), 3, 10_000, "points")
    if "ignore_fields" in t:
        names = _names(t["ignore_fields"], at.key("ignore_fields"), "fingerprint fields")
        for i, name in enumerate(names):
            if name not in FIELDS:
                at.key("ignore_fields").index(i).fail(
                    f"unknown fingerprint field {name!r}", f"known fields: {', '.join(FIELDS)}"
                )
        kw["ignore_fields"] = names
    return HistorySettings(**kw)
