"""Stored baselines inside a pytest session: compare each case as it finishes, save at the end.

One ``BaselineSession`` per pytest session. Each perf test item calls ``check`` right after its
case ran: a REGRESSION fails that item (so JUnit and CI name the case), and the other verdicts
are reported. The gate cannot wait for the later cases, so it corrects with Bonferroni over the
whole expected family (expected cases x tested metrics): Holm's first step, valid for every
item. ``finish`` then applies Holm (and Benjamini-Hochberg, for the report) over all p-values
of the session, writes ``comparison.json`` and, with ``save``, the baseline files.

Only a few key metrics are compared: every extra test costs power under the correction (45
metrics x 20 cases at n = 5 would detect almost nothing). Every metric's raw per-run values
are still saved.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Protocol

from pytest_llmperf.core.atomic import write_json_atomic
from pytest_llmperf.plan.platforms import Accelerators
from pytest_llmperf.verdicts.baseline import (
    CASE_FIELDS,
    Baseline,
    BaselineError,
    comparisons,
    find,
    from_runs,
    judge,
    load,
    metric_direction,
    save_run,
)
from pytest_llmperf.verdicts.compare import (
    DEFAULT_TOLERANCE,
    CaseComparison,
    Outcome,
    Verdict,
    format_table,
)
from pytest_llmperf.verdicts.fingerprint import FIELDS, Fingerprint, gather

KEY_METRICS: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "output_throughput",
    "p99_ttft_ms",
    "p99_e2el_ms",
    "success_rate",
)
COMPARISON_FILE: Final[str] = "comparison.json"
MODEL_PLACEHOLDER: Final[str] = "<model>"
PYTHON_PLACEHOLDER: Final[str] = "<python>"
NO_BASELINE: Final[str] = "NO BASELINE"
NOT_COMPARED: Final[str] = "NOT COMPARED"
# Worst first: a case's status is the worst of its metrics' verdicts.
_SEVERITY: Final[tuple[str, ...]] = (
    Outcome.REGRESSION.value,
    Outcome.NOT_COMPARABLE.value,
    NO_BASELINE,
    Outcome.INCONCLUSIVE.value,
    Outcome.IMPROVEMENT.value,
    Outcome.NO_CHANGE.value,
    NOT_COMPARED,
)


class _CaseLike(Protocol):
    """What ``fingerprint_for`` reads of a configured case (``config.PerfCase``)."""

    @property
    def concurrency(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def warmup_requests(self) -> int: ...
    @property
    def workload(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class CaseCheck:
    """What ``check`` found for one case. ``failure`` is the message to fail the test item
    with, or None; ``status`` is the worst verdict (or NO BASELINE / NOT COMPARED)."""

    case_id: str
    status: str
    verdicts: tuple[Verdict, ...] = ()
    failure: str | None = None
    message: str = ""
    baseline_path: Path | None = None

    @property
    def regressed(self) -> bool:
        return self.status == Outcome.REGRESSION.value


@dataclass
class _Entry:
    result: Any  # report.CaseResult
    fingerprint: Fingerprint
    check: CaseCheck
    items: list[CaseComparison | Verdict] = field(default_factory=list)


def environment_part(fp: Fingerprint) -> Fingerprint:
    """The fields one baseline file shares (hardware, software): the case fields blanked."""
    return replace(
        fp,
        model_name=None,
        model_revision=None,
        weights_sha256=None,
        launch_argv=(),
        launch_env=(),
        workload=None,
    )


def case_part(fp: Fingerprint) -> Fingerprint:
    """The fields that differ per case of a suite (model, launch plan, workload)."""
    return Fingerprint(platform=fp.platform, **{k: getattr(fp, k) for k in CASE_FIELDS})


def portable_argv(
    argv: Sequence[str], model_path: str | None, launcher: Sequence[str] = ()
) -> tuple[str, ...]:
    """The launch command as a baseline records it: where the weights and this Python live
    differ between a laptop and the CI runner, and the weights hash identifies the model, so
    the model path and this interpreter become placeholders; everything else is kept."""
    out = []
    for i, arg in enumerate((*launcher, *argv)):
        if model_path and arg == model_path:
            out.append(MODEL_PLACEHOLDER)
        elif i == 0 and launcher and arg == sys.executable:
            out.append(PYTHON_PLACEHOLDER)
        else:
            out.append(arg)
    return tuple(out)


def _tested(metrics: Iterable[str]) -> int:
    """Metrics that get a statistical test (the exact ones are absolute checks)."""
    n = 0
    for m in metrics:
        try:
            n += metric_direction(m) != "exact"
        except ValueError:
            n += 1
    return n


def _known_direction(name: str) -> bool:
    try:
        metric_direction(name)
    except ValueError:
        return False
    return True


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Outcome):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def verdict_json(v: Verdict) -> dict[str, Any]:
    return {k: _json_safe(x) for k, x in asdict(v).items()}


class BaselineSession:
    """The baseline side of one pytest session (see the module docstring).

    ``expected_cases`` is how many cases the session will check (the selected matrix items):
    Bonferroni's m for the in-item gate is ``expected_cases x tested metrics``.
    """

    def __init__(
        self,
        baseline_dir: str | os.PathLike[str],
        suite: str,
        *,
        save: bool,
        compare: bool,
        strict: bool = False,
        ignore: Sequence[str] = (),
        tolerances: Mapping[str, float] | None = None,
        metrics: Sequence[str] = KEY_METRICS,
        expected_cases: int = 1,
        default_tolerance: float = DEFAULT_TOLERANCE,
        alpha: float = 0.05,
        hash_weights: bool = True,
    ) -> None:
        unknown = sorted(set(ignore) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"--llmperf-ignore-field {', '.join(unknown)}: not a fingerprint field; "
                f"known fields: {', '.join(FIELDS)}"
            )
        if not metrics:
            raise ValueError("compare at least one metric (e.g. total_token_throughput)")
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha={alpha} must be between 0 and 0.5 (0.05 is usual)")
        for name, tol in {**(tolerances or {}), "default": default_tolerance}.items():
            if not (math.isfinite(tol) and tol >= 0.0):
                raise ValueError(f"tolerance for {name} is {tol}; it must be a fraction >= 0")
        self.baseline_dir = Path(baseline_dir)
        self.suite = suite
        self.save = save
        self.compare = compare
        self.strict = strict
        self.ignore = tuple(ignore)
        self.tolerances = dict(tolerances or {})
        self.default_tolerance = default_tolerance
        self.metrics = tuple(metrics)
        self.expected_cases = max(1, int(expected_cases))
        self.alpha = alpha
        self.hash_weights = hash_weights
        self._entries: dict[str, _Entry] = {}
        self._stored: dict[Path, Baseline] = {}
        self.saved: list[Path] = []
        self.late_regressions: list[Verdict] = []

    @property
    def active(self) -> bool:
        return self.save or self.compare

    @property
    def family_size(self) -> int:
        """Bonferroni's m for the in-item gate."""
        return max(self.expected_cases, len(self._entries)) * max(1, _tested(self.metrics))

    # -- fingerprint ------------------------------------------------------------------------
    def fingerprint_for(
        self,
        case_result: Any,
        resolved_model: Any | None = None,
        accelerators: Accelerators | None = None,
        vllm_version: str | None = None,
        *,
        case: _CaseLike | None = None,
        weights_cache: Path | None = None,
    ) -> Fingerprint:
        """The environment and case fingerprint of a finished case.

        ``resolved_model`` is the engine's ``ResolvedModel`` (launch plan, server spec, model
        path; None for an external endpoint); ``case`` the configured ``PerfCase`` (the
        workload definition, concurrency, request counts); ``vllm_version`` the version the
        server runs when it is not the installed one (``--llmperf-vllm-version``).
        """
        env = dict(getattr(case_result, "environment", {}) or {})
        argv: Sequence[str] = tuple(env.get("launch_argv") or ())
        launch_env: Mapping[str, str] = dict(env.get("launch_env") or {})
        launcher: Sequence[str] = ()
        model_path: str | None = None
        model_name: str = str(getattr(case_result, "model", "") or env.get("model") or "")
        if resolved_model is not None:
            plan = getattr(resolved_model, "plan", None)
            if plan is not None:
                argv, launch_env = tuple(plan.args), dict(plan.env)
            server = getattr(resolved_model, "server", None)
            if server is not None:
                launcher = tuple(server.launcher)
            model_path = getattr(resolved_model, "model_path", None)
            spec = getattr(resolved_model, "spec", None)
            if getattr(spec, "tiny", None):
                model_name = f"tiny:{spec.tiny}"  # type: ignore[union-attr]
            elif getattr(spec, "profile", None) and model_path:
                model_name = model_path  # the hub id the profile serves
        local = model_path is not None and Path(model_path).is_dir()
        return gather(
            model_name=model_name or None,
            model_dir=model_path if local and self.hash_weights else None,
            launch_argv=portable_argv(argv, model_path, launcher),
            launch_env=launch_env,
            workload=self.workload_definition(case_result, case),
            accelerators=accelerators,
            weights_cache=weights_cache,
            vllm_version=vllm_version,
        )

    @staticmethod
    def workload_definition(case_result: Any, case: _CaseLike | None = None) -> dict[str, Any]:
        """What was sent: the workload's shape, the concurrency and the requests per run."""
        out: dict[str, Any] = {
            "name": getattr(case_result, "workload", None),
            "concurrency": getattr(case_result, "concurrency", None),
        }
        if case is not None:
            w = case.workload
            out.update(
                concurrency=case.concurrency,
                requests=case.requests,
                warmup_requests=case.warmup_requests,
                input_tokens=getattr(w, "input_tokens", None),
                output_tokens=getattr(w, "output_tokens", None),
                images_per_request=getattr(w, "images_per_request", 0),
                endpoint=getattr(w, "endpoint", None),
                preset=getattr(w, "preset", None),
            )
        return out

    # -- in the test item -------------------------------------------------------------------
    def check(self, case_result: Any, fingerprint: Fingerprint) -> CaseCheck:
        """Compare one finished case with the stored baseline and remember it for ``finish``.
        Never raises for a comparison problem: the answer is in ``failure`` and ``message``."""
        case_id = str(case_result.case_id)
        if not self.compare:
            check = CaseCheck(case_id, NOT_COMPARED, message="not compared (no --llmperf-compare)")
            self._entries[case_id] = _Entry(case_result, fingerprint, check)
            return check
        items: list[CaseComparison | Verdict] = []
        try:
            check, items = self._check(case_id, case_result, fingerprint)
        except (BaselineError, OSError) as exc:
            check = CaseCheck(
                case_id,
                Outcome.NOT_COMPARABLE.value,
                failure=f"{case_id}: cannot compare with the stored baseline: {exc}",
                message=str(exc),
            )
        self._entries[case_id] = _Entry(case_result, fingerprint, check, items)
        return check

    def _current(self, case_id: str, case_result: Any, fp: Fingerprint) -> Baseline:
        runs = [
            {k: float(v) for k, v in run.items() if _known_direction(k)} for run in case_result.runs
        ]
        return from_runs(
            self.suite,
            environment_part(fp),
            {case_id: runs},
            case_fingerprints={case_id: case_part(fp)},
        )

    def _load(self, path: Path) -> Baseline:
        if path not in self._stored:
            self._stored[path] = load(path)
        return self._stored[path]

    def _check(
        self, case_id: str, case_result: Any, fp: Fingerprint
    ) -> tuple[CaseCheck, list[CaseComparison | Verdict]]:
        if not case_result.runs:
            return CaseCheck(case_id, NOT_COMPARED, message="no finished run to compare"), []
        path = find(self.baseline_dir, self.suite, environment_part(fp), self.ignore)
        stored = None if path is None else self._load(path)
        if stored is None or case_id not in stored.cases:
            where = (
                f"in {path}"
                if path is not None
                else f"for suite {self.suite!r} in {self.baseline_dir}"
            )
            text = f"no baseline for this case {where}; run with --llmperf-save-baseline first"
            failure = f"{case_id}: {text} (--llmperf-strict)" if self.strict else None
            return CaseCheck(case_id, NO_BASELINE, (), failure, text, path), []
        items = comparisons(
            stored,
            self._current(case_id, case_result, fp),
            tolerances=self.tolerances,
            default_tolerance=self.default_tolerance,
            ignore=self.ignore,
            metrics=self.metrics,
        )
        verdicts = tuple(
            judge(items, alpha=self.alpha, correction="bonferroni", family_size=self.family_size)
        )
        return self._judged(case_id, verdicts, path), items

    def _judged(self, case_id: str, verdicts: Sequence[Verdict], path: Path | None) -> CaseCheck:
        outcomes = {v.verdict.value for v in verdicts}
        status = next((s for s in _SEVERITY if s in outcomes), NOT_COMPARED)
        bad = [v for v in verdicts if v.verdict is Outcome.REGRESSION]
        unsure = [
            v for v in verdicts if v.verdict in (Outcome.INCONCLUSIVE, Outcome.NOT_COMPARABLE)
        ]
        lines = list(dict.fromkeys(v.message for v in (bad or unsure)))
        failure = None
        if bad:
            failure = f"{case_id}: performance REGRESSION against the baseline {path}:\n" + (
                "\n".join(f"  {line}" for line in lines)
            )
        elif unsure and self.strict:
            failure = f"{case_id}: {status} against the baseline {path} (--llmperf-strict):\n" + (
                "\n".join(f"  {line}" for line in lines)
            )
        message = "; ".join(lines) if lines else f"{status} against {path}"
        return CaseCheck(case_id, status, tuple(verdicts), failure, message, path)

    # -- session end ------------------------------------------------------------------------
    def session_verdicts(self) -> tuple[list[Verdict], list[Verdict]]:
        """Every comparison of the session, Holm-corrected (gate family) and BH-corrected."""
        items = [i for e in self._entries.values() for i in e.items]
        return (
            judge(items, alpha=self.alpha, correction="holm"),
            judge(items, alpha=self.alpha, correction="bh"),
        )

    def finish(
        self, results: Sequence[Any] = (), report_dir: str | os.PathLike[str] | None = None
    ) -> list[str]:
        """Lines for the terminal summary. With ``save``, writes or updates the baseline files
        (atomically; cases not run now are kept); with a ``report_dir``, comparison.json."""
        lines: list[str] = []
        holm_v: list[Verdict] = []
        bh_v: list[Verdict] = []
        if self.compare:
            holm_v, bh_v = self.session_verdicts()
            lines += self._comparison_lines(holm_v, bh_v)
        checked = set(self._entries)
        skipped = [str(r.case_id) for r in results if str(getattr(r, "case_id", "")) not in checked]
        if self.save:
            lines += self._save(skipped)
        elif skipped and self.compare:
            lines.append(
                f"not compared (the case failed before the comparison): {', '.join(skipped)}"
            )
        if report_dir is not None:
            path = self.write_comparison(Path(report_dir), holm_v, bh_v, skipped)
            lines.append(f"comparison: {path}")
        return lines

    def _comparison_lines(self, holm_v: list[Verdict], bh_v: list[Verdict]) -> list[str]:
        lines = [
            f"baseline comparison (suite {self.suite!r}, {self.baseline_dir}; gate: Bonferroni "
            f"m={self.family_size} in each test, Holm over the session below, p_BH for reports)"
        ]
        if holm_v:
            lines += format_table(holm_v, bh=bh_v).splitlines()
        gate = {
            (v.case_id, v.metric): v.verdict
            for e in self._entries.values()
            for v in e.check.verdicts
        }
        self.late_regressions = [
            v
            for v in holm_v
            if v.verdict is Outcome.REGRESSION
            and gate.get((v.case_id, v.metric)) is not Outcome.REGRESSION
        ]
        for v in self.late_regressions:
            lines.append(
                f"REGRESSION after Holm over the session (the test's Bonferroni gate let it "
                f"pass): {v.case_id} {v.metric}"
            )
        for e in self._entries.values():
            if e.check.status == NO_BASELINE:
                lines.append(f"{NO_BASELINE}: {e.check.case_id}: {e.check.message}")
            elif e.check.status == Outcome.NOT_COMPARABLE.value and not e.check.verdicts:
                lines.append(f"NOT COMPARABLE: {e.check.case_id}: {e.check.message}")
        return lines

    def _save(self, skipped: Sequence[str]) -> list[str]:
        lines: list[str] = []
        groups: dict[str, list[tuple[str, _Entry]]] = {}
        for case_id, e in self._entries.items():
            if e.result.runs:
                groups.setdefault(environment_part(e.fingerprint).id(), []).append((case_id, e))
        for group in groups.values():
            env_fp = environment_part(group[0][1].fingerprint)
            runs = {
                cid: [
                    {k: float(v) for k, v in run.items() if _known_direction(k)}
                    for run in e.result.runs
                ]
                for cid, e in group
            }
            fps = {cid: case_part(e.fingerprint) for cid, e in group}
            try:
                path = save_run(
                    self.baseline_dir,
                    from_runs(self.suite, env_fp, runs, case_fingerprints=fps),
                )
            except (BaselineError, OSError, ValueError) as exc:
                lines.append(f"baseline NOT saved ({len(group)} cases): {exc}")
                continue
            self.saved.append(path)
            self._stored.pop(path, None)
            n_runs = sorted({len(e.result.runs) for _, e in group})
            lines.append(
                f"baseline saved: {path} ({len(group)} cases, "
                f"{'/'.join(map(str, n_runs))} runs each, every metric's raw values)"
            )
        if skipped:
            lines.append(
                "not saved as baseline (the case failed its gates or its server before the "
                f"comparison; a broken run must not become the reference): {', '.join(skipped)}"
            )
        if not groups and not skipped:
            lines.append("no baseline saved: no case finished")
        return lines

    def write_comparison(
        self,
        report_dir: Path,
        holm_v: Sequence[Verdict] = (),
        bh_v: Sequence[Verdict] = (),
        skipped: Sequence[str] = (),
    ) -> Path:
        """comparison.json: settings, each case's gate result, the session's verdicts."""
        bh = {(v.case_id, v.metric): v for v in bh_v}
        data = {
            "suite": self.suite,
            "baseline_dir": str(self.baseline_dir),
            "alpha": self.alpha,
            "strict": self.strict,
            "metrics": list(self.metrics),
            "tolerances": {"default": self.default_tolerance, **self.tolerances},
            "ignored_fields": list(self.ignore),
            "gate_correction": {"method": "bonferroni", "m": self.family_size},
            "cases": [
                {
                    "case_id": cid,
                    "status": e.check.status,
                    "failure": e.check.failure,
                    "message": e.check.message,
                    "baseline": _json_safe(e.check.baseline_path),
                    "fingerprint": e.fingerprint.to_dict(),
                    "fingerprint_id": environment_part(e.fingerprint).id(),
                    "gate_verdicts": [verdict_json(v) for v in e.check.verdicts],
                }
                for cid, e in self._entries.items()
            ],
            "session_verdicts": [
                {
                    **verdict_json(v),
                    "p_bh": _json_safe(getattr(bh.get((v.case_id, v.metric)), "p_adj", None)),
                    "verdict_bh": _json_safe(
                        getattr(bh.get((v.case_id, v.metric)), "verdict", None)
                    ),
                }
                for v in holm_v
            ],
            "not_checked": list(skipped),
            "saved": [str(p) for p in self.saved],
        }
        return write_json_atomic(report_dir / COMPARISON_FILE, _json_safe(data))
