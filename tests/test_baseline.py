"""Baseline files: round trip, loud and harmless failures, atomic updates, comparisons."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmperf.verdicts import baseline as bl
from pytest_llmperf.verdicts.baseline import (
    Baseline,
    BaselineError,
    CaseRecord,
    MetricSeries,
    from_runs,
    load,
    save,
    save_run,
)
from pytest_llmperf.verdicts.compare import Outcome
from pytest_llmperf.verdicts.fingerprint import Fingerprint

REPO = Path(__file__).resolve().parents[1]
FP = Fingerprint(platform="cpu", host_cpu="AMD EPYC 9654", vllm_version="0.32.0")
CASE = "test_perf[dense-gqa-text-c16]"


def runs(tput: list[float], p99: list[float] | None = None) -> list[dict[str, float]]:
    p99 = p99 or [100.0 + i for i in range(len(tput))]
    return [
        {"output_throughput": t, "p99_e2el_ms": p, "success_rate": 1.0}
        for t, p in zip(tput, p99, strict=True)
    ]


def make(tput: list[float], fp: Fingerprint = FP, case: str = CASE) -> Baseline:
    return from_runs("smoke", fp, {case: runs(tput)}, created="2026-02-01T00:00:00+00:00")


def test_round_trip_keeps_every_raw_value(tmp_path: Path) -> None:
    b = make([100.0, 101.5, 99.25])
    path = save(b, tmp_path / "b.json")
    assert load(path) == b
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    assert data["fingerprint_id"] == FP.id()
    metric = data["cases"][CASE]["metrics"]["output_throughput"]
    assert metric == {"direction": "higher", "unit": "tok/s", "values": [100.0, 101.5, 99.25]}
    assert data["cases"][CASE]["metrics"]["success_rate"]["direction"] == "exact"
    assert data["cases"][CASE]["metrics"]["p99_e2el_ms"]["direction"] == "lower"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"schema_version": 1, "suite": "s", "cases": {', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"schema_version": 99, "suite": "s"}', "upgrade pytest-llmperf"),
        ('{"schema_version": "1"}', "schema_version"),
        (
            '{"schema_version": 1, "suite": "s", "fingerprint": {"platform": "cpu"}, '
            '"cases": {"c": {"metrics": {"m": {"direction": "higher", "values": ["1"]}}}}}',
            "finite number",
        ),
        (
            '{"schema_version": 1, "suite": "s", "fingerprint": {"platform": "cpu"}, '
            '"cases": {"c": {"metrics": {"m": {"direction": "up", "values": [1]}}}}}',
            "direction",
        ),
        ('{"schema_version": 1, "suite": "s", "fingerprint": {}, "cases": {}}', "platform"),
    ],
)
def test_unusable_file_names_file_problem_and_remedy(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "not modified" in str(info.value) or "upgrade" in str(info.value)
    assert path.read_text() == text


def test_missing_file_says_how_to_record_one(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="--llmperf-save-baseline"):
        load(tmp_path / "nope.json")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_fuzz_bytes_load_or_baseline_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(raw)
    try:
        assert isinstance(load(path), Baseline)
    except BaselineError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
almost_valid = st.fixed_dictionaries(
    {
        "schema_version": st.sampled_from([1, 2, 0, "1", None]),
        "suite": st.text(max_size=5) | json_values,
        "fingerprint": st.fixed_dictionaries(
            {"platform": st.sampled_from(["cpu", "rocm"]) | json_values},
            optional={"accelerator_count": json_values, "launch_env": json_values},
        ),
        "cases": st.dictionaries(
            st.text(max_size=5),
            st.fixed_dictionaries(
                {
                    "metrics": st.dictionaries(
                        st.text(max_size=5),
                        st.fixed_dictionaries(
                            {
                                "direction": st.sampled_from(["higher", "lower", "exact", "x"]),
                                "values": st.lists(st.floats() | st.integers(), max_size=4)
                                | json_values,
                            }
                        ),
                        max_size=3,
                    )
                    | json_values
                },
                optional={"fingerprint": json_values, "note": json_values},
            ),
            max_size=3,
        ),
    },
    optional={"source": st.sampled_from(["measured", "published", "guess"]), "note": json_values},
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values | almost_valid)
def test_fuzz_json_load_or_baseline_error(tmp_path: Path, value: object) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(value))
    try:
        b = load(path)
    except BaselineError:
        return
    assert load(save(b, tmp_path / "again.json")) == b  # whatever loads, saves and reloads


def _valid_baseline_documents(folder: Path) -> list[object]:
    """JSON documents of real, non-empty baselines (one to three cases, one to five runs,
    several fingerprints), as ``save`` writes them: the seeds of the mutation fuzzer."""
    import random

    rng = random.Random(7)
    docs: list[object] = []
    for i in range(6):
        fp = dataclasses.replace(FP, vllm_version=f"0.3{i}.0", accelerator_count=i % 3)
        cases = {}
        for c in (1, 16, 256)[: 1 + i % 3]:
            n = 1 + (i + c) % 5
            tput = [rng.uniform(100, 2000) for _ in range(n)]
            cases[f"test_perf[m-text-c{c}]"] = runs(tput, [rng.uniform(10, 900) for _ in range(n)])
        b = from_runs(f"session{i}", fp, cases, created="2026-02-01T00:00:00+00:00")
        path = save(b, folder / f"seed{i}.json")
        assert load(path) == b and b.cases
        docs.append(json.loads(path.read_text()))
    return docs


def test_fuzz_mutated_valid_baselines(tmp_path: Path) -> None:
    """Whatever loads saves and reloads equal, and most fuzzed files are non-empty baselines
    that load (the random-JSON fuzzer above saw 4 of 300 load, all of them empty)."""
    import random

    from docmutate import mutate

    seeds = _valid_baseline_documents(tmp_path)
    rng = random.Random(20261201)
    loaded_nonempty = 0
    total = 300
    for n in range(total):
        path = tmp_path / f"fuzz{n}.json"
        path.write_text(json.dumps(mutate(rng.choice(seeds), rng)))
        try:
            b = load(path)
        except BaselineError as exc:
            assert str(path) in str(exc)  # errors name the file
            continue
        assert load(save(b, tmp_path / "again.json")) == b
        loaded_nonempty += bool(b.cases)
    share = loaded_nonempty / total
    print(f"non-empty baselines loaded: {loaded_nonempty}/{total} ({share:.0%})")
    assert share >= 0.5, share


def test_failed_save_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    path = save(make([100.0, 101.0]), tmp_path / "b.json")
    before = path.read_bytes()
    bad = make([90.0, 91.0])
    series = bad.cases[CASE].metrics["output_throughput"]
    poisoned = dataclasses.replace(series, published={"mean": object()})  # not serialisable
    bad = dataclasses.replace(
        bad, cases={CASE: CaseRecord({**bad.cases[CASE].metrics, "output_throughput": poisoned})}
    )
    with pytest.raises(TypeError):
        save(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temp file left behind


def test_save_run_updates_cases_and_keeps_others(tmp_path: Path) -> None:
    first = from_runs("smoke", FP, {"a": runs([100.0, 101.0]), "b": runs([50.0, 51.0])})
    path = save_run(tmp_path, first)
    assert path == tmp_path / f"smoke-{FP.id()}.json"
    second = from_runs("smoke", FP, {"a": runs([120.0, 121.0, 122.0])})
    assert save_run(tmp_path, second) == path
    merged = load(path)
    assert merged.cases["a"].metrics["output_throughput"].values == (120.0, 121.0, 122.0)
    assert merged.cases["b"].metrics["output_throughput"].values == (50.0, 51.0)


def test_save_run_never_overwrites_a_file_it_cannot_parse(tmp_path: Path) -> None:
    path = bl.baseline_path(tmp_path, "smoke", FP)
    path.write_text('{"schema_version": 1, "cases": {"hours of measurements"')
    with pytest.raises(BaselineError):
        save_run(tmp_path, make([1.0, 2.0]))
    assert path.read_text().endswith('"hours of measurements"')


def test_find_prefers_exact_then_ignorable_then_newest(tmp_path: Path) -> None:
    assert bl.find(tmp_path, "smoke", FP) is None
    other = dataclasses.replace(FP, vllm_version="0.33.0")
    p_other = save_run(tmp_path, make([1.0, 2.0], fp=other))
    assert bl.find(tmp_path, "smoke", FP) == p_other  # newest, so the diff can be shown
    assert bl.find(tmp_path, "smoke", FP, ignore=["vllm_version"]) == p_other
    os.utime(p_other, (1, 1))
    p_exact = save_run(tmp_path, make([1.0, 2.0]))
    assert bl.find(tmp_path, "smoke", FP) == p_exact


def test_compare_flags_a_regression() -> None:
    base = make([1000.0, 1010.0, 990.0, 1005.0, 995.0])
    cur = make([850.0, 860.0, 845.0, 855.0, 850.0])
    verdicts = {v.metric: v for v in bl.compare(base, cur)}
    assert verdicts["output_throughput"].verdict is Outcome.REGRESSION
    assert verdicts["success_rate"].verdict is Outcome.NO_CHANGE
    assert verdicts["p99_e2el_ms"].verdict is not Outcome.REGRESSION
    assert "Holm, 2 tests" in verdicts["output_throughput"].message


def test_compare_per_metric_tolerance() -> None:
    base = make([1000.0, 1001.0, 999.0])
    cur = make([930.0, 931.0, 929.0])
    strict = {v.metric: v for v in bl.compare(base, cur)}
    loose = {v.metric: v for v in bl.compare(base, cur, tolerances={"output_throughput": 0.1})}
    assert strict["output_throughput"].verdict is Outcome.REGRESSION
    assert loose["output_throughput"].verdict is Outcome.NO_CHANGE


def test_different_environment_is_not_comparable_unless_ignored() -> None:
    base = make([1000.0, 1001.0])
    cur = make([500.0, 501.0], fp=dataclasses.replace(FP, driver="6.12.1"))
    verdicts = bl.compare(base, cur)
    assert {v.verdict for v in verdicts} == {Outcome.NOT_COMPARABLE}
    assert "driver None -> '6.12.1'" in verdicts[0].message
    assert "--llmperf-ignore-field driver" in verdicts[0].message
    ignored = {v.metric: v for v in bl.compare(base, cur, ignore=["driver"])}
    assert ignored["output_throughput"].verdict is Outcome.REGRESSION


def test_case_fingerprint_and_missing_data_are_not_comparable() -> None:
    llama = Fingerprint(platform="cpu", model_name="llama")
    qwen = Fingerprint(platform="cpu", model_name="qwen")
    base = from_runs("s", FP, {"a": runs([1.0, 1.0])}, case_fingerprints={"a": llama})
    cur = from_runs(
        "s",
        FP,
        {"a": runs([1.0, 1.0]), "new": runs([1.0, 1.0])},
        case_fingerprints={"a": qwen},
    )
    verdicts = bl.compare(base, cur)
    by_case = {v.case_id: v for v in verdicts}
    assert "model_name 'llama' -> 'qwen'" in by_case["a"].message
    assert "no baseline for this case" in by_case["new"].message
    extra = dataclasses.replace(
        cur,
        cases={"a": CaseRecord({"ttft_p50_ms": MetricSeries("lower", (1.0, 2.0))})},
    )
    only = bl.compare(base, dataclasses.replace(extra, cases=extra.cases))
    assert only[0].verdict is Outcome.NOT_COMPARABLE


def test_published_reference_baseline_loads_and_compares() -> None:
    path = REPO / "baselines" / "published" / "mi325x-vllm-0.14.1.json"
    pub = load(path)
    assert pub.source == "published"
    assert pub.note and "2603.10031" in pub.note
    assert pub.fingerprint.accelerator_model == "AMD Instinct MI325X"
    peak = pub.cases["llama-3.1-405b-text-c500"]
    assert peak.metrics["total_token_throughput"].values == (15944.0,)
    multi = pub.cases["llama-3.1-405b-long-context-2k-c750"]
    assert multi.metrics["total_token_throughput"].published == {
        "mean": 6808,
        "ci95_half_width": 336,
        "n": 5,
    }
    # A re-measurement of one case against n=1 published numbers: tolerance only, and says so.
    case_id = "llama-3.1-405b-text-c500"
    cur = dataclasses.replace(
        pub,
        source="measured",
        cases={
            case_id: CaseRecord(
                {"total_token_throughput": MetricSeries("higher", (14000.0, 14100.0))},
                peak.fingerprint,
            )
        },
    )
    (v,) = bl.compare(pub, cur)
    assert v.verdict is Outcome.REGRESSION
    assert "tolerance alone" in v.message


def test_crash_at_rename_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(make([100.0, 101.0]), tmp_path / "b.json")
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save(make([90.0, 91.0]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_published_fields_not_reported_are_not_compared() -> None:
    pub = load(REPO / "baselines" / "published" / "mi325x-vllm-0.14.1.json")
    case_id = "llama-3.1-405b-text-c500"
    measured_env = dataclasses.replace(
        pub.fingerprint, driver="6.10.5", torch_version="2.9.0", os_platform="Linux-6.8"
    )
    case_fp = dataclasses.replace(
        pub.cases[case_id].fingerprint,  # type: ignore[arg-type]
        model_revision="abc123",
    )
    tput = {"total_token_throughput": MetricSeries("higher", (15900.0, 16000.0))}
    cur = Baseline("run", measured_env, {case_id: CaseRecord(tput, case_fp)})
    (v,) = bl.compare(pub, cur)
    assert v.verdict is Outcome.NO_CHANGE
    newer = dataclasses.replace(
        cur, fingerprint=dataclasses.replace(measured_env, vllm_version="0.15.0")
    )
    (w,) = bl.compare(pub, newer)
    assert w.verdict is Outcome.NOT_COMPARABLE and "vllm_version" in w.message


def test_nan_metrics_are_skipped_and_never_written(tmp_path: Path) -> None:
    b = from_runs("s", FP, {"c": [{"p99_ttft_ms": float("nan")}, {"p99_ttft_ms": 12.0}]})
    assert b.cases["c"].metrics["p99_ttft_ms"].values == (12.0,)
    poisoned = dataclasses.replace(
        b, cases={"c": CaseRecord({"m": MetricSeries("lower", (float("nan"),))})}
    )
    with pytest.raises(BaselineError, match="finite number"):
        save(poisoned, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_not_comparable_is_reported_once_per_reason() -> None:
    from pytest_llmperf.verdicts.compare import format_table

    base = from_runs("s", FP, {c: runs([1.0, 1.0]) for c in ("a", "b", "c", "d")})
    cur = dataclasses.replace(base, fingerprint=dataclasses.replace(FP, driver="x"))
    table = format_table(bl.compare(base, cur))
    notes = [line for line in table.splitlines() if line.startswith("NOT COMPARABLE")]
    assert notes == [notes[0]]
    assert notes[0].startswith("NOT COMPARABLE (12 comparisons; a, b, c and 1 more)")


def test_compare_only_the_chosen_metrics_and_split_into_plan_and_judgement() -> None:
    old, new = make([100.0, 101.0, 99.0]), make([80.0, 81.0, 79.0])
    verdicts = bl.compare(old, new, metrics=["output_throughput"])
    assert [v.metric for v in verdicts] == ["output_throughput"]
    assert verdicts[0].verdict is Outcome.REGRESSION
    items = bl.comparisons(old, new)
    assert bl.judge(items) == bl.compare(old, new)
    gate = bl.judge(items, correction="bonferroni", family_size=30)
    assert "Bonferroni, m=30" in gate[[v.metric for v in gate].index("output_throughput")].message
