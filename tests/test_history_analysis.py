"""Change points, series building and the drift guard on series with known shifts (pure: no
database, no server; Apache Otava does the detection)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pytest_llmperf.history.changepoints import Point, build_series, detect
from pytest_llmperf.history.drift import DRIFT, OK, SHORT, check_drift, guard_points
from pytest_llmperf.history.view import analyse, table_lines
from pytest_llmperf.verdicts.fingerprint import Fingerprint


def nights(levels: list[float], cov: float = 0.02, runs: int = 5, seed: int = 3) -> list[Point]:
    rng = np.random.default_rng(seed)
    return [
        Point(i + 1, f"2026-11-{i + 1:02d}T22:00:00Z", f"{i:02d}abcdef99",
              tuple(rng.normal(m, m * cov, runs)))
        for i, m in enumerate(levels)
    ]  # fmt: skip


def test_a_10pct_drop_is_found_at_its_night_with_size_and_commits() -> None:
    pts = nights([1000.0] * 12 + [900.0] * 12)
    (cp,) = detect(pts, "higher")
    assert cp.index == 12 and cp.worse
    assert cp.change == pytest.approx(-0.10, abs=0.02)
    assert (cp.before.commit, cp.after.commit) == ("11abcdef99", "12abcdef99")
    assert cp.after.started.startswith("2026-11-13")


def test_flat_series_has_no_change_point() -> None:
    assert detect(nights([1000.0] * 30), "higher") == []


def test_latency_rise_is_worse_and_throughput_rise_is_better() -> None:
    pts = nights([50.0] * 10 + [60.0] * 10)
    assert detect(pts, "lower")[0].worse
    assert not detect(pts, "higher")[0].worse


def test_table_names_the_change_and_the_commits_around_it() -> None:
    from pytest_llmperf.history.changepoints import Series

    s = Series("dense-gqa-text-c4", "total_token_throughput", "f" * 16, "higher",
               tuple(nights([1000.0] * 8 + [800.0] * 8)))  # fmt: skip
    lines = table_lines(analyse([s]), store="h.sqlite")
    text = "\n".join(lines)
    assert "1 series, 1 change point(s)" in lines[0]
    assert re.search(r"!! 2026-11-09  -(19|20)\.\d%  99\d\.\d -> 79\d\.\d  p=", text), text
    assert "commits 07abcdef99 .. 08abcdef99" in text


def test_drift_guard_catches_cumulative_erosion_and_names_the_nights() -> None:
    # baseline, 6 flat nights, 2% a night for 5 nights, 6 flat nights: tonight is -9.6%
    levels = [1000.0] * 7 + [1000.0 * 0.98**i for i in range(1, 6)] + [1000.0 * 0.98**5] * 6
    pts = nights(levels, cov=0.02)
    v = check_drift("c", "total_token_throughput", "higher", pts)
    assert v.status == DRIFT and v.failed
    assert v.change == pytest.approx(-0.096, abs=0.03)
    assert "The shift spans the nights 2026-11-" in v.message and "though tonight's" in v.message


def test_drift_inside_the_tolerance_passes() -> None:
    pts = nights([1000.0] * 10 + [985.0] * 10, cov=0.005)
    v = check_drift("c", "total_token_throughput", "higher", pts, tolerance=0.05)
    assert v.status == OK and not v.failed
    assert v.change_points  # the 1.5% shift is real and found, but inside the tolerance


def test_improvement_is_not_a_drift_failure() -> None:
    pts = nights([1000.0] * 8 + [1200.0] * 8)
    assert check_drift("c", "total_token_throughput", "higher", pts).status == OK


def test_too_short_a_history_is_not_judged() -> None:
    pts = nights([1000.0, 500.0, 500.0])
    assert check_drift("c", "total_token_throughput", "higher", pts).status == SHORT


def _rows(fp_id: str, sessions: list[tuple[int, str, float]], partial: bool = False) -> list:
    return [
        {"session_id": sid, "started": started, "commit_sha": None, "baseline_saved": False,
         "case_id": "m-text-c4", "fingerprint_id": fp_id, "partial_fingerprint": partial,
         "metric": "total_token_throughput", "value": value + r, "run": r}
        for sid, started, value in sessions
        for r in range(3)
    ]  # fmt: skip


def test_series_split_by_fingerprint_unless_the_field_is_ignored() -> None:
    a = Fingerprint(platform="cpu", model_name="tiny:m", vllm_version="0.31.0")
    b = Fingerprint(platform="cpu", model_name="tiny:m", vllm_version="0.32.0")
    fps = {a.id(): a.to_dict(), b.id(): b.to_dict()}
    rows = _rows(a.id(), [(1, "2026-11-01", 1000.0)]) + _rows(b.id(), [(2, "2026-11-02", 900.0)])
    assert len(build_series(rows, fps)) == 2
    (joined,) = build_series(rows, fps, ignore=["vllm_version"])
    assert [p.session_id for p in joined.points] == [1, 2]


def test_imported_partial_fingerprint_joins_the_matching_series() -> None:
    full = Fingerprint(platform="cpu", model_name="tiny:m", vllm_version="0.32.0", host_cpu="x")
    part = Fingerprint(platform="cpu", model_name="m", vllm_version="0.32.0", host_cpu="x")
    other = Fingerprint(platform="cpu", model_name="m", vllm_version="0.1.0")
    fps = {f.id(): f.to_dict() for f in (full, part, other)}
    rows = (
        _rows(part.id(), [(1, "2026-11-01", 1000.0)], partial=True)
        + _rows(full.id(), [(2, "2026-11-02", 1000.0)])
        + _rows(other.id(), [(3, "2026-11-03", 1000.0)], partial=True)
    )
    by_points = sorted([p.session_id for p in s.points] for s in build_series(rows, fps))
    assert by_points == [[1, 2], [3]]  # 0.1.0 disagrees with the full series: its own


def test_unknown_ignore_field_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fingerprint field"):
        build_series([], {"x": Fingerprint(platform="cpu").to_dict()}, ignore=["gpu"])


def _night(i: int, label: str = "") -> Point:
    return Point(i, f"2026-11-{i:02d}T22:00:00Z", None, (float(i),), label)


def test_the_guard_series_starts_at_the_blessed_baseline_with_its_runs_first() -> None:
    prior = [_night(i) for i in range(1, 8)]
    pts = guard_points(
        prior, (9.0, 9.5), window=30, now="2026-12-01T22:00:00Z",
        blessed_at="2026-11-04T22:00:00Z", blessed_values=[4.0, 4.1],
    )  # fmt: skip
    assert [(p.session_id, p.label, p.values) for p in pts] == [
        (0, "baseline", (4.0, 4.1)),
        (5, "", (5.0,)), (6, "", (6.0,)), (7, "", (7.0,)),
        (-1, "tonight", (9.0, 9.5)),
    ]  # fmt: skip
    assert pts[0].started == "2026-11-04T22:00:00Z" and pts[-1].started == "2026-12-01T22:00:00Z"
    # A blessed baseline without this metric: only the nights after it, no baseline point.
    pts = guard_points(prior, (9.0,), window=30, now="n", blessed_at="2026-11-06T22:00:00Z")
    assert [p.session_id for p in pts] == [7, -1]


def test_without_a_blessed_baseline_the_series_starts_at_the_last_saved_one() -> None:
    prior = [_night(1), _night(2, "baseline"), _night(3), _night(4, "baseline"), _night(5)]
    pts = guard_points(prior, (6.0,), window=30, now="n")
    assert [(p.session_id, p.label) for p in pts] == [(4, "baseline"), (5, ""), (-1, "tonight")]
    # Never saved: every stored night.
    pts = guard_points([_night(i) for i in range(1, 4)], (6.0,), window=30, now="n")
    assert [p.session_id for p in pts] == [1, 2, 3, -1]


def test_the_window_keeps_the_newest_nights_and_the_baseline_point() -> None:
    prior = [_night(i) for i in range(1, 21)]
    pts = guard_points(prior, (9.0,), window=5, now="n")
    assert [p.session_id for p in pts] == [17, 18, 19, 20, -1]
    pts = guard_points(
        prior, (9.0,), window=5, now="n", blessed_at="2026-11-01T22:00:00Z", blessed_values=[1.0]
    )
    assert [p.session_id for p in pts] == [0, 18, 19, 20, -1]
    # A window of one: tonight only (and the baseline's point, which is never dropped).
    assert [p.session_id for p in guard_points(prior, (9.0,), window=1, now="n")] == [-1]
    pts = guard_points(prior, (9.0,), window=1, now="n", blessed_at="", blessed_values=[1.0])
    assert [p.session_id for p in pts] == [0, -1]
