"""The history side of one pytest session: remember each case's fingerprint and verdicts while
the items run, run the optional drift guard in the item, and at session end write the session
into the store (one transaction), analyse the series and add a History section to the report.

Created by the plugin only with ``--llmperf``; SQLAlchemy and Otava are imported when they are
first needed, never at plugin import.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmperf.config.history import HistorySettings
from pytest_llmperf.history.model import (
    CaseEntry,
    HistoryError,
    Redactor,
    SessionRecord,
    clean_runs,
    iso,
    partial_fingerprint,
)

#: Where the default store lives: this file in the folder that holds the report directory.
DEFAULT_FILE = "llmperf-history.sqlite"
URL_ENV = "LLMPERF_HISTORY_URL"
COMMIT_ENV = "LLMPERF_COMMIT"
BRANCH_ENV = "LLMPERF_BRANCH"
HISTORY_DIR = "history"
_LATER = (
    "results.json still holds this session; add it later with: "
    "python -m pytest_llmperf history import <report dir>/results.json"
)


def default_store(report_dir: Path) -> Path:
    """``llmperf-history.sqlite`` beside the report directory (``.llmperf`` by default, so the
    store is ``./llmperf-history.sqlite`` in pytest's rootdir): it outlives a report folder that
    CI wipes or uploads each run."""
    return Path(report_dir).resolve().parent / DEFAULT_FILE


def store_target(
    settings: HistorySettings, rootdir: Path, report_dir: Path, option: str | None = None
) -> str:
    """Which store: the command-line option, else $LLMPERF_HISTORY_URL (a URL with a password
    belongs in the environment, not in a committed config), else ``[history] store``, else the
    default file. A relative path is relative to the rootdir."""
    raw = option or os.environ.get(URL_ENV) or settings.store
    if not raw:
        return str(default_store(report_dir))
    if "://" in raw:
        return raw
    path = Path(raw).expanduser()
    return str(path if path.is_absolute() else Path(rootdir) / path)


def commit_info(rootdir: Path) -> dict[str, Any]:
    """The commit under test: $LLMPERF_COMMIT / $LLMPERF_BRANCH when set (CI can pass its own),
    else pytest-benchmark's git/hg probe of the rootdir."""
    commit, branch = os.environ.get(COMMIT_ENV), os.environ.get(BRANCH_ENV)
    info: dict[str, Any] = {}
    if not commit:
        try:
            from pytest_benchmark.utils import get_commit_info

            cwd = os.getcwd()
            try:
                os.chdir(rootdir)
                info = dict(get_commit_info())
            finally:
                os.chdir(cwd)
        except Exception:  # no VCS, no git binary: the commit is simply unknown
            info = {}
    return {
        "commit": commit or info.get("id") or None,
        "branch": branch or info.get("branch") or None,
        "dirty": None if commit else info.get("dirty"),
    }


def history_settings(config: Any) -> HistorySettings:
    """The ``[history]`` settings of a ``PerfConfig`` (the defaults when it has none)."""
    settings = getattr(config, "history", None)
    return settings if isinstance(settings, HistorySettings) else HistorySettings()


def _verdict_json(v: Any) -> dict[str, Any]:
    keep = ("metric", "verdict", "ratio", "ci_low", "ci_high", "p", "p_adj", "n_baseline",
            "n_current", "tolerance", "message")  # fmt: skip
    d = asdict(v) if hasattr(v, "__dataclass_fields__") else dict(v)
    out = {k: d.get(k) for k in keep}
    out["verdict"] = str(getattr(out["verdict"], "value", out["verdict"]))
    return out


@dataclass
class HistorySession:
    settings: HistorySettings
    target: str
    rootdir: Path
    report_dir: Path
    suite: str
    api_key: str | None = None
    guard: bool = False
    record: bool = True
    fingerprints: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    drift: list[Any] = field(default_factory=list)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    _prior: list[Any] | None = None
    _fps: dict[str, Any] | None = None
    _fingerprinter: Any = None
    _baselines: dict[Path, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        from pytest_llmperf.history.store import display_url, resolve_url

        return display_url(resolve_url(self.target))

    def redactor(self) -> Redactor:
        return Redactor.from_environ(os.environ, [self.api_key])

    # -- in the item ------------------------------------------------------------------------
    def fingerprint(self, engine: Any, case: Any, result: Any) -> Any:
        """The case's fingerprint as the baseline side takes it (None if it cannot be taken:
        the case is then stored with the part of it results.json knows)."""
        from pytest_llmperf.session.baselines import BaselineSession

        if self._fingerprinter is None:
            self._fingerprinter = BaselineSession(
                engine.config.baseline_dir, self.suite, save=False, compare=False
            )
        try:
            return engine.fingerprint(self._fingerprinter, case, result)
        except Exception:  # the history must never fail a test; it records what it can
            return None

    def blessed(self, check: Any) -> Any:
        """The baseline a comparison used (``CaseCheck.baseline_path``), loaded once."""
        path = getattr(check, "baseline_path", None)
        if path is None:
            return None
        if path not in self._baselines:
            from pytest_llmperf.verdicts.baseline import BaselineError, load

            try:
                self._baselines[path] = load(path)
            except BaselineError:
                self._baselines[path] = None
        return self._baselines[path]

    def remember(self, case_id: str, fingerprint: Any, check: Any = None) -> None:
        self.fingerprints[case_id] = fingerprint
        if check is not None:
            self.checks[case_id] = check

    def _load_prior(self) -> tuple[list[Any], dict[str, Any]]:
        if self._prior is None:
            from pytest_llmperf.history.store import HistoryStore

            path_like = "://" not in self.target
            if path_like and not Path(self.target).exists():
                self._prior, self._fps = [], {}
            else:
                with HistoryStore(self.target) as store:
                    self._prior = store.values(metrics=self.settings.metrics)
                    self._fps = store.fingerprints()
        return self._prior, self._fps or {}

    def check_drift(
        self,
        case_id: str,
        fingerprint: Any,
        runs: Sequence[Mapping[str, float]],
        check: Any = None,
    ) -> list[Any]:
        """The drift guard for one finished case: its series under this fingerprint since the
        blessed baseline (the one tonight's comparison ``check`` used, its raw runs as the
        first point; without one, since the newest stored session that saved a baseline,
        else the last ``window`` sessions), tonight's runs last. Returns the DriftVerdicts
        (one per guarded metric)."""
        baseline = self.blessed(check)
        from pytest_llmperf.history.drift import check_drift, guard_points

        series = self._series_under(case_id, fingerprint)
        blessed_at = None
        blessed_case = None
        if baseline is not None and case_id in baseline.cases:
            blessed_at = iso(baseline.created) if baseline.created else ""
            blessed_case = baseline.cases[case_id]
        out = []
        tonight = clean_runs(runs)
        for metric in self.settings.metrics:
            vals = tuple(r[metric] for r in tonight if metric in r)
            direction = _guarded_direction(metric)
            if not vals or direction is None:
                continue
            ref = blessed_case.metrics.get(metric) if blessed_case is not None else None
            points = guard_points(
                list(series[metric].points) if metric in series else [],
                vals,
                window=self.settings.window,
                now=iso(None),
                blessed_at=blessed_at,
                blessed_values=ref.values if ref is not None else (),
            )
            out.append(
                check_drift(
                    case_id,
                    metric,
                    direction,
                    points,
                    tolerance=self.settings.tolerance,
                    max_pvalue=self.settings.max_pvalue,
                    min_points=self.settings.min_points,
                )
            )
        self.drift.extend(out)
        return out

    def _series_under(self, case_id: str, fingerprint: Any) -> dict[str, Any]:
        """The case's stored series (metric -> Series) under ``fingerprint`` as the store keys
        it: redacted as ``session_record`` stores it, less the ignored fields."""
        from pytest_llmperf.history.changepoints import build_series, series_key_fingerprint

        rows, fps = self._load_prior()
        rows = [r for r in rows if r["case_id"] == case_id]
        stored_as = self.redactor().fingerprint(fingerprint)
        key = series_key_fingerprint(stored_as.to_dict(), self.settings.ignore_fields)
        return {
            s.metric: s
            for s in build_series(
                rows, fps, metrics=self.settings.metrics, ignore=self.settings.ignore_fields
            )
            if s.fingerprint_id == key
        }

    # -- session end ------------------------------------------------------------------------
    def session_record(
        self,
        results: Sequence[Any],
        environment: Mapping[str, Any],
        *,
        started: float | None = None,
        baseline_saved: bool = False,
    ) -> SessionRecord:
        from pytest_llmperf.report.results_json import gate_json
        from pytest_llmperf.verdicts.case_result import with_status

        info = commit_info(self.rootdir)
        entries = []
        for c in with_status(list(results)):
            fp = self.fingerprints.get(c.case_id)
            check = self.checks.get(c.case_id)
            entries.append(
                CaseEntry(
                    case_id=c.case_id,
                    model=c.model,
                    workload=c.workload,
                    concurrency=c.concurrency,
                    runs=clean_runs(c.runs),
                    fingerprint=fp or partial_fingerprint(environment, c.environment),
                    passed=c.passed,
                    status=c.status,
                    client_bound=c.client_bound,
                    verdict=getattr(check, "status", None),
                    verdicts=tuple(_verdict_json(v) for v in getattr(check, "verdicts", ())),
                    gates=tuple(gate_json(g) for g in c.gates),
                    partial_fingerprint=fp is None,
                )
            )
        return SessionRecord(
            uid=self.uid,
            started=iso(started),
            finished=iso(None),
            cases=tuple(entries),
            suite=self.suite,
            commit=info["commit"],
            branch=info["branch"],
            dirty=info["dirty"],
            host=str(environment.get("host") or "") or None,
            plugin_version=str(environment.get("plugin_version") or "") or None,
            source="pytest",
            complete=True,
            environment=dict(environment),
            baseline_saved=baseline_saved,
        ).redacted(self.redactor())

    def finish(
        self,
        results: Sequence[Any],
        environment: Mapping[str, Any],
        *,
        started: float | None = None,
        baseline_saved: bool = False,
        html_path: Path | None = None,
        insert_section: Callable[[Path, str, str], Any] | None = None,
    ) -> list[str]:
        """Record (when enabled), analyse, plot; lines for the terminal summary. A store that
        cannot be written is reported, never raised: results.json still holds the session and
        ``history import`` can add it later."""
        lines: list[str] = []
        from pytest_llmperf.history.store import HistoryStore

        try:
            store = HistoryStore(self.target)
        except HistoryError as exc:
            return [f"history NOT recorded: {exc}. {_LATER}"]
        with store:
            if self.record and results:
                try:
                    rec = store.record(
                        self.session_record(
                            results, environment, started=started, baseline_saved=baseline_saved
                        )
                    )
                except HistoryError as exc:
                    return [f"history NOT recorded: {exc}. {_LATER}"]
                lines.append(
                    f"history: session #{rec.session_id} recorded in {store.display} "
                    f"({len(results)} cases)"
                )
            try:
                lines += self._show(store, results, html_path, insert_section)
            except Exception as exc:  # the analysis must not cost the session its results
                lines.append(f"history analysis failed ({type(exc).__name__}: {exc})")
        return lines

    def _show(
        self,
        store: Any,
        results: Sequence[Any],
        html_path: Path | None,
        insert_section: Callable[[Path, str, str], Any] | None,
    ) -> list[str]:
        from pytest_llmperf.history.changepoints import build_series
        from pytest_llmperf.history.view import analyse, grouped, html_section, write_plots

        series = build_series(
            store.values(metrics=self.settings.metrics, case_ids={c.case_id for c in results}),
            store.fingerprints(),
            metrics=self.settings.metrics,
            ignore=self.settings.ignore_fields,
        )
        analysed = analyse(series, max_pvalue=self.settings.max_pvalue)
        n_cp = sum(len(a.change_points) for a in analysed)
        worse = [
            f"{a.series.case_id} {a.series.metric}: {cp.describe()}"
            for a in analysed
            for cp in a.change_points
            if cp.worse
        ]
        lines = [f"history: {len(analysed)} series of this session's cases, {n_cp} change point(s)"]
        lines += [f"  worse: {w}" for w in worse[-10:]]
        pngs: dict[tuple[str, str], bytes] = {}
        if self.settings.plots and analysed:
            paths = write_plots(analysed, self.report_dir / HISTORY_DIR)
            pngs = {k: p.read_bytes() for k, p in paths.items()}
            if paths:
                lines.append(f"history plots: {self.report_dir / HISTORY_DIR}")
        if html_path is not None and insert_section is not None and Path(html_path).exists():
            body = html_section(
                [a for g in grouped(analysed).values() for a in g],
                pngs,
                store=store.display,
                drift=self.drift,
            )
            insert_section(Path(html_path), "History", body)
        return lines


def _guarded_direction(metric: str) -> str | None:
    """Which way is better for ``metric``, or None when the drift guard does not judge it (an
    unknown metric, or an exact one such as the success rate)."""
    from pytest_llmperf.verdicts.baseline import metric_direction

    try:
        direction = metric_direction(metric)
    except ValueError:
        return None
    return None if direction == "exact" else direction
