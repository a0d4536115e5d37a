"""Config parsing for the ``[[workloads]]`` keys beyond the basics: a dataset file, synthetic
input-length distributions, shared prefixes and multi-turn conversations. Pure: no files, no I/O.

``config.parse`` hands a workload table's ``WORKLOAD_EXTRA_KEYS`` over to
``parse_workload_extras``, which returns the ``WorkloadRef`` updates (the dataset itself is read
and validated later, by ``workload.datasets``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pytest_llmperf.config.validate import KeyPath, _choice, _int, _number, _put_int, _table

#: ``[[workloads]]`` keys this module parses (``config.parse`` hands them over).
WORKLOAD_EXTRA_KEYS: Final[tuple[str, ...]] = (
    "shared_prefix_tokens",
    "dataset",
    "input_lengths",
    "turns",
)
LENGTH_KEYS: Final[tuple[str, ...]] = ("distribution", "mean", "std", "low", "high")
_MAX_TURNS: Final[int] = 64


def parse_workload_extras(
    t: Mapping[str, Any], at: KeyPath, *, input_tokens: int, images: int
) -> dict[str, Any]:
    """``WorkloadRef`` updates from a workload table's dataset / length / prefix / turn keys."""
    from pytest_llmperf.workload.lengths import LengthDistribution

    out: dict[str, Any] = {}
    if "shared_prefix_tokens" in t:
        out["shared_prefix_tokens"] = _int(
            t["shared_prefix_tokens"],
            at.key("shared_prefix_tokens"),
            minimum=0,
            maximum=max(0, input_tokens - 1),
            what="shared prefix tokens (fewer than input_tokens)",
        )
    if "dataset" in t:
        value = t["dataset"]
        if not isinstance(value, str) or not value.strip():
            at.key("dataset").fail(
                "expected a file path", 'write dataset = "prompts.jsonl" (relative to rootdir)'
            )
        out["dataset"] = value
    if "input_lengths" in t:
        lat = at.key("input_lengths")
        lt = _table(t["input_lengths"], lat, LENGTH_KEYS)
        if "distribution" not in lt:
            lat.fail(
                "no distribution given",
                'set distribution = "fixed" | "uniform" | "normal" | "lognormal"',
            )
        kind = _choice(
            lt["distribution"],
            lat.key("distribution"),
            ("fixed", "uniform", "normal", "lognormal"),
            what="length distribution",
        )
        kw: dict[str, Any] = {"kind": kind}
        for key in ("mean", "std"):
            if key in lt:
                kw[key] = _number(lt[key], lat.key(key), minimum=0.0, maximum=1e7, what=key)
        for key in ("low", "high"):
            if key in lt:
                kw[key] = _int(lt[key], lat.key(key), minimum=1, maximum=10_000_000, what=key)
        try:
            out["input_lengths"] = LengthDistribution(**kw)
        except ValueError as exc:
            lat.fail(str(exc), "fix the distribution's parameters")
    _put_int(out, t, at, "turns", minimum=1, maximum=_MAX_TURNS, what="turns")
    chosen = [k for k in ("dataset", "input_lengths", "turns") if k in out]
    if len(chosen) > 1:
        at.fail(f"{' and '.join(chosen)} cannot be combined", "keep one of them per workload")
    if chosen and images:
        at.fail(f"{chosen[0]} workloads are text only", "set images_per_request = 0")
    if "dataset" in out and out.get("shared_prefix_tokens"):
        at.fail(
            "a dataset brings its own prompts; shared_prefix_tokens does not apply", "remove one"
        )
    return out
