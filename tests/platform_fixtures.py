"""The fake-vendor-tools fixture of the accelerator-detection tests (``test_platforms.py``,
``test_platforms_edges.py``), which import it from here (as ``bindir_fixture``: their tests
and helpers name their argument ``bindir``).

Not a ``tests/conftest.py``: several tests import helpers with ``from conftest import ...``
(``PLANTED_KEY``, ``tiny_plan_args``, ``process_group_members``, from the repository root's
``conftest.py``, which holds the real-server fixtures), and a second module named ``conftest``
would take that name from them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_llmperf.plan import platforms


@pytest.fixture(name="bindir")
def bindir_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with only our fake vendor tools (plus /usr/bin and /bin for sh and cat), no
    platform or device-visibility overrides, and no ROCm version file: accelerator detection
    sees only what a test puts there."""
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}/usr/bin{os.pathsep}/bin")
    for var in (
        "LLMPERF_PLATFORM",
        "LLMPERF_ACCELERATOR_COUNT",
        "CUDA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(platforms, "ROCM_VERSION_FILES", (str(tmp_path / "rocm-version"),))
    return d
