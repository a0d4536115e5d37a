"""The study's published MI325X figures as a reference a run of its profiles is compared with:
found by the normal lookup (``baselines/published/`` under the baseline folder), matched by
the plugin's own case ids and fingerprints (the real launch plans of the profiles for 8x
MI325X, vLLM 0.14.1), and judged by the tolerance alone, as labelled."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tomllib
from pathlib import Path

import pytest

from pytest_llmperf.config import parse_config
from pytest_llmperf.plan.platforms import Accelerators
from pytest_llmperf.session.baselines import NO_BASELINE, PENDING, BaselineSession
from pytest_llmperf.session.engine import EngineOptions, PerfEngine
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.compare import Outcome

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "baselines" / "published" / "mi325x-vllm-0.14.1.json"
CONFIG = REPO / "baselines" / "published" / "mi325x-vllm-0.14.1.toml"
SUITE = "mi325x-vllm-0.14.1"
CASE = "llama-3.1-405b-text-c500"  # published: 15,944 total tok/s
MI325X = Accelerators("rocm", "AMD Instinct MI325X", 8, "6.10.5", "6.4.2", None)


@pytest.fixture(scope="module")
def study() -> tuple[PerfEngine, dict]:
    config = parse_config(tomllib.loads(CONFIG.read_text()), source=str(CONFIG))
    engine = PerfEngine(
        config,
        EngineOptions(
            rootdir=REPO,
            report_dir=Path("/nonexistent-unused"),
            platform="rocm",
            gpus=8,
            vllm_version="0.14.1",
        ),
    )
    return engine, {c.id: c for c in config.cases()}


def session(tmp_path: Path, engine: PerfEngine, **kw: object) -> BaselineSession:
    s = engine.config.baseline
    folder = tmp_path / "baselines"
    (folder / "published").mkdir(parents=True, exist_ok=True)
    shutil.copy(PUBLISHED, folder / "published" / PUBLISHED.name)
    opts: dict = {
        "metrics": s.metrics,
        "report_metrics": s.report_metrics,
        "default_tolerance": s.tolerance,
        "hash_weights": False,
    } | kw
    return BaselineSession(folder, SUITE, save=False, compare=True, **opts)


def measured(engine: PerfEngine, case_id: str, cases: dict, total: float) -> tuple:
    case = cases[case_id]
    runs = tuple({"total_token_throughput": total * f, "success_rate": 1.0} for f in (0.99, 1.01))
    result = CaseResult(
        case_id=case_id,
        model=case.model.name,
        workload=case.workload.name,
        concurrency=case.concurrency,
        runs=runs,
    )
    return result, case


def test_the_case_ids_are_the_plugins_and_the_config_runs_them(study: tuple) -> None:
    _, cases = study
    published = json.loads(PUBLISHED.read_text())["cases"]
    assert all("/" not in cid for cid in published)
    matched = set(published) & set(cases)
    assert len(matched) == 28 and CASE in matched
    # the rest cannot be matched (concurrency or tokens not published) and say so
    for cid in set(published) - matched:
        assert "never matched" in published[cid]["note"], cid


@pytest.mark.parametrize(("total", "verdict"), [(15944 * 0.98, "NO CHANGE"), (13000.0, "REG")])
def test_a_run_of_the_profile_on_mi325x_is_judged_against_it_by_the_tolerance(
    study: tuple, tmp_path: Path, total: float, verdict: str
) -> None:
    engine, cases = study
    s = session(tmp_path, engine)
    result, case = measured(engine, CASE, cases, total)
    fp = s.fingerprint_for(result, engine.resolve(case.model), MI325X, "0.14.1", case=case)
    check = s.check(result, fp)
    assert check.status == PENDING, check.message
    assert "PUBLISHED reference" in check.message and "tolerance only" in check.message
    (v,) = [v for v in s.family().gate if v.case_id == CASE]
    assert v.verdict.value.startswith(verdict), v.message
    assert "tolerance alone" in v.message  # n=1 published figure: no statistical test


def test_another_gpu_count_is_not_comparable_and_no_reference_is_no_baseline(
    study: tuple, tmp_path: Path
) -> None:
    engine, cases = study
    s = session(tmp_path, engine, strict=True)
    result, case = measured(engine, CASE, cases, 15944.0)
    four = dataclasses.replace(MI325X, count=4)
    fp = s.fingerprint_for(result, engine.resolve(case.model), four, "0.14.1", case=case)
    check = s.check(result, fp)
    assert check.status == Outcome.NOT_COMPARABLE.value and "accelerator_count" in check.message
    other = session(tmp_path / "empty", engine)
    (tmp_path / "empty" / "baselines" / "published" / PUBLISHED.name).unlink()
    assert other.check(result, fp).status == NO_BASELINE
