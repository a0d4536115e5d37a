"""A/B validation: the interleaved plan, the report, and the runner against a fake engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmperf.config import Gates, ModelSpec, PerfCase, WorkloadRef
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.loadgen import run as loadgen
from pytest_llmperf.session.ab import ABStep, ab_order, ab_report, run_ab, spec_differences
from pytest_llmperf.verdicts.compare import Outcome

Z = (-1.0, 0.5, 1.0, -0.5, 0.0)


def runs(tput: float, n: int = 5, cov: float = 0.01) -> tuple[dict[str, float], ...]:
    out = []
    for i in range(n):
        f = 1.0 + cov * Z[i % len(Z)]
        out.append(
            {
                "total_token_throughput": 3 * tput * f,
                "output_throughput": tput * f,
                "p99_ttft_ms": 50_000.0 / tput / f,
                "p99_e2el_ms": 200_000.0 / tput / f,
                "success_rate": 1.0,
            }
        )
    return tuple(out)


# ----------------------------------------------------------------------------- ab_order


def test_order_interleaves_each_level_with_n_runs_per_variant() -> None:
    order = ab_order([1, 16], 4)
    assert len(order) == 16
    assert Counter((s.variant, s.level) for s in order) == {
        ("A", 1): 4,
        ("B", 1): 4,
        ("A", 16): 4,
        ("B", 16): 4,
    }
    # levels in the given order, each finished before the next
    assert [s.level for s in order] == [1] * 8 + [16] * 8
    # balanced: A B B A A B B A, so linear drift cancels for an even n
    assert "".join(s.variant for s in order[:8]) == "ABBAABBA"
    positions = {v: [i for i, s in enumerate(order[:8]) if s.variant == v] for v in "AB"}
    assert sum(positions["A"]) == sum(positions["B"])
    assert order[0] == ABStep("A", 1, 0) and order[1] == ("B", 1, 0)  # a plain tuple too


def test_order_plain_alternation() -> None:
    order = ab_order([8], 3, balanced=False)
    assert "".join(s.variant for s in order) == "ABABAB"
    assert [s.run for s in order] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("levels", "runs", "match"),
    [
        ([1], 0, "at least 1 run"),
        ([], 3, "no concurrency"),
        ([0], 3, ">= 1"),
        ([4, 4], 2, "repeat"),
    ],
)
def test_order_refuses_bad_plans(levels: list[int], runs: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ab_order(levels, runs)


# ----------------------------------------------------------------------------- ab_report


def test_report_flags_a_slower_b_and_prints_the_ablation_table() -> None:
    a = {1: runs(400.0), 16: runs(2900.0)}
    b = {1: runs(400.0), 16: runs(2320.0)}  # -20% at c=16 only
    verdicts, text = ab_report(a, b, name="text", label_a="v0.14.1", label_b="v0.15.0")
    by = {(v.case_id, v.metric): v for v in verdicts}
    assert by[("text@c16", "output_throughput")].verdict is Outcome.REGRESSION
    assert by[("text@c16", "p99_e2el_ms")].verdict is Outcome.REGRESSION
    assert by[("text@c1", "output_throughput")].verdict is not Outcome.REGRESSION
    assert "Holm, 8 tests" in by[("text@c16", "output_throughput")].message
    assert "v0.15.0 (B) vs v0.14.1 (A)" in text
    assert "ablation table" in text
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("output_throughput") and "c=16" in line
    )
    assert "2,900" in row and "2,320" in row and "-20.0%" in row and "REGRESSION" in row


def test_report_on_identical_configurations_finds_no_regression() -> None:
    verdicts, _ = ab_report({4: runs(1000.0)}, {4: runs(1000.0, cov=0.012)})
    assert not any(v.verdict is Outcome.REGRESSION for v in verdicts)


def test_report_improvement_like_the_aiter_ablation() -> None:
    # the study: Llama-405B at c=100, 6,682 -> 6,955 tok/s (+4.1%) with AITER on
    verdicts, text = ab_report(
        {100: runs(6682.0, cov=0.002)},
        {100: runs(6955.0, cov=0.002)},
        metrics=("output_throughput",),
        default_tolerance=0.02,
    )
    assert verdicts[0].verdict is Outcome.IMPROVEMENT
    assert "+4.1%" in text


def test_report_level_missing_on_one_side_is_not_comparable() -> None:
    verdicts, _ = ab_report({1: runs(10.0), 2: runs(20.0)}, {1: runs(10.0)})
    missing = [v for v in verdicts if v.case_id == "c2"]
    assert missing and all(v.verdict is Outcome.NOT_COMPARABLE for v in missing)
    assert "B has no run" in missing[0].message


def test_spec_differences_name_what_b_changes() -> None:
    a = ModelSpec(name="m-a", tiny="dense-gqa", env={"VLLM_ROCM_USE_AITER": "0"})
    b = ModelSpec(name="m-b", tiny="dense-gqa", env={"VLLM_ROCM_USE_AITER": "1"})
    assert spec_differences(a, b) == {
        "env": ({"VLLM_ROCM_USE_AITER": "0"}, {"VLLM_ROCM_USE_AITER": "1"})
    }


# ----------------------------------------------------------------------------- run_ab


@dataclass
class FakeHandle:
    endpoint: Any
    checks: int = 0

    def check_alive(self) -> None:
        self.checks += 1


class FakeEngine:
    def __init__(self) -> None:
        self.handles: dict[str, FakeHandle] = {}

    def server_for(self, spec: ModelSpec) -> FakeHandle:
        return self.handles.setdefault(
            spec.name, FakeHandle(Endpoint("http://127.0.0.1:9", spec.name))
        )


def case(concurrency: int = 4) -> PerfCase:
    return PerfCase(
        model=ModelSpec(name="dense-gqa", tiny="dense-gqa"),
        workload=WorkloadRef.from_preset("text"),
        concurrency=concurrency,
        requests=8,
        runs=3,
        warmup_requests=2,
        gates=Gates(),
    )


def test_run_ab_interleaves_warms_every_run_and_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int, int, int, int]] = []
    speed = {"dense-a": 1000.0, "dense-b": 500.0}

    def fake_run_load(endpoint: Any, workload: Any, spec: loadgen.LoadSpec, **kw: Any) -> Any:
        calls.append(
            (
                endpoint.model,
                spec.concurrency or 0,
                spec.warmup_requests,
                spec.seed,
                spec.num_requests,
            )
        )
        metrics: Mapping[str, float] = runs(speed[endpoint.model], n=5)[len(calls) % 5]
        return SimpleNamespace(
            summary=SimpleNamespace(metrics=lambda: dict(metrics)),
            health=SimpleNamespace(client_bound=False, reasons=()),
        )

    monkeypatch.setattr(loadgen, "run_load", fake_run_load)
    engine = FakeEngine()
    a = ModelSpec(name="dense-a", tiny="dense-gqa")
    b = ModelSpec(name="dense-b", tiny="dense-gqa", extra_args=("--max-num-seqs", "1"))
    res = run_ab(engine, case(), a, b, 4, levels=(2, 16))
    assert [c[0][-1] for c in calls[:8]] == list("abbaabba")
    assert [c[1] for c in calls] == [2] * 8 + [16] * 8
    # a warm-up before every run (the other variant's run left this server idle); the same
    # prompts (seed) for A and B of block r
    assert [c[2] for c in calls] == [2] * 16
    assert [c[3] for c in calls[:4]] == [0, 0, 1, 1]
    assert [c[4] for c in calls] == [8] * 8 + [16] * 8  # never fewer requests than the level
    assert engine.handles["dense-a"].checks == 8  # liveness checked before every run
    assert len(res.a_runs[2]) == 4 and len(res.b_runs[16]) == 4
    assert res.regressed
    assert res.verdict("output_throughput", 16).verdict is Outcome.REGRESSION
    assert "extra_args () -> ('--max-num-seqs', '1')" in res.table
    assert res.differences == {"extra_args": ((), ("--max-num-seqs", "1"))}


def test_run_ab_needs_two_names() -> None:
    spec = ModelSpec(name="dense-gqa", tiny="dense-gqa")
    with pytest.raises(ValueError, match="different names"):
        run_ab(FakeEngine(), case(), spec, spec, 2)


def _fake_health(bound: bool) -> Any:
    return SimpleNamespace(
        client_bound=bound,
        reasons=("event-loop lag p99 816.0 ms > 25.0 ms",) if bound else (),
        cpu_s=0.1,
        wall_s=10.0,
        schedule_lag_p99_ms=0.0,
        loop_lag_p99_ms=816.0 if bound else 1.0,
    )


def test_client_bound_blocks_are_excluded_replaced_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 68% drop once judged INCONCLUSIVE: A's starved-client runs (a tenth of the real
    throughput) stayed in the statistics. Left out and replaced, the drop is convicted."""
    calls: list[tuple[str, int]] = []
    speed = {"dense-a": 1000.0, "dense-b": 320.0}
    starved = {3, 4}  # 0-based call numbers: A in blocks 1 and 2 (order A B, B A, A B)

    def fake_run_load(endpoint: Any, workload: Any, spec: loadgen.LoadSpec, **kw: Any) -> Any:
        i = len(calls)
        calls.append((endpoint.model, workload.seed))
        tput = speed[endpoint.model] * (0.1 if i in starved else 1.0)
        metrics = dict(runs(tput, n=5)[i % 5])
        return SimpleNamespace(
            summary=SimpleNamespace(metrics=lambda: metrics),
            health=_fake_health(i in starved),
            token_check=SimpleNamespace(status="ok", reasons=()),
        )

    monkeypatch.setattr(loadgen, "run_load", fake_run_load)
    a = ModelSpec(name="dense-a", tiny="dense-gqa")
    b = ModelSpec(name="dense-b", tiny="dense-gqa")
    res = run_ab(FakeEngine(), case(), a, b, 4, metrics=("total_token_throughput",))
    assert len(calls) == 2 * 6  # 4 valid blocks wanted, 2 excluded and replaced
    assert [(e.variant, e.block) for e in res.excluded] == [("A", 1), ("A", 2)]
    assert "event-loop lag p99 816.0 ms" in res.excluded[0].reasons[0]
    assert len(res.a_runs[4]) == len(res.b_runs[4]) == 4
    assert all(r["total_token_throughput"] > 2000 for r in res.a_runs[4])  # none starved
    assert res.verdict("total_token_throughput", 4).verdict is Outcome.REGRESSION
    assert "excluded: dense-a (A) c=4 block 2: client-bound" in res.table
    assert not res.too_few()
    # same prompts for A and B within a block, fresh ones across blocks
    seeds = [s for _, s in calls]
    assert seeds[0] == seeds[1] and seeds[2] == seeds[3] and seeds[0] != seeds[2]
    doc = res.to_json()
    assert doc["excluded"][0]["reasons"] and doc["verdicts"][0]["verdict"] == "REGRESSION"


