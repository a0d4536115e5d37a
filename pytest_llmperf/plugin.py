"""The pytest11 entry point. Import-light on purpose: it imports only the standard library and
pytest. Everything heavy (the engine, HTTP, statistics, plots) is imported inside hooks, and
only when ``--llmperf`` is given, so a project with the plugin installed does not notice it.

The ``--llmperf-*`` option declarations are in ``plugin_options.py`` (it too imports only
pytest). Size (about 870 lines), stated: pytest finds hooks and fixtures by name in the module
it loads as the plugin, so the hooks, items and fixtures live here together (the entry's cost
is measured by ``benchmarks/entry_import_cost.py``).
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmperf.plugin_options import add_options

if TYPE_CHECKING:
    from pytest_llmperf.config import PerfCase, PerfConfig
    from pytest_llmperf.history.session import HistorySession
    from pytest_llmperf.session.baselines import BaselineSession
    from pytest_llmperf.session.engine import EngineOptions, PerfEngine, ServerHandle
    from pytest_llmperf.verdicts.case_result import CaseResult

SKIP_REASON = "perf test: run with --llmperf to measure (needs a vLLM server)"
_ENGINE_KEY = pytest.StashKey["PerfEngine"]()
_LINE_KEY = pytest.StashKey["str | None"]()
_BASELINE_KEY = pytest.StashKey["BaselineSession | None"]()
_BASELINE_LINES_KEY = pytest.StashKey["list[str]"]()
_HISTORY_KEY = pytest.StashKey["HistorySession | None"]()
_HISTORY_LINES_KEY = pytest.StashKey["list[str]"]()
_FAILED_KEY = pytest.StashKey["list[str]"]()
_LAST_OF_MODEL_KEY = pytest.StashKey[bool]()
MARKER_HELP = (
    "llmperf(model=..., workload='text', concurrency=1, requests=None, runs=1, "
    "throughput_floor=None, output_throughput_floor=None, p99_ceiling_ms=None, "
    "p99_ttft_ms=None, p99_itl_ms=None, min_success=1.0): a hand-written LLM-serving perf test; "
    "skipped unless --llmperf is given"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if not config.getoption("llmperf") and not config.getoption("llmperf_plan"):
        return
    workers = getattr(config.option, "numprocesses", None)
    if workers and not hasattr(config, "workerinput"):
        raise pytest.UsageError(
            "pytest-llmperf: perf tests must not run in parallel on one machine (they would "
            "measure each other). Run --llmperf without -n/--numprocesses, or run the other "
            "tests with xdist in a separate pytest call."
        )
    if not config.pluginmanager.has_plugin("llmperf-verdict"):
        config.pluginmanager.register(_VerdictItemPlugin(), "llmperf-verdict")
    _install_sigterm_handler()


def _install_sigterm_handler() -> None:
    """SIGTERM (a CI job cancelled) behaves like Ctrl-C: pytest unwinds, servers are stopped
    and the partial results are written, instead of the process vanishing mid-run."""
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def handler(signum: int, frame: Any) -> None:
        # Do what Ctrl-C would do *now*: inside the load generator that is asyncio.Runner's
        # SIGINT handler, which cancels the run cleanly. Raising KeyboardInterrupt directly
        # could land inside an event-loop callback, where uvloop logs it and carries on.
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current is not handler:
            current(signal.SIGINT, frame)
            return
        # No SIGINT handler to borrow: SIGINT is ignored (a shell's background job starts so),
        # and then asyncio.Runner installs none. Inside a running event loop, raise the
        # interrupt from a callback of its own, not inside the one this signal landed in.
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise KeyboardInterrupt(f"received signal {signum}") from None
        loop.call_soon_threadsafe(_raise_interrupt, signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. pytest run inside another tool)
        pass


def _raise_interrupt(signum: int) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def _check_writable(folder: Path) -> None:
    """Fail before any server starts if the report folder cannot be written: a results file
    that cannot be saved would lose everything the run measures."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".llmperf-write-check"):
            pass
    except OSError as exc:
        raise pytest.UsageError(
            f"pytest-llmperf: cannot write the report folder {folder} ({exc.strerror}); "
            "choose a writable one with --llmperf-report-dir"
        ) from None


