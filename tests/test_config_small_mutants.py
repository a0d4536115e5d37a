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
