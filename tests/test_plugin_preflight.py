"""Problems the plugin must catch before any server starts."""

from __future__ import annotations

import pytest


def test_unwritable_report_dir_is_a_usage_error(pytester: pytest.Pytester) -> None:
    blocker = pytester.path / "not-a-dir"
    blocker.write_text("a file where the report folder should go")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest(
        "--llmperf", "--llmperf-no-matrix", f"--llmperf-report-dir={blocker / 'reports'}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot write the report folder*--llmperf-report-dir*"])
