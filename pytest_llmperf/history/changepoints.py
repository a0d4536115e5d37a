"""Series of nightly results and the change points in them (pure; Apache Otava does the math).

A series is one metric of one case under one environment fingerprint, one point per session.
A point's level is the mean of that session's runs (the run is the statistical unit; the
session's mean is what Otava's E-divisive split and t-test merge see, one value per night as
in MongoDB's and Otava's own use). Change points come from ``otava.analysis.
compute_change_points`` (Fleming et al., "Hunter", ICPE 2023), imported only when a series is
analysed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_llmperf.history.model import PARTIAL_FIELDS
from pytest_llmperf.verdicts.fingerprint import FIELDS, Fingerprint

#: Otava's defaults for a nightly series: p < 0.001 in the merge step, windows of 50 points.
MAX_PVALUE: Final[float] = 0.001
WINDOW: Final[int] = 50
#: Metrics analysed unless asked otherwise (the headline throughput and tail latency).
DEFAULT_METRICS: Final[tuple[str, ...]] = ("total_token_throughput", "p99_e2el_ms")


@dataclass(frozen=True)
class Point:
    """One session's runs of one series."""

    session_id: int
    started: str
    commit: str | None
    values: tuple[float, ...]
    label: str = ""  # "baseline" for a blessed baseline's runs

    @property
    def level(self) -> float:
        return math.fsum(self.values) / len(self.values) if self.values else math.nan

    @property
    def night(self) -> str:
        """How a message names this point: date, and the short commit when known."""
        text = self.started[:16].replace("T", " ")
        if self.commit:
            text += f" ({self.commit[:10]})"
        if self.label:
            text += f" [{self.label}]"
        return text


@dataclass(frozen=True)
class ChangePoint:
    """A shift between ``points[index - 1]`` and ``points[index]``: the level of the segment
    before against the segment after (means of their sessions), Otava's t-test p-value."""

    index: int
    before: Point
    after: Point
    mean_before: float
    mean_after: float
    pvalue: float
    direction: str

    @property
    def change(self) -> float:
        """Relative change of the level, after/before - 1."""
        return self.mean_after / self.mean_before - 1 if self.mean_before else math.nan

    @property
    def worse(self) -> bool:
        if self.direction == "higher":
            return self.change < 0
        if self.direction == "lower":
            return self.change > 0
        return False

    def describe(self) -> str:
        kind = "worse" if self.worse else "better"
        return (
            f"{self.change:+.1%} ({kind}) between {self.before.night} and {self.after.night}: "
            f"{self.mean_before:,.4g} -> {self.mean_after:,.4g}, p={self.pvalue:.2g}"
        )


@dataclass(frozen=True)
class Series:
    case_id: str
    metric: str
    fingerprint_id: str
    direction: str
    points: tuple[Point, ...]
    fingerprint: Mapping[str, Any] = field(default_factory=dict, hash=False)


def detect(
    points: Sequence[Point],
    direction: str,
    *,
    max_pvalue: float = MAX_PVALUE,
    min_magnitude: float = 0.0,
    window: int = WINDOW,
) -> list[ChangePoint]:
    """Otava's change points of the sessions' levels, oldest first."""
    levels = [p.level for p in points]
    if len(levels) < 3 or any(not math.isfinite(v) for v in levels):
        return []
    try:
        from otava.analysis import compute_change_points
    except ImportError:
        from pytest_llmperf.history.model import HistoryError

        raise HistoryError(
            "change points need Apache Otava: pip install --no-deps 'apache-otava>=0.8' "
            "(its own pins would downgrade numpy; otava.analysis needs only numpy and scipy)"
        ) from None

    found, _weak = compute_change_points(
        levels, window_len=max(window, 3), max_pvalue=max_pvalue, min_magnitude=min_magnitude
    )
    out = []
    for cp in sorted(found, key=lambda c: int(c.index)):
        i = int(cp.index)
        if not 0 < i < len(points):
            continue
        out.append(
            ChangePoint(
                index=i,
                before=points[i - 1],
                after=points[i],
                mean_before=float(cp.stats.mean_1),
                mean_after=float(cp.stats.mean_2),
                pvalue=float(cp.stats.pvalue),
                direction=direction,
            )
        )
    return out


# ----------------------------------------------------------------------------- series


