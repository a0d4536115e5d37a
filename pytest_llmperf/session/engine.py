"""The perf session: one engine behind the config-driven matrix and hand-written perf tests.

It turns a configured model into a launch plan and a (shared) server, runs a case's load,
gates it, keeps every result on disk as it goes, and writes the reports at the end. The
pytest plugin only decides *when* to call it; nothing here knows about pytest's hooks.

Size (about 1,190 lines), stated: one stateful class (``PerfEngine``: the session's servers,
results and report folder) whose sections are marked ``# --``: where things run (resolve,
launch, release, CPU layout), running a case (``run_case`` and its steps: ``_one_run``,
``_keep_run``, ``_may_continue``, ``_judge_case``, each under 60 lines; capacity fractions),
baselines, session end. One run is sent by ``session.measure.send_run`` (the step A/B sends
too); the marker's arguments become a case in ``session.marker``.
"""

from __future__ import annotations

import json
import math
import os
import platform as _platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pytest_llmperf import __version__
from pytest_llmperf.config import ModelSpec, PerfCase, PerfConfig, WorkloadRef
from pytest_llmperf.core.cpu_layout import CpuLayout, CpuLayoutError, choose_layout, pinned
from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.probe import http_get
from pytest_llmperf.core.redact import redact_argv, redact_env, redact_text, register_env_secrets
from pytest_llmperf.core.versions import installed_vllm_version
from pytest_llmperf.report import write_report, write_results
from pytest_llmperf.server.process import (
    DEFAULT_LAUNCHER,
    ServerError,
    ServerPool,
    ServerSpec,
    VLLMServer,
)
from pytest_llmperf.session.measure import scheduling_noise_only, send_run
from pytest_llmperf.verdicts.case_result import CaseResult
from pytest_llmperf.verdicts.gates import (
    evaluate_gates,
    gate_failure_message,
    gate_metrics,
    key_numbers_line,
)
from pytest_llmperf.verdicts.suite_index import SuiteIndex, judge_suite

ProgressFn = Callable[[str], None]

#: Event-loop-lag limit (p99, ms) when the client shares the CPU cores with the vLLM server it
#: measures (CPU platform). vLLM's busy threads then hold the cores and the OS runs the client
#: late now and then: on a 2-core runner a single ~30 ms stall is the p99 of a short run
#: (measured: 27.9 ms at concurrency 1 while the client used 4% of a core). That is
#: scheduling noise on the client's timestamps, not a client that cannot keep up, so it must
#: not fail the case; a stall past this limit still does, and the CPU-share limit (a busy
#: client) is unchanged. A ``[client]`` table in the config overrides it.
SHARED_CPU_LOOP_LAG_MS = 100.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
#: A baseline fingerprint's launch command for a server this session did not launch.
EXTERNAL_ARGV = ("<external endpoint: launch plan unknown>",)


#: Context sizing (``context_needed``): tokens allowed per image on top of the text (the
#: workload's 112 px images become 32 tokens in BLIP-2, 16 in Qwen2-VL-style encoders), a
#: margin for the chat template's role and joiner tokens, and the granularity of the result.
IMAGE_TOKEN_ALLOWANCE = 256
TEMPLATE_MARGIN = 64
CONTEXT_GRANULE = 256


