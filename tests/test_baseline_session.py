"""BaselineSession: the in-item checks, the session's family verdict (Holm over cases x gated
metrics, moderated variance), the report and the saved files (synthetic CaseResults in
temporary folders; no server)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_llmperf.config import Gates, ModelSpec, PerfCase, WorkloadRef
from pytest_llmperf.plan.platforms import Accelerators
from pytest_llmperf.session.baselines import (
    COMPARISON_FILE,
    GATE_METRICS,
    KEY_METRICS,
    NO_BASELINE,
    NOT_COMPARED,
    PENDING,
    BaselineSession,
    case_part,
    environment_part,
    portable_argv,
)
from pytest_llmperf.verdicts.baseline import load
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.compare import Outcome
from pytest_llmperf.verdicts.fingerprint import Fingerprint

SUITE = "nightly"
CASE = "dense-gqa-text-c16"
Z = (-1.2, -0.5, 0.0, 0.5, 1.2)  # fixed standardized deviations: exact, repeatable CoVs
ACC = Accelerators("cpu", None, 0, None, None, "Test CPU 9000")
FP = Fingerprint(
    platform="cpu",
    vllm_version="0.32.0",
    torch_version="2.13.0",
    host_cpu="Test CPU 9000",
    plugin_version="0.1.0",
    model_name="tiny:dense-gqa",
    launch_argv=("--model", "<model>", "--max-num-seqs", "256"),
    workload='{"concurrency":16,"name":"text"}',
)


def runs(
    tput: float = 1000.0, cov: float = 0.01, n: int = 5, p99: float = 120.0
) -> tuple[dict, ...]:
    """n runs with the given mean and CoV; latencies move opposite to throughput."""
    out = []
    for z in Z[:n] if n <= len(Z) else [Z[i % len(Z)] + i * 1e-3 for i in range(n)]:
        f = 1.0 + cov * z
        slow = 1000.0 / tput  # latencies grow as throughput falls
        out.append(
            {
                "total_token_throughput": 3 * tput * f,
                "output_throughput": tput * f,
                "request_throughput": tput * f / 32,
                "p99_ttft_ms": p99 * slow / 2 / f,
                "p99_e2el_ms": p99 * slow / f,
                "mean_itl_ms": 5.0 / f,
                "success_rate": 1.0,
            }
        )
    return tuple(out)


def result(case_id: str = CASE, **kw: object) -> CaseResult:
    return CaseResult(
        case_id=case_id,
        model="dense-gqa",
        workload="text",
        concurrency=16,
        runs=runs(**kw),  # type: ignore[arg-type]
    )


def session(tmp_path: Path, **kw: object) -> BaselineSession:
    opts: dict = {"save": False, "compare": True, "expected_cases": 1} | kw
    return BaselineSession(tmp_path / "baselines", SUITE, **opts)


def record(tmp_path: Path, *results: CaseResult, fp: Fingerprint = FP) -> Path:
    s = session(tmp_path, save=True, compare=False, expected_cases=len(results))
    for r in results:
        assert s.check(r, fp).status == NOT_COMPARED
    lines = s.finish(results)
    assert any(line.startswith("baseline saved:") for line in lines), lines
    assert len(s.saved) == 1
    return s.saved[0]


def test_save_keeps_every_metric_raw_and_splits_the_fingerprint(tmp_path: Path) -> None:
    path = record(tmp_path, result(tput=1000.0))
    data = json.loads(path.read_text())
    assert path.name == f"{SUITE}-{environment_part(FP).id()}.json"
    metrics = data["cases"][CASE]["metrics"]
    # every metric, every run, not only the compared key metrics
    assert set(metrics) == set(runs(1000.0)[0])
    assert len(metrics["mean_itl_ms"]["values"]) == 5
    assert metrics["output_throughput"]["direction"] == "higher"
    assert metrics["p99_e2el_ms"]["direction"] == "lower"
    # the file holds the environment, the case its model / launch / workload
    assert data["fingerprint"]["vllm_version"] == "0.32.0"
    assert data["fingerprint"]["launch_argv"] == []
    assert data["cases"][CASE]["fingerprint"]["launch_argv"] == list(FP.launch_argv)
    assert load(path).cases[CASE].fingerprint == case_part(FP)


def gate(s: BaselineSession, case_id: str = CASE) -> dict[str, Outcome]:
    return {v.metric: v.verdict for v in s.family().gate if v.case_id == case_id}


def test_same_distribution_is_no_regression_and_writes_comparison_json(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    s = session(tmp_path)
    check = s.check(result(tput=1003.0), FP)
    assert check.failure is None
    assert check.status == PENDING  # the statistics wait for the whole family
    assert gate(s) == {m: Outcome.NO_CHANGE for m in GATE_METRICS}
    assert s.family_check().failure is None
    lines = s.finish([result(tput=1003.0)], report_dir=tmp_path / "report")
    text = "\n".join(lines)
    assert "Holm over 1 one-sided tests" in text and "Benjamini-Hochberg" in text
    data = json.loads((tmp_path / "report" / COMPARISON_FILE).read_text())
    assert data["cases"][0]["status"] == "NO CHANGE"
    assert data["gate_correction"]["method"] == "holm"
    assert data["gate_correction"]["tests"] == 1  # 1 case x output_throughput
    assert {v["metric"] for v in data["session_verdicts"]} == set(GATE_METRICS)
    assert {v["metric"] for v in data["report_verdicts"]} == set(KEY_METRICS) - set(
        GATE_METRICS
    ) - {"p99_itl_ms"}  # the synthetic runs have no p99_itl_ms
    for key in ("convicted", "no_baseline", "not_comparable", "inconclusive"):
        assert data[key] == []


def test_regression_fails_the_family_with_ratio_ci_p_padj_cov_and_n(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    s = session(tmp_path, expected_cases=5)
    check = s.check(result(tput=800.0), FP)
    assert check.failure is None and check.status == PENDING
    assert gate(s)["output_throughput"] is Outcome.REGRESSION
    verdict = s.family_check()
    msg = verdict.failure
    assert msg is not None
    assert "performance REGRESSION in 1 case(s), Holm over 1 tests" in msg and CASE in msg
    for part in ("output_throughput -20.0%", "ratio 0.800", "90% CI", "p=", "p_adj="):
        assert part in msg, (part, msg)
    assert "CoV 0.9% -> 0.9%" in msg and "n=5 vs 5" in msg
    assert ("llmperf.convicted", CASE) in verdict.properties
    # the report metrics regress too (latencies up), shown but never gated
    report = {v.metric: v.verdict for v in s.family().report}
    assert report["p99_e2el_ms"] is Outcome.REGRESSION
    assert "p99_e2el_ms" not in msg.split("\n\n")[0]


def test_the_family_is_holm_over_every_case_and_gated_metric(tmp_path: Path) -> None:
    cases = [result(f"c{i}", tput=1000.0, cov=0.02) for i in range(3)]
    record(tmp_path, *cases)
    s = session(tmp_path, metrics=("output_throughput", "total_token_throughput"), variance="welch")
    for i in range(3):
        s.check(result(f"c{i}", tput=960.0 + 10 * i, cov=0.02), FP)
    f = s.family()
    assert f.tests == 6  # 3 cases x 2 tested metrics
    p = [v.p for v in f.gate]
    from pytest_llmperf.verdicts.compare import holm

    assert [v.p_adj for v in f.gate] == pytest.approx(list(holm(p)))


def test_moderated_variance_convicts_what_one_case_alone_cannot(tmp_path: Path) -> None:
    """20 cases sharing a CoV of 5%, one 10% slower: each case's own 4 degrees of freedom
    leave it INCONCLUSIVE after Holm over 20 tests; the variance the 20 cases share convicts."""
    cases = [result(f"c{i:02d}", tput=1000.0, cov=0.05) for i in range(20)]
    record(tmp_path, *cases)
    verdicts = {}
    for variance in ("welch", "moderated"):
        s = session(tmp_path, variance=variance)
        for i in range(20):
            s.check(result(f"c{i:02d}", tput=900.0 if i == 0 else 1000.0, cov=0.05), FP)
        verdicts[variance] = gate(s, "c00")["output_throughput"]
        assert set(s.family().convicted) <= {"c00"}
    assert verdicts == {"welch": Outcome.INCONCLUSIVE, "moderated": Outcome.REGRESSION}


def test_success_below_100_percent_fails_the_case_itself(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    bad = result(tput=1000.0)
    bad = dataclasses.replace(bad, runs=(*bad.runs[:4], {**bad.runs[4], "success_rate": 0.98}))
    check = session(tmp_path).check(bad, FP)
    assert check.regressed and check.failure is not None
    assert "success_rate must be 1 in every run" in check.failure


def test_no_baseline_says_how_to_record_one(tmp_path: Path) -> None:
    s = session(tmp_path)
    check = s.check(result(tput=1000.0), FP)
    assert check.status == NO_BASELINE
    assert check.failure is None
    assert "no baseline for this case" in check.message
    assert "--llmperf-save-baseline" in check.message
    assert s.family().no_baseline == {CASE: check.message}
    verdict = s.family_check()
    assert verdict.failure is None and ("llmperf.no_baseline", CASE) in verdict.properties
    assert any(line.startswith(f"NO BASELINE: {CASE}") for line in verdict.lines)
    strict = session(tmp_path, strict=True)
    assert (strict.check(result(tput=1000.0), FP).failure or "").count("--llmperf-strict")
    assert "--llmperf-strict: NO BASELINE " + CASE in (strict.family_check().failure or "")


def test_a_case_missing_from_an_existing_file_is_no_baseline(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    check = session(tmp_path).check(result("other-case", tput=1000.0), FP)
    assert check.status == NO_BASELINE and check.baseline_path is not None


def test_different_environment_is_not_comparable_listing_the_fields(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    upgraded = dataclasses.replace(FP, vllm_version="0.33.0", torch_version="2.14.0")
    s = session(tmp_path)
    check = s.check(result(tput=500.0), upgraded)
    assert check.status == Outcome.NOT_COMPARABLE.value
    assert check.failure is None  # reported, not a failure without --llmperf-strict
    assert "vllm_version '0.32.0' -> '0.33.0'" in check.message
    assert "torch_version" in check.message
    assert "--llmperf-ignore-field vllm_version" in check.message
    assert CASE in s.family().not_comparable and s.family_check().failure is None
    strict = session(tmp_path, strict=True)
    assert "NOT COMPARABLE" in (strict.check(result(tput=500.0), upgraded).failure or "")
    assert "NOT COMPARABLE " + CASE in (strict.family_check().failure or "")
    # declared ignorable: compared, the halved throughput is a regression, the change noted
    ok = session(tmp_path, ignore=("vllm_version", "torch_version"))
    ok.check(result(tput=500.0), upgraded)
    assert CASE in ok.family().convicted
    assert ok.family().context[CASE]["vllm_version"] == ("0.32.0", "0.33.0")


def test_a_new_plugin_version_or_kernel_is_context_not_incomparable(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    bumped = dataclasses.replace(
        FP, plugin_version="0.2.0", os_platform="Linux-9.9-x86_64", hostname="other-box"
    )
    s = session(tmp_path, strict=True)
    check = s.check(result(tput=1002.0), bumped)
    assert check.status == PENDING and check.failure is None
    assert gate(s) == {m: Outcome.NO_CHANGE for m in GATE_METRICS}
    assert check.context["plugin_version"] == ("0.1.0", "0.2.0")
    verdict = s.family_check()
    assert verdict.failure is None
    assert any("changed since baseline" in line and "0.2.0" in line for line in verdict.lines)
    # ... while another accelerator count is a different machine
    gpus = dataclasses.replace(FP, accelerator_count=2)
    other = session(tmp_path, strict=True)
    assert other.check(result(tput=1000.0), gpus).status == Outcome.NOT_COMPARABLE.value
    assert "accelerator_count" in (other.family_check().failure or "")


def test_different_launch_argv_is_not_comparable(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    flags = dataclasses.replace(FP, launch_argv=("--model", "<model>", "--max-num-seqs", "1"))
    check = session(tmp_path).check(result(tput=1000.0), flags)
    assert check.status == Outcome.NOT_COMPARABLE.value
    assert "this case's fingerprint" in check.message and "launch_argv" in check.message


def test_inconclusive_is_reported_and_fails_only_when_strict(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0, cov=0.3, n=3))
    s = session(tmp_path)
    s.check(result(tput=950.0, cov=0.3, n=3), FP)
    assert gate(s)["output_throughput"] is Outcome.INCONCLUSIVE
    (unsure,) = s.family().inconclusive[CASE]
    assert "runs per side would detect" in unsure.message
    assert s.family_check().failure is None
    strict = session(tmp_path, strict=True)
    strict.check(result(tput=950.0, cov=0.3, n=3), FP)
    assert "INCONCLUSIVE " + CASE in (strict.family_check().failure or "")


def test_one_run_per_side_falls_back_to_the_tolerance(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0, n=1))
    s = session(tmp_path)
    s.check(result(tput=700.0, n=1), FP)
    assert CASE in s.family().convicted
    assert "tolerance alone" in (s.family_check().failure or "")


def test_tolerance_per_metric(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0, cov=0.001))
    loose = {m: 0.5 for m in KEY_METRICS}
    s = session(tmp_path, tolerances=loose)
    s.check(result(tput=800.0, cov=0.001), FP)
    assert gate(s) == {m: Outcome.NO_CHANGE for m in GATE_METRICS}  # 20% inside 50%
    tight = session(tmp_path, tolerances={"output_throughput": 0.1})
    tight.check(result(tput=800.0, cov=0.001), FP)
    assert gate(tight)["output_throughput"] is Outcome.REGRESSION


def test_save_and_compare_in_one_session_updates_the_file(tmp_path: Path) -> None:
    path = record(tmp_path, result(tput=1000.0), result("kept-case", tput=50.0))
    s = session(tmp_path, save=True, compare=True)
    assert s.check(result(tput=1001.0), FP).failure is None
    s.finish([result(tput=1001.0)])
    stored = load(path)
    assert set(stored.cases) == {CASE, "kept-case"}  # cases not run now are kept
    assert stored.cases[CASE].metrics["output_throughput"].values == tuple(
        r["output_throughput"] for r in runs(1001.0)
    )


def test_cases_that_failed_before_the_check_are_not_saved(tmp_path: Path) -> None:
    s = session(tmp_path, save=True, compare=False)
    s.check(result(tput=1000.0), FP)
    lines = s.finish([result(tput=1000.0), result("broken-case", tput=1.0)])
    assert any("not saved as baseline" in line and "broken-case" in line for line in lines)
    assert "broken-case" not in load(s.saved[0]).cases


def test_environments_get_one_file_each(tmp_path: Path) -> None:
    s = session(tmp_path, save=True, compare=False)
    s.check(result("a", tput=1000.0), FP)
    s.check(result("b", tput=1000.0), dataclasses.replace(FP, vllm_version="0.33.0"))
    s.finish()
    assert len(s.saved) == 2 and len(set(s.saved)) == 2


def test_corrupt_baseline_fails_loudly_and_is_never_overwritten(tmp_path: Path) -> None:
    path = record(tmp_path, result(tput=1000.0))
    path.write_text('{"schema_version": 1, "cases": ')  # truncated
    before = path.read_bytes()
    s = session(tmp_path, save=True)
    check = s.check(result(tput=1000.0), FP)
    assert check.failure is not None and "not valid JSON" in check.failure
    lines = s.finish([result(tput=1000.0)])
    assert any("NOT saved" in line for line in lines)
    assert path.read_bytes() == before


def test_unknown_ignore_field_and_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a fingerprint field"):
        session(tmp_path, ignore=("gpu",))
    with pytest.raises(ValueError, match="tolerance"):
        session(tmp_path, tolerances={"p99_e2el_ms": -0.1})
    with pytest.raises(ValueError, match="alpha"):
        session(tmp_path, alpha=0.7)
    with pytest.raises(ValueError, match="no known direction"):
        session(tmp_path, metrics=("colour",))
    with pytest.raises(ValueError, match="variance"):
        session(tmp_path, variance="pooled")


def test_a_case_without_runs_is_not_compared(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    empty = CaseResult(case_id=CASE, model="m", workload="text", concurrency=16, runs=())
    check = session(tmp_path).check(empty, FP)
    assert check.status == NOT_COMPARED and check.failure is None


def test_fingerprint_for_gathers_model_launch_and_workload(tmp_path: Path) -> None:
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"\x00" * 64)
    plan = SimpleNamespace(
        args=("--model", str(model_dir), "--max-num-seqs", "8"), env={"HF_TOKEN": "hf_x", "A": "1"}
    )
    resolved = SimpleNamespace(
        spec=ModelSpec(name="dense-gqa", tiny="dense-gqa"),
        plan=plan,
        server=SimpleNamespace(
            launcher=(sys.executable, "-m", "vllm.entrypoints.openai.api_server")
        ),
        model_path=str(model_dir),
    )
    case = PerfCase(
        model=resolved.spec,
        workload=WorkloadRef.from_preset("text"),
        concurrency=16,
        requests=48,
        runs=5,
        warmup_requests=4,
        gates=Gates(),
    )
    s = session(tmp_path)
    fp = s.fingerprint_for(
        result(), resolved, ACC, "0.99.0", case=case, weights_cache=tmp_path / "cache.json"
    )
    assert fp.platform == "cpu" and fp.host_cpu == "Test CPU 9000"
    assert fp.vllm_version == "0.99.0"
    assert fp.model_name == "tiny:dense-gqa"
    assert fp.launch_argv[0] == "<python>" and "<model>" in fp.launch_argv
    assert str(model_dir) not in fp.launch_argv  # portable between machines
    assert dict(fp.launch_env) == {"HF_TOKEN": "<redacted>", "A": "1"}
    assert fp.weights_sha256 is not None and len(fp.weights_sha256) == 64
    workload = json.loads(fp.workload or "{}")
    assert workload["concurrency"] == 16 and workload["requests"] == 48
    assert workload["input_tokens"] == WorkloadRef.from_preset("text").input_tokens
    # the weights hash changes with the weights
    (model_dir / "model.safetensors").write_bytes(b"\x01" * 64)
    fp2 = s.fingerprint_for(
        result(), resolved, ACC, "0.99.0", case=case, weights_cache=tmp_path / "cache.json"
    )
    assert fp2.weights_sha256 != fp.weights_sha256
    off = session(tmp_path, hash_weights=False).fingerprint_for(result(), resolved, ACC, case=case)
    assert off.weights_sha256 is None


def test_fingerprint_for_an_external_endpoint_uses_the_case_result() -> None:
    r = dataclasses.replace(
        result(), environment={"model": "m", "launch_argv": ["--x"], "endpoint": "http://h"}
    )
    fp = BaselineSession("b", SUITE, save=False, compare=True).fingerprint_for(r, None, ACC)
    assert fp.model_name == "dense-gqa" and fp.launch_argv == ("--x",)
    assert json.loads(fp.workload or "{}") == {"name": "text", "concurrency": 16}


def test_portable_argv_keeps_other_launchers() -> None:
    docker = ("docker", "run", "vllm/vllm-openai-rocm:v0.14.1")
    assert portable_argv(("--model", "/m"), "/m", docker) == (*docker, "--model", "<model>")
    assert portable_argv(("--model", "/m"), None) == ("--model", "/m")
    digest = hashlib.sha256(b"x").hexdigest()
    assert portable_argv((digest,), "/m") == (digest,)


def test_nan_runs_do_not_break_the_gate(tmp_path: Path) -> None:
    record(tmp_path, result(tput=1000.0))
    bad = list(runs(1000.0))
    bad[0] = {**bad[0], "p99_ttft_ms": math.nan}
    r = dataclasses.replace(result(), runs=tuple(bad))
    s = session(tmp_path)
    check = s.check(r, FP)
    assert check.failure is None
    ttft = next(v for v in s.family().report if v.metric == "p99_ttft_ms")
    assert ttft.n_current == 4
