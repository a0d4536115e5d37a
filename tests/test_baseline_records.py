"""Baseline files' records (``verdicts.baseline_records``): the shipped schema is the generated
one, a file the old hand-written serialiser wrote loads and is rewritten byte for byte, every
file in the repository keeps its fields, and a bad file is refused with the file, the key path
(real case and metric names, not msgspec's ``[...]``), what is wrong and what it must hold."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from pytest_llmperf.metrics.directions import DIRECTIONS
from pytest_llmperf.plan.platforms import Accelerators
from pytest_llmperf.report import generate_schema
from pytest_llmperf.verdicts import baseline as bl
from pytest_llmperf.verdicts import baseline_records as rec
from pytest_llmperf.verdicts.fingerprint import FIELDS, Fingerprint, gather

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test dependency)")

REPO = Path(__file__).resolve().parents[1]
#: Written by the hand-written serialiser of main a4c1f42 (tests/data/make_baseline_v1_...py).
OLD = REPO / "tests" / "data" / "baseline-v1-hand-written.json"
CASE = "test_perf[dense-gqa-text-c16]"
TPUT = f"$.cases[{CASE!r}].metrics['output_throughput']"


def _validate(doc: object) -> None:
    jsonschema.validate(doc, rec.generated_schema(), cls=jsonschema.Draft202012Validator)


def test_the_shipped_schema_is_the_generated_one() -> None:
    """Regenerate with ``python -m pytest_llmperf.report.generate_schema`` when this fails."""
    assert rec.SCHEMA_FILE.read_text(encoding="utf-8") == rec.schema_text()
    jsonschema.Draft202012Validator.check_schema(rec.generated_schema())
    assert generate_schema.main(["--check"]) == 0


def test_a_stale_baseline_schema_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "baseline.schema.json"
    stale.write_text(rec.schema_text().replace('"minimum": 0', '"minimum": 1', 1))
    monkeypatch.setattr(generate_schema, "BASELINE_SCHEMA_FILE", stale)
    monkeypatch.setattr(generate_schema, "SCHEMA_FILE", tmp_path / "report.schema.json")
    (tmp_path / "report.schema.json").write_text(generate_schema.schema_text())
    monkeypatch.setattr(generate_schema, "AB_SCHEMA_FILE", tmp_path / "ab.schema.json")
    (tmp_path / "ab.schema.json").write_text(generate_schema.ab_records.schema_text())
    assert generate_schema.main(["--check"]) == 1
    assert f"{stale} is stale" in capsys.readouterr().err
    assert generate_schema.main([]) == 0
    assert stale.read_text() == rec.schema_text()
    assert generate_schema.main(["--check"]) == 0


def test_a_file_the_old_serialiser_wrote_loads_and_is_rewritten_byte_for_byte(
    tmp_path: Path,
) -> None:
    b = bl.load(OLD)
    doc = json.loads(OLD.read_text(encoding="utf-8"))
    assert bl.to_dict(b) == doc
    assert bl.save(b, tmp_path / "again.json").read_bytes() == OLD.read_bytes()
    assert b.fingerprint_id == doc["fingerprint_id"]  # the id (so the file name) is unchanged
    assert b.suite == "smoke é" and b.note and b.created == doc["created"]
    case = b.cases[CASE]
    assert case.metrics["output_throughput"].values == (101.5, 99.0, 1e-7)
    assert case.metrics["p99_ttft_ms"].values == ()  # every run NaN: no value
    assert case.metrics["success_rate"].unit is None
    assert case.fingerprint is not None and dict(case.fingerprint.launch_env) == {
        "API_KEY": "<redacted>",
        "OMP_NUM_THREADS": "8",
    }
    assert case.fingerprint.workload == '{"input_tokens":64,"name":"text","output_tokens":16}'
    other = b.cases["test_perf[moe-text-r2.5]"]
    assert other.note == "published by hand: ünïcode ✓"
    assert other.metrics["request_throughput"].published == {
        "mean": 2.5,
        "n": 5,
        "ci95_half_width": 0.25,
    }
    _validate(doc)


@pytest.mark.parametrize(
    "path", sorted(REPO.glob("baselines/**/*.json")), ids=lambda p: p.name
)  # fmt: skip
def test_every_baseline_in_the_repository_keeps_its_fields(path: Path) -> None:
    """Field for field: what a file states comes back; only the fields it predates (written as
    null) and the id derived from them may be added or recomputed."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    back = bl.to_dict(bl.load(path))
    _validate(back)
    assert back["cases"] == doc["cases"]
    assert {k: v for k, v in back.items() if k not in ("fingerprint", "fingerprint_id")} == {
        k: v for k, v in doc.items() if k not in ("fingerprint", "fingerprint_id")
    }
    added = {k: v for k, v in back["fingerprint"].items() if k not in doc["fingerprint"]}
    assert set(added) <= set(FIELDS) and all(v is None for v in added.values())
    assert {k: back["fingerprint"][k] for k in doc["fingerprint"]} == doc["fingerprint"]


def test_a_saved_file_validates_against_the_schema_and_its_rules_hold(tmp_path: Path) -> None:
    doc = json.loads(bl.save(bl.load(OLD), tmp_path / "b.json").read_text())
    _validate(doc)
    breaks: list[Callable[[dict[str, Any]], None]] = [
        lambda d: d["cases"][CASE]["metrics"]["output_throughput"].update(direction="up"),
        lambda d: d["cases"][CASE]["metrics"]["output_throughput"].update(values=["1"]),
        lambda d: d["fingerprint"].update(accelerator_count=-1),
        lambda d: d["fingerprint"].pop("platform"),
        lambda d: d.update(source="guess"),
        lambda d: d.update(schema_version=2),
    ]
    for edit in breaks:
        bad = copy.deepcopy(doc)
        edit(bad)
        with pytest.raises(jsonschema.ValidationError):
            _validate(bad)


