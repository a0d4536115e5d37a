"""The config loader: valid files give the matrix they describe; every mistake a ConfigError
that names the file and key path; nothing else ever escapes (hypothesis fuzz)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmperf.config import (
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
    PerfConfig,
    apply_overrides,
    case_id,
    default_config,
    gates_from_measured,
    load_config,
    parse_config,
)


def parse(text: str, source: str = "pyproject.toml") -> PerfConfig:
    return parse_config(tomllib.loads(text), source=source, prefix="tool.llmperf")


# --------------------------------------------------------------------------------------------
# Valid configurations
# --------------------------------------------------------------------------------------------


def test_empty_table_gives_study_levels_and_tiny_models() -> None:
    cfg = parse("")
    assert cfg.concurrency == STUDY_CONCURRENCY
    assert [m.name for m in cfg.models] == [a for a in TINY_ARCHS if a != "vision-multi"]
    assert cfg.runs == 1 and cfg.multiplier == 1.0
    assert cfg.report_dir == Path(".llmperf") and cfg.baseline_dir == Path("baselines")


FULL = """
concurrency = [100, 1, 10, 10]
runs = 5
multiplier = "thorough"
min_requests = 50
requests_per_level = { "1" = 20, "100" = 300 }
warmup_requests = 0
report_dir = "out/perf"
baseline_dir = "perf-baselines"

[[workloads]]
name = "text"

[[workloads]]
name = "short"
preset = "text"
input_tokens = 64
output_tokens = 32

[[workloads]]
name = "vision"
images_per_request = 3

[[models]]
tiny = "dense-gqa"
max_num_seqs = 128
env = { VLLM_CPU_KVCACHE_SPACE = "4" }

[[models]]
name = "ds"
profile = "deepseek-v3.2"
extra_args = ["--max-model-len", "8192"]
launch_prefix = ["docker", "run", "--rm", "img"]
workloads = ["text"]
concurrency = [500, 1000]

[[models]]
name = "local"
path = "/models/x"

[[gates]]
success_rate_min = 0.99
p99_e2el_ms_max = 60000

[[gates]]
model = "dense-gqa"
workload = "text"
concurrency = [1, 10]
output_throughput_min = 300

