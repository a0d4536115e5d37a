"""The small config modules (``config.overrides``, ``config.files``): what mutation testing
found unchecked (docs/mutation.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmperf.config import (
    ConfigError,
    PerfConfig,
    apply_overrides,
    default_config,
    load_config,
)
from pytest_llmperf.config.parse import parse_config

DOC = {
    "models": [
        {"name": "a", "tiny": "dense-gqa", "concurrency": [3]},
        {"name": "b", "tiny": "vision", "workloads": ["vision"]},
    ],
    "workloads": ["text", "vision"],
    "concurrency": [1, 2],
}


def config() -> PerfConfig:
    return parse_config(DOC, source="llmperf.toml")


def refusal(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as err:
        apply_overrides(config(), **kwargs)  # type: ignore[arg-type]
    return str(err.value)


# -- config.overrides ----------------------------------------------------------------------------


def test_selections_keep_the_config_order_and_the_rest() -> None:
    c = apply_overrides(config(), models=["b", "a", "b"], workloads=["vision", "text"])
    assert [m.name for m in c.models] == ["a", "b"]
    assert [w.name for w in c.workloads] == ["text", "vision"]
    only = apply_overrides(config(), models=["a"], workloads=["text"])
    assert [m.name for m in only.models] == ["a"] and [w.name for w in only.workloads] == ["text"]
    assert only.models[0].concurrency == (3,)  # levels are only replaced by concurrency
    assert only.concurrency == (1, 2) and only.runs == config().runs


def test_levels_replace_every_models_own_levels() -> None:
    c = apply_overrides(config(), concurrency=[4, 4, 1])
    assert c.concurrency == (1, 4) and [m.concurrency for m in c.models] == [None, None]
    assert [m.name for m in c.models] == ["a", "b"]


def test_runs_and_multiplier() -> None:
    c = apply_overrides(config(), runs=1000, multiplier="thorough")
    assert (c.runs, c.multiplier) == (1000, 3.0)
    assert apply_overrides(config(), runs=1, multiplier=2.5).multiplier == 2.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"models": []},
            "command line: models: no models selected. Name at least one of: a, b",
        ),
        (
            {"workloads": []},
            "command line: workloads: no workloads selected. Name at least one of: text, vision",
        ),
        (
            {"models": ["a", "c"]},
            "command line: models[1]: unknown model 'c'. Choose one of: a, b",
        ),
        (
            {"workloads": ["txt"]},
            "command line: workloads[0]: unknown workload 'txt'. Did you mean 'text'? Choose "
            "one of: text, vision",
        ),
        (
            {"workloads": ["text"]},
            "command line: workloads: model 'b' runs none of the selected workloads. Select "
            "one of its workloads too, or deselect the model",
        ),
        (
            {"runs": 1001},
            "command line: runs: 1001 is out of range for runs per level. Use an integer from "
            "1 to 1,000",
        ),
        (
            {"concurrency": [0]},
            "command line: concurrency[0]: 0 is out of range for a concurrency level. Use an "
            "integer from 1 to 100,000",
        ),
        (
            {"multiplier": "fast"},
            "command line: multiplier: unknown request multiplier 'fast'. Choose one of: "
            "quick, default, thorough",
        ),
        (
            {"models": ["x"], "source": "--llmperf-models"},
            "--llmperf-models: models[0]: unknown model 'x'. Choose one of: a, b",
        ),
    ],
)
def test_override_refusals_in_full(kwargs: dict[str, object], message: str) -> None:
    assert refusal(**kwargs) == message


# -- config.files --------------------------------------------------------------------------------


def load_error(root: Path, explicit: Path | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(root, explicit)
    return str(err.value)


def test_file_refusals_in_full(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert load_error(tmp_path, missing) == (
        f"{missing}: file not found. Check the path given to the llmperf config option"
    )
    (tmp_path / "adir").mkdir()
    assert load_error(tmp_path, Path("adir")) == (
        f"{tmp_path / 'adir'}: cannot read it (Is a directory). Check its permissions"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("runs = = 3\n")
    text = load_error(tmp_path, bad)
    assert text.startswith(f"{bad}: not valid TOML (") and text.endswith(". Fix the syntax there")
    py = tmp_path / "pyproject.toml"
    py.write_text("[project]\nname = 'x'\n")
    assert load_error(tmp_path, py) == (
        f"{py}: tool.llmperf: the file has no [tool.llmperf] table. Add one, or point the "
        "option at an llmperf.toml"
    )
    py.write_text("[tool.llmperf]\nruns = 0\n")
    assert load_error(tmp_path, py) == (
        f"{py}: tool.llmperf.runs: 0 is out of range for runs per level. Use an integer from 1 "
        "to 1,000"
    )
    py.write_text("[tool.llmperf]\nruns = 2\n")
    (tmp_path / "llmperf.toml").write_text("runs = 3\n")
    assert load_error(tmp_path) == (
        f"{tmp_path / 'llmperf.toml'}: {py} also has a [tool.llmperf] table. Keep the "
        "configuration in one of the two files"
    )


def test_which_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('tool = "not a table"\n')
    assert load_config(tmp_path) == default_config()
    (tmp_path / "pyproject.toml").write_text("[tool.llmperf]\nruns = 2\n")
    c = load_config(tmp_path)
    assert c.runs == 2 and c.source == str(tmp_path / "pyproject.toml")
    # a standalone file beside a pyproject.toml without the table is read
    (tmp_path / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    (tmp_path / "llmperf.toml").write_text("runs = 3\n")
    assert load_config(tmp_path).runs == 3
    # an explicit absolute path elsewhere; its key paths have no prefix
    elsewhere = tmp_path / "sub" / "perf.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("runs = 0\n")
    assert load_error(Path("/nonexistent"), elsewhere).startswith(f"{elsewhere}: runs: 0 is")
    elsewhere.write_text("runs = 4\n")
    assert load_config(Path("/nonexistent"), elsewhere).runs == 4


# -- config.guardrails and config.history ------------------------------------------------------
# Each text was read against the code's intent: key path, what is wrong, what to write.


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param(
            {"guardrails": ["x"]},
            "guardrails: expected a table, got ['x']. Write it as a TOML table: [guardrails]",
            id="g not table",
        ),
        pytest.param(
            {"guardrails": {"fail": []}},
            "guardrails.fail: unknown key. Did you mean 'fail_on'? Known keys here: "
            "fail_on; remove or rename it",
            id="g unknown key",
        ),
        pytest.param(
            {"guardrails": {"zzz": []}},
            "guardrails.zzz: unknown key. Known keys here: fail_on; remove or rename it",
            id="g unknown key far",
        ),
        pytest.param(
            {"guardrails": {"fail_on": "preemptions"}},
            "guardrails.fail_on: expected a list of flag names, got 'preemptions'. "
            'E.g. fail_on = ["preemptions"]',
            id="g not list",
        ),
        pytest.param(
            {"guardrails": {"fail_on": ["preemptions", "client"]}},
            "guardrails.fail_on[1]: unknown guardrail flag 'client'. Did you mean "
            "'client_late'? Choose from: preemptions, unexpected_cache_hits, "
            "client_late",
            id="g unknown flag",
        ),
        pytest.param(
            {"guardrails": {"fail_on": ["zzz"]}},
            "guardrails.fail_on[0]: unknown guardrail flag 'zzz'. Choose from: "
            "preemptions, unexpected_cache_hits, client_late",
            id="g unknown flag far",
        ),
        pytest.param(
            {"guardrails": {"fail_on": [3]}},
            "guardrails.fail_on[0]: unknown guardrail flag 3. Choose from: "
            "preemptions, unexpected_cache_hits, client_late",
            id="g flag int",
        ),
        pytest.param(
            {"history": 3},
            "history: expected a table, got 3. Write it as a TOML table: [history]",
            id="h not table",
        ),
        pytest.param(
            {"history": {"windows": 3}},
            "history.windows: unknown key. Did you mean 'window'? Known keys here: "
            "store, record, drift_guard, metrics, tolerance, max_pvalue, window, "
            "min_points, ignore_fields, plots; remove or rename it",
            id="h unknown",
        ),
        pytest.param(
            {"history": {"zzz": 3}},
            "history.zzz: unknown key. Known keys here: store, record, drift_guard, "
            "metrics, tolerance, max_pvalue, window, min_points, ignore_fields, plots; "
            "remove or rename it",
            id="h unknown far",
        ),
        pytest.param(
            {"history": {"store": ""}},
            "history.store: expected a path or database URL (a string). Quote it",
            id="h store empty",
        ),
        pytest.param(
            {"history": {"store": 1}},
            "history.store: expected a path or database URL (a string). Quote it",
            id="h store int",
        ),
        pytest.param(
            {"history": {"record": "no"}},
            "history.record: expected true or false, got 'no'. Write record = true",
            id="h record str",
        ),
        pytest.param(
            {"history": {"plots": 1}},
            "history.plots: expected true or false, got 1. Write plots = true",
            id="h plots int",
        ),
        pytest.param(
            {"history": {"metrics": []}},
            'history.metrics: no metrics given. E.g. metrics = ["total_token_throughput"]',
            id="h metrics empty",
        ),
        pytest.param(
            {"history": {"metrics": "p99_e2el_ms"}},
            "history.metrics: expected a list of metric names (strings), got "
            '\'p99_e2el_ms\'. Write ["...", "..."]',
            id="h metrics str",
        ),
        pytest.param(
            {"history": {"metrics": [""]}},
            "history.metrics: expected a list of metric names (strings), got ['']. "
            'Write ["...", "..."]',
            id="h metrics empty str",
        ),
        pytest.param(
            {"history": {"metrics": ["p99_e2el_ms", "nope"]}},
            "history.metrics[1]: metric 'nope' has no known direction (throughputs end "
            "in 'throughput', latencies in '_ms'). Use a metric name of results.json, "
            "e.g. total_token_throughput",
            id="h metrics unknown",
        ),
        pytest.param(
            {"history": {"tolerance": -0.1}},
            "history.tolerance: expected a relative tolerance from 0 to 1, got -0.1. "
            "Write a number in range",
            id="h tolerance -0.1",
        ),
        pytest.param(
            {"history": {"tolerance": True}},
            "history.tolerance: expected a relative tolerance from 0 to 1, got True. "
            "Write a number in range",
            id="h tolerance bool",
        ),
        pytest.param(
            {"history": {"max_pvalue": 0}},
            "history.max_pvalue: expected a p-value from 1e-12 to 0.5, got 0. Write a "
            "number in range",
            id="h max_pvalue 0",
        ),
        pytest.param(
            {"history": {"max_pvalue": 0.6}},
            "history.max_pvalue: expected a p-value from 1e-12 to 0.5, got 0.6. Write "
            "a number in range",
            id="h max_pvalue 0.6",
        ),
        pytest.param(
            {"history": {"window": 3}},
            "history.window: expected sessions (a whole number from 4 to 100,000), got "
            "3. Write an integer",
            id="h window 3",
        ),
        pytest.param(
            {"history": {"window": 100001}},
            "history.window: expected sessions (a whole number from 4 to 100,000), got "
            "100001. Write an integer",
            id="h window 100001",
        ),
        pytest.param(
            {"history": {"window": 5.0}},
            "history.window: expected sessions (a whole number from 4 to 100,000), got "
            "5.0. Write an integer",
            id="h window float",
        ),
        pytest.param(
            {"history": {"window": True}},
            "history.window: expected sessions (a whole number from 4 to 100,000), got "
            "True. Write an integer",
            id="h window bool",
        ),
        pytest.param(
            {"history": {"min_points": 2}},
            "history.min_points: expected points (a whole number from 3 to 10,000), "
            "got 2. Write an integer",
            id="h min_points 2",
        ),
        pytest.param(
            {"history": {"min_points": 10001}},
            "history.min_points: expected points (a whole number from 3 to 10,000), "
            "got 10001. Write an integer",
            id="h min_points 10001",
        ),
        pytest.param(
            {"history": {"ignore_fields": ["hostname", "gpu"]}},
            "history.ignore_fields[1]: unknown fingerprint field 'gpu'. Known fields: "
            "platform, accelerator_model, accelerator_count, driver, runtime_version, "
            "vllm_version, torch_version, model_name, model_revision, weights_sha256, "
            "launch_argv, launch_env, workload, plugin_version, host_cpu, os_platform, "
            "hostname, cpu_layout",
            id="h ignore unknown",
        ),
        pytest.param(
            {"history": {"ignore_fields": "hostname"}},
            "history.ignore_fields: expected a list of fingerprint fields (strings), "
            'got \'hostname\'. Write ["...", "..."]',
            id="h ignore str",
        ),
    ],
)
def test_section_refusals_in_full(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"models": ["dense-gqa"], **doc}, source="llmperf.toml")
    assert str(err.value) == f"llmperf.toml: {message}"


def section(**doc: object) -> PerfConfig:
    return parse_config({"models": ["dense-gqa"], **doc}, source="llmperf.toml")


def test_guardrail_flags_in_order_once() -> None:
    assert section().guardrails.fail_on == ()
    assert section(guardrails={}).guardrails.fail_on == ()
    g = section(guardrails={"fail_on": ["client_late", "preemptions", "client_late"]})
    assert g.guardrails.fail_on == ("client_late", "preemptions")
    every = ["preemptions", "unexpected_cache_hits", "client_late"]
    assert section(guardrails={"fail_on": every}).guardrails.fail_on == tuple(every)


def test_history_defaults_and_every_key() -> None:
    assert vars(section().history) == {
        "store": None,
        "record": True,
        "drift_guard": False,
        "metrics": ("total_token_throughput", "p99_e2el_ms"),
        "tolerance": 0.05,
        "max_pvalue": 0.001,
        "window": 60,
        "min_points": 4,
        "ignore_fields": (),
        "plots": True,
    }
    table = {
        "store": "sqlite:///h.db",
        "record": False,
        "drift_guard": True,
        "metrics": ["p99_ttft_ms"],
        "tolerance": 1,
        "max_pvalue": 0.5,
        "window": 100_000,
        "min_points": 10_000,
        "ignore_fields": ["hostname", "cpu_layout"],
        "plots": False,
    }
    h = section(history=table).history
    assert vars(h) == {
        **table,
        "metrics": ("p99_ttft_ms",),
        "ignore_fields": ("hostname", "cpu_layout"),
        "tolerance": 1.0,
    }
    low = section(history={"tolerance": 0, "max_pvalue": 1e-12, "window": 4, "min_points": 3})
    assert (low.history.tolerance, low.history.max_pvalue) == (0.0, 1e-12)
    assert (low.history.window, low.history.min_points) == (4, 3)


# -- config.baseline ---------------------------------------------------------------------------
# Each text was read against the code's intent: key path, what is wrong, what to write.


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param(
            {"alpha": 0},
            "baseline.alpha: 0 is out of range for alpha (the gate's family-wise "
            "false-alarm rate). Use a number above 0 and at most 0.5",
            id="alpha 0",
        ),
        pytest.param(
            {"alpha": 0.5},
            "baseline.alpha: alpha 0.5 is a coin toss. Use a value below 0.5, e.g. 0.05",
            id="alpha 0.5",
        ),
        pytest.param(
            {"alpha": 0.6},
            "baseline.alpha: 0.6 is out of range for alpha (the gate's family-wise "
            "false-alarm rate). Use a number above 0 and at most 0.5",
            id="alpha 0.6",
        ),
        pytest.param(
            {"tolerance_percent": -1},
            "baseline.tolerance_percent: -1 is out of range for tolerance (percent). "
            "Use a number at least 0 and at most 1000",
            id="tolerance -1",
        ),
        pytest.param(
            {"tolerance_percent": 1001},
            "baseline.tolerance_percent: 1001 is out of range for tolerance (percent). "
            "Use a number at least 0 and at most 1000",
            id="tolerance 1001",
        ),
        pytest.param(
            {"metric_tolerance_percent": 5},
            "baseline.metric_tolerance_percent: expected a table of metric = percent. "
            "Write { p99_ttft_ms = 15 }",
            id="mtp not table",
        ),
        pytest.param(
            {"metric_tolerance_percent": {"latency": 5}},
            "baseline.metric_tolerance_percent.latency: 'latency' is not a metric the "
            "comparator knows the direction of. Use names like output_throughput or "
            "p99_ttft_ms",
            id="mtp bad name",
        ),
        pytest.param(
            {"metric_tolerance_percent": {"p99_ttft_ms": 2000}},
            "baseline.metric_tolerance_percent.p99_ttft_ms: 2000 is out of range for "
            "tolerance (percent). Use a number at least 0 and at most 1000",
            id="mtp bad pct",
        ),
        pytest.param(
            {"metrics": []},
            'baseline.metrics: no metric to gate. List at least one, e.g. ["output_throughput"]',
            id="metrics empty",
        ),
        pytest.param(
            {"metrics": ["output_throughput", "speed"]},
            "baseline.metrics[1]: 'speed' is not a metric the comparator knows the "
            "direction of. Use names like output_throughput, p99_ttft_ms, p99_itl_ms "
            "or success_rate",
            id="metrics bad",
        ),
        pytest.param(
            {"metrics": "output_throughput"},
            "baseline.metrics: expected a list of metric names, got a string "
            "'output_throughput'. Write [..., ...]",
            id="metrics str",
        ),
        pytest.param(
            {"report_metrics": ["speed"]},
            "baseline.report_metrics[0]: 'speed' is not a metric the comparator knows "
            "the direction of. Use names like output_throughput, p99_ttft_ms, "
            "p99_itl_ms or success_rate",
            id="report bad",
        ),
        pytest.param(
            {"strict": "yes"},
            "baseline.strict: expected true or false, got 'yes'. Write strict = true",
            id="strict str",
        ),
        pytest.param(
            {"may_differ": ["hostname", "gpu"]},
            "baseline.may_differ[1]: unknown fingerprint field 'gpu'. Choose one of: "
            "platform, accelerator_model, accelerator_count, driver, runtime_version, "
            "vllm_version, torch_version, model_name, model_revision, weights_sha256, "
            "launch_argv, launch_env, workload, plugin_version, host_cpu, os_platform, "
            "hostname, cpu_layout",
            id="may_differ bad",
        ),
        pytest.param(
            {"may_differ": "hostname"},
            "baseline.may_differ: expected a list of fingerprint field names, got a "
            "string 'hostname'. Write [..., ...]",
            id="may_differ str",
        ),
        pytest.param(
            {"variance": "welsh"},
            "baseline.variance: unknown variance 'welsh'. Did you mean 'welch'? Choose "
            "one of: moderated, welch",
            id="variance bad",
        ),
        pytest.param(
            {"tolerance": 5},
            "baseline.tolerance: unknown key. Did you mean 'tolerance_percent'? Known "
            "keys here: alpha, tolerance_percent, metric_tolerance_percent, metrics, "
            "report_metrics, strict, may_differ, variance; remove or rename it",
            id="unknown",
        ),
    ],
)
def test_baseline_refusals_in_full(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        section(baseline=table)
    assert str(err.value) == f"llmperf.toml: {message}"


def test_baseline_defaults_and_every_key() -> None:
    assert vars(section().baseline) == {
        "alpha": 0.05,
        "tolerance": 0.05,
        "metric_tolerance": {},
        "metrics": ("output_throughput", "success_rate"),
        "report_metrics": ("total_token_throughput", "p99_ttft_ms", "p99_itl_ms", "p99_e2el_ms"),
        "strict": False,
        "may_differ": (),
        "variance": "moderated",
    }
    b = section(
        baseline={
            "alpha": 0.01,
            "tolerance_percent": 1000,
            "metric_tolerance_percent": {"p99_ttft_ms": 15, "output_throughput": 0},
            "metrics": ["p99_itl_ms", "success_rate", "p99_itl_ms"],
            "report_metrics": [],
            "strict": True,
            "may_differ": ["hostname", "cpu_layout"],
            "variance": "welch",
        }
    ).baseline
    assert vars(b) == {
        "alpha": 0.01,
        "tolerance": 10.0,
        "metric_tolerance": {"p99_ttft_ms": 0.15, "output_throughput": 0.0},
        "metrics": ("p99_itl_ms", "success_rate"),  # duplicates dropped, order kept
        "report_metrics": (),
        "strict": True,
        "may_differ": ("hostname", "cpu_layout"),
        "variance": "welch",
    }
    edge = section(baseline={"alpha": 0.4999, "tolerance_percent": 0}).baseline
    assert (edge.alpha, edge.tolerance) == (0.4999, 0.0)
