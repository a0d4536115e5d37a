"""ab.json's records (``report.ab_records``): the shipped schema is the one generated from the
structs, a stale one is caught, and what ``ABResult.to_json`` writes is valid against it,
decodes into ``ABDocument`` and keeps its key order. Pure; writes only under ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_ab import runs

from pytest_llmperf.report import ab_records, generate_schema
from pytest_llmperf.report.ab_outputs import write_ab_json
from pytest_llmperf.session.ab import ABResult, ExcludedRun
from pytest_llmperf.session.ab_plan import ABStep, ab_report
from pytest_llmperf.verdicts.paired import drift

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test dependency)")


def _validate(doc: object) -> None:
    jsonschema.validate(doc, ab_records.generated_schema(), cls=jsonschema.Draft202012Validator)


def _result(*, server_known: bool = True) -> ABResult:
    a_runs = {2: runs(1000.0, n=4), 8: runs(2000.0, n=4)}
    b_runs = {2: runs(900.0, n=4), 8: runs(2100.0, n=4)}
    verdicts, table = ab_report(a_runs, b_runs, name="text", label_a="old", label_b="new")
    ident: dict[str, Any] = {"declared_vllm": "0.32.0", "served_vllm": None, "endpoint": "http://h"}
    if server_known:
        ident |= {"model": "/m", "launcher": ["python"], "argv": ["--model", "/m"], "env": {}}
    return ABResult(
        name="text",
        label_a="old",
        label_b="new",
        order=(ABStep("A", 2, 0), ABStep("B", 2, 0), ABStep("B", 8, 0), ABStep("A", 8, 0)),
        a_runs=a_runs,
        b_runs=b_runs,
        verdicts=tuple(verdicts),
        table=table,
        differences={"extra_args": ((), ("--max-num-seqs", "1")), "env": ({}, {"K": "1"})},
        notes=("excluded: new (B) c=2 block 5: client-bound",),
        excluded=(ExcludedRun("B", 2, 4, ("client-bound",)),),
        drift=(drift("text@c2", "total_token_throughput", [1, 3, 5, 7], [1000, 990, 1010, 1000]),),
        identity={"old": ident, "new": ident},
        blocks="fresh",
        blocks_wanted=5,
    )


def test_the_shipped_ab_schema_is_the_generated_one() -> None:
    """Regenerate with ``python -m pytest_llmperf.report.generate_schema`` when this fails."""
    assert ab_records.AB_SCHEMA_FILE.read_text(encoding="utf-8") == ab_records.schema_text()
    jsonschema.Draft202012Validator.check_schema(ab_records.generated_schema())
    assert generate_schema.main(["--check"]) == 0


def test_a_stale_ab_schema_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for attr, text in (
        ("SCHEMA_FILE", generate_schema.schema_text),
        ("BASELINE_SCHEMA_FILE", generate_schema.baseline_records.schema_text),
    ):  # main([]) rewrites every schema: keep the shipped ones out of reach
        path = tmp_path / f"{attr}.json"
        path.write_text(text())
        monkeypatch.setattr(generate_schema, attr, path)
    stale = tmp_path / "ab.schema.json"
    stale.write_text(ab_records.schema_text().replace('"minimum": 1', '"minimum": 2', 1))
    monkeypatch.setattr(generate_schema, "AB_SCHEMA_FILE", stale)
    assert generate_schema.main(["--check"]) == 1
    assert f"{stale} is stale" in capsys.readouterr().err
    assert generate_schema.main([]) == 0
    assert stale.read_text() == ab_records.schema_text()
    assert generate_schema.main(["--check"]) == 0


@pytest.mark.parametrize("server_known", [True, False])
def test_ab_json_is_valid_and_decodes_into_its_records(tmp_path: Path, server_known: bool) -> None:
    path = write_ab_json(tmp_path, [_result(server_known=server_known).to_json()])
    doc = json.loads(path.read_text(encoding="utf-8"))
    _validate(doc)
    decoded = msgspec.json.decode(path.read_bytes(), type=ab_records.ABDocument)
    comp = decoded.comparisons[0]
    assert comp.order[2] == ab_records.ABStepRecord("B", 8, 0)
    assert comp.identity["old"].argv == (["--model", "/m"] if server_known else msgspec.UNSET)
    assert comp.verdicts[0].verdict.value == doc["comparisons"][0]["verdicts"][0]["verdict"]
    assert ("model" in doc["comparisons"][0]["identity"]["old"]) is server_known


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c: c.update(blocks="sometimes"),
        lambda c: c["order"][0].append(1),
        lambda c: c["excluded"][0].pop("reasons"),
        lambda c: c["identity"]["old"].update(api_key="x"),
        lambda c: c["verdicts"][0].update(verdict="MAYBE"),
        lambda c: c["runs"].update(c=[]),
        lambda c: c.update(levels=[0]),
    ],
)
def test_the_ab_schema_refuses_a_bad_comparison(tmp_path: Path, spoil: Any) -> None:
    doc = json.loads(write_ab_json(tmp_path, [_result().to_json()]).read_text(encoding="utf-8"))
    spoil(doc["comparisons"][0])
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def test_ab_json_keeps_its_key_order_and_shapes() -> None:
    """Users diff ab.json's sections; the comparison's keys come in this order, each step is a
    ``[variant, level, block]`` list, a verdict's outcome its word."""
    doc = _result().to_json()
    assert list(doc) == [
        "name", "a", "b", "blocks", "blocks_wanted", "levels", "order", "verdicts", "excluded",
        "too_few_valid_blocks", "drift", "differences", "identity", "runs", "notes",
    ]  # fmt: skip
    assert doc["order"][:2] == [["A", 2, 0], ["B", 2, 0]] and doc["levels"] == [2, 8]
    assert doc["verdicts"][0]["verdict"] in ("REGRESSION", "IMPROVEMENT", "NO CHANGE")
    assert list(doc["verdicts"][0])[:4] == ["case_id", "metric", "direction", "verdict"]
    assert doc["excluded"] == [
        {"variant": "B", "level": 2, "block": 4, "reasons": ("client-bound",)}
    ]
    assert doc["differences"]["extra_args"] == [[], ["--max-num-seqs", "1"]]
    assert list(doc["identity"]["old"]) == [
        "declared_vllm", "served_vllm", "endpoint", "model", "launcher", "argv", "env",
    ]  # fmt: skip
    assert doc["too_few_valid_blocks"] == {"2": 4, "8": 4}
    assert list(doc["runs"]["a"]) == ["2", "8"] and len(doc["runs"]["b"]["8"]) == 4
    assert doc["notes"] == ["excluded: new (B) c=2 block 5: client-bound"]
