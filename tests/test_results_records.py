"""results.json's records (``report.records``): the shipped schema is the one generated from
them, a written file validates against it, the records are frozen, and a bad file read back is
refused with its path, the key path and what is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_report import ENV, make_cases
from test_report_percentiles import _case

from pytest_llmperf.report import generate_schema, read_results, schema, write_results
from pytest_llmperf.report.records import SCHEMA_FILE, Gate, generated_schema, schema_text

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test dependency)")


def test_the_shipped_schema_is_the_generated_one() -> None:
    """Regenerate with ``python -m pytest_llmperf.report.generate_schema`` when this fails."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()
    assert schema() == generated_schema()
    jsonschema.Draft202012Validator.check_schema(generated_schema())
    assert generate_schema.main(["--check"]) == 0


def test_a_stale_schema_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "report.schema.json"
    stale.write_text(schema_text().replace('"minimum": 1', '"minimum": 2', 1))
    monkeypatch.setattr(generate_schema, "SCHEMA_FILE", stale)
    # main([]) rewrites every schema it knows: keep the shipped baseline schema out of reach.
    other = tmp_path / "baseline.schema.json"
    other.write_text(generate_schema.baseline_records.schema_text())
    monkeypatch.setattr(generate_schema, "BASELINE_SCHEMA_FILE", other)
    ab = tmp_path / "ab.schema.json"  # and the shipped ab.json schema
    ab.write_text(generate_schema.ab_records.schema_text())
    monkeypatch.setattr(generate_schema, "AB_SCHEMA_FILE", ab)
    assert generate_schema.main(["--check"]) == 1
    assert generate_schema.main([]) == 0
    assert stale.read_text() == schema_text()


def test_a_written_file_validates_and_reads_back(tmp_path: Path) -> None:
    cases = [*make_cases(), _case(10), _case(400, limit=1000.0)]
    path = write_results(tmp_path, cases, environment=ENV, complete=True)
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, generated_schema(), cls=jsonschema.Draft202012Validator)
    back, env = read_results(path)
    assert [c.case_id for c in back] == [c.case_id for c in cases]
    assert back[-1].gates[0].bound == cases[-1].gates[0].bound
    assert back[-1].percentiles == json.loads(json.dumps(cases[-1].percentiles))
    assert env == ENV


def test_the_schema_keeps_its_rules(tmp_path: Path) -> None:
    """Rules the structs carry: a closed-loop case runs >= 1 stream, no unknown keys, enums."""
    path = write_results(tmp_path, make_cases(runs=1)[:4], environment=ENV)
    good = json.loads(path.read_text())
    jsonschema.validate(good, schema(), cls=jsonschema.Draft202012Validator)
    breaks = [
        ("cases", 0, "concurrency", 0),  # -cN with concurrency 0
        ("cases", 0, "status", "BUSY"),
        ("cases", 0, "case_id", "no-level"),
        ("cases", 0, "surprise", 1),
        ("saturation", 0, "levels", [{"concurrency": 0, "status": "OK", "reasons": [], "gain": 1}]),
    ]
    for section, i, key, value in breaks:
        bad = json.loads(path.read_text())
        bad[section][i][key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema(), cls=jsonschema.Draft202012Validator)
    bad = json.loads(path.read_text())
    bad["cases"][0]["runs"][0]["metrics"]["success_rate"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema(), cls=jsonschema.Draft202012Validator)


def test_records_are_frozen() -> None:
    g = Gate(name="g", metric="m", measured=1.0, limit=2.0, kind="ceiling", passed=True,
             margin_pct=50.0)  # fmt: skip
    with pytest.raises(AttributeError):
        g.passed = False  # type: ignore[misc]


_SHAPE = "not a results.json of this pytest-llmperf version"


@pytest.mark.parametrize(
    ("edit", "says", "hint"),
    [
        (lambda d: d["cases"][0].update(concurrency="16"), "`$.cases[0].concurrency`", _SHAPE),
        (lambda d: d["cases"][1].pop("runs"), "missing required field `runs` - at `$.cases[1]`",
         _SHAPE),
        (lambda d: d["cases"][0]["gates"][0].update(kind="above"), "$.cases[0].gates[0].kind",
         _SHAPE),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not 1",
         "re-run the session with this pytest-llmperf version"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_with_where_and_what(
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    says: str,
    hint: str,
) -> None:
    path = write_results(tmp_path, make_cases(), environment=ENV)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as err:
        read_results(path)
    msg = str(err.value)
    assert str(path) in msg and says in msg and hint in msg, msg
    if hint == _SHAPE:
        assert "report/report.schema.json" in msg and "not valid JSON" not in msg


def test_a_torn_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 1, "cases": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_results(path)


def test_nan_never_reaches_the_file(tmp_path: Path) -> None:
    path = write_results(tmp_path, make_cases(), environment={"x": float("nan")})
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["environment"] == {"x": None}
    assert msgspec.json.decode(text.encode())["cases"][-1]["runs"][0]["metrics"][
        "p99_e2el_ms"
    ] is None  # fmt: skip


def test_the_server_section_of_a_run_is_checked(tmp_path: Path) -> None:
    """``detail.server`` (free-form on the wire) is held to ``ServerAccount``'s schema."""
    from pytest_llmperf.verdicts.case_result import CaseResult

    server = {
        "guardrails": {"source": "/metrics", "preemptions": 0, "prefix_cache_queries": None,
                       "prefix_cache_hits": None, "peak_running": 2, "peak_waiting": 0,
                       "peak_kv_cache_usage": 0.1},
        "witness": {"source": "/metrics", "metrics": {}, "late": []},
        "timeline": {"interval_s": 0.5, "t_s": [0.0, 0.5], "running": [0, 2], "waiting": [0, 0],
                     "kv_cache_usage": [0.0, 0.1], "generation_tokens_per_s": [None, 40.0]},
        "flags": [],
    }  # fmt: skip
    case = make_cases(runs=1)[0]
    case = CaseResult(**{**vars(case), "details": ({"server": server},)})
    path = write_results(tmp_path, [case], environment=ENV)
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    for part, key, value in (("timeline", "interval_s", 0), ("guardrails", "source", None)):
        bad = json.loads(path.read_text())
        bad["cases"][0]["runs"][0]["detail"]["server"][part][key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema(), cls=jsonschema.Draft202012Validator)


def test_the_summary_of_a_run_is_checked(tmp_path: Path) -> None:
    """``detail.summary`` (``RunSummary.to_json()``) is held to ``RunSummaryRecord``'s schema,
    its NaN (a run without latency samples) written as null."""
    from test_metrics import rec

    from pytest_llmperf.metrics.summary import summarize
    from pytest_llmperf.verdicts.case_result import CaseResult

    summary = summarize([rec(0), rec(1, error="timeout")], duration_s=2.0).to_json()
    empty = summarize([rec(0, error="timeout")], duration_s=1.0).to_json()
    case = make_cases(runs=2)[0]
    case = CaseResult(**{**vars(case), "details": ({"summary": summary}, {"summary": empty})})
    path = write_results(tmp_path, [case], environment=ENV)
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    assert doc["cases"][0]["runs"][1]["detail"]["summary"]["queue_wait_ms"]["mean"] == 0.0
    assert doc["cases"][0]["runs"][1]["detail"]["summary"]["metrics"]["mean_ttft_ms"] is None
    for key, value in (("completed", "2"), ("queue_wait_ms", {"mean": 1.0}), ("surprise", 1)):
        bad = json.loads(path.read_text())
        bad["cases"][0]["runs"][0]["detail"]["summary"][key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema(), cls=jsonschema.Draft202012Validator)
