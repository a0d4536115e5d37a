"""verdicts.guardrails in full (pure): each flag's whole message, its JSON form, and the
boundaries of the prefix-cache rule (single-turn, no shared prefix).

The inputs are ``detail.server`` dicts of the shape ``metrics.server.guardrails`` and
``witness`` write (the real scrapes are in tests/test_server_metrics.py); here the figures are
chosen so that every number in a message is known: 3 preemptions, 6144 hits at an 0.8 hit
rate, ITL 14.25 ms late against an allowance of 2.50 ms timing error + a 9.0 ms engine step.
"""

from __future__ import annotations

from typing import Any

from pytest_llmperf.verdicts.guardrails import FLAGS, GuardrailFlag, judge

PREEMPTED = (
    "vLLM preempted 3 requests during the run (KV cache too small for the load): latencies "
    "include recomputation; give the server more KV-cache memory or lower the concurrency"
)


def _hits(rate: float | None) -> dict[str, Any]:
    return {"guardrails": {"prefix_cache_hits": 6144.0, "prefix_cache_hit_rate": rate}}


def _late(*metrics: tuple[str, float, float, float]) -> dict[str, Any]:
    """A witness where each (metric, client_late_ms, tolerance_ms, engine step ms) is late."""
    return {
        "witness": {
            "late": [m for m, *_ in metrics],
            "metrics": {
                m: {"client_late_ms": late, "tolerance_ms": tol, "allowance_ms": tol + step}
                for m, late, tol, step in metrics
            },
        }
    }


def test_the_preemptions_message_in_full() -> None:
    flags = judge({"guardrails": {"preemptions": 3.0}})
    assert flags == [GuardrailFlag("preemptions", PREEMPTED, False)]


def test_the_cache_hits_message_with_and_without_a_hit_rate() -> None:
    tail = (
        " although the workload has no shared prefix: the run measured a warm cache (another "
        "client, or repeated prompts)"
    )
    # 0.8 is 80% (a wrong scale, 101 * 0.8 = 80.8, would print 81%).
    (flag,) = judge(_hits(0.8))
    assert flag.message == (
        "the prefix cache served 6144 prompt tokens (80% of queried prompt tokens)" + tail
    )
    # No hit rate (the server exposes no query counter): nothing in its place.
    (flag,) = judge(_hits(None))
    assert flag.message == "the prefix cache served 6144 prompt tokens" + tail


def test_cache_hits_are_expected_from_the_second_turn_on() -> None:
    """Only a single-turn run without a shared prefix is meant to miss the cache: turns=2 (the
    second turn resends the first one's prompt and answer) is already a warm cache by design."""
    assert [f.name for f in judge(_hits(0.8), turns=1)] == ["unexpected_cache_hits"]
    assert judge(_hits(0.8), turns=2) == []
    assert judge(_hits(0.8), shared_prefix_tokens=1) == []
    assert judge({"guardrails": {"prefix_cache_hits": 0.0}}) == []


def test_the_client_late_message_names_each_metric_and_the_engine_step() -> None:
    """The engine step in the message is the allowance less the timing error (9.0 ms here; the
    sum, 14.0 ms, would state a step vLLM never took)."""
    (flag,) = judge(_late(("itl", 14.25, 2.5, 9.0), ("ttft", 30.0, 3.82, 1.18)), fail_on=FLAGS)
    assert flag.name == "client_late" and flag.fails
    assert flag.message == (
        "client figures trail vLLM's own engine-stamped histograms: "
        "itl by at least 14.2 ms for 1% of the tokens (allowed 11.5 ms: timing error 2.50 ms + "
        "one engine step 9.0 ms), "
        "ttft by at least 30.0 ms for 1% of the tokens (allowed 5.0 ms: timing error 3.82 ms + "
        "one engine step 1.2 ms)"
        "; that gap is the client or the host being late, not the server being slow"
    )


def test_flags_come_in_rule_order_and_serialise_with_their_names() -> None:
    server = {**_hits(None), **_late(("itl", 20.0, 5.44, 4.0))}
    server["guardrails"]["preemptions"] = 3.0
    flags = judge(server, fail_on=["unexpected_cache_hits"])
    assert [f.name for f in flags] == list(FLAGS)
    assert flags[0].to_json() == {
        "name": "preemptions",
        "message": PREEMPTED,
        "fails": False,
    }
    assert [f.to_json()["fails"] for f in flags] == [False, True, False]
    assert judge({}) == [] and judge({"guardrails": None, "witness": None}) == []
