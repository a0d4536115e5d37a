"""The ``@pytest.mark.llmperf(...)`` marker's arguments into a ``PerfCase``.

``case_from_marker`` reads a hand-written perf test's marker against the session's config: its
models and workloads by name, or a tiny model / workload preset by name, the closed or open
load, and the gates the marker sets on top of the config's. Pure: nothing runs here; a bad
argument is refused with what was wrong and what to use instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pytest_llmperf.config import ModelSpec, PerfCase, PerfConfig, WorkloadRef

#: Every ``@pytest.mark.llmperf(...)`` argument ``case_from_marker`` accepts.
MARKER_KEYS: frozenset[str] = frozenset(
    {
        "model",
        "workload",
        "concurrency",
        "requests",
        "runs",
        "warmup_requests",
        "min_duration_s",
        "throughput_floor",
        "output_throughput_floor",
        "p99_ceiling_ms",
        "p99_ttft_ms",
        "p99_itl_ms",
        "min_success",
        "rate",
        "arrival",
        "max_concurrency",
        "burstiness",
        "ramp_up_s",
        "capacity_fraction",
        "capacity_concurrency",
    }
)
#: Marker gate arguments and the ``Gates`` field each one sets.
_MARKER_GATES: tuple[tuple[str, str], ...] = (
    ("throughput_floor", "total_token_throughput_min"),
    ("output_throughput_floor", "output_throughput_min"),
    ("p99_ceiling_ms", "p99_e2el_ms_max"),
    ("p99_ttft_ms", "p99_ttft_ms_max"),
    ("p99_itl_ms", "p99_itl_ms_max"),
    ("min_success", "success_rate_min"),
)


def case_from_marker(
    config: PerfConfig,
    kwargs: Mapping[str, Any],
) -> PerfCase:
    """A ``PerfCase`` from ``@pytest.mark.llmperf(...)`` arguments, using the config's models
    and workloads (or a tiny model / preset by name), so marker tests share the matrix engine."""
    from pytest_llmperf.config import ConfigError

    unknown = set(kwargs) - MARKER_KEYS
    if unknown:
        raise ConfigError(
            "@pytest.mark.llmperf",
            ", ".join(sorted(unknown)),
            "unknown marker argument",
            f"use only: {', '.join(sorted(MARKER_KEYS))}",
        )
    model = _marker_model(config, str(kwargs.get("model", "dense-gqa")))
    workload = _marker_workload(config, str(kwargs.get("workload", "text")))
    concurrency = int(kwargs.get("concurrency", 1))
    if concurrency < 1:
        raise ConfigError(
            "@pytest.mark.llmperf",
            "concurrency",
            f"{concurrency} is not a concurrency",
            "use an integer >= 1",
        )
    load = _marker_load(config, kwargs)
    if load is not None:
        concurrency = load.max_concurrency or 0
    base = config.gates_for(model.name, workload.name, concurrency)
    limits = {field: float(kwargs[key]) for key, field in _MARKER_GATES if key in kwargs}
    gates = replace(base, **limits) if limits else base
    return PerfCase(
        model=model,
        workload=workload,
        concurrency=concurrency,
        requests=int(
            kwargs.get(
                "requests",
                config.requests_for(concurrency)
                if load is None
                else config.load.requests_for(load.rate),
            )
        ),
        runs=int(kwargs.get("runs", config.runs)),
        warmup_requests=int(kwargs.get("warmup_requests", config.warmup_requests)),
        gates=gates,
        load=load,
        min_duration_s=_marker_duration(kwargs.get("min_duration_s", config.min_duration_s)),
    )


def _marker_model(config: PerfConfig, model_name: str) -> ModelSpec:
    """The marker's ``model``: a configured model, else a tiny architecture by name."""
    from pytest_llmperf.config import ConfigError

    try:
        return config.model(model_name)
    except KeyError:
        from pytest_llmperf.server.tiny_models import ARCHS

        if model_name not in ARCHS:
            names = [m.name for m in config.models] + list(ARCHS)
            raise ConfigError(
                "@pytest.mark.llmperf",
                "model",
                f"unknown model {model_name!r}",
                f"use one of {', '.join(dict.fromkeys(names))}",
            ) from None
        return ModelSpec(name=model_name, tiny=model_name)


def _marker_workload(config: PerfConfig, workload_name: str) -> WorkloadRef:
    """The marker's ``workload``: a configured workload, else a preset by name."""
    from pytest_llmperf.config import PRESETS, ConfigError

    try:
        return config.workload(workload_name)
    except KeyError:
        if workload_name not in PRESETS:
            raise ConfigError(
                "@pytest.mark.llmperf",
                "workload",
                f"unknown workload {workload_name!r}",
                f"use one of {', '.join(PRESETS)}",
            ) from None
        return WorkloadRef.from_preset(workload_name)


def _marker_duration(value: Any) -> float:
    """``@pytest.mark.llmperf(min_duration_s=...)``, checked like the config key."""
    from pytest_llmperf.config.validate import KeyPath, _number

    return _number(
        value,
        KeyPath("@pytest.mark.llmperf", "min_duration_s"),
        minimum=0.0,
        maximum=86_400.0,
        what="a minimum level duration in seconds",
    )


def _marker_load(config: PerfConfig, kwargs: Mapping[str, Any]) -> Any:
    """``@pytest.mark.llmperf(rate=2, arrival="gamma", burstiness=0.5, ramp_up_s=5,
    max_concurrency=8)``: an open-loop case (``config.load.OpenLoad``); None without ``rate``."""
    from pytest_llmperf.config.load import parse_load
    from pytest_llmperf.config.validate import KeyPath

    at = KeyPath("@pytest.mark.llmperf", "")
    if "rate" in kwargs and "capacity_fraction" in kwargs:
        at.fail("rate and capacity_fraction both set the rate", "keep one of them")
    if "capacity_concurrency" in kwargs and "capacity_fraction" not in kwargs:
        KeyPath("@pytest.mark.llmperf", "capacity_concurrency").fail(
            "capacity_concurrency sizes a capacity measurement, but no capacity_fraction is given",
            "add capacity_fraction=<fraction> or remove it",
        )
    if "rate" not in kwargs and "capacity_fraction" not in kwargs:
        for key in ("arrival", "max_concurrency", "burstiness", "ramp_up_s"):
            if key in kwargs:
                KeyPath("@pytest.mark.llmperf", key).fail(
                    f"{key} shapes an open loop, but no rate is given",
                    "add rate=<requests/s> (or capacity_fraction=...) or remove it",
                )
        return None
    table: dict[str, Any] = (
        {"rates": [kwargs["rate"]]}
        if "rate" in kwargs
        else {
            "capacity_fractions": [kwargs["capacity_fraction"]],
            "capacity_concurrency": kwargs.get(
                "capacity_concurrency", config.load.capacity_concurrency
            ),
        }
    )
    table["arrival"] = kwargs.get("arrival", config.load.arrival)
    cap = kwargs.get("max_concurrency", config.load.max_concurrency)
    if cap is not None:
        table["max_concurrency"] = cap
    if table["arrival"] == "gamma" or "burstiness" in kwargs:  # the latter: refused below
        table["burstiness"] = kwargs.get("burstiness", config.load.burstiness)
    ramp = kwargs.get("ramp_up_s", config.load.ramp_up_s)
    if ramp:
        table["ramp_up_s"] = ramp
    lm = parse_load(table, at)
    return lm.loads()[0]
