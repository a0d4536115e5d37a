"""Levels sized by a minimum duration as well as a request count: the closed loop keeps
sending fresh prompts until both are reached. Against the measuring instrument (known
timings: each request takes ttft + (k-1) * itl), so the duration a run must reach is known."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import Workload, prepare_requests_sync

W = Workload("md", input_tokens=24, output_tokens=4)


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i


def test_the_loop_runs_until_the_duration_is_reached(inst: Instrument) -> None:
    ep = inst.endpoint(ttft=0.02, itl=0.01, k=1)  # ~50 ms a request
    spec = LoadSpec(concurrency=2, num_requests=4, warmup_requests=2, min_duration_s=1.5)
    r = run_load(ep, W, spec)
    r.check()  # the token cross-check covers the extra requests too
    s = r.summary
    # 4 requests alone take ~0.1 s; the level went on for the 1.5 s it was asked for
    assert s.duration_s >= 1.5
    assert s.completed > 4 and s.success_rate == 1.0
    idx = [x.index for x in r.records]
    assert len(set(idx)) == len(idx)  # fresh prompts: no index (prompt) sent twice
    assert not set(idx) & {4, 5}  # the warm-up's indices are not reused
    prompts = [x.index for x in r.records]
    assert sorted(prompts) == prompts


def test_the_count_still_counts_when_it_takes_longer(inst: Instrument) -> None:
    ep = inst.endpoint(ttft=0.02, itl=0.01, k=1)
    r = run_load(ep, W, LoadSpec(concurrency=2, num_requests=30, min_duration_s=0.05))
    assert r.summary.completed == 30  # duration reached early; every counted request sent


def test_without_a_duration_the_count_alone(inst: Instrument) -> None:
    ep = inst.endpoint(ttft=0.02, itl=0.01, k=1)
    r = run_load(ep, W, LoadSpec(concurrency=2, num_requests=6))
    assert r.summary.completed == 6


def test_bad_durations_and_unsupported_shapes(inst: Instrument) -> None:
    with pytest.raises(ValueError, match="min_duration_s must be >= 0"):
        LoadSpec(min_duration_s=-1)
    with pytest.raises(ValueError, match="closed-loop"):
        LoadSpec(mode="open", rate=2.0, min_duration_s=5)
    ep = inst.endpoint(ttft=0.02, itl=0.01, k=1)
    reqs = prepare_requests_sync(ep, W, 4)
    with pytest.raises(ValueError, match="cannot be extended"):
        run_load(ep, W, LoadSpec(num_requests=4, min_duration_s=1), requests=reqs)


def test_config_and_marker_keys() -> None:
    from pytest_llmperf.config import ConfigError
    from pytest_llmperf.config.parse import parse_config
    from pytest_llmperf.session.marker import case_from_marker

    cfg = parse_config({"models": ["dense-gqa"], "min_duration_s": 30}, source="t.toml")
    assert {c.min_duration_s for c in cfg.cases()} == {30.0}
    with pytest.raises(ConfigError, match=r"min_duration_s.*out of range"):
        parse_config({"models": ["dense-gqa"], "min_duration_s": -2}, source="t.toml")
    with pytest.raises(ConfigError, match="min_duration_s"):
        parse_config({"models": ["dense-gqa"], "min_duration_s": "long"}, source="t.toml")
    case = case_from_marker(cfg, {"min_duration_s": 2.5})
    assert case.min_duration_s == 2.5
    with pytest.raises(ConfigError, match="min_duration_s"):
        case_from_marker(cfg, {"min_duration_s": -1})
