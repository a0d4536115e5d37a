"""The ``[baseline]`` config section: how a session compares with its stored baseline.

```toml
[baseline]
alpha = 0.05                                  # family-wise false-alarm rate of the gate
tolerance_percent = 5                         # change that matters, every metric
metric_tolerance_percent = { p99_ttft_ms = 15 }
metrics = ["output_throughput", "success_rate"]            # gated (Holm over cases x these)
report_metrics = ["p99_ttft_ms", "p99_itl_ms"]             # compared and shown, never gated
strict = true                       # NO BASELINE, NOT COMPARABLE, INCONCLUSIVE fail too
may_differ = ["driver"]             # fingerprint fields allowed to differ from the baseline's
variance = "moderated"              # or "welch" (each case's own variance only)
```

Pure: parses a table into ``BaselineSettings``; the command-line options override it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_llmperf.config.validate import KeyPath, _choice, _number, _str_list, _table

BASELINE_KEYS: Final[tuple[str, ...]] = (
    "alpha",
    "tolerance_percent",
    "metric_tolerance_percent",
    "metrics",
    "report_metrics",
    "strict",
    "may_differ",
    "variance",
)
VARIANCES: Final[tuple[str, ...]] = ("moderated", "welch")
DEFAULT_GATE_METRICS: Final[tuple[str, ...]] = ("output_throughput", "success_rate")
DEFAULT_REPORT_METRICS: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "p99_ttft_ms",
    "p99_itl_ms",
    "p99_e2el_ms",
)
_MAX_TOLERANCE_PERCENT: Final[float] = 1000.0


@dataclass(frozen=True)
class BaselineSettings:
    """The comparison's statistics. ``tolerance`` and ``metric_tolerance`` are fractions."""

    alpha: float = 0.05
    tolerance: float = 0.05
    metric_tolerance: Mapping[str, float] = field(default_factory=dict)
    metrics: tuple[str, ...] = DEFAULT_GATE_METRICS
    report_metrics: tuple[str, ...] = DEFAULT_REPORT_METRICS
    strict: bool = False
    may_differ: tuple[str, ...] = ()
    variance: str = "moderated"


def metric_name_ok(name: str) -> bool:
    """A metric the comparator knows the direction of (see ``verdicts.baseline``)."""
    return name == "success_rate" or name.endswith(("throughput", "_ms"))


def _metrics(value: object, at: KeyPath, *, allow_empty: bool) -> tuple[str, ...]:
    names = _str_list(value, at, what="metric names")
    if not names and not allow_empty:
        at.fail("no metric to gate", 'list at least one, e.g. ["output_throughput"]')
    for i, n in enumerate(names):
        if not metric_name_ok(n):
            at.index(i).fail(
                f"{n!r} is not a metric the comparator knows the direction of",
                "use names like output_throughput, p99_ttft_ms, p99_itl_ms or success_rate",
            )
    return tuple(dict.fromkeys(names))


def _percent(value: object, at: KeyPath, what: str) -> float:
    return (
        _number(value, at, minimum=0.0, maximum=_MAX_TOLERANCE_PERCENT, what=f"{what} (percent)")
        / 100.0
    )


def parse_baseline(value: object, at: KeyPath) -> BaselineSettings:
    """The ``[baseline]`` table; every mistake raises ``ConfigError`` naming the key."""
    t = _table(value, at, BASELINE_KEYS)
    kw: dict[str, Any] = {}
    if "alpha" in t:
        kw["alpha"] = _number(
            t["alpha"],
            at.key("alpha"),
            minimum=0.0,
            maximum=0.5,
            open_min=True,
            what="alpha (the gate's family-wise false-alarm rate)",
        )
        if kw["alpha"] == 0.5:
            at.key("alpha").fail("alpha 0.5 is a coin toss", "use a value below 0.5, e.g. 0.05")
    if "tolerance_percent" in t:
        kw["tolerance"] = _percent(t["tolerance_percent"], at.key("tolerance_percent"), "tolerance")
    if "metric_tolerance_percent" in t:
        mat = at.key("metric_tolerance_percent")
        raw = t["metric_tolerance_percent"]
        if not isinstance(raw, Mapping):
            mat.fail("expected a table of metric = percent", "write { p99_ttft_ms = 15 }")
        tol: dict[str, float] = {}
        for name, pct in raw.items():
            if not metric_name_ok(str(name)):
                mat.key(str(name)).fail(
                    f"{name!r} is not a metric the comparator knows the direction of",
                    "use names like output_throughput or p99_ttft_ms",
                )
            tol[str(name)] = _percent(pct, mat.key(str(name)), "tolerance")
        kw["metric_tolerance"] = tol
    if "metrics" in t:
        kw["metrics"] = _metrics(t["metrics"], at.key("metrics"), allow_empty=False)
    if "report_metrics" in t:
        kw["report_metrics"] = _metrics(
            t["report_metrics"], at.key("report_metrics"), allow_empty=True
        )
    if "strict" in t:
        if not isinstance(t["strict"], bool):
            at.key("strict").fail(
                f"expected true or false, got {t['strict']!r}", "write strict = true"
            )
        kw["strict"] = t["strict"]
    if "may_differ" in t:
        from pytest_llmperf.verdicts.fingerprint import FIELDS  # pure; only when the key is set

        mat = at.key("may_differ")
        names = _str_list(t["may_differ"], mat, what="fingerprint field names")
        for i, n in enumerate(names):
            _choice(n, mat.index(i), FIELDS, what="fingerprint field")
        kw["may_differ"] = names
    if "variance" in t:
        kw["variance"] = _choice(t["variance"], at.key("variance"), VARIANCES, what="variance")
    return BaselineSettings(**kw)