[[gates]]
model = "dense-gqa"
p99_e2el_ms_max = 1000
"""


def test_full_config() -> None:
    cfg = parse(FULL)
    assert cfg.concurrency == (1, 10, 100)  # sorted, duplicate dropped
    assert cfg.runs == 5 and cfg.multiplier == 3.0
    assert cfg.warmup_requests == 0
    assert cfg.report_dir == Path("out/perf")
    dense, ds, local = cfg.models
    assert dense.name == "dense-gqa" and dense.source == "tiny" and dense.max_num_seqs == 128
    assert dict(dense.env) == {"VLLM_CPU_KVCACHE_SPACE": "4"}
    assert ds.source == "profile" and ds.profile == "deepseek-v3.2"
    assert ds.launch_prefix == ("docker", "run", "--rm", "img")
    assert local.source == "path" and local.vision_capable is None
    short = cfg.workload("short")
    assert (short.preset, short.input_tokens, short.output_tokens) == ("text", 64, 32)
    assert cfg.workload("vision").images_per_request == 3
    assert cfg.workload("vision").endpoint == "chat"

    ids = [c.id for c in cfg.cases()]
    assert len(ids) == len(set(ids))
    # dense-gqa is text-only: it skips the vision workload; ds runs its own levels.
    assert "dense-gqa-vision-c1" not in ids
    assert [c.id for c in cfg.cases() if c.model.name == "ds"] == ["ds-text-c500", "ds-text-c1000"]
    assert "local-vision-c100" in ids  # a path model's abilities are unknown: trusted


@pytest.mark.parametrize(
    ("model", "workload", "c", "expected"),
    [
        # the global rule, then the model rule (p99 1000 beats 60000), then the exact rule
        ("dense-gqa", "text", 1, Gates(output_throughput_min=300, p99_e2el_ms_max=1000,
                                       success_rate_min=0.99)),
        ("dense-gqa", "text", 100, Gates(p99_e2el_ms_max=1000, success_rate_min=0.99)),
        ("dense-gqa", "short", 1, Gates(p99_e2el_ms_max=1000, success_rate_min=0.99)),
        ("ds", "text", 500, Gates(p99_e2el_ms_max=60000, success_rate_min=0.99)),
    ],
)  # fmt: skip
def test_gates_most_specific_rule_wins(model: str, workload: str, c: int, expected: Gates) -> None:
    assert parse(FULL).gates_for(model, workload, c) == expected


def test_client_limits() -> None:
    assert parse("").client == ClientLimits()
    assert default_config().client == ClientLimits()
    cfg = parse("[client]\nloop_lag_p99_ms = 80\ncpu_fraction = 0.5")
    assert cfg.client == ClientLimits(loop_lag_p99_ms=80.0, cpu_fraction=0.5)


def test_gate_rules_tie_later_wins() -> None:
    cfg = parse("[[gates]]\np99_itl_ms_max = 10\n[[gates]]\np99_itl_ms_max = 20\n")
    assert cfg.gates_for("dense-gqa", "text", 1).p99_itl_ms_max == 20


def test_single_gate_table() -> None:
    cfg = parse("[gates]\ntotal_token_throughput_min = 0\n")
    assert cfg.gates_for("vision", "vision", 1000) == Gates(total_token_throughput_min=0.0)


@pytest.mark.parametrize(
    ("toml", "c", "expected"),
    [
        ("", 1, 100),  # floor: p99 needs ~100 samples
        ("", 500, 500),  # at least one request per concurrent user
        ('multiplier = "quick"', 1, 50),
        ('multiplier = "quick"', 1000, 1000),  # never below the concurrency
        ('multiplier = "thorough"', 500, 1500),
        ("multiplier = 2.5", 10, 250),
        ("min_requests = 7", 1, 7),
        ('requests_per_level = { "16" = 40 }', 16, 40),
        ('requests_per_level = { "16" = 40 }\nmultiplier = 0.1', 16, 16),
    ],
)
def test_requests_per_level(toml: str, c: int, expected: int) -> None:
    assert parse(toml).requests_for(c) == expected


def test_string_shorthands() -> None:
    cfg = parse('models = ["moe-mla", "llama-3.1-405b"]\nworkloads = ["text", "long-output"]')
    assert [(m.name, m.source) for m in cfg.models] == [("moe-mla", "tiny"),
                                                         ("llama-3.1-405b", "profile")]  # fmt: skip
    assert [w.name for w in cfg.workloads] == ["text", "long-output"]


def test_case_id_is_stable() -> None:
    assert case_id("dense-gqa", "text", 500) == "dense-gqa-text-c500"
    assert [c.id for c in default_config().cases()] == [c.id for c in default_config().cases()]


# --------------------------------------------------------------------------------------------
# Errors: file, key path, what to do
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key", "fragment"),
    [
        ("concurency = [1]", "tool.llmperf.concurency", "did you mean 'concurrency'"),
        ("concurrency = [1, 0]", "tool.llmperf.concurrency[1]", "out of range"),
        ("concurrency = [-5]", "tool.llmperf.concurrency[0]", "out of range"),
        ("concurrency = []", "tool.llmperf.concurrency", "no concurrency levels"),
        ("concurrency = [1.5]", "tool.llmperf.concurrency[0]", "an integer"),
        ("concurrency = [true]", "tool.llmperf.concurrency[0]", "a boolean"),
        ("concurrency = 1000000000", "tool.llmperf.concurrency", "out of range"),
        ("runs = 0", "tool.llmperf.runs", "out of range"),
        ('runs = "3"', "tool.llmperf.runs", "a string"),
        ("multiplier = 0", "tool.llmperf.multiplier", "out of range"),
        ("multiplier = nan", "tool.llmperf.multiplier", "finite"),
        ('multiplier = "fast"', "tool.llmperf.multiplier", "quick, default, thorough"),
        ("warmup_requests = -1", "tool.llmperf.warmup_requests", "out of range"),
        ('requests_per_level = { "x" = 1 }', "tool.llmperf.requests_per_level.x", "concurrency"),
        ('requests_per_level = { "500" = 100 }', "tool.llmperf.requests_per_level.500",
         "never reach"),
        ("report_dir = 3", "tool.llmperf.report_dir", "a non-empty string"),
        ("models = []", "tool.llmperf.models", "no models"),
        ('models = ["gpt-5"]', "tool.llmperf.models[0]", "unknown model"),
        ("[[models]]\ntiny = 'dense-mla'", "tool.llmperf.models[0].tiny", "dense-gqa"),
        ("[[models]]\nprofile = 'deepseek-v4'", "tool.llmperf.models[0].profile",
         "unknown study profile"),
        ("[[models]]\ntiny = 'moe-gqa'\n[[models]]\ntiny = 'vision'\nconcurrency = [0]",
         "tool.llmperf.models[1].concurrency[0]", "out of range"),
        ("[[models]]\ntiny = 'vision'\npath = '/x'", "tool.llmperf.models[0]", "exactly one"),
        ("[[models]]\npath = '/x'", "tool.llmperf.models[0].name", "needs a name"),
        ("[[models]]\nname = 'a b'\ntiny = 'vision'", "tool.llmperf.models[0].name", "test id"),
        ("[[models]]\ntiny = 'vision'\nenv = { A = 1 }", "tool.llmperf.models[0].env.A",
         "strings"),
        ("[[models]]\ntiny = 'vision'\nextra_args = '--x'", "tool.llmperf.models[0].extra_args",
         "a list"),
        ("[[models]]\ntiny = 'vision'\ncolor = 1", "tool.llmperf.models[0].color", "unknown key"),
        ("[[models]]\ntiny = 'vision'\n[[models]]\ntiny = 'vision'", "tool.llmperf.models[1]",
         "duplicate"),
        ("[[models]]\ntiny = 'dense-gqa'\nworkloads = ['vision']",
         "tool.llmperf.models[0].workloads[0]", "cannot take images"),
        ("[[models]]\ntiny = 'dense-gqa'\nworkloads = ['txt']",
         "tool.llmperf.models[0].workloads[0]", "did you mean 'text'"),
        ("models = ['dense-gqa']\nworkloads = ['vision']", "tool.llmperf.models[0]",
         "none of the workloads"),
        ("workloads = ['chat']", "tool.llmperf.workloads[0]", "unknown workload preset"),
        ("[[workloads]]\nname = 'x'", "tool.llmperf.workloads[0].name", "unknown workload preset"),
        ("[[workloads]]\nname = 'text'\ninput_tokens = 0", "tool.llmperf.workloads[0].input_tokens",
         "out of range"),
        ("[[workloads]]\nname = 'text'\nimages_per_request = 1", "tool.llmperf.workloads[0]",
         "chat endpoint"),
        ("[[workloads]]\nname = 'text'\nendpoint = 'responses'",
         "tool.llmperf.workloads[0].endpoint", "completions, chat"),
        ("workloads = ['text', 'text']", "tool.llmperf.workloads[1]", "duplicate"),
        ("[[gates]]\noutput_throughput_min = -1", "tool.llmperf.gates[0].output_throughput_min",
         "out of range"),
        ("[[gates]]\noutput_throughput_min = nan", "tool.llmperf.gates[0].output_throughput_min",
         "finite"),
        ("[[gates]]\np99_ttft_ms_max = 0", "tool.llmperf.gates[0].p99_ttft_ms_max", "above 0"),
        ("[[gates]]\nsuccess_rate_min = 95", "tool.llmperf.gates[0].success_rate_min",
         "out of range"),
        ("[[gates]]\nmodel = 'nope'", "tool.llmperf.gates[0].model", "unknown model"),
        ("[gates]\nworkload = 'nope'", "tool.llmperf.gates.workload", "unknown workload"),
        ("[[gates]]\nthroughput_min = 1", "tool.llmperf.gates[0].throughput_min", "unknown key"),
        ("gates = 3", "tool.llmperf.gates", "a list"),
        ("[client]\nloop_lag_ms = 5", "tool.llmperf.client.loop_lag_ms", "loop_lag_p99_ms"),
        ("[client]\ncpu_fraction = 1.5", "tool.llmperf.client.cpu_fraction", "out of range"),
        ("[client]\nloop_lag_p99_ms = 0", "tool.llmperf.client.loop_lag_p99_ms", "above 0"),
        ("client = 3", "tool.llmperf.client", "a table"),
    ],
)  # fmt: skip
def test_errors_name_file_key_and_fix(toml: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(toml)
    err = info.value
    assert err.source == "pyproject.toml"
    assert err.key == key, str(err)
    assert fragment.lower() in str(err).lower()
    assert str(err).startswith(f"pyproject.toml: {key}: ")
    assert err.fix  # always says what to do


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def test_load_llmperf_toml(tmp_path: Path) -> None:
    (tmp_path / "llmperf.toml").write_text("concurrency = [2, 4]\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    cfg = load_config(tmp_path)
    assert cfg.concurrency == (2, 4) and cfg.source == str(tmp_path / "llmperf.toml")


def test_load_pyproject_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.llmperf]\nruns = 3\n")
    assert load_config(tmp_path).runs == 3


def test_load_falls_back_to_default(tmp_path: Path) -> None:
    assert load_config(tmp_path) == default_config()
    (tmp_path / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    assert load_config(tmp_path) == default_config()


def test_load_both_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "llmperf.toml").write_text("runs = 2\n")
    (tmp_path / "pyproject.toml").write_text("[tool.llmperf]\nruns = 3\n")
    with pytest.raises(ConfigError, match=r"(?i)keep the configuration in one"):
        load_config(tmp_path)


def test_load_explicit(tmp_path: Path) -> None:
    (tmp_path / "perf.toml").write_text("runs = 4\n")
    assert load_config(tmp_path, Path("perf.toml")).runs == 4
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path, Path("missing.toml"))
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    with pytest.raises(ConfigError, match=r"no \[tool.llmperf\] table"):
        load_config(tmp_path, tmp_path / "pyproject.toml")


def test_load_bad_toml_and_key_path_in_standalone_file(tmp_path: Path) -> None:
    (tmp_path / "llmperf.toml").write_text("runs = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)
    (tmp_path / "llmperf.toml").write_text("[[models]]\ntiny = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.key == "models[0].tiny"
    assert str(tmp_path / "llmperf.toml") in str(info.value)


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def test_apply_overrides() -> None:
    cfg = apply_overrides(parse(FULL), models=["ds"], concurrency=[8, 2], runs=2,
                          multiplier="quick")  # fmt: skip
    assert [m.name for m in cfg.models] == ["ds"]
    assert cfg.concurrency == (2, 8) and cfg.runs == 2 and cfg.multiplier == 0.5
    # the command line replaces per-model levels too
    assert [c.id for c in cfg.cases()] == ["ds-text-c2", "ds-text-c8"]


@pytest.mark.parametrize(
    ("kwargs", "key", "fragment"),
    [
        ({"models": ["nope"]}, "models[0]", "unknown model"),
        ({"models": []}, "models", "no models selected"),
        ({"concurrency": [0]}, "concurrency[0]", "out of range"),
        ({"runs": 0}, "runs", "out of range"),
        ({"multiplier": -1.0}, "multiplier", "out of range"),
        ({"workloads": ["vision"], "models": ["dense-gqa"]}, "workloads", "none of the selected"),
    ],
)
def test_override_errors(kwargs: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(parse(FULL), **kwargs)
    assert info.value.source == "command line"
    assert info.value.key == key and fragment.lower() in str(info.value).lower()


# --------------------------------------------------------------------------------------------
# The shipped CPU default
# --------------------------------------------------------------------------------------------


def test_default_config_matrix() -> None:
    cfg = default_config()
    cases = cfg.cases()
    assert cfg.concurrency == DEFAULT_CONCURRENCY and max(cfg.concurrency) == 1000
    assert {(c.model.name, c.workload.name) for c in cases} == {
        ("dense-gqa", "text"), ("moe-gqa", "text"), ("moe-mla", "text"), ("vision", "vision"),
    }  # fmt: skip
    assert len(cases) == 4 * len(DEFAULT_CONCURRENCY)
    assert all(c.requests >= c.concurrency for c in cases)
    assert all(c.gates.success_rate_min == 1.0 for c in cases)
    # Budget: at ~3,000 output tok/s (tiny llama, 2 cores) the generated tokens take < 4 min,
    # leaving the rest of the 15 minutes for four server starts and the slow low levels.
    tokens = sum(c.requests * c.workload.output_tokens for c in cases)
    assert tokens / 3000 < 240
    assert set(DEFAULT_MEASURED) == {(c.model.name, c.workload.name, c.concurrency) for c in cases}


def test_gates_from_measured_margins() -> None:
    rules = gates_from_measured(
        {("dense-gqa", "text", 16): Measured(1000.0, 500.0, 100.0, 10.0, 2000.0),
         ("dense-gqa", "text", 64): None,
         ("dense-gqa", "text", 1): Measured(300.0, 100.0, math.nan, 10.0, math.nan)}
    )  # fmt: skip
    assert len(rules) == 2
    cfg = PerfConfig(models=default_config().models, workloads=default_config().workloads,
                     gates=rules)  # fmt: skip
    g = cfg.gates_for("dense-gqa", "text", 16)
    assert g == Gates(600.0, 300.0, 200.0, 30.0, 4000.0, 1.0)  # ITL: 10 ms + 20 ms slack
    assert cfg.gates_for("dense-gqa", "text", 64) == Gates()
    # too few samples for a p99 bound (NaN): floors and the ITL ceiling, no TTFT/E2E ceiling
    assert cfg.gates_for("dense-gqa", "text", 1) == Gates(180.0, 60.0, None, 30.0, None, 1.0)
    assert all(r.model is not None for r in DEFAULT_GATES)


# --------------------------------------------------------------------------------------------
# Fuzz: arbitrary TOML-ish documents give a PerfConfig or a ConfigError, nothing else
# --------------------------------------------------------------------------------------------

_KEYS = sorted(
    {"models", "workloads", "concurrency", "runs", "multiplier", "min_requests",
     "requests_per_level", "warmup_requests", "report_dir", "baseline_dir", "gates", "name",
     "tiny", "profile", "path", "extra_args", "env", "launch_prefix", "max_num_seqs", "preset",
     "input_tokens", "output_tokens", "images_per_request", "endpoint", "model", "workload",
     "1", "16", "500", "client", *GATE_KEYS, *CLIENT_KEYS}
)  # fmt: skip
_WORDS = [*TINY_ARCHS, *STUDY_PROFILES, *PRESETS, "quick", "thorough", "chat", "completions",
          "", "a b", "x"]  # fmt: skip

_scalars = st.one_of(
    st.integers(min_value=-5, max_value=2000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(_WORDS),
    st.text(max_size=8),
)
_keys = st.one_of(st.sampled_from(_KEYS), st.text(max_size=6))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=25,
)
_model = st.one_of(
    st.sampled_from(_WORDS),
    st.fixed_dictionaries(
        {},
        optional={
            "tiny": st.sampled_from(_WORDS),
            "profile": st.sampled_from(_WORDS),
            "name": st.sampled_from(_WORDS),
            "workloads": st.lists(st.sampled_from(_WORDS), max_size=3),
            "concurrency": st.one_of(st.lists(_scalars, max_size=3), _scalars),
            "env": st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
            "max_num_seqs": _scalars,
        },
    ),
)
_gate = st.fixed_dictionaries(
    {},
    optional={
        **{k: _scalars for k in GATE_KEYS},
        "model": st.sampled_from(_WORDS),
        "workload": st.sampled_from(_WORDS),
        "concurrency": st.one_of(st.lists(_scalars, max_size=3), _scalars),
    },
)
_document = st.fixed_dictionaries(
    {},
    optional={
        "models": st.lists(_model, max_size=4),
        "workloads": st.lists(
            st.one_of(st.sampled_from(_WORDS), st.dictionaries(_keys, _values, max_size=4)),
            max_size=3,
        ),
        "concurrency": st.one_of(st.lists(_scalars, max_size=5), _scalars),
        "runs": _scalars,
        "multiplier": _scalars,
        "requests_per_level": st.dictionaries(_keys, _scalars, max_size=3),
        "gates": st.one_of(st.lists(_gate, max_size=3), _gate, _values),
        "report_dir": _scalars,
    },
)


def _check(doc: Any) -> None:
    try:
        cfg = parse_config(doc, source="fuzz.toml", prefix="tool.llmperf")
    except ConfigError as err:
        assert err.source == "fuzz.toml"
        assert err.key.startswith("tool.llmperf") or err.key == ""
        return
    cases = cfg.cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    for c in cases:
        assert c.requests >= c.concurrency >= 1
        assert c.runs >= 1
        assert all(v is None or math.isfinite(v) for v in vars(c.gates).values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document)
def test_fuzz_structured(doc: dict[str, Any]) -> None:
    _check(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.dictionaries(_keys, _values, max_size=6), _values))
def test_fuzz_arbitrary(doc: Any) -> None:
    _check(doc)


# Mutation fuzzing from valid documents: random structures above rarely get past the first key
# (about 2% of them were valid); these start from configs that load and change a few things.
VALID_SEEDS: list[dict[str, Any]] = [
    {"concurrency": [1, 16], "runs": 3, "models": ["dense-gqa"]},
    {
        "concurrency": [1, 10, 100],
        "runs": 5,
        "multiplier": "quick",
        "requests_per_level": {"1": 20, "10": 50},
        "models": [{"name": "m1", "tiny": "moe-mla", "env": {"HF_TOKEN": "x"}}],
        "workloads": [{"name": "w", "preset": "text", "input_tokens": 64, "output_tokens": 16}],
        "gates": [{"model": "m1", "total_token_throughput_min": 100.0, "p99_e2el_ms_max": 5e3}],
    },
    {
        "concurrency": [2],
        "models": [{"name": "a", "tiny": "dense-gqa", "concurrency": [1, 4]}, "vision"],
        "workloads": ["text", {"name": "long", "preset": "long-output"}],
        "gates": {"success_rate_min": 0.99},
    },
]


def test_fuzz_mutated_valid_documents() -> None:
    import random

    from docmutate import mutate

    for seed in VALID_SEEDS:  # the seeds themselves are valid, or this fuzzer tests nothing
        assert parse_config(seed, source="fuzz.toml", prefix="tool.llmperf").cases()
    rng = random.Random(20261201)
    valid = 0
    total = 600
    for _ in range(total):
        doc = mutate(rng.choice(VALID_SEEDS), rng)
        try:
            parse_config(doc, source="fuzz.toml", prefix="tool.llmperf")
            valid += 1
        except ConfigError:
            pass
        _check(doc)
    share = valid / total
    print(f"valid matrices: {valid}/{total} ({share:.0%})")
    assert share >= 0.5, share
