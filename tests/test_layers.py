"""The package's import contract (``[tool.importlinter]`` in pyproject.toml) holds.

Runs import-linter over the installed tree the way CI and a developer would (``lint-imports``),
so a stage that reaches upstream (the load generator importing the config, a verdict importing
the server, anything importing the plugin) fails here with the offending import chain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install import-linter; a test extra)")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [exe, "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_import_contract_is_kept() -> None:
    res = _lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout
    assert res.stdout.count("KEPT") >= 5, res.stdout


def test_an_upstream_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract can fail: a copy of the package whose load generator imports the config."""
    shutil.copytree(REPO / "pytest_llmperf", tmp_path / "pytest_llmperf")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    spec = tmp_path / "pytest_llmperf" / "metrics" / "__init__.py"
    spec.write_text(spec.read_text() + "\nfrom pytest_llmperf.config import PerfConfig  # noqa\n")
    res = _lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    assert "BROKEN" in res.stdout
    assert "pytest_llmperf.metrics -> pytest_llmperf.config" in res.stdout, res.stdout
