"""The study's four MI325X deployments (vLLM 0.14.1, ROCm, 8 GPUs) as named, reproducible plans.

Each profile embeds the architecture fields of the real model's ``config.json`` (no download) and
only the settings the rules cannot derive, each with the study's reason, so
``make_plan(profile=...)`` reproduces the study's command line exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_llmperf.plan.architectures import Architecture, from_config
from pytest_llmperf.plan.launch_plan import LaunchPlan, PlanOverrides, make_plan


@dataclass(frozen=True)
class Profile:
    """A named deployment: model id, its architecture config, platform and the study's choices."""

    name: str
    model: str
    config: Mapping[str, Any]
    summary: str
    overrides: PlanOverrides = field(default_factory=PlanOverrides)
    why: Mapping[str, str] = field(default_factory=dict)
    workload_max_len: int | None = None
    aiter_unset: bool = False  # the study left VLLM_ROCM_USE_AITER at vLLM's default
    platform: str = "rocm"
    vllm_version: str = "0.14.1"
    gpus: int = 8

    def architecture(self) -> Architecture:
        return from_config(self.config, name=self.model, origin=f"profile {self.name}")

    def plan(self, **kwargs: Any) -> LaunchPlan:
        """This profile's plan; keyword arguments replace the study's platform, GPUs, …"""
        args: dict[str, Any] = {
            "platform": self.platform,
            "vllm_version": self.vllm_version,
            "gpus": self.gpus,
            "model": self.model,
            **kwargs,
        }
        return make_plan(self.architecture(), profile=self, **args)


def _frozen(data: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(data)


_DEEPSEEK_V32 = _frozen(
    {
        "_name_or_path": "deepseek-ai/DeepSeek-V3.2",
        "architectures": ["DeepseekV32ForCausalLM"],
        "model_type": "deepseek_v32",
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "index_topk": 2048,
        "index_n_heads": 64,
        "index_head_dim": 128,
        "max_position_embeddings": 163840,
        "vocab_size": 129280,
        "quantization_config": {
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": [128, 128],
        },
    }
)

_KIMI_K25 = _frozen(
    {
        "_name_or_path": "moonshotai/Kimi-K2.5",
        "architectures": ["KimiK25ForConditionalGeneration"],
        "model_type": "kimi_k25",
        "auto_map": {
            "AutoConfig": "configuration_kimi_k25.KimiK25Config",
            "AutoModel": "modeling_kimi_k25.KimiK25ForConditionalGeneration",
        },
        "text_config": {
            "model_type": "deepseek_v3",
            "hidden_size": 7168,
            "intermediate_size": 18432,
            "moe_intermediate_size": 2048,
            "num_hidden_layers": 61,
            "num_attention_heads": 64,
            "num_key_value_heads": 64,
            "kv_lora_rank": 512,
            "q_lora_rank": 1536,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "n_routed_experts": 384,
            "n_shared_experts": 1,
            "num_experts_per_tok": 8,
            "first_k_dense_replace": 1,
            "max_position_embeddings": 262144,
            "vocab_size": 163840,
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 32}}
                },
            },
        },
        "vision_config": {
            "hidden_size": 1152,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "patch_size": 14,
        },
    }
)

_LLAMA_405B = _frozen(
    {
        "_name_or_path": "meta-llama/Llama-3.1-405B-Instruct-FP8",
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 16384,
        "intermediate_size": 53248,
        "num_hidden_layers": 126,
        "num_attention_heads": 128,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "quantization_config": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0},
    }
)

_QWEN3_VL_235B = _frozen(
    {
        "_name_or_path": "Qwen/Qwen3-VL-235B-A22B-Instruct",
        "architectures": ["Qwen3VLMoeForConditionalGeneration"],
        "model_type": "qwen3_vl_moe",
        "image_token_id": 151655,
        "video_token_id": 151656,
        "text_config": {
            "model_type": "qwen3_vl_moe_text",
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "moe_intermediate_size": 1536,
            "num_hidden_layers": 94,
            "num_attention_heads": 64,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "max_position_embeddings": 262144,
            "vocab_size": 151936,
        },
        "vision_config": {
            "model_type": "qwen3_vl_moe",
            "depth": 27,
            "hidden_size": 1152,
            "num_heads": 16,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 4096,
        },
    }
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        p.name: p
        for p in (
            Profile(
                name="deepseek-v3.2",
                model="deepseek-ai/DeepSeek-V3.2",
                config=_DEEPSEEK_V32,
                summary="DeepSeek-V3.2 (685B, ~37B active): MoE + sparse MLA, FP8, TP8",
                overrides=PlanOverrides(quantization="fp8"),
                why={"quantization": "the study served DeepSeek-V3.2 in FP8 (--quantization fp8)"},
            ),
            Profile(
                name="kimi-k2.5",
                model="moonshotai/Kimi-K2.5",
                config=_KIMI_K25,
                summary="Kimi-K2.5 (1T, 32B active): MoE + MLA + vision, INT4, TP4, AITER off",
                overrides=PlanOverrides(tensor_parallel=4, aiter=False),
                why={
                    "tensor_parallel": "64 heads / TP4 = 16 per GPU, the shape AITER MLA accepts "
                    "on vLLM < 0.18 (TP8 gives 8); the study ran TP4",
                    "aiter": "AITER was unstable for Kimi-K2.5 in the study (vLLM 0.14.1 era)",
                },
                workload_max_len=32768,
            ),
            Profile(
                name="llama-3.1-405b",
                model="meta-llama/Llama-3.1-405B-Instruct-FP8",
                config=_LLAMA_405B,
                summary="Llama-3.1-405B: dense + GQA (128/8), FP8 weights and KV cache, TP8",
                overrides=PlanOverrides(kv_cache_dtype="fp8"),
                why={"kv_cache_dtype": "the study's FP8 KV cache: half the KV memory of BF16"},
                workload_max_len=32768,
            ),
            Profile(
                name="qwen3-vl-235b",
                model="Qwen/Qwen3-VL-235B-A22B-Instruct",
                config=_QWEN3_VL_235B,
                summary="Qwen3-VL-235B-A22B: MoE + GQA (64/4) + vision, BF16, TP8, 64 GiB KV "
                "offload",
                overrides=PlanOverrides(kv_offload_gib=64),
                why={"kv_offload_gib": "the study offloaded 64 GiB of KV cache per GPU to host"},
                workload_max_len=32768,
                aiter_unset=True,
            ),
        )
    }
)


def get_profile(name: str) -> Profile:
    """A study profile by name (case-insensitive)."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}"
        ) from None