def test_too_few_valid_blocks_is_said_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run_load(endpoint: Any, workload: Any, spec: loadgen.LoadSpec, **kw: Any) -> Any:
        metrics = dict(runs(1000.0)[0])
        return SimpleNamespace(
            summary=SimpleNamespace(metrics=lambda: metrics),
            health=_fake_health(endpoint.model == "dense-a"),
            token_check=SimpleNamespace(status="ok", reasons=()),
        )

    monkeypatch.setattr(loadgen, "run_load", fake_run_load)
    a = ModelSpec(name="dense-a", tiny="dense-gqa")
    b = ModelSpec(name="dense-b", tiny="dense-gqa")
    res = run_ab(FakeEngine(), case(), a, b, 3, extra_blocks=1)
    assert len(res.excluded) == 4 and res.too_few() == {4: 0}
    assert all(v.verdict in (Outcome.NOT_COMPARABLE, Outcome.INCONCLUSIVE) for v in res.verdicts)
    assert "only 0 of 3 blocks valid after 4 measured" in res.table


def test_undeclared_difference_is_refused() -> None:
    from pytest_llmperf.session.ab import ABRefused, undeclared_differences

    base = {"model": "/m", "launcher": ["py"], "argv": ["--max-model-len", "2048"], "env": {}}
    a = ModelSpec(name="a", tiny="dense-gqa")
    b = ModelSpec(name="b", tiny="dense-gqa", extra_args=("--max-num-seqs", "2"))
    ok = {**base, "argv": ["--max-model-len", "2048", "--max-num-seqs", "2"]}
    assert undeclared_differences(base, ok, a, b) == []
    tp = {**ok, "argv": [*ok["argv"], "--tensor-parallel-size", "2"]}
    assert undeclared_differences(base, tp, a, b) == [
        "launch flag --tensor-parallel-size None vs '2'"
    ]
    other = {**base, "model": "/m-rev2", "served_vllm": "0.31.0"}
    problems = undeclared_differences({**base, "served_vllm": "0.32.0"}, other, a, a)
    assert any("model" in p for p in problems) and any("vLLM version" in p for p in problems)
    assert issubclass(ABRefused, AssertionError)


