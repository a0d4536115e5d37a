"""Command-line overrides of a parsed config (models, workloads, levels, runs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from pytest_llmperf.config.records import PerfConfig
from pytest_llmperf.config.validate import KeyPath, _choice, _int, _levels, _multiplier
from pytest_llmperf.config.vocab import _MAX_RUNS

# --------------------------------------------------------------------------------------------
# Command-line overrides
# --------------------------------------------------------------------------------------------


def apply_overrides(
    config: PerfConfig,
    *,
    models: Sequence[str] | None = None,
    workloads: Sequence[str] | None = None,
    concurrency: Sequence[int] | None = None,
    runs: int | None = None,
    multiplier: float | str | None = None,
    source: str = "command line",
) -> PerfConfig:
    """Merge command-line choices over a loaded config. ``models``/``workloads`` select by
    name; ``concurrency`` replaces every level list, per-model ones included."""
    at = KeyPath(source, "")
    updates: dict[str, Any] = {}
    if models is not None:
        names = _select(models, [m.name for m in config.models], at.key("models"), "model")
        updates["models"] = tuple(m for m in config.models if m.name in names)
    if workloads is not None:
        names = _select(
            workloads, [w.name for w in config.workloads], at.key("workloads"), "workload"
        )
        updates["workloads"] = tuple(w for w in config.workloads if w.name in names)
    if concurrency is not None:
        updates["concurrency"] = _levels(list(concurrency), at.key("concurrency"))
        updates["models"] = tuple(
            replace(m, concurrency=None) for m in updates.get("models", config.models)
        )
    if runs is not None:
        updates["runs"] = _int(
            runs, at.key("runs"), minimum=1, maximum=_MAX_RUNS, what="runs per level"
        )
    if multiplier is not None:
        updates["multiplier"] = _multiplier(multiplier, at.key("multiplier"))
    out = replace(config, **updates)
    if workloads is not None:
        for m in out.models:
            if not out.workloads_for(m):
                at.key("workloads").fail(
                    f"model {m.name!r} runs none of the selected workloads",
                    "select one of its workloads too, or deselect the model",
                )
    return out


def _select(wanted: Iterable[str], known: Sequence[str], at: KeyPath, what: str) -> set[str]:
    out: set[str] = set()
    for i, name in enumerate(wanted):
        out.add(_choice(name, at.index(i), known, what=what))
    if not out:
        at.fail(f"no {what}s selected", f"name at least one of: {', '.join(known)}")
    return out
