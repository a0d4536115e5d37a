"""``build_series`` keeps only the metrics asked for (all of them with ``metrics=None``)."""

from __future__ import annotations

from test_history_analysis import _rows

from pytest_llmperf.history.changepoints import build_series
from pytest_llmperf.verdicts.fingerprint import Fingerprint


def test_only_the_wanted_metrics_form_series() -> None:
    fp = Fingerprint(platform="cpu", model_name="tiny:m")
    rows = _rows(fp.id(), [(1, "2026-11-01", 1000.0), (2, "2026-11-02", 990.0)])
    rows += [{**r, "metric": "output_throughput"} for r in rows]
    fps = {fp.id(): fp.to_dict()}
    wanted = build_series(rows, fps, metrics=("output_throughput",))
    assert [(s.metric, len(s.points)) for s in wanted] == [("output_throughput", 2)]
    every = build_series(rows, fps, metrics=None)
    assert sorted(s.metric for s in every) == ["output_throughput", "total_token_throughput"]