def _split_csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _engine(config: pytest.Config) -> PerfEngine:
    """The session's engine, created on first use so config errors surface as usage errors."""
    engine = config.stash.get(_ENGINE_KEY, None)
    if engine is not None:
        return engine
    from pytest_llmperf.config import ConfigError
    from pytest_llmperf.core.endpoint import resolve_api_key
    from pytest_llmperf.session.engine import PerfEngine

    rootdir = Path(config.rootpath)
    try:
        perf = _session_config(config, rootdir)
        api_key = resolve_api_key(key_file=config.getoption("llmperf_api_key_file"))
    except (ConfigError, ValueError) as exc:
        raise pytest.UsageError(f"pytest-llmperf: {exc}") from None
    _register_secrets(api_key, perf)
    options = _engine_options(config, rootdir, perf, api_key)
    _check_writable(options.report_dir)
    engine = PerfEngine(perf, options)
    config.stash[_ENGINE_KEY] = engine
    return engine


def _session_config(config: pytest.Config, rootdir: Path) -> PerfConfig:
    """The config file (found from ``rootdir`` or ``--llmperf-config``) with the command
    line's overrides, A/B choice and rates applied; a ``ConfigError`` or ``ValueError`` when
    any of them is bad."""
    from pytest_llmperf.config import apply_overrides, load_config
    from pytest_llmperf.config.load import with_rates

    explicit = config.getoption("llmperf_config")
    perf = load_config(rootdir, Path(explicit) if explicit else None)
    perf = apply_overrides(
        perf,
        models=_split_csv(config.getoption("llmperf_models")),
        workloads=_split_csv(config.getoption("llmperf_workloads")),
        concurrency=_concurrency_levels(config),
        runs=config.getoption("llmperf_runs"),
        multiplier=config.getoption("llmperf_multiplier"),
    )
    perf = _choose_ab(perf, _split_csv(config.getoption("llmperf_ab")))
    rates = _split_csv(config.getoption("llmperf_rate"))
    return with_rates(perf, rates, source="--llmperf-rate")


def _concurrency_levels(config: pytest.Config) -> list[int] | None:
    """``--llmperf-concurrency`` as integers (None when not given)."""
    from pytest_llmperf.config import ConfigError

    levels = _split_csv(config.getoption("llmperf_concurrency"))
    if levels is None:
        return None
    try:
        return [int(x) for x in levels]
    except ValueError:
        raise ConfigError(
            "--llmperf-concurrency",
            "",
            f"{levels} are not all integers",
            "give levels like 1,10,100",
        ) from None


def _register_secrets(api_key: str | None, perf: PerfConfig) -> None:
    """Every secret this session knows of (the API key, the process's secret-looking
    environment, each model's ``env``) is redacted from whatever it writes or prints."""
    from pytest_llmperf.core.redact import (
        register_env_secrets,
        register_process_secrets,
        register_secret,
    )

    register_secret(api_key)
    register_process_secrets()
    for model in perf.models:
        register_env_secrets(model.env)


def _engine_options(
    config: pytest.Config, rootdir: Path, perf: PerfConfig, api_key: str | None
) -> EngineOptions:
    """The engine's options from the ``--llmperf-*`` command line."""
    from pytest_llmperf.session.engine import EngineOptions, default_report_dir

    launcher = config.getoption("llmperf_launcher")
    return EngineOptions(
        rootdir=rootdir,
        report_dir=default_report_dir(rootdir, perf, config.getoption("llmperf_report_dir")),
        external_url=config.getoption("llmperf_endpoint"),
        external_model=config.getoption("llmperf_served_model"),
        api_key=api_key,
        launcher=tuple(shlex.split(launcher)) if launcher else None,
        platform=config.getoption("llmperf_platform"),
        gpus=config.getoption("llmperf_gpus"),
        vllm_version=config.getoption("llmperf_vllm_version"),
        ready_timeout=config.getoption("llmperf_server_timeout"),
        host=config.getoption("llmperf_host"),
        request_timeout=config.getoption("llmperf_request_timeout"),
        strict_gates=bool(config.getoption("llmperf_strict")),
    )


