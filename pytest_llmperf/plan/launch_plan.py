"""Architecture + platform + vLLM version -> the vLLM command line and environment, with reasons.

Pure: :func:`make_plan` reads nothing and starts nothing, so impossible requests (offloading on
MLA or on CPU, an fp8 KV cache on sparse MLA, …) fail here with :class:`PlanError` instead of
after a minutes-long server start. Every flag and variable it sets carries a :class:`Decision`.

Size (about 800 lines), stated: ``make_plan`` and its per-decision steps (parallelism, the
ROCm AITER rule (``_rocm_aiter``), block size, precision, KV cache, memory, offloading, vision,
environment, command line) are one ordered pipeline over one ``_Builder``; each step is a short
function, and the rules they consult are in ``plan.rules``. Kept together so the decision order
is read top to bottom (and so the mutation tests keep targeting these names).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

import msgspec
from packaging.version import Version

from pytest_llmperf.plan import rules
from pytest_llmperf.plan.architectures import Architecture

if TYPE_CHECKING:
    from pytest_llmperf.plan.profiles import Profile

#: The one home of how vLLM's OpenAI server is started. ``DEFAULT_LAUNCHER`` is what
#: ``server.process`` runs here (this interpreter); ``PORTABLE_LAUNCHER`` is the same command as
#: a plan prints it for another machine (whose Python is ``python`` on its PATH).
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_LAUNCHER: tuple[str, ...] = (sys.executable, "-m", VLLM_SERVER_MODULE)
PORTABLE_LAUNCHER: tuple[str, ...] = ("python", "-m", VLLM_SERVER_MODULE)

# Flags appear in this order, whatever order the rules set them in, so plans diff cleanly.
_FLAG_ORDER = (
    "--served-model-name",
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--distributed-executor-backend",
    "--quantization",
    "--kv-cache-dtype",
    "--block-size",
    "--trust-remote-code",
    "--max-model-len",
    "--max-num-seqs",
    "--gpu-memory-utilization",
    "--enforce-eager",
    "--kv-offloading-backend",
    "--kv-offloading-size",
    "--disable-hybrid-kv-cache-manager",
    "--limit-mm-per-prompt",
)
_OFFLOAD_FLAGS = frozenset(
    {"--kv-offloading-size", "--kv-offloading-backend", "--disable-hybrid-kv-cache-manager"}
)
_FP8_WEIGHTS = ("fp8", "fbgemm_fp8", "ptpc_fp8")
# Flags in extra_args that the plan understands, mapped to the override field they stand for.
_ABSORBED = {
    "--block-size": "block_size",
    "--kv-cache-dtype": "kv_cache_dtype",
    "--quantization": "quantization",
    "-q": "quantization",
    "--tensor-parallel-size": "tensor_parallel",
    "-tp": "tensor_parallel",
    "--kv-offloading-size": "kv_offload_gib",
    "--max-num-seqs": "max_num_seqs",
    "--gpu-memory-utilization": "gpu_memory_utilization",
}
_INT_FIELDS = frozenset({"block_size", "tensor_parallel", "max_num_seqs"})
_FLOAT_FIELDS = frozenset({"kv_offload_gib", "gpu_memory_utilization"})
_NOT_YOURS = {
    "--model": "pass the model as make_plan(model=...) / plan --model",
    "--host": "the server module chooses --host and --port",
    "--port": "the server module chooses --host and --port",
}


class PlanError(ValueError):
    """A launch that cannot work: raised before anything starts, naming the rule and the fix."""

    def __init__(self, rule_id: str, message: str) -> None:
        self.rule = rule_id
        super().__init__(f"[{rule_id}] {message}")


@dataclass(frozen=True)
class PlanOverrides:
    """What a user asks for explicitly. ``None`` means "let the rules decide"; set values win
    over rules except where a rule forbids them (then :class:`PlanError`)."""

    extra_args: tuple[str, ...] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    kv_offload_gib: float | None = None
    block_size: int | None = None
    tensor_parallel: int | None = None
    aiter: bool | None = None
    kv_cache_dtype: str | None = None
    max_num_seqs: int | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool | None = None
    quantization: str | None = None
    trust_remote_code: bool | None = None

    def over(self, base: PlanOverrides) -> PlanOverrides:
        """These overrides on top of ``base`` (a profile's): set fields win, args/env combine."""
        merged: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(base, f.name)
            if f.name == "extra_args":
                merged[f.name] = (*theirs, *mine)
            elif f.name == "extra_env":
                merged[f.name] = {**theirs, **mine}
            else:
                merged[f.name] = theirs if mine is None else mine
        return PlanOverrides(**merged)


@dataclass(frozen=True)
class Decision:
    """One thing the plan did or refused: the rule behind it, the outcome, a one-line why."""

    rule: str
    outcome: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return cast("dict[str, str]", msgspec.to_builtins(self))


@dataclass(frozen=True)
class LaunchPlan:
    """The vLLM arguments (from ``--model`` on; no launcher, no ``--host``/``--port``) and
    environment for one server, with the decisions that produced them."""

    architecture: Architecture
    args: tuple[str, ...]
    env: Mapping[str, str]
    decisions: tuple[Decision, ...]
    platform: str = "cpu"
    vllm_version: str = ""
    profile: str | None = None

    def command(self, launcher: Sequence[str] = PORTABLE_LAUNCHER) -> list[str]:
        return [*launcher, *self.args]

    def shell(self, launcher: Sequence[str] = PORTABLE_LAUNCHER) -> str:
        """The command as one shell line, environment first, for people to copy."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return f"{env} {shlex.join(self.command(launcher))}".strip()

    def to_json(self) -> dict[str, Any]:
        """What ``plan --json`` prints: a :class:`LaunchPlanRecord`."""
        record = LaunchPlanRecord(
            architecture=self.architecture.to_json(),
            platform=self.platform,
            vllm_version=self.vllm_version,
            profile=self.profile,
            argv=list(self.args),
            command=self.command(),
            env=dict(self.env),
            decisions=list(self.decisions),
        )
        return cast("dict[str, Any]", msgspec.to_builtins(record))


class LaunchPlanRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON of a :class:`LaunchPlan` (``plan --json``): the architecture with its family,
    the vLLM arguments as ``argv`` and as the portable ``command``, the decisions."""

    architecture: dict[str, Any]
    platform: str
    vllm_version: str
    profile: str | None
    argv: list[str]
    command: list[str]
    env: dict[str, str]
    decisions: list[Decision]


@dataclass
class _Source:
    """Where an override came from, so its decision names the user or the profile."""

    rule: str
    reason: str


class _Builder:
    def __init__(self, arch: Architecture, platform: str, version: Version) -> None:
        self.arch = arch
        self.platform = platform
        self.version = version
        self.flags: dict[str, str | None] = {}
        self.env: dict[str, str] = {}
        self.decisions: list[Decision] = []

    def rule(self, topic: str) -> rules.Rule | None:
        return rules.find(topic, platform=self.platform, vllm_version=self.version, arch=self.arch)

    def decide(self, rule_id: str, outcome: str, reason: str) -> None:
        self.decisions.append(Decision(rule_id, outcome, reason))

    def flag(self, name: str, value: object = None) -> str:
        self.flags[name] = None if value is None else str(value)
        return name if value is None else f"{name} {value}"

    def setenv(self, name: str, value: str) -> str:
        self.env[name] = value
        return f"{name}={value}"

    def apply_env(self, rule: rules.Rule) -> None:
        """Set every variable of an environment rule, one decision each."""
        for name, value in rule.value.items():
            self.decide(rule.id, self.setenv(name, value), rule.reason)


def make_plan(
    arch: Architecture,
    *,
    platform: str,
    vllm_version: str | Version,
    gpus: int,
    model: str,
    served_model_name: str | None = None,
    workload_max_len: int | None = None,
    overrides: PlanOverrides | None = None,
    nodes: int = 1,
    profile: Profile | str | None = None,
    images_per_prompt: int | None = None,
    executor_backend: str | None = None,
) -> LaunchPlan:
    """Plan one vLLM server. ``gpus`` is per node; ``nodes`` > 1 plans a Ray multi-node run;
    ``executor_backend="ray"`` (a Ray launcher) puts even one node's workers on Ray.

    ``profile`` (a study profile or its name) supplies its overrides and context length under
    the caller's; ``images_per_prompt`` sizes the multimodal limit for vision models.
    """
    platform, version = _plan_inputs(platform, vllm_version, model)
    prof = _resolve_profile(profile)
    user = overrides or PlanOverrides()
    ov, sources = _merge(user, prof)
    ov, passthrough = _absorb_extra_args(ov, sources)
    len_source = _Source("workload-max-len", "context sized to the workload's prompt plus output")
    if workload_max_len is None and prof is not None and prof.workload_max_len is not None:
        workload_max_len = prof.workload_max_len
        len_source = _Source(f"profile:{prof.name}", "the study's context length")

    b = _Builder(arch, platform, version)
    if executor_backend == "ray" and nodes == 1:
        _ray_executor(b)
    tp = _parallelism(b, ov, sources, gpus=gpus, nodes=nodes)
    unset_by = f"profile:{prof.name}" if prof and prof.aiter_unset else None
    tp = _rocm_aiter(b, ov, sources, tp=tp, gpus=gpus, leave_unset_by=unset_by)
    if tp > 1 or ov.tensor_parallel is not None or platform in rules.GPU_PLATFORMS:
        b.flags["--tensor-parallel-size"] = str(tp)
    _block_size(b, ov, sources)
    _precision(b, ov, sources)
    kv_fixed = _kv_cache_space(b, ov, passthrough)
    _memory(
        b, ov, sources, workload_max_len=workload_max_len, len_source=len_source, kv_fixed=kv_fixed
    )
    _offloading(b, ov, sources, passthrough)
    _vision(b, images_per_prompt, passthrough)
    if served_model_name:
        b.flag("--served-model-name", served_model_name)
    _hub_offline(b, model)
    _extra_env(b, ov, sources)
    return LaunchPlan(
        architecture=arch,
        args=tuple(_command_args(b, model, passthrough, sources)),
        env=dict(b.env),
        decisions=tuple(b.decisions),
        platform=platform,
        vllm_version=str(version),
        profile=prof.name if prof else None,
    )


def _plan_inputs(platform: str, vllm_version: str | Version, model: str) -> tuple[str, Version]:
    """``make_plan``'s platform (normalised) and vLLM version, each checked; the model non-empty."""
    platform = platform.strip().lower()
    if platform not in rules.PLATFORMS:
        raise PlanError(
            "platform", f"unknown platform {platform!r}; use one of {sorted(rules.PLATFORMS)}"
        )
    try:
        version = rules.parse_version(vllm_version)
    except ValueError as exc:
        raise PlanError("vllm-version", str(exc)) from None
    if not model:
        raise PlanError("model", "model is empty; pass a model id or directory")
    return platform, version


def _ray_executor(b: _Builder) -> None:
    """One node's workers on Ray (a Ray launcher): ``--distributed-executor-backend ray``,
    refused where the platform's rule says Ray cannot run."""
    rule = b.rule("ray-executor")
    assert rule is not None
    if rule.value is False:
        raise PlanError(
            rule.id, f"{rule.reason}; use the local or a container launcher on {b.platform}"
        )
    b.decide(rule.id, b.flag("--distributed-executor-backend", "ray"), rule.reason)


def _hub_offline(b: _Builder, model: str) -> None:
    """The offline-hub environment for a model on disk; a hub id is left online, and said so."""
    offline = b.rule("offline-env")
    if offline is not None and is_local_model(model):
        b.apply_env(offline)
    elif offline is not None:
        b.decide(
            "hub-model-online",
            "HF_HUB_OFFLINE unset",
            f"{model} is a hub id: the server downloads it (pass HF_TOKEN in your environment; "
            "it reaches the server as a secret, never on a command line)",
        )


def _command_args(
    b: _Builder, model: str, passthrough: Sequence[str], sources: dict[str, _Source]
) -> list[str]:
    """The server's arguments: ``--model``, the decided flags in ``_FLAG_ORDER`` (less those the
    user passes through), then the pass-through arguments as given."""
    args: list[str] = ["--model", model]
    overridden = {_flag_name(a) for a in passthrough if a.startswith("-")}
    for name in _FLAG_ORDER:
        if name in b.flags and name not in overridden:
            value = b.flags[name]
            args += [name] if value is None else [name, value]
    if passthrough:
        args += passthrough
        src = sources.get("extra_args", _Source("override:extra_args", "asked for by the user"))
        b.decide(src.rule, shlex.join(passthrough), f"passed through as given ({src.reason})")
    return args


def is_local_model(model: str) -> bool:
    """A folder on disk (absolute, ``./``, ``~``) rather than a hub id such as ``org/name``."""
    return model.startswith(("/", ".", "~"))


def _resolve_profile(profile: Profile | str | None) -> Profile | None:
    if profile is None or not isinstance(profile, str):
        return profile
    from pytest_llmperf.plan.profiles import get_profile

    try:
        return get_profile(profile)
    except ValueError as exc:
        raise PlanError("profile", str(exc)) from None


def _merge(user: PlanOverrides, prof: Profile | None) -> tuple[PlanOverrides, dict[str, _Source]]:
    """Combine the profile's overrides with the user's and remember who set each field."""
    sources: dict[str, _Source] = {}
    base = prof.overrides if prof else PlanOverrides()
    for f in fields(PlanOverrides):
        if prof and getattr(base, f.name) not in (None, (), {}):
            why = prof.why.get(f.name, f"the study's {prof.name} setting")
            sources[f.name] = _Source(f"profile:{prof.name}", why)
        if getattr(user, f.name) not in (None, (), {}):
            sources[f.name] = _Source(f"override:{f.name}", "asked for by the user")
    return user.over(base), sources


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def _absorb_extra_args(
    ov: PlanOverrides, sources: dict[str, _Source]
) -> tuple[PlanOverrides, list[str]]:
    """Lift flags the rules understand out of ``extra_args`` so rules can check them; the rest
    pass through and replace any plan flag of the same name."""
    args = list(ov.extra_args)
    kept: list[str] = []
    absorbed: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name = _flag_name(arg)
        if name in _NOT_YOURS:
            raise PlanError("override:extra_args", f"{name} in extra_args: {_NOT_YOURS[name]}")
        if name in _ABSORBED:
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                raise PlanError("override:extra_args", f"{name} in extra_args has no value")
            key = _ABSORBED[name]
            try:
                absorbed[key] = (
                    int(value)
                    if key in _INT_FIELDS
                    else float(value)
                    if key in _FLOAT_FIELDS
                    else value
                )
            except ValueError:
                raise PlanError(
                    "override:extra_args", f"{name} {value!r} in extra_args is not a number"
                ) from None
            src = sources.get("extra_args", _Source("override:extra_args", "asked for by the user"))
            sources[key] = src
        else:
            kept.append(arg)
        i += 1
    if absorbed:
        ov = PlanOverrides(**{**{f.name: getattr(ov, f.name) for f in fields(ov)}, **absorbed})
    return ov, kept


def _parallelism(
    b: _Builder, ov: PlanOverrides, sources: dict[str, _Source], *, gpus: int, nodes: int
) -> int:
    arch = b.arch
    if nodes < 1:
        raise PlanError("multi-node", f"nodes must be at least 1, got {nodes}")
    if b.platform in rules.GPU_PLATFORMS and gpus < 1:
        raise PlanError("gpus", f"a {b.platform} plan needs at least one GPU per node, got {gpus}")
    if nodes > 1:
        rule = b.rule("multi-node")
        assert rule is not None
        if rule.value is None:
            raise PlanError(rule.id, f"{rule.reason}; plan nodes=1 on cpu")
        b.flag("--pipeline-parallel-size", nodes)
        backend = b.flag("--distributed-executor-backend", rule.value)
        b.decide(rule.id, f"--pipeline-parallel-size {nodes} {backend}", rule.reason)

    if ov.tensor_parallel is not None:
        tp = ov.tensor_parallel
        src = sources["tensor_parallel"]
        if tp < 1:
            raise PlanError(src.rule, f"tensor_parallel must be at least 1, got {tp}")
        if b.platform in rules.GPU_PLATFORMS and tp > gpus:
            raise PlanError(
                src.rule,
                f"tensor_parallel {tp} is more than the {gpus} GPUs per node; "
                "lower it or add nodes (tensor parallel stays inside a node)",
            )
        b.decide(src.rule, f"--tensor-parallel-size {tp}", src.reason)
    else:
        rule = b.rule("tensor-parallel")
        assert rule is not None
        tp = gpus if rule.value == "gpus" else int(rule.value)
        if tp > 1 or b.platform in rules.GPU_PLATFORMS:
            b.decide(rule.id, f"--tensor-parallel-size {tp}", rule.reason)

    heads = arch.num_attention_heads
    if heads % tp:
        divides = rules.by_id("tp-divides-heads")
        fitting = [t for t in range(1, tp + 1) if heads % t == 0]
        if ov.tensor_parallel is not None:
            raise PlanError(
                divides.id,
                f"{heads} attention heads do not split over tensor_parallel {tp}; "
                f"use one of {fitting}",
            )
        tp = fitting[-1]
        b.decide(
            divides.id,
            f"--tensor-parallel-size {tp}",
            f"{heads} heads do not split over {gpus} GPUs; {tp} is the largest size that does",
        )
    return tp


def _rocm_aiter(
    b: _Builder,
    ov: PlanOverrides,
    sources: dict[str, _Source],
    *,
    tp: int,
    gpus: int,
    leave_unset_by: str | None,
) -> int:
    """The ROCm AITER rule: decide ``VLLM_ROCM_USE_AITER`` (the AITER kernels, ROCm only) and,
    for MLA, a tensor-parallel size its kernels accept."""
    if b.platform != "rocm":
        if ov.aiter is not None:
            src = sources["aiter"]
            b.decide(src.rule, "AITER ignored", f"AITER is ROCm-only; {b.platform} plan")
        return tp
    rule = b.rule("aiter")
    assert rule is not None
    required = rule.value == "required"
    wanted = _aiter_wanted(b, ov, sources, rule, required=required, leave_unset_by=leave_unset_by)
    if wanted is None:
        return tp
    want, why_rule, why = wanted
    if want:
        fitted = _aiter_heads_tp(b, ov, tp=tp, gpus=gpus, forced=required or bool(ov.aiter))
        if fitted is None:
            return tp
        tp = fitted
    b.decide(why_rule, b.setenv("VLLM_ROCM_USE_AITER", "1" if want else "0"), why)
    if want:
        extra = b.rule("aiter-env")
        if extra is not None:
            b.apply_env(extra)
    return tp


def _aiter_wanted(
    b: _Builder,
    ov: PlanOverrides,
    sources: dict[str, _Source],
    rule: rules.Rule,
    *,
    required: bool,
    leave_unset_by: str | None,
) -> tuple[bool, str, str] | None:
    """``(want, rule id, reason)`` for AITER on ROCm; None (decided as left unset) when the
    study or the rule leaves ``VLLM_ROCM_USE_AITER`` at vLLM's default."""
    if ov.aiter is not None:
        src = sources["aiter"]
        if not ov.aiter and required:
            raise PlanError(
                rule.id, f"{rule.reason}; drop aiter=False (VLLM_ROCM_USE_AITER=0) for this model"
            )
        return ov.aiter, src.rule, src.reason
    if leave_unset_by:
        b.decide(leave_unset_by, "VLLM_ROCM_USE_AITER unset", "the study left AITER at its default")
        return None
    if rule.value in ("required", "on"):
        return True, rule.id, rule.reason
    b.decide(rule.id, "VLLM_ROCM_USE_AITER unset", rule.reason)
    return None


def _aiter_heads_tp(
    b: _Builder, ov: PlanOverrides, *, tp: int, gpus: int, forced: bool
) -> int | None:
    """The tensor-parallel size AITER runs at: ``tp`` when its heads per GPU fit the kernels;
    for MLA (TP not fixed) the largest size that fits; else an error when AITER is ``forced``
    (required or asked for), or AITER turned off (``VLLM_ROCM_USE_AITER=0``, None)."""
    arch = b.arch
    heads_rule = b.rule("aiter-heads")
    allowed: tuple[int, ...] | None = heads_rule.value if heads_rule else None
    heads = arch.num_attention_heads

    def fits(size: int) -> bool:
        return allowed is None or (heads % size == 0 and heads // size in allowed)

    if fits(tp):
        return tp
    fitting = [t for t in range(1, max(gpus, 1) + 1) if fits(t) and heads % t == 0]
    fit_text = ", ".join(map(str, fitting)) or "none on this node"
    shape = f"{heads} heads / TP {tp} = {heads / tp:g} per GPU"
    assert heads_rule is not None
    if arch.is_mla and ov.tensor_parallel is None and fitting:
        new_tp = fitting[-1]
        b.decide(
            heads_rule.id,
            f"--tensor-parallel-size {new_tp}",
            f"{shape} does not fit; {heads} / {new_tp} = {heads // new_tp} does "
            f"({heads_rule.reason})",
        )
        return new_tp
    if forced:
        raise PlanError(
            heads_rule.id,
            f"{shape}, but {heads_rule.reason}; use a tensor-parallel size of {fit_text}",
        )
    b.decide(
        heads_rule.id,
        b.setenv("VLLM_ROCM_USE_AITER", "0"),
        f"{shape}; {heads_rule.reason}; TP sizes that fit: {fit_text}",
    )
    return None


def _block_size(b: _Builder, ov: PlanOverrides, sources: dict[str, _Source]) -> None:
    rule = b.rule("block-size")
    if ov.block_size is not None:
        src = sources["block_size"]
        if rule is not None and rule.value is not None and ov.block_size != rule.value:
            aiter_on = b.env.get("VLLM_ROCM_USE_AITER") == "1"
            if b.arch.attention == "sparse-mla" or aiter_on:
                raise PlanError(
                    rule.id,
                    f"block size {ov.block_size} asked for, but {rule.reason}; "
                    f"use {rule.value} or drop the block-size override",
                )
        b.decide(src.rule, b.flag("--block-size", ov.block_size), src.reason)
    elif rule is not None:
        if rule.value is not None:
            b.decide(rule.id, b.flag("--block-size", rule.value), rule.reason)
        else:
            b.decide(rule.id, "--block-size unset", rule.reason)


def _precision(b: _Builder, ov: PlanOverrides, sources: dict[str, _Source]) -> None:
    arch = b.arch
    bf16 = b.rule("precision")
    if bf16 is not None:
        asked = ov.quantization or ""
        checkpoint = arch.quantization or ""
        if asked.lower().startswith(_FP8_WEIGHTS) or checkpoint.lower().startswith(_FP8_WEIGHTS):
            what = f"--quantization {asked}" if asked else f"an {checkpoint} checkpoint"
            raise PlanError(
                bf16.id, f"{what} asked for, but {bf16.reason}; serve the BF16 checkpoint"
            )
        b.decide(bf16.id, "BF16 weights (no fp8)", bf16.reason)
    if ov.quantization:
        src = sources["quantization"]
        b.decide(src.rule, b.flag("--quantization", ov.quantization), src.reason)
    if ov.kv_cache_dtype:
        src = sources["kv_cache_dtype"]
        refuse = b.rule("kv-cache-dtype")
        if refuse is not None and ov.kv_cache_dtype in refuse.value:
            raise PlanError(
                refuse.id,
                f"--kv-cache-dtype {ov.kv_cache_dtype} asked for, but {refuse.reason}; "
                "leave kv_cache_dtype at auto",
            )
        b.decide(src.rule, b.flag("--kv-cache-dtype", ov.kv_cache_dtype), src.reason)
    trust = ov.trust_remote_code
    if trust is None and arch.needs_remote_code:
        rule = rules.by_id("remote-code")
        b.decide(rule.id, b.flag("--trust-remote-code"), rule.reason)
    elif trust:
        src = sources["trust_remote_code"]
        b.decide(src.rule, b.flag("--trust-remote-code"), src.reason)


_KV_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"


def _kv_cache_space(b: _Builder, ov: PlanOverrides, passthrough: Sequence[str]) -> bool:
    """A fixed KV-cache size where a rule says so (CPU: ``VLLM_CPU_KVCACHE_SPACE``), unless the
    user sized it: that env var in extra_env, ``--kv-cache-memory-bytes`` or a memory fraction.
    Returns whether the KV cache has a fixed size (then no memory fraction is needed)."""
    if _KV_SPACE_ENV in ov.extra_env:
        return str(ov.extra_env[_KV_SPACE_ENV]).strip() != ""  # empty: vLLM uses the fraction
    if any(_flag_name(a) == "--kv-cache-memory-bytes" for a in passthrough):
        return True
    rule = b.rule("kv-cache-space")
    if rule is None or ov.gpu_memory_utilization is not None:
        return False
    b.apply_env(rule)
    return True


def _memory(
    b: _Builder,
    ov: PlanOverrides,
    sources: dict[str, _Source],
    *,
    workload_max_len: int | None,
    len_source: _Source,
    kv_fixed: bool = False,
) -> None:
    arch = b.arch
    limit = arch.max_position_embeddings
    if workload_max_len is not None:
        if workload_max_len < 1:
            raise PlanError(
                "max-model-len", f"max model length must be positive, got {workload_max_len}"
            )
        if limit and workload_max_len > limit and not arch.rope_scaled:
            rule = rules.by_id("max-model-len-within-model")
            raise PlanError(
                rule.id,
                f"the workload needs {workload_max_len} tokens of context, but {rule.reason} "
                f"({limit}); shorten the workload's prompts or outputs, or use a longer model",
            )
        flag = b.flag("--max-model-len", workload_max_len)
        b.decide(len_source.rule, flag, len_source.reason)
    else:
        rule = b.rule("max-model-len")
        if rule is not None:
            length = min(rule.value, limit) if limit else rule.value
            b.decide(rule.id, b.flag("--max-model-len", length), rule.reason)
    if ov.max_num_seqs is not None:
        src = sources["max_num_seqs"]
        if ov.max_num_seqs < 1:
            raise PlanError(src.rule, f"max_num_seqs must be at least 1, got {ov.max_num_seqs}")
        b.decide(src.rule, b.flag("--max-num-seqs", ov.max_num_seqs), src.reason)
    if ov.gpu_memory_utilization is not None:
        src = sources["gpu_memory_utilization"]
        if not 0 < ov.gpu_memory_utilization <= 1:
            raise PlanError(
                src.rule,
                f"gpu_memory_utilization is a fraction in (0, 1], got {ov.gpu_memory_utilization}",
            )
        flag = b.flag("--gpu-memory-utilization", ov.gpu_memory_utilization)
        b.decide(src.rule, flag, src.reason)
    elif not kv_fixed:
        rule = b.rule("gpu-memory-utilization")
        if rule is not None:
            b.decide(rule.id, b.flag("--gpu-memory-utilization", rule.value), rule.reason)
    if ov.enforce_eager:
        src = sources["enforce_eager"]
        b.decide(src.rule, b.flag("--enforce-eager"), src.reason)


def _offloading(
    b: _Builder, ov: PlanOverrides, sources: dict[str, _Source], passthrough: list[str]
) -> None:
    asked_flags = sorted({_flag_name(a) for a in passthrough} & _OFFLOAD_FLAGS)
    if ov.kv_offload_gib is None and not asked_flags:
        return
    rule = b.rule("kv-offload")
    assert rule is not None
    what = (
        f"KV offloading ({ov.kv_offload_gib:g} GiB)"
        if ov.kv_offload_gib is not None
        else f"KV offloading ({', '.join(asked_flags)})"
    )
    if rule.value is False:
        raise PlanError(
            rule.id,
            f"{what} asked for a {b.arch.family} model on {b.platform}, but {rule.reason}; "
            "drop the offloading request (kv_offload_gib / --kv-offload)",
        )
    if ov.kv_offload_gib is None:
        return
    src = sources["kv_offload_gib"]
    if ov.kv_offload_gib <= 0:
        raise PlanError(src.rule, f"kv_offload_gib must be positive, got {ov.kv_offload_gib}")
    size = f"{ov.kv_offload_gib:g}"
    outcome = " ".join(
        [
            b.flag("--kv-offloading-backend", rule.value),
            b.flag("--kv-offloading-size", size),
            b.flag("--disable-hybrid-kv-cache-manager"),
        ]
    )
    b.decide(src.rule, outcome, f"{src.reason}; {rule.reason}")


def _user_image_limit(passthrough: Sequence[str]) -> tuple[int, str] | None:
    """The image count of a ``--limit-mm-per-prompt`` the user passes through (JSON, as vLLM
    0.32 takes it: ``'{"image":1}'``; ``image=1``, the older spelling, is read too), with the
    value as written; None when there is none or vLLM would have to say what it means."""
    for i, arg in enumerate(passthrough):
        if _flag_name(arg) != "--limit-mm-per-prompt":
            continue
        if "=" in arg:
            value = arg.split("=", 1)[1]
        elif i + 1 < len(passthrough):
            value = passthrough[i + 1]
        else:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = dict(part.split("=", 1) for part in value.split(",") if part.count("=") == 1)
        image = parsed.get("image") if isinstance(parsed, dict) else None
        if isinstance(image, dict):  # {"image": {"count": 2, "width": ...}}
            image = image.get("count")
        try:
            return (int(image), value) if image is not None else None
        except (TypeError, ValueError):
            return None
    return None


def _vision(b: _Builder, images_per_prompt: int | None, passthrough: Sequence[str] = ()) -> None:
    arch = b.arch
    user = _user_image_limit(passthrough)
    if images_per_prompt and user is not None and user[0] < images_per_prompt:
        raise PlanError(
            "vision-limit-from-workload",
            f"the workload sends {images_per_prompt} image(s) per prompt, but extra_args sets "
            f"--limit-mm-per-prompt {user[1]} ({user[0]} image(s)): vLLM would refuse every "
            "request; drop --limit-mm-per-prompt from extra_args (the plan sizes it from the "
            f"workload) or raise it to at least {images_per_prompt}",
        )
    if images_per_prompt and not arch.vision:
        raise PlanError(
            "vision-limit-from-workload",
            f"the workload sends {images_per_prompt} image(s) per prompt, but this "
            f"{arch.family} model has no vision config; use a vision model or a text workload",
        )
    if not arch.vision:
        return
    env = b.rule("vision-env")
    if env is not None:
        b.apply_env(env)
    rule = b.rule("vision-limit")
    assert rule is not None
    images = images_per_prompt if images_per_prompt is not None else rule.value
    if images is None:
        b.decide(
            rule.id,
            "--limit-mm-per-prompt unset",
            "the workload did not say how many images; vLLM's default per-prompt limit applies",
        )
        return
    if images < 0:
        raise PlanError(rule.id, f"images per prompt must be 0 or more, got {images}")
    limit = json.dumps({"image": images, "video": 0}, separators=(",", ":"))
    b.decide(rule.id, b.flag("--limit-mm-per-prompt", limit), rule.reason)


def _extra_env(b: _Builder, ov: PlanOverrides, sources: dict[str, _Source]) -> None:
    if not ov.extra_env:
        return
    src = sources["extra_env"]
    for name, value in ov.extra_env.items():
        if name == "VLLM_ROCM_USE_AITER" and b.platform == "rocm" and value != "1":
            rule = b.rule("aiter")
            if rule is not None and rule.value == "required":
                raise PlanError(rule.id, f"{name}={value} in extra_env, but {rule.reason}")
        b.decide(src.rule, b.setenv(name, str(value)), src.reason)
