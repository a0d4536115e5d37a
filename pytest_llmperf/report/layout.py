"""Names of the files in the report directory, and the styling the outputs share."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final[int] = 1
RESULTS_FILE: Final[str] = "results.json"
HTML_FILE: Final[str] = "report.html"
BENCHMARK_FILE: Final[str] = "benchmark.json"
THROUGHPUT_PNG: Final[str] = "throughput.png"
LATENCY_PNG: Final[str] = "latency.png"

#: Panels of the latency plot: (metric, title).
LATENCY_PANELS: Final[tuple[tuple[str, str], ...]] = (
    ("p99_ttft_ms", "p99 TTFT"),
    ("p99_itl_ms", "p99 ITL"),
    ("p99_e2el_ms", "p99 end-to-end"),
)
STATUS_COLOURS: Final[dict[str, str]] = {
    "OK": "#d7f5dd",
    "SATURATED": "#fff1c2",
    "DEGRADED": "#ffd9b3",
    "FAILING": "#ffc7c7",
}