def test_fresh_blocks_restart_both_servers_per_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """blocks="fresh": each block starts both servers (in the block's order), runs every level
    once, then releases both; an excluded block is replaced by another fresh one."""
    events: list[tuple[str, ...]] = []

    class RestartingEngine(FakeEngine):
        def server_for(self, spec: ModelSpec) -> FakeHandle:
            events.append(("start", spec.name))
            return super().server_for(spec)

        def release(self, spec: ModelSpec) -> None:
            events.append(("release", spec.name))

    def fake_run_load(endpoint: Any, workload: Any, spec: loadgen.LoadSpec, **kw: Any) -> Any:
        events.append(("run", endpoint.model, str(spec.concurrency)))
        bound = sum(e[0] == "run" for e in events) == 1  # the very first run is client-bound
        metrics = dict(runs(1000.0, n=5)[len(events) % 5])
        return SimpleNamespace(
            summary=SimpleNamespace(metrics=lambda: metrics),
            health=_fake_health(bound),
            token_check=SimpleNamespace(status="ok", reasons=()),
        )

    monkeypatch.setattr(loadgen, "run_load", fake_run_load)
    a = ModelSpec(name="dense-a", tiny="dense-gqa")
    b = ModelSpec(name="dense-b", tiny="dense-gqa")
    res = run_ab(RestartingEngine(), case(), a, b, 2, levels=(2, 4), blocks="fresh")
    first = [
        ("start", "dense-a"), ("start", "dense-b"),
        ("run", "dense-a", "2"), ("run", "dense-b", "2"),
        ("run", "dense-a", "4"), ("run", "dense-b", "4"),
        ("release", "dense-a"), ("release", "dense-b"),
    ]  # fmt: skip
    assert events[:8] == first
    assert events[8:10] == [("start", "dense-b"), ("start", "dense-a")]  # block 2: B A
    # block 1's c=2 was excluded, so a third block (order A B again) measures c=2 only
    assert events[-6:] == [
        ("start", "dense-a"), ("start", "dense-b"),
        ("run", "dense-a", "2"), ("run", "dense-b", "2"),
        ("release", "dense-a"), ("release", "dense-b"),
    ]  # fmt: skip
    assert sum(e[0] == "release" for e in events) == 6  # three blocks, both servers each
    assert [(e.variant, e.level, e.block) for e in res.excluded] == [("A", 2, 0)]
    assert len(res.a_runs[2]) == len(res.a_runs[4]) == 2 and res.blocks == "fresh"