def context_needed(workloads: Sequence[WorkloadRef], limit: int | None = None) -> int | None:
    """The ``--max-model-len`` the workloads need: the longest request's prompt + output +
    images x ``IMAGE_TOKEN_ALLOWANCE`` + ``TEMPLATE_MARGIN``, rounded up to a multiple of
    ``CONTEXT_GRANULE`` (never more than that above the need). None without workloads: the
    platform's rule decides. A bigger context only costs KV-cache memory and, on a model with
    few positions, makes a workload that fits look impossible. The rounding stops at the
    model's ``limit`` (its positions) where the need itself fits."""
    if not workloads:
        return None
    need = max(
        w.max_prompt_tokens + w.output_tokens + IMAGE_TOKEN_ALLOWANCE * w.images_per_request
        for w in workloads
    )
    need += TEMPLATE_MARGIN
    rounded = -(-need // CONTEXT_GRANULE) * CONTEXT_GRANULE
    return limit if limit and need <= limit < rounded else rounded


def run_extras(case: PerfCase, slo: Any, result: Any) -> dict[str, Any]:
    """A run's figures beyond the summary: goodput under the config's ``[slo]`` (into the
    run's metrics, and per SLO the violations) and, for an open-loop case, its schedule:
    requested, scheduled and achieved rate, schedule lag p99, backlog (``metrics.goodput``)."""
    from pytest_llmperf.metrics.goodput import goodput, schedule_figures

    out: dict[str, Any] = {"metrics": {}}
    if slo.any:
        g = goodput(result.records, slo.limits(), duration_s=result.summary.duration_s)
        out["metrics"].update(g.metrics())
        out["goodput"] = {"slo": slo.limits(), "good": g.good, "total": g.total}
        out["goodput"].update(violations=g.violations, **g.metrics())
    if case.load is not None and result.records:
        fig = schedule_figures(result.records, case.load.rate, steady_from_s=case.load.ramp_up_s)
        out["load"] = {
            "mode": "open",
            "arrival": case.load.arrival,
            "burstiness": case.load.burstiness,
            "ramp_up_s": case.load.ramp_up_s,
            "max_concurrency": case.load.max_concurrency,
            **(
                {}
                if case.load.capacity_fraction is None
                else {
                    "capacity_fraction": case.load.capacity_fraction,
                    "capacity_concurrency": case.load.capacity_concurrency,
                    "capacity_request_throughput": case.load.capacity_rps,
                }
            ),
            **fig.to_json(),
            "schedule_lag_p99_ms": result.health.schedule_lag_p99_ms,
            "schedule_lag_max_ms": result.health.schedule_lag_max_ms,
        }
        out["metrics"]["achieved_rate"] = fig.achieved_rate
        out["metrics"]["schedule_lag_p99_ms"] = result.health.schedule_lag_p99_ms
    return out


def slo_gates(slo: Any, runs: Sequence[Mapping[str, float]]) -> tuple[Any, ...]:
    """The ``[slo] min_goodput_fraction`` gate on a case: the worst run's good fraction."""
    from pytest_llmperf.verdicts.gates import GateResult

    if slo.min_goodput_fraction is None or not runs:
        return ()
    values = [float(r.get("goodput_fraction", math.nan)) for r in runs]
    measured = math.nan if any(math.isnan(v) for v in values) else min(values)
    limit = float(slo.min_goodput_fraction)
    passed = not math.isnan(measured) and measured >= limit
    margin = 100.0 * (measured - limit) / limit if limit and not math.isnan(measured) else None
    gate = GateResult(
        "goodput_fraction_min", "goodput_fraction", measured, limit, "floor", passed, margin
    )
    return (gate,)


def _own_requests(ref: WorkloadRef) -> bool:
    """Whether a workload's requests are built by ``workload.datasets`` (not the preset path)."""
    return bool(
        ref.dataset or ref.input_lengths is not None or ref.turns > 1 or ref.shared_prefix_tokens
    )


def _prefix_cache(server: Mapping[str, Any] | None) -> dict[str, Any]:
    """Prefix-cache hits / queried tokens over one run, from the run's own ``/metrics``
    deltas (``RunResult.server``), and their ratio."""
    g = (server or {}).get("guardrails") or {}
    hits, queries = g.get("prefix_cache_hits"), g.get("prefix_cache_queries")
    if hits is None or queries is None:
        return {"hits": None, "queries": None, "hit_rate": None, "source": "unavailable"}
    rate = hits / queries if queries > 0 else None
    return {"hits": hits, "queries": queries, "hit_rate": rate, "source": "/metrics deltas"}


def _request_tokens(reqs: Sequence[Any], records: Sequence[Any]) -> dict[str, Any]:
    """Per request: the prompt tokens the server's tokenizer counted when the request was
    built, and what the server reported in ``usage`` (they must agree)."""
    usage = {r.index: r.prompt_tokens for r in records}
    rows = [[q.index, q.input_tokens, usage.get(q.index)] for q in reqs]
    agree = sum(1 for _, want, got in rows if got == want)
    return {
        "columns": ["index", "tokenized", "usage"],
        "rows": rows,
        "agree": agree,
        "total": len(rows),
    }


class PerfFailure(AssertionError):
    """A perf case failed: a gate, a dead server, a token-count mismatch, a client-bound run."""


@dataclass(frozen=True)
class ResolvedModel:
    """A configured model made concrete: what to launch (or where it already runs) and why."""

    spec: ModelSpec
    server: ServerSpec | None  # None in external-endpoint mode
    plan: Any | None = None  # launch_plan.LaunchPlan
    plan_error: str | None = None
    model_path: str | None = None


@dataclass
class ServerHandle:
    """What a test gets: the endpoint plus liveness of the process behind it (if we own it)."""

    endpoint: Endpoint
    server: VLLMServer | None = None
    plan: Any | None = None

    def check_alive(self) -> None:
        if self.server is not None:
            self.server.check_alive()

    @property
    def alive(self) -> bool:
        return self.server is None or self.server.is_alive()


@dataclass
class EngineOptions:
    """Session-wide choices from the command line."""

    rootdir: Path
    report_dir: Path
    external_url: str | None = None
    external_model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    launcher: tuple[str, ...] | None = None
    platform: str | None = None
    gpus: int | None = None
    vllm_version: str | None = None
    ready_timeout: float = 600.0
    host: str = "127.0.0.1"
    request_timeout: float = 600.0
    #: --llmperf-strict: an INCONCLUSIVE percentile gate (too few samples) fails the case.
    strict_gates: bool = False


def prompt_seed(case_id: str, run: int) -> int:
    """The prompt seed of ``run`` (0-based) of ``case_id``: deterministic, distinct per pair."""
    import zlib

    return zlib.crc32(f"{case_id}:run{run}".encode()) & 0x7FFFFFFF


def to_load_workload(ref: WorkloadRef) -> Any:
    """The load generator's ``Workload`` for a configured workload."""
    from pytest_llmperf.workload.prompts import Workload

    return Workload(
        ref.name,
        kind="vision" if ref.images_per_request else "text",
        endpoint=ref.endpoint,
        input_tokens=ref.input_tokens,
        output_tokens=ref.output_tokens,
        images_per_request=ref.images_per_request,
        image_size=ref.image_size,
        shared_prefix_tokens=ref.shared_prefix_tokens,
    )


@dataclass
class _CaseRuns:
    """What a case's runs have measured so far (``PerfEngine.run_case`` fills it run by run)."""

    runs: list[dict[str, float]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    client_bound: bool = False
    client_reasons: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pooled: list[dict[str, Any]] = field(default_factory=list)  # each run's latency samples (ms)


def _run_progress(
    case: PerfCase, r: int, progress: ProgressFn | None
) -> Callable[[int, int, float], None]:
    """Run ``r``'s progress callback for the load generator: requests done, rates."""

    def on_progress(done: int, total: int, elapsed: float) -> None:
        if progress is not None:
            run = f" run {r + 1}/{case.runs}" if case.runs > 1 else ""
            rate = done / elapsed if elapsed > 0 else 0.0
            tok = rate * case.workload.output_tokens
            progress(
                f"{case.id}{run}: {done}/{total} requests, {rate:,.1f} req/s, "
                f"~{tok:,.0f} output tok/s"
            )

    return on_progress


class PerfEngine:
    def __init__(self, config: PerfConfig, options: EngineOptions) -> None:
        self.config = config
        self.options = options
        self.report_dir = options.report_dir
        self.pool = ServerPool(self._new_server)
        self.results: list[CaseResult] = []
        self._resolved: dict[str, ResolvedModel] = {}
        self._accel: Any | None = None
        self._external: ServerHandle | None = None
        self._launched: dict[str, VLLMServer] = {}
        self._hung: dict[str, str] = {}  # endpoint URL -> where it hung (no more load to it)
        #: (model, workload, concurrency) -> closed-loop requests/s, for capacity fractions
        self._capacity: dict[tuple[str, str, int], float] = {}
        self._expected: dict[str, list[WorkloadRef]] = {}
        self.ab_results: list[Any] = []  # session.ab.ABResult, in the order they ran
        self._layout: CpuLayout | Literal[False] | None = False  # False: not chosen yet
        self.started = time.time()

    def expect(self, case: PerfCase) -> None:
        """Note a case the session will run that the config's matrix does not list (a
        hand-written test's workload), so its model's server gets the context it needs."""
        seen = self._expected.setdefault(case.model.name, [])
        if case.workload not in seen:
            seen.append(case.workload)

    # -- where things run -------------------------------------------------------------------
    def accelerators(self) -> Any:
        if self._accel is None:
            from pytest_llmperf.plan.platforms import detect_accelerators

            self._accel = detect_accelerators()
        return self._accel

    def platform(self) -> str:
        return self.options.platform or self.accelerators().platform

    def _vllm_version(self) -> str:
        v = self.options.vllm_version or installed_vllm_version(local_label=False)
        if not v:
            raise ServerError(
                "cannot tell which vLLM version the launch plan is for: vLLM is not installed "
                "here; pass --llmperf-vllm-version or install it (pip install "
                "'pytest-llmperf[cpu]')"
            )
        return v

    def resolve(self, spec: ModelSpec) -> ResolvedModel:
        """Model → architecture → launch plan → server spec (cached per model name)."""
        if spec.name not in self._resolved:
            self._resolved[spec.name] = self._resolve_new(spec)
        return self._resolved[spec.name]

    def _resolve_new(self, spec: ModelSpec) -> ResolvedModel:
        if self.options.external_url:
            return ResolvedModel(spec=spec, server=None)
        from pytest_llmperf.plan.launch_plan import PlanError, PlanOverrides, make_plan

        workloads = (*self.config.workloads_for(spec), *self._expected.get(spec.name, ()))
        images = max((w.images_per_request for w in workloads), default=0)
        register_env_secrets(spec.env)  # before anything can print or write the plan
        overrides = PlanOverrides(
            extra_args=spec.extra_args, extra_env=dict(spec.env), max_num_seqs=spec.max_num_seqs
        )
        platform = spec.platform or self.platform()
        launch = self._launcher_config(spec)
        try:
            model_path, arch, profile = self._architecture(spec, launch, platform)
        except (ValueError, OSError) as exc:
            return ResolvedModel(spec=spec, server=None, plan_error=f"[model] {exc}")
        gpus = self._gpus_for(spec, profile, platform)
        max_len = context_needed(workloads, getattr(arch, "max_position_embeddings", None))
        try:
            version = spec.vllm_version or self._vllm_version()
            plan = make_plan(
                arch,
                platform=platform,
                vllm_version=version,
                gpus=gpus,
                model=model_path,
                served_model_name=spec.name,
                workload_max_len=None if profile else max_len,
                overrides=overrides,
                profile=profile,
                images_per_prompt=images or None,
                nodes=spec.nodes,
                executor_backend="ray" if launch is not None and launch.kind == "ray" else None,
            )
        except (PlanError, ServerError) as exc:
            return ResolvedModel(spec=spec, server=None, plan_error=str(exc))
        server = self._server_spec(spec, plan, launch, platform, gpus, version, model_path)
        return ResolvedModel(spec=spec, server=server, plan=plan, model_path=model_path)

    def _architecture(self, spec: ModelSpec, launch: Any, platform: str) -> tuple[str, Any, Any]:
        """The model's path (what the server loads), its architecture, and its study profile
        (``None`` unless ``spec.profile``). ``ValueError``/``OSError`` when it cannot be read."""
        from pytest_llmperf.plan.architectures import detect

        if spec.tiny is not None:
            from pytest_llmperf.server.tiny_models import build_tiny_model_in_child

            model_path = str(build_tiny_model_in_child(spec.tiny))
            return model_path, detect(model_path, name=spec.name), None
        if spec.profile is not None:
            from pytest_llmperf.plan.profiles import get_profile

            profile = get_profile(spec.profile)
            return profile.model, profile.architecture(), profile
        model_path = str(Path(spec.path or "").expanduser())
        return model_path, self._model_facts(spec, model_path, launch, platform), None

    def _gpus_for(self, spec: ModelSpec, profile: Any, platform: str) -> int:
        """GPUs per server: the model's, the command line's, a study profile's when planning
        its deployment from another host, else the detected count."""
        if spec.gpus is not None:
            return spec.gpus
        if self.options.gpus is not None:
            return self.options.gpus
        if (
            profile is not None
            and platform == profile.platform
            and platform != (self.accelerators().platform)
        ):
            return profile.gpus  # planning the study's deployment from another host
        return self.accelerators().count

    def _server_spec(
        self,
        spec: ModelSpec,
        plan: Any,
        launch: Any,
        platform: str,
        gpus: int,
        version: str,
        model_path: str,
    ) -> ServerSpec:
        """The server to start for a planned model (launcher, environment, version check)."""
        launcher = spec.launch_prefix or self.options.launcher or DEFAULT_LAUNCHER
        env = dict(plan.env)
        cache = str(self.report_dir / "vllm-cache")
        env.setdefault("VLLM_CACHE_ROOT", cache)
        layout = self.cpu_layout() if launch is None or launch.kind == "local" else None
        if layout is not None:
            # vLLM's compute threads on the server's cores; its other processes follow the
            # affinity the server is started with (``server_for``).
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", layout.omp_threads_bind)
        return ServerSpec(
            model=model_path,
            args=tuple(plan.args),
            env=tuple(sorted(env.items())),
            served_model_name=spec.name,
            launcher=tuple(launcher),
            launch=launch,
            platform=platform,
            nodes=spec.nodes,
            gpus=gpus,
            # The /version check: against a version the config or the command line names, or
            # the installed one for a local launch (a container runs the image's vLLM).
            expected_version=spec.vllm_version
            or self.options.vllm_version
            or (version if launch is None or launch.kind in ("local", "ray") else None),
            extra_mounts=(env["VLLM_CACHE_ROOT"],)
            if launch is not None and launch.is_container
            else (),
        )

    def _launcher_config(self, spec: ModelSpec) -> Any:
        """The model's launcher: its ``[models.launcher]`` table, else None (a prefix or the
        local default, decided by ``launch_prefix`` / ``--llmperf-launcher``)."""
        return spec.launcher

    def _model_facts(self, spec: ModelSpec, model_path: str, launch: Any, platform: str) -> Any:
        """The architecture from the config.json the server will read: a declared host copy
        (``config_path``), the folder on this host, or inside the container image."""
        from pytest_llmperf.plan.architectures import detect

        declared = getattr(launch, "config_path", None)
        if declared:
            return detect(str(Path(declared).expanduser()), name=spec.name)
        if Path(model_path).exists():
            return detect(model_path, name=spec.name)
        if launch is not None and launch.is_container:
            from pytest_llmperf.server.launchers import LaunchContext, make_launcher

            runtime = make_launcher(launch, LaunchContext(served_name=spec.name, platform=platform))
            text = runtime.read_file(f"{model_path.rstrip('/')}/config.json")  # type: ignore[attr-defined]
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ValueError(
                    f"{model_path}/config.json inside the image is not JSON ({exc}); check the "
                    "model path"
                ) from None
            return detect(data, name=spec.name)
        raise ValueError(
            f"model path {model_path} of {spec.name!r} does not exist on this host; if only the "
            "server's container has it, use a docker/podman launcher (its config.json is then "
            "read inside the image) or set launcher.config_path to a host copy of config.json"
        )

    def _new_server(self, spec: ServerSpec) -> VLLMServer:
        logs = self.report_dir / "server-logs"
        return VLLMServer(
            spec.model,
            args=spec.args,
            env=dict(spec.env),
            served_model_name=spec.served_model_name,
            launcher=spec.launcher,
            host=self.options.host,
            log_path=logs / f"{spec.name}.log",
            ready_timeout=self.options.ready_timeout,
            api_key=self.options.api_key,
            launch=spec.launch,
            platform=spec.platform,
            nodes=spec.nodes,
            gpus=spec.gpus,
            expected_version=spec.expected_version,
            extra_mounts=spec.extra_mounts,
        )

    def server_for(self, spec: ModelSpec) -> ServerHandle:
        """A ready server for ``spec``: shared for the session, restarted if it died."""
        if self.options.external_url:
            if self._external is None:
                model = self.options.external_model or self._first_model(self.options.external_url)
                self._external = ServerHandle(
                    Endpoint(self.options.external_url, model, self.options.api_key)
                )
            return self._external
        resolved = self.resolve(spec)
        if resolved.plan_error:
            raise PerfFailure(f"launch plan refused for {spec.name!r}: {resolved.plan_error}")
        assert resolved.server is not None
        layout = self._layout_for(resolved.server)
        with pinned(layout.server if layout is not None else None):
            server = self.pool.get(resolved.server)  # the server inherits the affinity
        self._launched[spec.name] = server
        return ServerHandle(server.endpoint, server, resolved.plan)

    def release(self, spec: ModelSpec) -> None:
        """Stop ``spec``'s server once no later test needs it: an idle vLLM still takes memory
        and CPU from the next model's measurement. A later request for it restarts it."""
        server = self._launched.pop(spec.name, None)
        if server is not None:
            server.stop()

    def _first_model(self, url: str) -> str:
        ep = Endpoint(url, "?", self.options.api_key)
        try:
            status, body = http_get(ep, "/v1/models", timeout=30)
            if status != 200:
                raise OSError(f"HTTP {status}")
            return str(json.loads(body)["data"][0]["id"])
        except Exception as exc:  # any failure means the same to the user
            raise ServerError(
                f"cannot list models at {ep.url('/v1/models')} ({type(exc).__name__}: {exc}); "
                "check --llmperf-endpoint, or name the model with --llmperf-served-model"
            ) from None

    def cpu_layout(self) -> CpuLayout | None:
        """Cores for a CPU server launched here and for the client (``[client] cpu_layout``,
        default ``auto``); None where nothing is pinned: an external server, a GPU platform,
        ``shared``, or a single allowed CPU."""
        if self._layout is False:
            setting = self.config.client.cpu_layout or "auto"
            layout = None
            if not self.options.external_url and self._platform_or_none() == "cpu":
                try:
                    layout = choose_layout(setting, os.sched_getaffinity(0))
                except CpuLayoutError as exc:
                    raise PerfFailure(f"[client] cpu_layout: {exc}") from None
            self._layout = layout
        return self._layout

    def _layout_for(self, server: ServerSpec) -> CpuLayout | None:
        """The layout, for a server this session pinned (a local launch got the OpenMP bind)."""
        layout = self.cpu_layout()
        env = dict(server.env)
        if layout is None or env.get("VLLM_CPU_OMP_THREADS_BIND") != layout.omp_threads_bind:
            return None
        return layout

    def client_cpus(self, handle: ServerHandle) -> tuple[int, ...] | None:
        """The client's cores while it measures ``handle``'s server, if that one is pinned."""
        layout = self._layout_for(handle.server.spec) if handle.server is not None else None
        return layout.client if layout is not None else None

    def _platform_or_none(self) -> str | None:
        try:
            return self.platform()
        except Exception:  # detection trouble: assume a dedicated server
            return None

    def shares_cores_with_server(self) -> bool:
        """Whether the load generator runs on the same CPUs as the server it measures: a
        CPU-platform server launched here (unless a CPU layout gives each its own cores), or
        an external one on this host's loopback."""
        if not self.options.external_url and self.cpu_layout() is not None:
            return False
        if self.options.external_url:
            from urllib.parse import urlsplit

            if urlsplit(self.options.external_url).hostname not in _LOOPBACK:
                return False
        try:
            return self.platform() == "cpu"
        except Exception:  # detection trouble: assume a dedicated server
            return False

    def client_limits(self) -> dict[str, float]:
        """The load generator's client-bound thresholds for this session: the config's
        ``[client]`` values, else a wider event-loop-lag limit where client and server share
        cores (see ``SHARED_CPU_LOOP_LAG_MS``), else the load generator's defaults."""
        limits: dict[str, float] = {}
        if self.shares_cores_with_server():
            limits["loop_lag_p99_ms"] = SHARED_CPU_LOOP_LAG_MS
        limits.update(self.config.client.thresholds())
        return limits

    def _guardrails(
        self, case: PerfCase, r: int, server: dict[str, Any], detail: dict[str, Any]
    ) -> list[str]:
        """Record the server's figures with the run (``detail.server``) and judge them
        (``verdicts.guardrails``): the flags go with the run; those ``[guardrails] fail_on``
        names are returned as problems that fail the case."""
        from pytest_llmperf.verdicts.guardrails import judge

        flags = judge(
            server,
            shared_prefix_tokens=case.workload.shared_prefix_tokens,
            turns=case.workload.turns,
            fail_on=self.config.guardrails.fail_on,
        )
        detail["server"] = {**server, "flags": [f.to_json() for f in flags]}
        run = f" run {r + 1}" if case.runs > 1 else ""
        return [f"guardrail {f.name}{run}: {f.message}" for f in flags if f.fails]

    def forgives_scheduling_noise(
        self, health: Any, thresholds: Any, metrics: Mapping[str, float]
    ) -> bool:
        """``scheduling_noise_only`` for this session: only where client and server share
        cores, and unless the config sets the lag limit itself."""
        if not self.shares_cores_with_server() or self.config.client.loop_lag_p99_ms is not None:
            return False  # an explicit [client] limit is meant as written
        if getattr(health, "late_reads", False):
            return False  # chunks read together: the timestamps themselves are wrong
        return scheduling_noise_only(health, thresholds, metrics)

    # -- running a case ---------------------------------------------------------------------
    def at_capacity(
        self, case: PerfCase, *, nodeid: str = "", progress: ProgressFn | None = None
    ) -> PerfCase:
        """``case`` with its rate resolved from its capacity fraction: the closed-loop request
        throughput at ``capacity_concurrency`` (measured once per model, workload and level, as
        its own case ``<model>-<workload>-c<N>`` in results.json) times the fraction."""
        from pytest_llmperf.config import Gates

        load = case.load
        assert load is not None and load.capacity_fraction is not None
        key = (case.model.name, case.workload.name, load.capacity_concurrency)
        if key not in self._capacity:
            c = load.capacity_concurrency
            probe = PerfCase(
                model=case.model,
                workload=case.workload,
                concurrency=c,
                requests=self.config.requests_for(c),
                runs=1,
                warmup_requests=self.config.warmup_requests,
                gates=Gates(success_rate_min=0.0),
            )
            try:
                got = self.run_case(probe, nodeid=nodeid, progress=progress)
            except PerfFailure:
                got = next(r for r in reversed(self.results) if r.case_id == probe.id)
            rps = got.mean("request_throughput") if got.runs else math.nan
            if got.client_bound or not rps > 0:
                why = "client-bound" if got.client_bound else "no request throughput"
                raise PerfFailure(
                    f"{case.id}: the capacity measurement {probe.id} is unusable ({why}), so "
                    f"no rate can be derived from capacity_fraction {load.capacity_fraction:g}"
                )
            self._capacity[key] = rps
        rps = self._capacity[key]
        rate = round(load.capacity_fraction * rps, 4)
        requests = self.config.load.requests_for(rate)
        return replace(case, load=replace(load, rate=rate, capacity_rps=rps), requests=requests)

    def run_case(
        self,
        case: PerfCase,
        *,
        nodeid: str = "",
        progress: ProgressFn | None = None,
    ) -> CaseResult:
        """Run ``case.runs`` fresh load runs against one server and return the gated result.

        The result is appended to results.json before this returns (also when it failed), so
        an interrupted session keeps every finished case.
        """
        from pytest_llmperf.loadgen.run import HealthThresholds

        thresholds = HealthThresholds(**self.client_limits())
        if case.load is not None and not case.load.resolved:
            case = self.at_capacity(case, nodeid=nodeid, progress=progress)
        handle = self.server_for(case.model)
        earlier = self._hung.get(handle.endpoint.base_url)
        if earlier is not None:
            raise PerfFailure(
                f"{case.id}: nothing sent: the server hung earlier in this session ({earlier})"
            )
        if case.min_duration_s and (case.load is not None or _own_requests(case.workload)):
            raise PerfFailure(
                f"{case.id}: min_duration_s sizes closed-loop levels of preset workloads; "
                "this case is open-loop or builds its own requests (dataset, input_lengths, "
                "shared_prefix_tokens, turns): size it by requests instead"
            )
        base_workload = to_load_workload(case.workload)
        acc = _CaseRuns()
        for r in range(case.runs):
            if not self._one_run(case, handle, r, base_workload, thresholds, progress, acc):
                break
        return self._judge_case(case, handle, acc, nodeid)

    def _load_spec(self, case: PerfCase, r: int) -> Any:
        """Run ``r``'s load: closed loop at the case's level, or its open-loop schedule."""
        from pytest_llmperf.loadgen.run import GAUGE_INTERVAL_S, LoadSpec

        return LoadSpec(
            mode="closed" if case.load is None else "open",
            concurrency=case.concurrency if case.load is None else case.load.max_concurrency,
            rate=None if case.load is None else case.load.rate,
            arrival="poisson" if case.load is None else case.load.arrival,
            burstiness=1.0 if case.load is None else case.load.burstiness,
            ramp_up_s=0.0 if case.load is None else case.load.ramp_up_s,
            num_requests=case.requests,
            warmup_requests=case.warmup_requests,  # every run: each starts warm
            min_duration_s=case.min_duration_s,
            timeout_s=self.options.request_timeout,
            seed=r,
            metrics_interval_s=self.config.client.metrics_interval_s or GAUGE_INTERVAL_S,
        )

    def _one_run(
        self,
        case: PerfCase,
        handle: ServerHandle,
        r: int,
        base_workload: Any,
        thresholds: Any,
        progress: ProgressFn | None,
        acc: _CaseRuns,
    ) -> bool:
        """Measure run ``r`` into ``acc``; ``False`` when no further run may be sent (the
        server hung, died or went away)."""
        from pytest_llmperf.loadgen.liveness import ServerHung
        from pytest_llmperf.workload.prompts import ImageLimitError

        # Fresh prompts per (case, run): the same sequence every night, never one another
        # run or level of the session sent (vLLM's prefix cache would serve it).
        workload = replace(base_workload, seed=prompt_seed(case.id, r))
        spec = self._load_spec(case, r)
        reqs = None
        if _own_requests(case.workload):  # dataset / lengths / prefix / turns
            reqs = self._special_requests(case, handle, workload, spec, r)
            spec = replace(spec, warmup_requests=0)  # warmed up already, off the counters
        hung = False
        safe_id = case.id.replace("/", "_")
        try:
            result = send_run(
                handle.endpoint,
                workload,
                spec,
                client_cpus=self.client_cpus(handle),
                records_path=self.report_dir / "records" / f"{safe_id}-run{r + 1}.jsonl",
                progress=_run_progress(case, r, progress),
                thresholds=thresholds,
                requests=reqs,
                workers=self.config.client.workers or "auto",
            )
        except ImageLimitError as exc:  # the preflight, before any request was sent
            raise PerfFailure(f"{case.id}: {exc}") from None
        except ServerHung as exc:  # what was measured is kept; nothing more is sent to it
            hung = True
            self._hung[handle.endpoint.base_url] = f"{case.id} run {r + 1}, {exc.phase}"
            acc.problems.append(str(exc))
            if exc.result is None:
                return False
            result = exc.result
        self._keep_run(case, handle, r, result, reqs, thresholds, acc)
        return not hung and self._may_continue(handle, result, acc)

    def _keep_run(
        self,
        case: PerfCase,
        handle: ServerHandle,
        r: int,
        result: Any,
        reqs: Sequence[Any] | None,
        thresholds: Any,
        acc: _CaseRuns,
    ) -> None:
        """Write run ``r``'s files and add its metrics, detail, errors and client health."""
        from pytest_llmperf.metrics.summary import latency_samples_ms
        from pytest_llmperf.report.vllm_bench import write_run as write_vllm_bench

        # Every run also in `vllm bench serve --save-result` layout (report/vllm_bench.py).
        write_vllm_bench(self.report_dir, case.id, r + 1, result, model_id=handle.endpoint.model)
        metrics = result.summary.metrics()
        extra = run_extras(case, self.config.slo, result)  # goodput, schedule (config.load)
        metrics.update(extra.pop("metrics"))
        if reqs is not None:
            extra["prefix_cache"] = _prefix_cache(result.server)
            rate = extra["prefix_cache"]["hit_rate"]
            if rate is not None:
                metrics["prefix_cache_hit_rate"] = rate
            extra["requests"] = _request_tokens(reqs, result.records)
        acc.runs.append(metrics)
        acc.pooled.append(latency_samples_ms(result.records))  # for the percentile bounds
        detail = {
            "summary": result.summary.to_json(),
            "samples": {m: int(v.size) for m, v in acc.pooled[-1].items()},
            "client": result.health.to_json(),
            "token_check": result.token_check.to_json(),
            **extra,
        }
        acc.details.append(detail)
        if result.server is not None:  # vLLM's own account: guardrails, second witness
            acc.problems += self._guardrails(case, r, result.server, detail)
        for k, v in result.summary.errors.items():
            acc.errors[k] = acc.errors.get(k, 0) + v
        if result.health.client_bound:
            if self.forgives_scheduling_noise(result.health, thresholds, metrics):
                detail["client_note"] = (
                    "event-loop lag forgiven: the OS ran the client late on cores shared "
                    "with the server, by under 10% of the median end-to-end latency"
                )
            else:
                acc.client_bound = True
                acc.client_reasons += list(result.health.reasons)

    def _may_continue(self, handle: ServerHandle, result: Any, acc: _CaseRuns) -> bool:
        """After a run: ``False`` (and the problem said) when the server died or went away;
        token counts that disagree are a problem but do not stop the case."""
        if not handle.alive:
            acc.problems.append(self._death_message(handle))
            return False
        if handle.server is None and self._went_away(handle, result.summary.errors):
            acc.problems.append(
                f"the server at {handle.endpoint.base_url} died or stopped answering during "
                f"the run ({_errors_text(result.summary.errors)}); it is not launched by "
                "this session, so look at its own log for the root cause"
            )
            return False
        if result.token_check.status == "mismatch":
            acc.problems.append("token counts disagree: " + "; ".join(result.token_check.reasons))
        return True

    def _case_environment(self, case: PerfCase, handle: ServerHandle) -> dict[str, Any]:
        """The case's fingerprint: model, load shape, launch plan, endpoint, CPU layout."""
        plan = self._resolved.get(case.model.name)
        env: dict[str, Any] = {"model": case.model.name}
        if case.load is not None:
            # burstiness / ramp / capacity only when set: an unchanged schedule keeps its
            # fingerprint; a capacity fraction's measured rate and capacity change nightly
            shape: dict[str, Any] = {"burstiness": 1.0, "ramp_up_s": 0.0}
            shape.update(capacity_fraction=None, capacity_rps=None)
            if case.load.capacity_fraction is None:
                shape["capacity_concurrency"] = case.load.capacity_concurrency
            drop = {"rate", "capacity_rps"} if case.load.capacity_fraction is not None else set()
            env["load"] = {"mode": "open"} | {
                k: v
                for k, v in vars(case.load).items()
                if k not in drop and (k not in shape or shape[k] != v)
            }
        if plan is not None and plan.plan is not None:
            env["launch_argv"] = redact_argv(plan.plan.args)
            env["launch_env"] = redact_env(plan.plan.env)
        env["endpoint"] = handle.endpoint.base_url
        cpus = self.client_cpus(handle)
        layout = self.cpu_layout() if cpus is not None else None
        env["cpu_layout"] = layout.describe() if layout is not None else "shared"
        if handle.server is not None and handle.server.startup_seconds is not None:
            env["server_ready_s"] = round(handle.server.startup_seconds, 1)
        return env

    def _judge_case(
        self, case: PerfCase, handle: ServerHandle, acc: _CaseRuns, nodeid: str
    ) -> CaseResult:
        """Gate the measured runs, record the case (results.json), raise ``PerfFailure`` with
        the cause first when it failed."""
        from pytest_llmperf.metrics.quantile_bounds import percentile_table, pool_samples

        runs = acc.runs
        # Percentile gates judge the case's requests pooled over its runs (docs/gates.md).
        samples = pool_samples(acc.pooled)
        gates = (
            tuple(
                evaluate_gates(
                    case.gates, gate_metrics(runs), samples, strict=self.options.strict_gates
                )
            )
            if runs
            else ()
        )
        gates += slo_gates(self.config.slo, runs)
        case_result = CaseResult(
            case_id=case.id,
            model=case.model.name,
            workload=case.workload.name,
            concurrency=case.concurrency,
            runs=tuple(runs),
            gates=gates,
            client_bound=acc.client_bound,
            client_reasons=tuple(dict.fromkeys(acc.client_reasons)),
            errors=acc.errors,
            environment=self._case_environment(case, handle),
            details=tuple(acc.details),
            nodeid=nodeid,
            percentiles=percentile_table(samples, case.gates.confidence) if runs else {},
        )
        self.record(case_result)
        if acc.problems or not case_result.passed:
            message = gate_failure_message(
                case.id,
                gates,
                gate_metrics(runs) if runs else {},
                errors=acc.errors,
                client_bound=acc.client_bound,
                client_reasons=case_result.client_reasons,
            )
            if acc.problems:  # the cause first, then the gates it broke and the run's numbers
                message = f"{case.id}: " + "\n".join(acc.problems) + "\n" + message
            raise PerfFailure(message)
        return case_result

    def _special_requests(
        self, case: PerfCase, handle: ServerHandle, workload: Any, spec: Any, run: int
    ) -> list[Any]:
        """The run's requests for a dataset / length-distribution / shared-prefix / multi-turn
        workload (``workload.datasets``), built against the server's tokenizer; the warm-up
        requests (other prompts) are sent here first, so the run's prefix-cache counters and
        figures are its own."""
        from pytest_llmperf.loadgen.run import LoadSpec, run_load
        from pytest_llmperf.workload import datasets as ds

        ref = case.workload
        ep = handle.endpoint

        def build(n: int, seed: int, start: int) -> list[Any]:
            w = replace(workload, seed=seed)
            if ref.dataset is not None:
                path = Path(ref.dataset)
                path = path if path.is_absolute() else self.options.rootdir / path
                entries = ds.load_dataset(path)
                return ds.run_sync(
                    ds.prepare_dataset_requests, ep, w, entries, n, start_index=start
                )
            if ref.input_lengths is not None:
                lengths = ref.input_lengths.sample(n, seed=seed)
                return ds.run_sync(ds.prepare_length_requests, ep, w, lengths, start_index=start)
            if ref.turns > 1:
                return ds.run_sync(
                    ds.prepare_multi_turn_requests, ep, w, n, turns=ref.turns, start_index=start
                )
            from pytest_llmperf.workload.prompts import prepare_requests_sync

            return prepare_requests_sync(ep, w, n, start_index=start)

        try:
            # the run's fresh seed (prompt_seed of case and run), so no level or run of the
            # session re-sends another's prompts; the warm-up draws from a seed of its own
            reqs = build(spec.num_requests, workload.seed, 0)
            if spec.warmup_requests:
                # warm-up from the far end of the dataset, other seeds otherwise
                warm_seed = prompt_seed(f"{case.id}:warm-up", run)
                warm = build(spec.warmup_requests, warm_seed, spec.num_requests)
                warm_spec = LoadSpec(
                    concurrency=min(spec.warmup_requests, 8),
                    num_requests=spec.warmup_requests,
                    timeout_s=spec.timeout_s,
                )
                run_load(ep, workload, warm_spec, requests=warm)
        except ValueError as exc:  # DatasetError, PromptLengthError's kin: the user's input
            raise PerfFailure(f"{case.id}: {exc}") from None
        return reqs

    def _death_message(self, handle: ServerHandle) -> str:
        try:
            handle.check_alive()
        except ServerError as exc:
            text = f"server died during the run: {exc}"
            proc = getattr(handle.server, "_proc", None)  # VLLMServer has no public exit code
            code = proc.returncode if proc is not None else None
            if not exc.root_cause and code is not None and code < 0:
                # A killed process logs nothing; the signal is the root cause.
                head, _, tail = text.partition("\n")
                cause = f"  root cause: killed by {_signal_name(-code)} (from outside vLLM: "
                cause += "the OOM killer, a user, or a CI timeout)"
                empty_tail = tail.strip() in ("", "log tail:")
                text = "\n".join((head, cause) if empty_tail else (head, cause, tail))
            return text
        return "server died during the run"

    def _went_away(self, handle: ServerHandle, errors: Mapping[str, int]) -> bool:
        """Whether an external server stopped answering (connection errors and no /health)."""
        if not any(k in ("connection", "server_died") for k in errors):
            return False
        try:
            status, _ = http_get(handle.endpoint, "/health", timeout=5)
        except Exception:  # unreachable in any way is the answer
            return True
        return not 200 <= status < 300

    def record(self, case: CaseResult) -> None:
        self.results = [c for c in self.results if c.case_id != case.case_id] + [case]
        write_results(
            self.report_dir, self.results, environment=self.environment(), suite=self.judge_suite()
        )

    def judge_suite(self) -> SuiteIndex | None:
        """The session's throughput index against the config's suite floor (None: no floor)."""
        floor = self.config.suite_floor
        return judge_suite(self.results, floor) if floor is not None else None

    @staticmethod
    def key_numbers(case: CaseResult) -> str:
        return key_numbers_line(gate_metrics(case.runs), case.errors) if case.runs else ""

    # -- baselines --------------------------------------------------------------------------
    def fingerprint(self, baseline: Any, case: PerfCase, result: CaseResult) -> Any:
        """The fingerprint ``baseline`` (a ``BaselineSession``) compares ``result`` under.

        An external endpoint's launch plan is unknown here: its argv is recorded as
        ``EXTERNAL_ARGV`` and its env as empty, and the served model's name stands for the
        model. A server on another host also runs on hardware and software this machine
        cannot see, so those fields are recorded as unknown (None) unless
        ``--llmperf-vllm-version`` says which vLLM it runs."""
        from dataclasses import replace as _replace

        if not self.options.external_url:
            fp = baseline.fingerprint_for(
                result,
                self._resolved.get(case.model.name),
                self.accelerators(),
                self.options.vllm_version,
                case=case,
            )
            layout = result.environment.get("cpu_layout") if result.environment else None
            return _replace(fp, cpu_layout=layout) if layout else fp

        fp = baseline.fingerprint_for(
            result, None, self.accelerators(), self.options.vllm_version, case=case
        )
        served = self._external.endpoint.model if self._external is not None else None
        fp = _replace(fp, launch_argv=EXTERNAL_ARGV, launch_env=(), model_name=served or None)
        if not self.shares_host_with_server():
            fp = _replace(
                fp,
                accelerator_model=None,
                accelerator_count=0,
                driver=None,
                runtime_version=None,
                vllm_version=self.options.vllm_version,
                torch_version=None,
                host_cpu=None,
            )
        return fp

    def shares_host_with_server(self) -> bool:
        """Whether the server runs on this machine (launched here, or a loopback endpoint)."""
        if not self.options.external_url:
            return True
        from urllib.parse import urlsplit

        return urlsplit(self.options.external_url).hostname in _LOOPBACK

    # -- session end ------------------------------------------------------------------------
    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "plugin_version": __version__,
            "python": sys.version.split()[0],
            "host": _platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "vllm_version": installed_vllm_version(local_label=False),
            "config_source": self.config.source,
        }
        if self.options.external_url:
            env["endpoint"] = self.options.external_url
        if self._accel is not None:
            a = self._accel
            env["platform"] = a.platform
            env["accelerator"] = a.model
            env["accelerator_count"] = a.count
            env["host_cpu"] = getattr(a, "host_cpu", None)
        if self._layout:
            env["cpu_layout"] = self._layout.to_json()
        return env

    def record_ab(self, result: Any) -> None:
        """Keep an A/B comparison (``session.ab.ABResult``) and rewrite ab.json at once."""
        from pytest_llmperf.report.ab_outputs import write_ab_json

        self.ab_results.append(result)
        write_ab_json(self.report_dir, [r.to_json() for r in self.ab_results])

    def finish(self) -> Any:
        """Stop every server, then write the full report (also after failures)."""
        self.pool.close()
        if not self.results and not self.ab_results:
            return None
        extra = ""
        if self.ab_results:
            from pytest_llmperf.report.ab_outputs import (
                ab_ratio_png,
                ab_section_html,
                write_ab_plot,
            )

            docs = [r.to_json() for r in self.ab_results]
            write_ab_plot(self.report_dir, docs)
            extra = ab_section_html(docs, ab_ratio_png(docs))
        return write_report(
            self.report_dir,
            self.results,
            environment=self.environment(),
            extra_html=extra,
            suite=self.judge_suite(),
        )

    def describe_plans(self, models: Sequence[ModelSpec]) -> list[str]:
        """What ``--llmperf-plan`` prints: each model's decisions, command and environment."""
        lines: list[str] = []
        for spec in models:
            resolved = self.resolve(spec)
            lines.append(f"== {spec.name}")
            if resolved.plan_error:
                lines.append(f"  REFUSED: {resolved.plan_error}")
                continue
            if resolved.plan is None:
                lines.append(f"  external endpoint {self.options.external_url}: nothing launched")
                continue
            plan = resolved.plan
            arch = plan.architecture
            lines.append(f"  architecture: {getattr(arch, 'family', arch)}")
            for d in plan.decisions:
                lines.append(f"  - [{d.rule}] {d.outcome}: {d.reason}")
            assert resolved.server is not None
            lines += self._describe_launch(resolved.server)
        return [redact_text(line) for line in lines]  # decisions quote the env's values too

    def _describe_launch(self, spec: ServerSpec) -> list[str]:
        """The launcher, the exact command (port chosen at start) and where each environment
        variable goes; secrets by name only."""
        import shlex

        try:
            server = self._new_server(spec)
        except ServerError as exc:
            return [f"  REFUSED: {exc}"]
        launcher = server.launcher
        lines = [f"  {ln}" for ln in launcher.describe()]
        if launcher.kind == "prefix" and Path(spec.launcher[0]).name in ("docker", "podman"):
            lines.append(
                "  WARNING: a bare docker/podman prefix gets the plan's environment and the API "
                "key on the client, not inside the container; use [models.launcher] kind = "
                f'"{Path(spec.launcher[0]).name}" instead'
            )
        lines.append("  command: " + shlex.join(redact_argv(server.command())))
        env = dict(spec.env)
        if "HF_HUB_OFFLINE" not in env and Path(spec.model).expanduser().is_dir():
            env["HF_HUB_OFFLINE"] = "1"
        if env:
            shown = redact_env(env)
            lines.append("  env: " + " ".join(f"{k}={v}" for k, v in shown.items()))
        secrets = sorted(server.secrets())
        lines.append("  where the environment goes:")
        lines += [f"    {ln}" for ln in launcher.placement(env, secrets)]
        if "HF_HUB_OFFLINE" not in env and "HF_TOKEN" not in secrets:
            lines.append("    HF_TOKEN (secret): not set here; when set, it goes the same way")
        return lines


def _signal_name(num: int) -> str:
    import signal

    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _errors_text(errors: Mapping[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())) or "no errors recorded"


def default_report_dir(rootdir: Path, config: PerfConfig, option: str | None) -> Path:
    raw = Path(option) if option else config.report_dir
    return raw if raw.is_absolute() else rootdir / raw
