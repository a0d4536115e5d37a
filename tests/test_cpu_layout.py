"""CPU layout: parsing, the auto choice, config errors, and that pinning really moves a process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.core.cpu_layout import (
    CpuLayout,
    CpuLayoutError,
    choose_layout,
    format_cpu_list,
    parse_cpu_list,
    pinned,
    validate_setting,
)


@given(st.sets(st.integers(min_value=0, max_value=300), min_size=1))
def test_cpu_list_round_trip(cpus: set[int]) -> None:
    assert parse_cpu_list(format_cpu_list(cpus)) == tuple(sorted(cpus))


def test_cpu_list_syntax() -> None:
    assert parse_cpu_list("0,2-4, 7") == (0, 2, 3, 4, 7)
    assert format_cpu_list((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    for bad in ("", "a", "3-1", "-1", "0,,1"):
        with pytest.raises(CpuLayoutError):
            parse_cpu_list(bad)


def test_auto_gives_the_client_the_last_core() -> None:
    assert choose_layout("auto", {0, 1}) == CpuLayout((0,), (1,), "auto")
    assert choose_layout("auto", range(8)) == CpuLayout(tuple(range(7)), (7,), "auto")
    assert choose_layout("auto", {3}) is None  # one core: nothing to split
    assert choose_layout("shared", {0, 1}) is None
    layout = choose_layout("0/1", {0, 1})
    assert layout is not None and layout.omp_threads_bind == "0"
    assert layout.describe() == "server 0 / client 1"
    assert layout.to_json()["client_cpus"] == [1]


def test_bad_layouts_say_what_to_do() -> None:
    with pytest.raises(CpuLayoutError, match="both the server and the client"):
        validate_setting("0-1/1")
    with pytest.raises(CpuLayoutError, match="neither 'auto'"):
        validate_setting("split")
    with pytest.raises(CpuLayoutError, match="may only use 0-1"):
        choose_layout("0/5", {0, 1})


def test_config_key() -> None:
    assert parse_config({"client": {"cpu_layout": "0/1"}}).client.cpu_layout == "0/1"
    assert parse_config({}).client.cpu_layout is None
    cfg = parse_config({"client": {"cpu_layout": "shared", "loop_lag_p99_ms": 30}})
    assert cfg.client.thresholds() == {"loop_lag_p99_ms": 30.0}  # the layout is no threshold
    with pytest.raises(ConfigError, match=r"client\.cpu_layout.*both the server and the client"):
        parse_config({"client": {"cpu_layout": "0/0"}})
    with pytest.raises(ConfigError, match="cpu_layout"):
        parse_config({"client": {"cpu_layout": 1}})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two allowed CPUs")
def test_pinned_moves_this_thread_and_children_then_restores() -> None:
    before = os.sched_getaffinity(0)
    target = {min(before)}
    with pinned(target):
        assert os.sched_getaffinity(0) == target
        # a process started meanwhile (as the server is) inherits the mask
        out = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == str(sorted(target))
    assert os.sched_getaffinity(0) == before
    with pinned(None):
        assert os.sched_getaffinity(0) == before


def test_prompt_seeds_are_fresh_per_case_and_run_and_stable() -> None:
    from pytest_llmperf.config import default_config
    from pytest_llmperf.session.engine import prompt_seed

    pairs = [(c.id, r) for c in default_config().cases() for r in range(5)]
    seeds = [prompt_seed(cid, r) for cid, r in pairs]
    assert len(set(seeds)) == len(pairs)  # no run or level of a session repeats another's
    assert prompt_seed("dense-gqa-text-c1", 0) == prompt_seed("dense-gqa-text-c1", 0)
    # the same sequence every night: not Python's per-process salted hash()
    code = "from pytest_llmperf.session.engine import prompt_seed; print(prompt_seed('x-c1', 2))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert other.stdout.strip() == str(prompt_seed("x-c1", 2)), other.stderr
