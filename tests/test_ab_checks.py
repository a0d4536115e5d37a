"""``run_ab``'s checks of the extra-block budget and the fresh-block mode, both before any
server starts, and ``ab_report``'s text: the title line, the verdict table, the ablation
table, in that order."""

from __future__ import annotations

import pytest
from test_ab import FakeEngine, case, runs

from pytest_llmperf.config import ModelSpec
from pytest_llmperf.session.ab import ab_report, run_ab
from pytest_llmperf.verdicts.compare import format_table

A = ModelSpec(name="dense-a", tiny="dense-gqa")
B = ModelSpec(name="dense-b", tiny="dense-gqa")


def test_run_ab_refuses_a_negative_extra_block_budget() -> None:
    engine = FakeEngine()
    with pytest.raises(ValueError, match=r"^extra_blocks=-1 must be >= 0$"):
        run_ab(engine, case(), A, B, 3, extra_blocks=-1)
    assert engine.handles == {}  # refused before any server was asked for


def test_fresh_blocks_need_an_engine_that_can_restart_servers() -> None:
    engine = FakeEngine()  # no release()
    with pytest.raises(ValueError, match=r"blocks='fresh' needs an engine that can release"):
        run_ab(engine, case(), A, B, 3, blocks="fresh")
    assert engine.handles == {}


def test_report_text_is_title_verdict_table_then_ablation_table() -> None:
    verdicts, text = ab_report(
        {4: runs(1000.0)}, {4: runs(800.0)}, name="chat", label_a="old", label_b="new"
    )
    lines = text.splitlines()
    assert lines[0] == (
        "A/B comparison: new (B) vs old (A), chat; change and ratio are B/A, paired by block "
        "(CoV base/cur is A/B, n the valid blocks)"
    )
    table = format_table(verdicts).splitlines()
    assert lines[1 : 1 + len(table)] == table
    assert lines[1 + len(table)] == ""
    assert lines[2 + len(table)].startswith("ablation table (arithmetic means over valid runs")
    _, unnamed = ab_report({4: runs(1000.0)}, {4: runs(800.0)})
    assert unnamed.splitlines()[0].startswith("A/B comparison: B (B) vs A (A); change")
