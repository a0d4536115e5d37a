"""Stored baselines inside a pytest session: check each case as it finishes, judge the family
at the end, save.

One ``BaselineSession`` per pytest session. Each perf test item calls ``check`` right after its
case ran: what needs no statistics is decided there (NO BASELINE, NOT COMPARABLE, a success
rate below 100% is a REGRESSION), so the case's own item fails on it. The statistical verdicts
wait for the whole family: ``family`` tests every (case, gated metric) pair of the session at
once, one-sided in the harmful direction, with the run-to-run variance of each metric moderated
across the cases (``verdicts.compare.VariancePrior``) and Holm's correction over all of them
(family-wise error <= alpha). The plugin's final ``llmperf::baseline_comparison`` item fails
naming every case Holm convicts. Report metrics are compared too, corrected with
Benjamini-Hochberg among themselves, and shown, never gated.

Only a few metrics are gated: every extra test costs power under the correction (see
benchmarks/comparator_quality.py). Every metric's raw per-run values are still saved.

Size (about 760 lines), stated: it is one stateful object, ``BaselineSession``, whose
per-case ``check``, end-of-session ``family`` and ``save`` share the session's state (the
cases seen, their fingerprints, the pending verdicts); the pure pieces it uses live below it
(``verdicts.baseline``, ``verdicts.compare``, ``verdicts.fingerprint``). The next seam, when
it is split, is the publish/portable-argv part (``portable_argv``, published references).
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
    VARIANCES,
    CaseComparison,
    Outcome,
    Variance,
    Verdict,
    format_table,
)
from pytest_llmperf.verdicts.fingerprint import FIELDS, Fingerprint, context_diff, gather
from pytest_llmperf.workload.presets import DEFAULT_IMAGE_SIZE

#: Gated by default: one throughput (a statistical test) and the success rate (an absolute
#: check, no test, no cost in power). Each extra gated metric adds one test per case.
GATE_METRICS: Final[tuple[str, ...]] = ("output_throughput", "success_rate")
#: Compared and shown by default, corrected with Benjamini-Hochberg, never failing a test.
REPORT_METRICS: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "p99_ttft_ms",
    "p99_itl_ms",
    "p99_e2el_ms",
)
KEY_METRICS: Final[tuple[str, ...]] = (*GATE_METRICS, *REPORT_METRICS)
COMPARISON_FILE: Final[str] = "comparison.json"
PUBLISHED_DIR: Final[str] = "published"  # under the baseline folder: references of others
MODEL_PLACEHOLDER: Final[str] = "<model>"
PYTHON_PLACEHOLDER: Final[str] = "<python>"
NO_BASELINE: Final[str] = "NO BASELINE"
NOT_COMPARED: Final[str] = "NOT COMPARED"
PENDING: Final[str] = "PENDING"  # compared; the statistical verdict comes with the family
VERDICT_ITEM: Final[str] = "baseline_comparison"
# Worst first: a case's status is the worst of its metrics' verdicts.
_SEVERITY: Final[tuple[str, ...]] = (
    Outcome.REGRESSION.value,
    Outcome.NOT_COMPARABLE.value,
    NO_BASELINE,
    Outcome.INCONCLUSIVE.value,
    PENDING,
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
    context: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        return self.status == Outcome.REGRESSION.value


@dataclass
class _Entry:
    result: Any  # report.CaseResult
    fingerprint: Fingerprint
    check: CaseCheck
    items: list[CaseComparison | Verdict] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Family:
    """The session's statistical verdicts. ``gate``: every gated (case, metric), Holm over the
    tests among them; ``report``: the report metrics, Benjamini-Hochberg; ``convicted`` the
    gate REGRESSIONs by case, ``inconclusive``/``no_baseline``/``not_comparable`` the cases
    that were not judged PASS and why."""

    gate: tuple[Verdict, ...]
    report: tuple[Verdict, ...]
    tests: int
    convicted: Mapping[str, tuple[Verdict, ...]]
    inconclusive: Mapping[str, tuple[Verdict, ...]]
    no_baseline: Mapping[str, str]
    not_comparable: Mapping[str, str]
    context: Mapping[str, Mapping[str, tuple[Any, Any]]]

    @property
    def unsure(self) -> bool:
        return bool(self.inconclusive or self.no_baseline or self.not_comparable)


@dataclass(frozen=True, slots=True)
class FamilyCheck:
    """What the final verdict item does: fail with ``failure`` (None: pass) and record
    ``properties`` (JUnit) and ``lines`` (terminal)."""

    failure: str | None
    properties: tuple[tuple[str, str], ...]
    lines: tuple[str, ...]


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


def _changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())


def verdict_json(v: Verdict) -> dict[str, Any]:
    return {k: _json_safe(x) for k, x in asdict(v).items()}


class BaselineSession:
    """The baseline side of one pytest session (see the module docstring).

    ``metrics`` are gated, ``report_metrics`` compared and shown; ``variance`` is
    ``"moderated"`` (shared across the cases of a metric) or ``"welch"`` (each case alone);
    ``strict`` fails NO BASELINE, NOT COMPARABLE and INCONCLUSIVE too. ``expected_cases`` is
    how many cases the session will check (shown in the verdict's header).
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
        metrics: Sequence[str] = GATE_METRICS,
        expected_cases: int = 1,
        default_tolerance: float = DEFAULT_TOLERANCE,
        alpha: float = 0.05,
        hash_weights: bool = True,
        report_metrics: Sequence[str] = REPORT_METRICS,
        variance: Variance = "moderated",
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
        if variance not in VARIANCES:
            raise ValueError(f"variance {variance!r} must be one of {', '.join(VARIANCES)}")
        for name in (*metrics, *report_metrics):
            if not _known_direction(name):
                raise ValueError(
                    f"metric {name!r} has no known direction; compare metrics like "
                    f"{', '.join(KEY_METRICS)} (names ending in _ms, throughput or success_rate)"
                )
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
        self.report_metrics = tuple(m for m in report_metrics if m not in self.metrics)
        self.variance: Variance = variance
        self.expected_cases = max(1, int(expected_cases))
        self.alpha = alpha
        self.hash_weights = hash_weights
        self._entries: dict[str, _Entry] = {}
        self._stored: dict[Path, Baseline] = {}
        self.saved: list[Path] = []
        self._family: Family | None = None

    @property
    def active(self) -> bool:
        return self.save or self.compare

    @property
    def family_size(self) -> int:
        """The statistical tests the gate expects: cases x gated metrics that get a test."""
        return max(self.expected_cases, len(self._entries)) * _tested(self.metrics)

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
            size = tuple(getattr(w, "image_size", DEFAULT_IMAGE_SIZE))
            if out["images_per_request"] and size != DEFAULT_IMAGE_SIZE:
                out["image_size"] = list(size)  # only when set: older fingerprints stay valid
        return out

    # -- in the test item -------------------------------------------------------------------
    def check(
        self, case_result: Any, fingerprint: Fingerprint, stored: Baseline | None = None
    ) -> CaseCheck:
        """Compare one finished case with the stored baseline and remember it for ``family``.
        Never raises for a comparison problem: the answer is in ``failure`` and ``message``.
        ``failure`` is set only for what needs no statistics (an absolute check failed; with
        ``strict`` also NO BASELINE and NOT COMPARABLE); the statistical verdicts come from
        ``family`` once every case ran. ``stored`` is the baseline to compare with instead of
        the lookup in ``baseline_dir`` (a reference loaded by hand, the benchmark)."""
        case_id = str(case_result.case_id)
        self._family = None
        if not self.compare:
            check = CaseCheck(case_id, NOT_COMPARED, message="not compared (no --llmperf-compare)")
            self._entries[case_id] = _Entry(case_result, fingerprint, check)
            return check
        items: list[CaseComparison | Verdict] = []
        try:
            check, items = self._check(case_id, case_result, fingerprint, stored)
        except (BaselineError, OSError) as exc:
            text = f"cannot compare with the stored baseline: {exc}"
            check = CaseCheck(
                case_id,
                Outcome.NOT_COMPARABLE.value,
                failure=f"{case_id}: {text}",
                message=text,
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
        self, case_id: str, case_result: Any, fp: Fingerprint, given: Baseline | None = None
    ) -> tuple[CaseCheck, list[CaseComparison | Verdict]]:
        if not case_result.runs:
            return CaseCheck(case_id, NOT_COMPARED, message="no finished run to compare"), []
        if given is not None:
            path, stored = None, given
        else:
            path = find(self.baseline_dir, self.suite, environment_part(fp), self.ignore)
            if path is None or case_id not in self._load(path).cases:
                # A published reference (e.g. the study's MI325X figures) for this suite.
                published = find(
                    self.baseline_dir / PUBLISHED_DIR, self.suite, environment_part(fp), self.ignore
                )
                if published is not None and case_id in self._load(published).cases:
                    path = published
            stored = None if path is None else self._load(path)
        if stored is None or case_id not in stored.cases:
            where = (
                f"in {path}"
                if path is not None
                else f"for suite {self.suite!r} in {self.baseline_dir}"
            )
            text = f"no baseline for this case {where}; run with --llmperf-save-baseline first"
            failure = (
                f"{case_id}: {NO_BASELINE}: {text} (--llmperf-strict)" if self.strict else None
            )
            return CaseCheck(case_id, NO_BASELINE, (), failure, text, path), []
        items = comparisons(
            stored,
            self._current(case_id, case_result, fp),
            tolerances=self.tolerances,
            default_tolerance=self.default_tolerance,
            ignore=self.ignore,
            metrics=(*self.metrics, *self.report_metrics),
        )
        context = context_diff(stored.fingerprint, environment_part(fp), self.ignore)
        stored_case = stored.cases[case_id].fingerprint
        if stored_case is not None:
            context.update(context_diff(stored_case, case_part(fp), self.ignore))
        return self._judged(case_id, items, path, context), items

    def _judged(
        self,
        case_id: str,
        items: Sequence[CaseComparison | Verdict],
        path: Path | None,
        context: Mapping[str, tuple[Any, Any]],
    ) -> CaseCheck:
        """What the case's own item can decide: absolute checks and incomparability."""
        gated = [i for i in items if i.metric in self.metrics]
        ready = [i for i in gated if isinstance(i, Verdict)]
        absolute = [i for i in gated if isinstance(i, CaseComparison) and i.direction == "exact"]
        verdicts = (*ready, *judge(absolute, alpha=self.alpha))
        bad = [v for v in verdicts if v.verdict is Outcome.REGRESSION]
        incomparable = [v for v in verdicts if v.verdict is Outcome.NOT_COMPARABLE]
        pending = any(isinstance(i, CaseComparison) and i.direction != "exact" for i in gated)
        status = (
            Outcome.REGRESSION.value
            if bad
            else Outcome.NOT_COMPARABLE.value
            if incomparable
            else PENDING
            if pending
            else next(
                (o for o in _SEVERITY if o in {v.verdict.value for v in verdicts}), NOT_COMPARED
            )
        )
        lines = list(dict.fromkeys(v.message for v in (bad or incomparable)))
        failure = None
        if bad:
            failure = f"{case_id}: performance REGRESSION against the baseline {path}:\n" + (
                "\n".join(f"  {line}" for line in lines)
            )
        elif incomparable and self.strict:
            failure = (
                f"{case_id}: NOT COMPARABLE against the baseline {path} (--llmperf-strict):\n"
                + "\n".join(f"  {line}" for line in lines)
            )
        if lines:
            message = "; ".join(lines)
        elif pending:
            message = f"compared with {path}; judged with the session's family at the end"
        if path is not None and self._stored.get(path) is not None:
            if self._stored[path].source == "published":
                message = (
                    f"against a PUBLISHED reference ({path}), tolerance only: the source gives "
                    f"no per-run values; {message}"
                )
        else:
            message = f"{status} against {path}"
        return CaseCheck(case_id, status, tuple(verdicts), failure, message, path, context)

    # -- the family -------------------------------------------------------------------------
    def family(self) -> Family:
        """Every comparison of the session judged together (see the module docstring); the
        same answer until another case is checked."""
        if self._family is not None:
            return self._family
        gate_items = [
            i for e in self._entries.values() for i in e.items if i.metric in self.metrics
        ]
        report_items = [
            i for e in self._entries.values() for i in e.items if i.metric in self.report_metrics
        ]
        gate = judge(gate_items, alpha=self.alpha, correction="holm", variance=self.variance)
        report = judge(report_items, alpha=self.alpha, correction="bh", variance=self.variance)
        by_case: dict[str, list[Verdict]] = {}
        for v in gate:
            by_case.setdefault(v.case_id, []).append(v)
        convicted: dict[str, tuple[Verdict, ...]] = {}
        inconclusive: dict[str, tuple[Verdict, ...]] = {}
        no_baseline: dict[str, str] = {}
        not_comparable: dict[str, str] = {}
        for cid, e in self._entries.items():
            vs = by_case.get(cid, [])
            bad = tuple(v for v in vs if v.verdict is Outcome.REGRESSION)
            if bad:
                convicted[cid] = bad
            if e.check.status == NO_BASELINE:
                no_baseline[cid] = e.check.message
            nc = [v.message for v in vs if v.verdict is Outcome.NOT_COMPARABLE]
            if e.check.status == Outcome.NOT_COMPARABLE.value and not nc:
                nc = [e.check.message]
            if nc:
                not_comparable[cid] = "; ".join(dict.fromkeys(nc))
            unsure = tuple(v for v in vs if v.verdict is Outcome.INCONCLUSIVE)
            if unsure:
                inconclusive[cid] = unsure
        self._family = Family(
            gate=tuple(gate),
            report=tuple(report),
            tests=sum(1 for v in gate if v.p is not None),
            convicted=convicted,
            inconclusive=inconclusive,
            no_baseline=no_baseline,
            not_comparable=not_comparable,
            context={cid: e.check.context for cid, e in self._entries.items() if e.check.context},
        )
        return self._family

    def family_header(self) -> str:
        f = self.family()
        how = (
            "variance moderated across the cases of each metric"
            if self.variance == "moderated"
            else "Welch per case"
        )
        return (
            f"baseline comparison (suite {self.suite!r}, {self.baseline_dir}): gate = Holm over "
            f"{f.tests} one-sided tests (every compared case x {', '.join(self.metrics)}), "
            f"alpha={self.alpha:g}, {how}; report metrics "
            f"({', '.join(self.report_metrics) or 'none'}) Benjamini-Hochberg, not gated"
        )

    def family_check(self) -> FamilyCheck:
        """The final verdict item: fails naming every case Holm convicts (and with ``strict``
        every case that was NO BASELINE, NOT COMPARABLE or INCONCLUSIVE); the lists go to the
        JUnit properties whether or not it fails."""
        f = self.family()
        lines: list[str] = [self.family_header()]
        for cid, vs in f.convicted.items():
            for v in vs:
                lines.append(f"REGRESSION: {cid}: {v.message}")
        for cid, text in f.no_baseline.items():
            lines.append(f"{NO_BASELINE}: {cid}: {text}")
        for cid, text in f.not_comparable.items():
            lines.append(f"NOT COMPARABLE: {cid}: {text}")
        for cid, vs in f.inconclusive.items():
            for v in vs:
                lines.append(f"INCONCLUSIVE: {cid}: {v.message}")
        for cid, changes in f.context.items():
            lines.append(f"changed since baseline: {cid}: {_changes(changes)}")
        props: list[tuple[str, str]] = [
            ("llmperf.family", f"holm, {f.tests} tests, alpha {self.alpha:g}, {self.variance}"),
            ("llmperf.convicted", ", ".join(f.convicted)),
            ("llmperf.no_baseline", ", ".join(f.no_baseline)),
            ("llmperf.not_comparable", ", ".join(f.not_comparable)),
            ("llmperf.inconclusive", ", ".join(f.inconclusive)),
            ("llmperf.strict", str(self.strict).lower()),
        ]
        for cid, vs in f.convicted.items():
            props.append((f"llmperf.regression[{cid}]", "; ".join(v.message for v in vs)))
        for cid, changes in f.context.items():
            props.append((f"llmperf.changed_since_baseline[{cid}]", _changes(changes)))
        failed: list[str] = []
        if f.convicted:
            failed.append(
                f"performance REGRESSION in {len(f.convicted)} case(s), Holm over {f.tests} "
                f"tests at alpha={self.alpha:g}: {', '.join(f.convicted)}"
            )
        if self.strict and f.unsure:
            parts = [
                f"{label} {', '.join(group)}"
                for label, group in (
                    (NO_BASELINE, f.no_baseline),
                    ("NOT COMPARABLE", f.not_comparable),
                    ("INCONCLUSIVE", f.inconclusive),
                )
                if group
            ]
            failed.append("--llmperf-strict: " + "; ".join(parts))
        failure = None
        if failed:
            failure = "\n".join([*failed, "", *lines])
        return FamilyCheck(failure, tuple(props), tuple(lines))

    # -- session end ------------------------------------------------------------------------
    def session_verdicts(self) -> tuple[list[Verdict], list[Verdict]]:
        """The gate's verdicts (Holm) and the report metrics' (BH), as ``family`` has them."""
        f = self.family()
        return list(f.gate), list(f.report)

    def finish(
        self, results: Sequence[Any] = (), report_dir: str | os.PathLike[str] | None = None
    ) -> list[str]:
        """Lines for the terminal summary. With ``save``, writes or updates the baseline files
        (atomically; cases not run now are kept); with a ``report_dir``, comparison.json."""
        lines: list[str] = []
        if self.compare:
            lines += self._comparison_lines()
        checked = set(self._entries)
        skipped = [str(r.case_id) for r in results if str(getattr(r, "case_id", "")) not in checked]
        if self.save:
            lines += self._save(skipped)
        elif skipped and self.compare:
            lines.append(
                f"not compared (the case failed before the comparison): {', '.join(skipped)}"
            )
        if report_dir is not None:
            path = self.write_comparison(Path(report_dir), skipped)
            lines.append(f"comparison: {path}")
        return lines

    def _comparison_lines(self) -> list[str]:
        f = self.family()
        lines = [self.family_header()]
        if f.gate:
            lines += ["gated:", *format_table(f.gate).splitlines()]
        if f.report:
            lines += ["reported (not gated; p_adj is Benjamini-Hochberg):"]
            lines += format_table(f.report).splitlines()
        lines += list(self.family_check().lines[1:])
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

    def write_comparison(self, report_dir: Path, skipped: Sequence[str] = ()) -> Path:
        """comparison.json: settings, each case's check, the family's verdicts and the lists
        of cases that were not judged (nothing passes silently)."""
        f = self.family() if self.compare else None

        def status(cid: str, e: _Entry) -> str:
            if f is None:
                return e.check.status
            if cid in f.convicted:
                return Outcome.REGRESSION.value
            if e.check.status != PENDING:
                return e.check.status
            outcomes = {v.verdict.value for v in f.gate if v.case_id == cid}
            return next((o for o in _SEVERITY if o in outcomes), NOT_COMPARED)

        data = {
            "suite": self.suite,
            "baseline_dir": str(self.baseline_dir),
            "alpha": self.alpha,
            "strict": self.strict,
            "metrics": list(self.metrics),
            "report_metrics": list(self.report_metrics),
            "tolerances": {"default": self.default_tolerance, **self.tolerances},
            "ignored_fields": list(self.ignore),
            "gate_correction": {
                "method": "holm",
                "tests": None if f is None else f.tests,
                "over": "every compared case x each gated metric, one-sided (harmful direction)",
                "variance": self.variance,
            },
            "report_correction": {"method": "bh", "over": "every compared case x report metric"},
            "convicted": [] if f is None else list(f.convicted),
            "no_baseline": [] if f is None else list(f.no_baseline),
            "not_comparable": [] if f is None else list(f.not_comparable),
            "inconclusive": [] if f is None else list(f.inconclusive),
            "cases": [
                {
                    "case_id": cid,
                    "status": status(cid, e),
                    "failure": e.check.failure,
                    "message": e.check.message,
                    "baseline": _json_safe(e.check.baseline_path),
                    "fingerprint": e.fingerprint.to_dict(),
                    "fingerprint_id": environment_part(e.fingerprint).id(),
                    "changed_since_baseline": {k: list(v) for k, v in e.check.context.items()},
                    "item_verdicts": [verdict_json(v) for v in e.check.verdicts],
                }
                for cid, e in self._entries.items()
            ],
            "session_verdicts": [] if f is None else [verdict_json(v) for v in f.gate],
            "report_verdicts": [] if f is None else [verdict_json(v) for v in f.report],
            "not_checked": list(skipped),
            "saved": [str(p) for p in self.saved],
        }
        return write_json_atomic(report_dir / COMPARISON_FILE, _json_safe(data))