class PerfMatrix(pytest.Collector):
    """The configured matrix as a collector named ``llmperf``: items ``test_perf[<case id>]``."""

    def collect(self) -> list[pytest.Item]:
        engine = _engine(self.config)
        return [
            PerfCaseItem.from_parent(self, name=f"test_perf[{case.id}]", case=case)
            for case in engine.config.cases()
        ]


class PerfCaseItem(pytest.Item):
    """One case of the matrix. Gating happens here, so JUnit and CI UIs name the failing case."""

    def __init__(self, *, case: PerfCase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker("llmperf")

    def runtest(self) -> None:
        engine = _engine(self.config)
        try:
            result = engine.run_case(self.case, nodeid=self.nodeid, progress=_progress(self.config))
        finally:
            _end_progress(self.config)
            _add_properties(self, engine, self.case.id)
            _history_fingerprint(self.config, engine, self.case)
        _check_baseline(self, engine, self.case, result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from pytest_llmperf.server.process import ServerError
        from pytest_llmperf.session.engine import PerfFailure

        if isinstance(excinfo.value, PerfFailure | ServerError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class BaselineVerdictFailure(Exception):
    """The session's family-wise baseline verdict convicted cases (or, strict, left some
    unjudged); the message names every one."""


class PerfVerdictItem(pytest.Item):
    """``llmperf::baseline_comparison``, run after every perf test when --llmperf-compare is
    given: the session's comparisons judged together (Holm over every case x gated metric),
    failing with each convicted case named, so pytest's exit code and JUnit carry it."""

    def runtest(self) -> None:
        session = self.config.stash.get(_BASELINE_KEY, None)
        if session is None or not session.compare:
            return
        check = session.family_check()
        self.user_properties.extend(check.properties)
        if check.failure:
            raise BaselineVerdictFailure(check.failure)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, BaselineVerdictFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, "llmperf: baseline comparison of the whole session"


class _VerdictItemPlugin:
    """Adds the verdict item after pytest's own deselection (-k, -m), so it always runs last
    and is never filtered away while perf tests remain."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if not config.getoption("llmperf") or config.getoption("llmperf_plan"):
            return
        if not any(_model_of(i) is not None for i in items):
            return
        parent = PerfMatrix.from_parent(session, name="llmperf", nodeid="llmperf")
        engine = config.stash.get(_ENGINE_KEY, None)
        if engine is not None and engine.config.suite_floor is not None:
            if any(isinstance(i, PerfCaseItem) for i in items):
                items.append(SuiteIndexItem.from_parent(parent, name=SUITE_INDEX_ITEM))
        if config.getoption("llmperf_compare"):
            items.append(PerfVerdictItem.from_parent(parent, name=VERDICT_ITEM))


VERDICT_ITEM = "baseline_comparison"
SUITE_INDEX_ITEM = "suite_throughput_index"


class SuiteIndexFailure(Exception):
    """The session's throughput index fell below the suite floor; the message says by how much
    and which cases and models were lowest."""


class SuiteIndexItem(pytest.Item):
    """``llmperf::suite_throughput_index``, run after every matrix case when the config has a
    suite floor (the built-in default does): the geometric mean of every case's output tok/s
    over its reference (``verdicts.suite_index``) must reach the floor. It catches a slowdown all
    cases share, which the per-case floors, set wide for case-level noise, let through."""

    def runtest(self) -> None:
        engine = self.config.stash.get(_ENGINE_KEY, None)
        judged = engine.judge_suite() if engine is not None else None
        if judged is None:
            return
        self.user_properties.append(("llmperf.suite_index", judged.message))
        if judged.failed:
            raise SuiteIndexFailure(judged.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, SuiteIndexFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, "llmperf: throughput index of the whole session"


class LLMPerfInconclusive(UserWarning):
    """A percentile gate the samples could not decide at its confidence (verdicts.gates)."""


def _add_properties(item: pytest.Item, engine: PerfEngine, case_id: str) -> None:
    for res in engine.results:
        if res.case_id == case_id and res.runs:
            from pytest_llmperf.verdicts.gates import gate_metrics

            m = gate_metrics(res.runs)
            for key in (
                "total_token_throughput",
                "output_throughput",
                "success_rate",
                "p50_ttft_ms",
                "p99_ttft_ms",
                "p99_itl_ms",
                "p99_e2el_ms",
            ):
                if key in m:
                    item.user_properties.append((f"llmperf.{key}", round(m[key], 4)))
            unsure = [g for g in res.gates if g.inconclusive and g.passed]
            if unsure:  # shown, never silently passed (a failure under --llmperf-strict)
                item.user_properties.append(
                    ("llmperf.inconclusive", ",".join(g.name for g in unsure))
                )
                import warnings

                # warnings.warn, not item.warn: a matrix item has no line number to point at
                warnings.warn(
                    LLMPerfInconclusive(
                        f"{case_id}: INCONCLUSIVE gate(s), not a failure unless "
                        "--llmperf-strict: " + "; ".join(g.describe() for g in unsure)
                    ),
                    stacklevel=2,
                )


# -- baselines ------------------------------------------------------------------------------


def _baseline_session(config: pytest.Config, expected_cases: int) -> BaselineSession | None:
    """The session's ``BaselineSession`` when --llmperf-save-baseline or --llmperf-compare is
    given (None otherwise): created once, at the end of collection, when the number of
    selected perf tests (its family size for the in-test correction) is known."""
    if _BASELINE_KEY in config.stash:
        return config.stash[_BASELINE_KEY]
    save = bool(config.getoption("llmperf_save_baseline"))
    compare = bool(config.getoption("llmperf_compare"))
    session = None
    if save or compare:
        from pytest_llmperf.session.baselines import BaselineSession

        engine = _engine(config)
        option = config.getoption("llmperf_baseline_dir")
        raw = Path(option) if option else engine.config.baseline_dir
        directory = raw if raw.is_absolute() else Path(config.rootpath) / raw
        from .cli.compare import parse_tolerances

        settings = engine.config.baseline
        try:
            alpha = config.getoption("llmperf_alpha")
            if alpha is not None and not 0.0 < alpha < 0.5:
                raise ValueError(f"--llmperf-alpha {alpha}: give a value above 0 and below 0.5")
            default_tol, per_metric = settings.tolerance, dict(settings.metric_tolerance)
            if config.getoption("llmperf_tolerance"):
                cli_default, cli_metric = parse_tolerances(config.getoption("llmperf_tolerance"))
                if any("=" not in t for t in config.getoption("llmperf_tolerance")):
                    default_tol = cli_default
                per_metric.update(cli_metric)
            metrics = _split_csv(config.getoption("llmperf_metrics")) or list(settings.metrics)
            strict = config.getoption("llmperf_strict")
            session = BaselineSession(
                directory,
                suite_name(engine.config.source),
                save=save,
                compare=compare,
                strict=settings.strict if strict is None else bool(strict),
                ignore=tuple(
                    dict.fromkeys(
                        (*settings.may_differ, *(config.getoption("llmperf_ignore_field") or ()))
                    )
                ),
                tolerances=per_metric,
                default_tolerance=default_tol,
                metrics=metrics,
                report_metrics=settings.report_metrics,
                alpha=settings.alpha if alpha is None else alpha,
                variance=settings.variance,  # type: ignore[arg-type]
                expected_cases=expected_cases,
            )
        except ValueError as exc:
            raise pytest.UsageError(f"pytest-llmperf: {exc}") from None
    config.stash[_BASELINE_KEY] = session
    return session


def suite_name(source: str) -> str:
    """The baseline suite of a config: its file's stem (``llmperf`` for llmperf.toml), or
    ``default`` for the built-in default."""
    if not source or source.startswith("<"):
        return "default"
    return Path(source).stem or "default"


def _check_baseline(item: pytest.Item, engine: PerfEngine, case: PerfCase, result: Any) -> None:
    """Compare a finished case with the stored baseline (see ``BaselineSession.check``); a
    REGRESSION, or with --llmperf-strict an unsure verdict, fails the item."""
    session = item.config.stash.get(_BASELINE_KEY, None)
    if session is None:
        _check_history(item, engine, case, result)
        return
    from pytest_llmperf.session.engine import PerfFailure

    try:
        fingerprint = engine.fingerprint(session, case, result)
    except Exception as exc:  # a fingerprint that cannot be taken must not pass silently
        raise PerfFailure(
            f"{case.id}: cannot take the environment fingerprint for the baseline "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    check = session.check(result, fingerprint)
    status = check.status
    if status == "PENDING":
        status = f"PENDING (judged with the session in llmperf::{VERDICT_ITEM})"
    item.user_properties.append(("llmperf.baseline", status))
    _check_history(item, engine, case, result, fingerprint, check)
    if check.failure:
        raise PerfFailure(check.failure)


# -- history --------------------------------------------------------------------------------


def _history_session(config: pytest.Config) -> HistorySession | None:
    """The session's ``HistorySession`` (None with --llmperf-no-history), created once."""
    if _HISTORY_KEY in config.stash:
        return config.stash[_HISTORY_KEY]
    from pytest_llmperf.history.session import HistorySession, history_settings, store_target

    engine = _engine(config)
    settings = history_settings(engine.config)
    record = settings.record and not config.getoption("llmperf_no_history")
    guard = bool(config.getoption("llmperf_drift_guard")) or settings.drift_guard
    history = None
    if record or guard:
        root = Path(config.rootpath)
        history = HistorySession(
            settings,
            store_target(settings, root, engine.report_dir, config.getoption("llmperf_history")),
            root,
            engine.report_dir,
            suite_name(engine.config.source),
            api_key=engine.options.api_key,
            guard=guard,
            record=record,
        )
    config.stash[_HISTORY_KEY] = history
    return history


def _history_fingerprint(config: pytest.Config, engine: PerfEngine, case: PerfCase) -> None:
    """Take a finished case's fingerprint for the history, also when the case failed (its
    gates, its server) before any comparison: a bad night belongs in its series too."""
    history = _history_session(config)
    if history is None or case.id in history.fingerprints:
        return
    result = next((r for r in engine.results if r.case_id == case.id), None)
    if result is not None:
        history.remember(case.id, history.fingerprint(engine, case, result))


def _check_history(
    item: pytest.Item,
    engine: PerfEngine,
    case: PerfCase,
    result: Any,
    fingerprint: Any = None,
    check: Any = None,
) -> None:
    """Remember the case's fingerprint and verdicts for the history; with the drift guard on
    and tonight's comparison not already failing, fail the item on a drift since the
    baseline (see ``HistorySession.check_drift``)."""
    history = _history_session(item.config)
    if history is None:
        return
    if fingerprint is not None:
        history.remember(case.id, fingerprint, check)
    fingerprint = history.fingerprints.get(case.id)
    if not history.guard or fingerprint is None or (check is not None and check.failure):
        return
    from pytest_llmperf.session.engine import PerfFailure

    verdicts = history.check_drift(case.id, fingerprint, result.runs, check)
    item.user_properties.append(("llmperf.drift", ",".join(v.status for v in verdicts)))
    failed = [v.message for v in verdicts if v.failed]
    if failed:
        raise PerfFailure("\n".join(failed))


def _progress(config: pytest.Config) -> Callable[[str], None] | None:
    """A live progress line on a terminal (never in captured or piped output).

    It overwrites the current output line in place at most twice a second; ``_end_progress``
    puts back what pytest had written there, so ``-v`` lines and result dots stay intact."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or not tr.isatty():
        return None
    import time

    tw = tr._tw
    saved = getattr(tw, "_current_line", None)
    config.stash[_LINE_KEY] = saved
    last = [0.0]

    def show(line: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            # Longer than the terminal, it would wrap and "\r" could no longer rewind it.
            with _uncaptured(config):
                tr.rewrite(f"  llmperf: {line}"[: max(tw.fullwidth - 1, 10)], erase=True)

    return show


def _end_progress(config: pytest.Config) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or not tr.isatty():
        return
    saved = config.stash.get(_LINE_KEY, None)
    with _uncaptured(config):
        tr.rewrite("", erase=True)
        if isinstance(saved, str) and hasattr(tr._tw, "_current_line"):
            # Restore pytest's line (its location prefix and result letters) and its idea of
            # the line's width, so the next "PASSED" or "." lands where pytest expects it.
            tr._tw.write("\r" + saved)
            tr._tw._current_line = saved
        else:  # pragma: no cover - a pytest without TerminalWriter._current_line
            tr.currentfspath = None  # the next result starts a fresh line with its location


def _uncaptured(config: pytest.Config) -> Any:
    """Output capture off while the line is drawn: during a test, pytest's fd capture
    would otherwise swallow it (pytest's live logging does the same)."""
    import contextlib

    capman = config.pluginmanager.get_plugin("capturemanager")
    return capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    enabled = config.getoption("llmperf") or config.getoption("llmperf_plan")
    if not enabled:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in items:
            if item.get_closest_marker("llmperf") is not None:
                item.add_marker(skip)
        return
    ab = _ab_config(config)
    if not config.getoption("llmperf_no_matrix") and (ab is None or ab.matrix):
        matrix = PerfMatrix.from_parent(session, name="llmperf", nodeid="llmperf")
        items.extend(matrix.collect())
    if ab is not None:
        from .session.ab import ab_case_id, configured_case

        case = configured_case(_engine(config), ab)
        name = f"test_ab[{ab_case_id(ab, case.workload.name)}]"
        items.append(ABItem.from_parent(session, name=name, nodeid=f"llmperf::{name}", ab=ab))


def _choose_ab(perf: Any, chosen: list[str] | None) -> Any:
    """The config with --llmperf-ab's choice of A and B (a ``ConfigError`` when it names
    variants the [ab] section does not declare, or there is no [ab] section)."""
    if chosen is None:
        return perf
    from dataclasses import replace

    from .config import ConfigError
    from .config.ab import select

    if perf.ab is None:
        raise ConfigError(
            "--llmperf-ab",
            "",
            f"{perf.source} has no [ab] section",
            "declare the variants there (see docs/upgrade-validation.md)",
        )
    return replace(perf, ab=select(perf.ab, chosen))


def _ab_config(config: pytest.Config) -> Any:
    """The config's [ab] section with --llmperf-ab-blocks and --llmperf-runs applied."""
    ab = _engine(config).config.ab
    if ab is None:
        return None
    from dataclasses import replace

    blocks = config.getoption("llmperf_ab_blocks")
    runs = config.getoption("llmperf_runs")
    return replace(ab, blocks=blocks or ab.blocks, runs=max(2, runs) if runs else ab.runs)


class ABItem(pytest.Item):
    """The configured A/B comparison: both variants measured interleaved, judged per level and
    metric; a REGRESSION (or under --llmperf-strict an unsure verdict) fails it."""

    def __init__(self, *, ab: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ab = ab
        self.add_marker("llmperf")  # selected by -m llmperf like the matrix
        self.add_marker("llmperf")

    def runtest(self) -> None:
        from .session.ab import failure_message, run_configured
        from .session.engine import PerfFailure

        engine = _engine(self.config)
        try:
            result = run_configured(engine, self.ab, progress=_progress(self.config))
        finally:
            _end_progress(self.config)
        for v in result.verdicts:
            ratio = "-" if v.ratio is None else f"{v.ratio:.4f}"
            ci = "" if v.ci_low is None else f" CI {v.ci_low:.4f}-{v.ci_high:.4f}"
            p = "" if v.p_adj is None else f" p_adj {v.p_adj:.3g}"
            self.user_properties.append(
                (f"llmperf.ab.{v.case_id}.{v.metric}", f"{v.verdict} B/A {ratio}{ci}{p}")
            )
        self.user_properties.append(("llmperf.ab.excluded_runs", len(result.excluded)))
        message = failure_message(result, strict=bool(self.config.getoption("llmperf_strict")))
        if message:
            raise PerfFailure(message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from .server.process import ServerError
        from .session.ab import ABRefused
        from .session.engine import PerfFailure

        if isinstance(excinfo.value, PerfFailure | ServerError | ABRefused):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


def _model_of(item: pytest.Item) -> str | None:
    if isinstance(item, ABItem):
        return None  # it starts and stops its own two servers
    if isinstance(item, PerfCaseItem):
        return item.case.model.name
    marker = item.get_closest_marker("llmperf")
    if marker is None:
        return None
    return str(marker.kwargs.get("model", "dense-gqa"))


def _mark_last_users(items: list[pytest.Item]) -> None:
    """Tag each perf test (matrix item or hand-written marker test) that is the last selected
    test needing its model, so its server is stopped right after it
    (``pytest_runtest_teardown``) instead of idling to the end of the session."""
    seen: set[str] = set()
    for item in reversed(items):
        model = _model_of(item)
        if model is None or model in seen:
            continue
        seen.add(model)
        item.stash[_LAST_OF_MODEL_KEY] = True


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not item.stash.get(_LAST_OF_MODEL_KEY, False):
        return
    engine = item.config.stash.get(_ENGINE_KEY, None)
    if engine is None:
        return
    if isinstance(item, PerfCaseItem):
        engine.release(item.case.model)
        return
    marker = item.get_closest_marker("llmperf")
    if marker is None:
        return
    from pytest_llmperf.config import ConfigError
    from pytest_llmperf.session.marker import case_from_marker

    try:
        spec = case_from_marker(engine.config, marker.kwargs).model
    except ConfigError:  # the test itself failed on it; nothing was started for it
        return
    engine.release(spec)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    planning = config.getoption("llmperf_plan")
    if not config.getoption("llmperf") and not planning:
        return
    if not planning:
        _mark_last_users(session.items)
        _baseline_session(config, sum(_model_of(i) is not None for i in session.items))
    engine = _engine(config)
    models: dict[str, Any] = {}
    for item in session.items:
        if isinstance(item, PerfCaseItem):
            models.setdefault(item.case.model.name, item.case.model)
        elif isinstance(item, ABItem):
            from .session.ab import configured_case

            base = configured_case(engine, item.ab).model
            for spec in item.ab.pair(base):
                models.setdefault(spec.name, spec)
        else:
            marker = item.get_closest_marker("llmperf")
            if marker is not None:
                from pytest_llmperf.config import ConfigError
                from pytest_llmperf.session.marker import case_from_marker

                try:
                    case = case_from_marker(engine.config, marker.kwargs)
                except ConfigError:
                    if planning:
                        raise
                    continue  # the test fails on it itself, with the message
                engine.expect(case)  # its workload sizes its model's context too
                models.setdefault(case.model.name, case.model)
    if not planning:
        return
    tr = config.pluginmanager.get_plugin("terminalreporter")
    lines = engine.describe_plans(list(models.values())) or ["no perf tests selected"]
    for line in lines:
        if tr is not None:
            tr.write_line(line)
        else:  # pragma: no cover
            print(line)
    pytest.exit("llmperf: launch plans printed; nothing was started", returncode=0)


# -- fixtures for hand-written perf tests ---------------------------------------------------


@pytest.fixture(scope="session")
def llmperf_engine(pytestconfig: pytest.Config) -> PerfEngine:
    """The session's perf engine (shared servers, results, reports)."""
    if not pytestconfig.getoption("llmperf"):
        pytest.skip(SKIP_REASON)
    return _engine(pytestconfig)


@pytest.fixture
def llmperf_server(request: pytest.FixtureRequest, llmperf_engine: PerfEngine) -> ServerHandle:
    """A ready server for the test's ``@pytest.mark.llmperf(model=...)``; the server itself is
    shared by every test of the session that needs the same launch plan."""
    from pytest_llmperf.session.marker import case_from_marker

    marker = request.node.get_closest_marker("llmperf")
    case = case_from_marker(llmperf_engine.config, marker.kwargs if marker else {})
    return llmperf_engine.server_for(case.model)


@pytest.fixture
def llmperf_run(
    request: pytest.FixtureRequest, llmperf_engine: PerfEngine
) -> Iterator[Callable[..., Any]]:
    """Run the marker's case (keyword arguments override the marker's); gates fail the test."""
    from pytest_llmperf.session.marker import case_from_marker

    marker = request.node.get_closest_marker("llmperf")
    base = dict(marker.kwargs) if marker else {}
    config = request.config

    def run(**overrides: Any) -> CaseResult:
        case = case_from_marker(llmperf_engine.config, {**base, **overrides})
        try:
            result = llmperf_engine.run_case(
                case, nodeid=request.node.nodeid, progress=_progress(config)
            )
        finally:
            _end_progress(config)
            _add_properties(request.node, llmperf_engine, case.id)
            _history_fingerprint(config, llmperf_engine, case)
        _check_baseline(request.node, llmperf_engine, case, result)
        return result

    yield run


# -- session end ----------------------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Only this session's servers are stopped (engine.finish closes its pool): a session run
    # inside another (pytester) must not stop the servers of the process around it. The
    # server module's atexit and SIGTERM paths cover a process that dies.
    engine = session.config.stash.get(_ENGINE_KEY, None)
    if engine is not None:
        engine.report_paths = engine.finish()
        baseline = session.config.stash.get(_BASELINE_KEY, None)
        if baseline is not None:
            session.config.stash[_BASELINE_LINES_KEY] = _finish_baseline(
                baseline, engine, session.config.stash.get(_FAILED_KEY, [])
            )
        history = session.config.stash.get(_HISTORY_KEY, None)
        if history is not None and engine.results:
            from pytest_llmperf.report.html_page import insert_section

            paths = engine.report_paths
            session.config.stash[_HISTORY_LINES_KEY] = history.finish(
                engine.results,
                engine.environment(),
                started=engine.started,
                baseline_saved=bool(baseline is not None and baseline.saved),
                html_path=paths.html if paths is not None else None,
                insert_section=insert_section,
            )


def _finish_baseline(baseline: BaselineSession, engine: PerfEngine, failed: list[str]) -> list[str]:
    """Session end of the baseline side: the verdict table and comparison.json, and the
    baseline saved only from a run whose perf tests all passed. A failing run (a gate, a dead
    server, a REGRESSION against the stored baseline) must not become the reference: saving it
    would hide the failure from the next comparison."""
    lines: list[str] = []
    if baseline.save and failed:
        baseline.save = False
        lines.append(
            f"baseline NOT saved: {len(failed)} perf test(s) failed in this run "
            f"({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}); a failing run "
            "must not become the reference. Fix or deselect them and save again."
        )
    return baseline.finish(engine.results, report_dir=engine.report_dir) + lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember failed perf tests (for the baseline-save decision at session end)."""
    outcome = yield
    report = outcome.get_result()
    perf = _model_of(item) is not None or isinstance(item, PerfVerdictItem)
    if report.failed and _BASELINE_KEY in item.config.stash and perf:
        item.config.stash.setdefault(_FAILED_KEY, []).append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    engine = config.stash.get(_ENGINE_KEY, None)
    ab_results = getattr(engine, "ab_results", ()) if engine is not None else ()
    if engine is None or not (engine.results or ab_results):
        return
    from pytest_llmperf.report import terminal_summary_lines
    from pytest_llmperf.verdicts.case_result import with_status

    terminalreporter.section("llmperf summary")
    for line in terminal_summary_lines(with_status(engine.results)):
        red = "FAIL" in line or "client-bound" in line
        terminalreporter.write_line(line, red=red)
    judged = engine.judge_suite() if engine.results else None
    if judged is not None:
        terminalreporter.write_line(judged.message, red=judged.failed)
    paths = getattr(engine, "report_paths", None)
    if paths is not None:
        terminalreporter.write_line(f"report: {paths.html}")
        terminalreporter.write_line(f"results: {paths.results}")
    for result in ab_results:
        terminalreporter.section(f"llmperf A/B: {result.label_b} (B) vs {result.label_a} (A)")
        for line in result.table.splitlines():
            bad = any(w in line for w in ("REGRESSION", "DRIFT", "excluded", "only "))
            terminalreporter.write_line(line, red=bad)
        terminalreporter.write_line(f"ab.json: {engine.report_dir / 'ab.json'}")
    baseline_lines = config.stash.get(_BASELINE_LINES_KEY, None)
    if baseline_lines:
        terminalreporter.section("llmperf baseline")
        for line in baseline_lines:
            bad = any(w in line for w in ("REGRESSION", "NOT COMPARABLE", "NOT saved"))
            unsure = line.startswith(("INCONCLUSIVE", "NO BASELINE", "changed since baseline"))
            terminalreporter.write_line(line, red=bad, yellow=unsure and not bad)
    history_lines = config.stash.get(_HISTORY_LINES_KEY, None)
    if history_lines:
        terminalreporter.section("llmperf history")
        for line in history_lines:
            terminalreporter.write_line(line, red="NOT recorded" in line or "worse:" in line)