def series_key_fingerprint(fp: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """The fingerprint id a series is keyed by: the stored fingerprint with the fields the user
    declared ignorable blanked (a nightly vLLM build, say)."""
    skip = set(ignore)
    unknown = skip - set(FIELDS)
    if unknown:
        raise ValueError(
            f"unknown fingerprint field(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}"
        )
    blank = {k: v for k, v in fp.items() if k in FIELDS}
    for k in skip:
        blank[k] = (
            0
            if k == "accelerator_count"
            else (
                []
                if k == "launch_argv"
                else ({} if k == "launch_env" else (None if k != "platform" else "any"))
            )
        )
    return Fingerprint.from_dict(blank).id()


def build_series(
    rows: Iterable[Mapping[str, Any]],
    fingerprints: Mapping[str, Mapping[str, Any]],
    *,
    metrics: Sequence[str] | None = DEFAULT_METRICS,
    ignore: Iterable[str] = (),
    direction_of: Any = None,
) -> list[Series]:
    """Series from ``HistoryStore.values()`` rows. Cases imported from a results.json know only
    part of their fingerprint: they join the one full series of the same case and metric whose
    known fields agree, else form a series of their own."""
    if direction_of is None:
        # A trend's "worse" is which way is better: a falling success rate is worse (the
        # comparisons' "exact", an absolute check, would call every change better).
        from pytest_llmperf.metrics.directions import better as direction_of
    ignore = tuple(ignore)
    key_of: dict[str, str] = {}
    for fid, fp in fingerprints.items():
        key_of[fid] = series_key_fingerprint(fp, ignore)
    grouped, partial = _group_rows(rows, key_of, metrics)
    full_fp = _join_partial(grouped, partial, fingerprints, key_of)
    out = []
    for (case_id, metric, key), sessions in sorted(grouped.items()):
        try:
            direction = direction_of(metric)
        except ValueError:
            continue
        points = tuple(
            Point(sid, started, commit, tuple(vals), "baseline" if saved else "")
            for sid, (started, commit, vals, saved) in sorted(
                sessions.items(), key=lambda kv: (kv[1][0], kv[0])
            )
        )
        out.append(Series(case_id, metric, key, direction, points, full_fp.get(key, {})))
    return out


#: (case_id, metric, series key) -> session id -> [started, commit, values, baseline saved]
_Grouped = dict[tuple[str, str, str], dict[int, list[Any]]]


def _group_rows(
    rows: Iterable[Mapping[str, Any]], key_of: Mapping[str, str], metrics: Sequence[str] | None
) -> tuple[_Grouped, _Grouped]:
    """The wanted metrics' values per case, metric and series key, per session: those of full
    fingerprints (keyed by their series key) and those of partial ones (by their own id)."""
    grouped: _Grouped = {}
    partial: _Grouped = {}
    for r in rows:
        metric = r["metric"]
        if metrics is not None and metric not in metrics:
            continue
        target = partial if r["partial_fingerprint"] else grouped
        key = (
            r["case_id"],
            metric,
            r["fingerprint_id"] if r["partial_fingerprint"] else key_of[r["fingerprint_id"]],
        )
        slot = target.setdefault(key, {}).setdefault(
            r["session_id"], [r["started"], r["commit_sha"], [], bool(r.get("baseline_saved"))]
        )
        slot[2].append(float(r["value"]))
    return grouped, partial


def _join_partial(
    grouped: _Grouped,
    partial: _Grouped,
    fingerprints: Mapping[str, Mapping[str, Any]],
    key_of: Mapping[str, str],
) -> dict[str, Mapping[str, Any]]:
    """Move each partial series into ``grouped``: into the one full series of its case and
    metric whose known fields agree, else as a series of its own. Returns the fingerprint of
    every series key (a partial one's own where it stayed apart)."""
    full_fp = {key_of[f]: fingerprints[f] for f in fingerprints}
    for (case_id, metric, pfid), sessions in partial.items():
        known = {k: fingerprints[pfid].get(k) for k in PARTIAL_FIELDS}
        known = {k: v for k, v in known.items() if v not in (None, 0, "unknown")}
        matches = [
            key
            for key in grouped
            if key[0] == case_id
            and key[1] == metric
            and all(full_fp.get(key[2], {}).get(k) == v for k, v in known.items())
        ]
        target_key = matches[0] if len(matches) == 1 else (case_id, metric, pfid)
        grouped.setdefault(target_key, {}).update(sessions)
        if len(matches) != 1:
            full_fp.setdefault(pfid, fingerprints[pfid])
    return full_fp