def test_the_records_mirror_the_domain_and_are_frozen() -> None:
    assert rec.FingerprintRecord.__struct_fields__ == FIELDS
    assert rec.CaseFingerprintRecord.__struct_fields__ == FIELDS
    assert get_args(rec.Direction) == DIRECTIONS
    record = bl.to_record(bl.load(OLD))
    with pytest.raises(AttributeError):
        record.suite = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["cases"][CASE]["metrics"]["output_throughput"]["values"].__setitem__(2, "1"),
         f"Expected `float`, got `str` at {TPUT}.values[2]; values must be a list of finite "
         "numbers, one per run"),
        (lambda d: d["cases"][CASE]["metrics"]["output_throughput"]["values"].__setitem__(
            1, float("nan")),
         f"Found nan at {TPUT}.values[1]; values must be a list of finite numbers"),
        (lambda d: d["cases"][CASE]["metrics"]["output_throughput"].update(direction="up"),
         f"Invalid enum value 'up': {TPUT}.direction must be one of higher, lower, exact"),
        (lambda d: d["cases"][CASE]["fingerprint"].update(launch_env={"A": 1}),
         f"Expected `str`, got `int` at $.cases[{CASE!r}].fingerprint.launch_env['A']; "
         "launch_env must map names to strings"),
        (lambda d: d["cases"][CASE]["fingerprint"].pop("platform"),
         f"Object missing required field `platform`: $.cases[{CASE!r}].fingerprint.platform "
         "must name the platform measured on: cuda, rocm or cpu"),
        (lambda d: d["fingerprint"].update(accelerator_count=True),
         "Expected `int`, got `bool`: $.fingerprint.accelerator_count must be a whole number"),
        (lambda d: d["cases"].update(extra=[]),
         "Expected `object`, got `array` at $.cases['extra']; cases must map case ids to "
         "objects"),
        (lambda d: d.update(source="guess"),
         "Invalid enum value 'guess': $.source must be one of measured, published"),
    ],
)  # fmt: skip
def test_a_bad_file_names_the_file_the_key_path_and_the_rule(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], says: str
) -> None:
    doc = json.loads(OLD.read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(bl.BaselineError) as err:
        bl.load(path)
    msg = str(err.value)
    assert msg.startswith(f"baseline {path} is not usable: "), msg
    assert says in msg, msg
    assert msg.endswith("restore the file from version control. The file was not modified."), msg
    assert path.read_text() == json.dumps(doc)


def test_secrets_in_the_launch_environment_never_reach_the_file(tmp_path: Path) -> None:
    acc = Accelerators("cpu", None, 0, None, None, "AMD EPYC 9654")
    planted = "hf_h17f_planted_secret_value"
    fp = gather(
        model_name="tiny",
        launch_env={"HF_TOKEN": planted, "MY_API_KEY": planted, "OMP_NUM_THREADS": "2"},
        accelerators=acc,
        weights_cache=tmp_path / "cache.json",
        vllm_version="0.32.0",
    )
    b = bl.from_runs("s", fp, {"c": [{"output_throughput": 1.0}]}, case_fingerprints={"c": fp})
    text = bl.save(b, tmp_path / "b.json").read_text()
    assert planted not in text
    doc = json.loads(text)
    assert doc["fingerprint"]["launch_env"] == {
        "HF_TOKEN": "<redacted>",
        "MY_API_KEY": "<redacted>",
        "OMP_NUM_THREADS": "2",
    }
    assert doc["cases"]["c"]["fingerprint"]["launch_env"] == doc["fingerprint"]["launch_env"]


def test_a_case_fingerprint_writes_only_what_is_set() -> None:
    fp = Fingerprint(platform="cpu", model_name="m", workload="{}", accelerator_count=0)
    assert msgspec.to_builtins(fp.to_case_record()) == {"platform": "cpu", "model_name": "m"}
    full = msgspec.to_builtins(fp.to_record())
    assert list(full) == list(FIELDS) and full["workload"] == {} and full["launch_argv"] == []


def test_the_stored_fingerprint_id_is_derived_and_never_a_reason_to_refuse(tmp_path: Path) -> None:
    """The hand-written reader never read ``fingerprint_id``; a hand-edited one still loads,
    and the file written back carries the id of its fingerprint."""
    doc = json.loads(OLD.read_text(encoding="utf-8"))
    doc["fingerprint_id"] = 7
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    b = bl.load(path)
    assert bl.save(b, tmp_path / "again.json").read_bytes() == OLD.read_bytes()


def test_a_fingerprint_read_back_is_canonical_whatever_the_file_order() -> None:
    """A hand-edited file's environment in any order, its workload's keys in any order: the
    same fingerprint (equal, so the same record) as one gathered."""
    read = Fingerprint.from_dict(
        {"platform": "cpu", "launch_env": {"B": "1", "A": "2"}, "workload": {"z": 1, "a": 2}}
    )
    assert read == Fingerprint(
        platform="cpu", launch_env=(("A", "2"), ("B", "1")), workload='{"a":2,"z":1}'
    )
