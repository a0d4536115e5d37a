"""Which way is better for a metric: the one home of the naming rule (pure, no imports).

Two questions, two answers, one rule:

- ``better(name)`` — which way is an improvement: ``"higher"`` or ``"lower"``. Throughputs (names
  ending in ``throughput``) and the success rate are higher-is-better: a success rate that drops
  is a regression. Latencies (``*_ms``, ``*_s``, ``*latency``) are lower-is-better. A trend (the
  history's change points, "worse"/"better") and ``metrics.summary.direction`` read this.
- ``comparison(name)`` — how a baseline or A/B comparison treats the metric: ``better(name)``,
  except for the metrics in ``EXACT_TARGETS`` (the success rate), which get ``"exact"``: not a
  ratio test against the other side but an absolute check that every run equals the target (1.0:
  every request answered). A ratio of success rates is the wrong question — 0.99 against 1.0 is
  a 1% change with zero variance on one side, and one lost request is a failure whatever the
  baseline did. ``verdicts.compare`` and ``verdicts.paired`` implement "exact"; baselines and the
  history's drift guard leave such metrics to that check. ``verdicts.baseline.metric_direction``
  is this function.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

Better = Literal["higher", "lower"]
Direction = Literal["higher", "lower", "exact"]
DIRECTIONS: Final[tuple[str, ...]] = ("higher", "lower", "exact")

# Metrics compared by an absolute check instead of a ratio test, and the value each run must have.
EXACT_TARGETS: Final[Mapping[str, float]] = MappingProxyType({"success_rate": 1.0})
HIGHER_SUFFIX: Final[str] = "throughput"
LOWER_SUFFIXES: Final[tuple[str, ...]] = ("_ms", "_s", "latency")


def known(name: str) -> bool:
    """Whether ``better(name)`` has an answer (instead of raising ``ValueError``)."""
    return name in EXACT_TARGETS or name.endswith(HIGHER_SUFFIX) or name.endswith(LOWER_SUFFIXES)


def better(name: str) -> Better:
    """Which way is an improvement for ``name``; ``ValueError`` for a name the rule does not
    cover (the message says the rule)."""
    if name in EXACT_TARGETS or name.endswith(HIGHER_SUFFIX):
        return "higher"
    if name.endswith(LOWER_SUFFIXES):
        return "lower"
    raise ValueError(
        f"no default direction for metric {name!r} (names ending in 'throughput' are "
        "higher-is-better, '_ms' lower); pass direction_of= giving 'higher', 'lower' or 'exact'"
    )


def comparison(name: str) -> Direction:
    """How a comparison treats ``name``: ``"exact"`` (every run must equal
    ``EXACT_TARGETS[name]``) for the success rate, else ``better(name)``."""
    if name in EXACT_TARGETS:
        return "exact"
    return better(name)
