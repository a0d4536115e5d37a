"""The user's matrix: config records, the shipped default, parsing and overrides.

Import config names from this package (``from pytest_llmperf.config import PerfConfig``); the
modules behind it are an implementation detail.
"""

from pytest_llmperf.config.loader import (
    CLIENT_KEYS,
    DEFAULT_CONCURRENCY,
    DEFAULT_GATES,
    DEFAULT_MEASURED,
    GATE_KEYS,
    PRESETS,
    STUDY_CONCURRENCY,
    STUDY_PROFILES,
    TINY_ARCHS,
    ClientLimits,
    ConfigError,
    Gates,
    Measured,
    ModelSpec,
    PerfCase,
    PerfConfig,
    WorkloadRef,
    apply_overrides,
    case_id,
    default_config,
    gates_from_measured,
    load_config,
    parse_config,
)

__all__ = [
    "CLIENT_KEYS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GATES",
    "DEFAULT_MEASURED",
    "GATE_KEYS",
    "PRESETS",
    "STUDY_CONCURRENCY",
    "STUDY_PROFILES",
    "TINY_ARCHS",
    "ClientLimits",
    "ConfigError",
    "Gates",
    "Measured",
    "ModelSpec",
    "PerfCase",
    "PerfConfig",
    "WorkloadRef",
    "apply_overrides",
    "case_id",
    "default_config",
    "gates_from_measured",
    "load_config",
    "parse_config",
]
