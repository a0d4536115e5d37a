"""The user's matrix: config records, the shipped default, parsing and overrides.

Import config names from this package (``from pytest_llmperf.config import PerfConfig``); the
modules behind it (``vocab`` → ``records`` → ``defaults`` → ``validate`` → ``parse`` →
``overrides`` → ``files``) are an implementation detail.
"""

from pytest_llmperf.config.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GATES,
    DEFAULT_MEASURED,
    Measured,
    default_config,
    gates_from_measured,
)
from pytest_llmperf.config.files import load_config
from pytest_llmperf.config.overrides import apply_overrides
from pytest_llmperf.config.parse import parse_config
from pytest_llmperf.config.records import (
    CLIENT_KEYS,
    GATE_KEYS,
    PRESETS,
    ClientLimits,
    Gates,
    ModelSpec,
    PerfCase,
    PerfConfig,
    WorkloadRef,
    case_id,
)
from pytest_llmperf.config.vocab import STUDY_CONCURRENCY, STUDY_PROFILES, TINY_ARCHS, ConfigError

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
