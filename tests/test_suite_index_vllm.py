"""The suite throughput index as a pytest item, on the shared real vLLM server.

``llmperf::suite_throughput_index`` runs after the matrix when the config has a suite floor: it
fails the session (exit code, JUnit) when the geometric mean of every case's output tok/s over
its reference is below the floor, passes above it, and is NOT GATED with fewer cases than it
needs. The references here are set against what this same server measured, so the verdicts do
not depend on how fast the machine is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.test_plugin import against, out, perf_toml, results, run
from tests.test_plugin_verdict import junit

ITEM = "llmperf::suite_throughput_index"
CASES = ("dense-gqa-text-c1", "dense-gqa-text-c2")


def floor_table(refs: dict[int, float], *, fraction: float = 0.85, min_cases: int = 2) -> str:
    lines = "".join(f'"dense-gqa/text/{c}" = {v:.3f}\n' for c, v in refs.items())
    return (
        f"\n[suite_floor]\nfraction = {fraction}\nmin_cases = {min_cases}\n"
        f"[suite_floor.reference]\n{lines}"
    )


@pytest.mark.vllm
def test_the_index_fails_passes_and_is_not_gated_on_real_vllm(
    pytester: pytest.Pytester, dense_server: Any
) -> None:
    toml = perf_toml(levels="1, 2", requests=8)
    # 1. References far above what this server can do (1e5 tok/s, ratios still above the 1e-6
    #    floor): the cases pass (no gates here) but the index is below 0.85 -> the item fails.
    pytester.path.joinpath("llmperf.toml").write_text(toml + floor_table({1: 1e5, 2: 1e5}))
    first = run(pytester, *against(dense_server), "--junitxml=fail.xml")
    assert first.ret == pytest.ExitCode.TESTS_FAILED, out(first)
    first.assert_outcomes(passed=2, failed=1)
    assert f"FAILED {ITEM}" in first.stdout.str()
    doc = results(pytester)["suite_index"]
    assert doc["verdict"] == "FAIL" and [c["case_id"] for c in doc["cases"]] == list(CASES)
    measured = {
        c["concurrency"]: c["summary"]["output_throughput"]["mean"]
        for c in results(pytester)["cases"]
    }
    assert all(v > 0 for v in measured.values())
    assert doc["index"] == pytest.approx(
        (measured[1] / 1e5 * measured[2] / 1e5) ** 0.5, rel=1e-9
    )  # the same figures results.json reports for the cases
    (props, fails) = junit(pytester.path / "fail.xml")["suite_throughput_index"]
    assert "suite throughput index FAIL" in props["llmperf.suite_index"]
    assert fails and "floor 0.85" in fails[0]

    # 2. References at what the server just measured x3: index ~3 -> passes.
    refs = {c: v / 3 for c, v in measured.items()}
    pytester.path.joinpath("llmperf.toml").write_text(toml + floor_table(refs))
    second = run(pytester, *against(dense_server))
    assert second.ret == 0, out(second)
    second.assert_outcomes(passed=3)
    assert "suite throughput index PASS" in second.stdout.str()
    assert results(pytester)["suite_index"]["verdict"] == "PASS"

    # 3. One case selected with -k: too few for the floor, reported and not gated, although
    #    its reference is unreachable.
    pytester.path.joinpath("llmperf.toml").write_text(toml + floor_table({1: 1e5, 2: 1e5}))
    third = run(pytester, *against(dense_server), "-k", "c1")
    assert third.ret == 0, out(third)
    third.assert_outcomes(passed=2)
    assert "suite throughput index NOT GATED" in third.stdout.str()
    assert json.loads((pytester.path / ".llmperf" / "results.json").read_text())["suite_index"][
        "verdict"
    ] == "NOT GATED"  # fmt: skip


def test_a_config_without_a_floor_adds_no_item(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    listed = run(pytester, "--llmperf", "--collect-only", "-q")
    assert ITEM not in listed.stdout.str(), out(listed)
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml() + floor_table({1: 1.0}))
    listed = run(pytester, "--llmperf", "--collect-only", "-q")
    assert ITEM in listed.stdout.str(), out(listed)
