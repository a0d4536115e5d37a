"""Config records: models, workloads, gates, client limits, cases and the matrix."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pytest_llmperf.config.baseline import BaselineSettings
from pytest_llmperf.config.guardrails import GuardrailSettings
from pytest_llmperf.config.history import HistorySettings
from pytest_llmperf.config.load import LoadModes, OpenLoad, Slo
from pytest_llmperf.config.vocab import (
    DEFAULT_MIN_REQUESTS,
    DEFAULT_WARMUP_REQUESTS,
    STUDY_CONCURRENCY,
    VISION_MODELS,
)
from pytest_llmperf.server.launchers import LauncherConfig
from pytest_llmperf.verdicts.gates import Gates
from pytest_llmperf.workload.presets import DEFAULT_IMAGE_SIZE, WORKLOADS

if TYPE_CHECKING:
    from pytest_llmperf.config.ab import ABConfig
    from pytest_llmperf.verdicts.suite_index import SuiteFloor

# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadShape:
    """What each request of a workload looks like."""

    input_tokens: int
    output_tokens: int
    images_per_request: int = 0
    endpoint: Literal["completions", "chat"] = "completions"


#: Workload presets from the study: text 500/100, vision 100 + 1 image / 200, the multi-run
#: 2,048/512, 4K and 8K contexts (512 out, as the multi-run workload), 1,000-token outputs.
#: Derived from ``workload.presets.WORKLOADS``, their one home.
PRESETS: Final[dict[str, WorkloadShape]] = {
    name: WorkloadShape(w.input_tokens, w.output_tokens, w.images_per_request, w.endpoint)
    for name, w in WORKLOADS.items()
}


@dataclass(frozen=True)
class WorkloadRef:
    """A workload as configured: a preset with any overrides already applied.

    ``name`` is what case ids show; it equals ``preset`` unless the user named a variant.
    """

    name: str
    preset: str
    input_tokens: int
    output_tokens: int
    images_per_request: int
    endpoint: Literal["completions", "chat"]
    # config.load: a shared system prompt, prompts from a file, synthetic lengths, turns
    shared_prefix_tokens: int = 0
    dataset: str | None = None
    input_lengths: Any = None  # workload.lengths.LengthDistribution
    turns: int = 1
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE  # pixels (width, height) of each image

    @property
    def max_prompt_tokens(self) -> int:
        """The longest prompt a request may carry (context sizing): ``input_tokens`` (for a
        dataset: the user's hint), the length distribution's bound, or all turns so far."""
        if self.input_lengths is not None:
            return int(self.input_lengths.high if self.input_lengths.kind != "fixed"
                       else self.input_lengths.mean)  # fmt: skip
        if self.turns > 1:
            return self.shared_prefix_tokens + self.turns * (self.input_tokens + self.output_tokens)
        return self.input_tokens

    @classmethod
    def from_preset(
        cls,
        preset: str,
        *,
        name: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        images_per_request: int | None = None,
        endpoint: Literal["completions", "chat"] | None = None,
    ) -> WorkloadRef:
        base = PRESETS[preset]
        return cls(
            name=name or preset,
            preset=preset,
            input_tokens=base.input_tokens if input_tokens is None else input_tokens,
            output_tokens=base.output_tokens if output_tokens is None else output_tokens,
            images_per_request=(
                base.images_per_request if images_per_request is None else images_per_request
            ),
            endpoint=base.endpoint if endpoint is None else endpoint,
        )

    @property
    def shape(self) -> WorkloadShape:
        return WorkloadShape(
            self.input_tokens, self.output_tokens, self.images_per_request, self.endpoint
        )

    @property
    def needs_vision(self) -> bool:
        return self.images_per_request > 0


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: exactly one source (``tiny``, ``profile`` or ``path``) plus launch
    overrides. ``workloads``/``concurrency`` of ``None`` mean "the config-wide ones"."""

    name: str
    tiny: str | None = None
    profile: str | None = None
    path: str | None = None
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    launch_prefix: tuple[str, ...] = ()
    max_num_seqs: int | None = None
    workloads: tuple[str, ...] | None = None
    concurrency: tuple[int, ...] | None = None
    #: ``[models.launcher]``: how this model's server starts (docker, podman, slurm, ray, …).
    launcher: LauncherConfig | None = None
    #: The vLLM version and platform this model's server runs (its image's), so each model
    #: is planned by its own rules; ``None``: the session's (``--llmperf-vllm-version``, the
    #: installed vLLM, the detected platform).
    vllm_version: str | None = None
    platform: str | None = None
    gpus: int | None = None  # GPUs per node; None: the session's (detected, --llmperf-gpus)
    nodes: int = 1  # nodes of a Ray cluster (> 1: a multi-node plan)

    @property
    def source(self) -> Literal["tiny", "profile", "path"]:
        if self.tiny is not None:
            return "tiny"
        if self.profile is not None:
            return "profile"
        return "path"

    @property
    def vision_capable(self) -> bool | None:
        """True/False where known; ``None`` for a local path (we cannot tell, so we trust it)."""
        key = self.tiny or self.profile
        return None if key is None else key in VISION_MODELS


GATE_KEYS: Final[tuple[str, ...]] = tuple(f.name for f in fields(Gates))
_SELECTOR_KEYS: Final[tuple[str, ...]] = ("model", "workload", "concurrency")


@dataclass(frozen=True)
class GateRule:
    """Gate limits that apply to the cases its selectors match (``None`` matches anything).

    When several rules match, the more specific wins (more selectors set); on a tie the later
    one in the file wins, so a file reads top-down like CSS.
    """

    limits: tuple[tuple[str, float], ...]
    model: str | None = None
    workload: str | None = None
    concurrency: tuple[int, ...] | None = None

    def matches(self, model: str, workload: str, concurrency: int) -> bool:
        return (
            (self.model is None or self.model == model)
            and (self.workload is None or self.workload == workload)
            and (self.concurrency is None or concurrency in self.concurrency)
        )

    @property
    def specificity(self) -> int:
        return sum(x is not None for x in (self.model, self.workload, self.concurrency))


@dataclass(frozen=True)
class ClientLimits:
    """When the load generator's own numbers say a run measured the client, not the server
    (passed to ``loadgen.run_load`` as its health thresholds). ``None`` leaves the choice to
    the engine: the load generator's default, or a wider lag limit where client and server
    share CPU cores (``engine.SHARED_CPU_LOOP_LAG_MS``)."""

    loop_lag_p99_ms: float | None = None
    schedule_lag_p99_ms: float | None = None
    cpu_fraction: float | None = None
    #: Where a launched CPU server and the client run when they share the host: ``auto``
    #: (server on every allowed core but the last, client on the last), ``shared`` (no
    #: pinning) or ``"SERVER/CLIENT"`` CPU lists such as ``"0/1"`` (see ``core.cpu_layout``).
    cpu_layout: str | None = None
    #: Seconds between samples of the server's ``/metrics`` gauges during a run (the
    #: timeline and the peaks, ``docs/guardrails.md``); None: the load generator's 0.5 s.
    metrics_interval_s: float | None = None
    #: Processes that send a run's measured phase (``loadgen.workers``): an int forces that
    #: many; ``"auto"`` (None: the default) keeps one process unless the requested rate needs
    #: more CPU than one event loop has and the client may use more cores.
    workers: int | str | None = None

    def thresholds(self) -> dict[str, float]:
        """The health thresholds set here (the load generator's ``HealthThresholds`` fields)."""
        return {
            k: v
            for k, v in vars(self).items()
            if k in ("loop_lag_p99_ms", "schedule_lag_p99_ms", "cpu_fraction") and v is not None
        }


CLIENT_KEYS: Final[tuple[str, ...]] = tuple(f.name for f in fields(ClientLimits))


@dataclass(frozen=True)
class PerfCase:
    """One test: a model serving a workload at one concurrency level, ``runs`` times."""

    model: ModelSpec
    workload: WorkloadRef
    concurrency: int
    requests: int
    runs: int
    warmup_requests: int
    gates: Gates
    load: OpenLoad | None = None  # open loop at a request rate; None: closed at concurrency
    #: A closed-loop run keeps sending until it lasted this long, as well as ``requests``.
    min_duration_s: float = 0.0

    @property
    def id(self) -> str:
        if self.load is not None:
            return f"{self.model.name}-{self.workload.name}-{self.load.label}"
        return case_id(self.model.name, self.workload.name, self.concurrency)


@dataclass(frozen=True)
class PerfConfig:
    """The whole perf matrix. Relative ``report_dir``/``baseline_dir`` are relative to pytest's
    rootdir. ``source`` names where it came from, for messages."""

    models: tuple[ModelSpec, ...]
    workloads: tuple[WorkloadRef, ...]
    concurrency: tuple[int, ...] = STUDY_CONCURRENCY
    runs: int = 1
    multiplier: float = 1.0
    min_requests: int = DEFAULT_MIN_REQUESTS
    requests_per_level: tuple[tuple[int, int], ...] = ()
    warmup_requests: int = DEFAULT_WARMUP_REQUESTS
    #: Closed-loop levels run until both their requests and this many seconds are reached.
    min_duration_s: float = 0.0
    report_dir: Path = Path(".llmperf")
    baseline_dir: Path = Path("baselines")
    gates: tuple[GateRule, ...] = ()
    client: ClientLimits = ClientLimits()
    history: HistorySettings = field(default_factory=HistorySettings)
    load: LoadModes = field(default_factory=LoadModes)
    slo: Slo = field(default_factory=Slo)
    source: str = "<built-in>"
    ab: ABConfig | None = None  # the [ab] section: variants for an interleaved A/B
    baseline: BaselineSettings = field(default_factory=BaselineSettings)  # [baseline] section
    guardrails: GuardrailSettings = field(default_factory=GuardrailSettings)  # [guardrails]
    #: One floor over the whole session's throughput (``verdicts.suite_index``); the built-in
    #: default sets it from its measured table, a user's file has none.
    suite_floor: SuiteFloor | None = None

    def requests_for(self, concurrency: int) -> int:
        """Requests one run at ``concurrency`` sends.

        ``ceil(base x multiplier)`` where ``base`` is ``requests_per_level[c]`` if set, else
        ``max(c, min_requests)``; never fewer than ``c``, because a level with fewer requests
        than its concurrency never reaches that concurrency and would be mislabelled.
        """
        base = dict(self.requests_per_level).get(concurrency, max(concurrency, self.min_requests))
        return max(concurrency, math.ceil(base * self.multiplier))

    def gates_for(self, model: str, workload: str, concurrency: int) -> Gates:
        matching = [
            (rule.specificity, i, rule)
            for i, rule in enumerate(self.gates)
            if rule.matches(model, workload, concurrency)
        ]
        merged: dict[str, float] = {}
        for _, _, rule in sorted(matching, key=lambda t: (t[0], t[1])):
            merged.update(rule.limits)
        return Gates(**merged)

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def workload(self, name: str) -> WorkloadRef:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)

    def workloads_for(self, model: ModelSpec) -> tuple[WorkloadRef, ...]:
        """The model's own list, else every configured workload it can serve."""
        if model.workloads is not None:
            names = set(model.workloads)
            return tuple(w for w in self.workloads if w.name in names)
        return tuple(w for w in self.workloads if _can_serve(model, w))

    def cases(self) -> tuple[PerfCase, ...]:
        """The matrix, in the order it should run: model, then workload, then concurrency
        ascending (saturation is judged level by level, and one server serves each model)."""
        out: list[PerfCase] = []
        for m in self.models:
            for w in self.workloads_for(m):
                if self.load.open_loop:  # one case per request rate instead of per level
                    cap = self.load.max_concurrency
                    out += [
                        PerfCase(
                            model=m,
                            workload=w,
                            concurrency=cap or 0,
                            requests=self.load.requests_for(ol.rate),
                            runs=self.runs,
                            warmup_requests=self.warmup_requests,
                            gates=self.gates_for(m.name, w.name, cap or 0),
                            load=ol,
                        )
                        for ol in self.load.loads()
                    ]
                    continue
                for c in m.concurrency or self.concurrency:
                    out.append(
                        PerfCase(
                            model=m,
                            workload=w,
                            concurrency=c,
                            requests=self.requests_for(c),
                            runs=self.runs,
                            warmup_requests=self.warmup_requests,
                            gates=self.gates_for(m.name, w.name, c),
                            min_duration_s=self.min_duration_s,
                        )
                    )
        return tuple(out)


def case_id(model: str, workload: str, concurrency: int) -> str:
    """The pytest id of a case, e.g. ``dense-gqa-text-c500``; stable across runs and machines,
    so baselines and ``-k`` expressions keep matching."""
    return f"{model}-{workload}-c{concurrency}"


def _can_serve(model: ModelSpec, workload: WorkloadRef) -> bool:
    return not workload.needs_vision or model.vision_capable is not False
