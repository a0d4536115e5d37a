"""Atomic writes: a failed write leaves the previous file whole; torn JSONL tails are skipped."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmperf.core.atomic import JsonlWriter, read_jsonl, write_json_atomic


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    write_json_atomic(target, {"runs": [1, 2, 3]})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"runs": object()})  # not serialisable: fails mid-way
    assert json.loads(target.read_text()) == {"runs": [1, 2, 3]}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left


def test_files_are_readable_like_plain_writes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers()), max_size=20), st.data())
def test_jsonl_survives_a_torn_last_line(
    records: list[dict[str, int]], data: st.DataObject
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "records.jsonl"
        with JsonlWriter(path) as w:
            for r in records:
                w.write(r)
        text = path.read_text()
        cut = data.draw(st.integers(0, len(text)))
        path.write_text(text[:cut])  # the process was killed mid-write
        got = read_jsonl(path)
        assert got == records[: len(got)]
        assert len(got) >= text[:cut].count("\n") - 0
