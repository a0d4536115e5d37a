"""Architecture detection from config.json: the study's four models and the tiny CPU models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.plan.architectures import detect, from_config, load_config
from pytest_llmperf.plan.profiles import PROFILES

# The architecture-relevant keys of transformers 5.19 ``Config(...).to_dict()`` for the tiny
# models the CPU tests serve (``tiny_models.py``), with the key spellings transformers writes.
TINY_DENSE_GQA: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 2048,
}
TINY_MOE_GQA: dict[str, Any] = {
    "model_type": "qwen3_moe",
    "hidden_size": 256,
    "num_hidden_layers": 24,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "moe_intermediate_size": 128,
    "num_local_experts": 8,  # Qwen3MoeConfig(num_experts=8) serializes under this name
    "num_experts_per_tok": 2,
    "max_position_embeddings": 32768,
}
TINY_MOE_MLA: dict[str, Any] = {
    "model_type": "deepseek_v3",
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "kv_lora_rank": 512,
    "q_lora_rank": 96,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 64,
    "v_head_dim": 64,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "head_dim": 64,
    "max_position_embeddings": 8192,
    "topk_method": "noaux_tc",
    "rope_scaling": None,
}
TINY_BLIP2: dict[str, Any] = {
    "model_type": "blip-2",
    "num_query_tokens": 32,
    "vision_config": {
        "model_type": "blip_2_vision_model",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 112,
        "patch_size": 14,
    },
    "qformer_config": {
        "model_type": "blip_2_qformer",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
    "text_config": {
        "model_type": "opt",
        "hidden_size": 256,
        "ffn_dim": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 2048,
    },
}
TINY = {
    "dense-gqa": TINY_DENSE_GQA,
    "moe-gqa": TINY_MOE_GQA,
    "moe-mla": TINY_MOE_MLA,
    "vision": TINY_BLIP2,
}

# config, family, attention, heads, kv heads, experts, vision
CASES = [
    (PROFILES["deepseek-v3.2"].config, "moe-mla", "sparse-mla", 128, 128, 256, False),
    (PROFILES["kimi-k2.5"].config, "moe-mla", "mla", 64, 64, 384, True),
    (PROFILES["llama-3.1-405b"].config, "dense-gqa", "gqa", 128, 8, None, False),
    (PROFILES["qwen3-vl-235b"].config, "moe-gqa", "gqa", 64, 4, 128, True),
    (TINY_DENSE_GQA, "dense-gqa", "gqa", 4, 2, None, False),
    (TINY_MOE_GQA, "moe-gqa", "gqa", 4, 2, 8, False),
    (TINY_MOE_MLA, "moe-mla", "mla", 4, 4, 8, False),
    (TINY_BLIP2, "dense-mha", "mha", 4, 4, None, True),
]


@pytest.mark.parametrize(
    ("config", "family", "attention", "heads", "kv_heads", "experts", "vision"), CASES
)
def test_classifies_study_and_tiny_models(
    config: dict[str, Any],
    family: str,
    attention: str,
    heads: int,
    kv_heads: int,
    experts: int | None,
    vision: bool,
) -> None:
    arch = from_config(config)
    assert (arch.family, arch.attention, arch.num_attention_heads, arch.num_kv_heads) == (
        family,
        attention,
        heads,
        kv_heads,
    )
    assert arch.num_experts == experts
    assert arch.moe is (experts is not None)
    assert arch.vision is vision


def test_deepseek_v32_details() -> None:
    arch = from_config(PROFILES["deepseek-v3.2"].config)
    assert arch.is_mla
    assert (arch.kv_lora_rank, arch.q_lora_rank, arch.qk_rope_head_dim) == (512, 1536, 64)
    assert (arch.qk_nope_head_dim, arch.v_head_dim, arch.head_dim) == (128, 128, 192)
    assert (arch.index_topk, arch.index_n_heads) == (2048, 64)
    assert arch.experts_per_token == 8
    assert arch.quantization == "fp8"
    assert "sparse MLA" in arch.describe()


@pytest.mark.parametrize(
    ("extra", "attention"),
    [
        ({"index_topk": 2048}, "sparse-mla"),
        ({"index_n_heads": 64}, "sparse-mla"),
        ({"model_type": "deepseek_v32"}, "sparse-mla"),
        ({}, "mla"),
    ],
)
def test_sparse_mla_markers(extra: dict[str, Any], attention: str) -> None:
    assert from_config({**TINY_MOE_MLA, **extra}).attention == attention


def test_kimi_reads_text_config_and_needs_remote_code() -> None:
    arch = from_config(PROFILES["kimi-k2.5"].config)
    assert arch.model_type == "kimi_k25"
    assert arch.text_model_type == "deepseek_v3"
    assert arch.needs_remote_code
    assert arch.quantization == "compressed-tensors"


def test_vision_heads_are_not_taken_from_the_vision_tower() -> None:
    """Qwen3-VL's vision tower has 16 heads; the language model's 64 are what vLLM shards."""
    arch = from_config(PROFILES["qwen3-vl-235b"].config)
    assert arch.num_attention_heads == 64
    assert arch.head_dim == 128
    assert arch.experts_per_token == 8


@pytest.mark.parametrize(
    ("name", "total", "active"),
    [
        ("meta-llama/Llama-3.1-405B-Instruct-FP8", 405.0, None),
        ("Qwen/Qwen3-VL-235B-A22B-Instruct", 235.0, 22.0),
        ("mistralai/Mixtral-8x7B-v0.1", 56.0, None),
        ("HuggingFaceTB/SmolLM-135M", 0.135, None),
        ("/cache/dense-gqa-12b4f0c9e1aa", None, None),
        ("deepseek-ai/DeepSeek-V3.2", None, None),
        (None, None, None),
    ],
)
def test_parameter_scale_from_name(name: str | None, total: float | None, active: float | None):
    arch = from_config(TINY_DENSE_GQA, name=name)
    assert arch.parameters_b == pytest.approx(total) if total else arch.parameters_b is None
    assert arch.active_parameters_b == active


@pytest.mark.parametrize(
    ("config", "attention", "kv"),
    [
        ({"n_head": 12, "n_embd": 768}, "mha", 12),  # GPT-2 spelling
        ({"num_attention_heads": 8, "num_key_value_heads": None}, "mha", 8),
        ({"num_attention_heads": 8, "multi_query": True}, "gqa", 1),
        ({"num_attention_heads": 32, "num_key_value_heads": 8}, "gqa", 8),
    ],
)
def test_head_field_spellings(config: dict[str, Any], attention: str, kv: int) -> None:
    arch = from_config(config)
    assert (arch.attention, arch.num_kv_heads) == (attention, kv)


@pytest.mark.parametrize(
    ("config", "moe", "experts"),
    [
        ({"num_attention_heads": 4, "num_experts": 16, "num_experts_per_tok": 2}, True, 16),
        ({"num_attention_heads": 4, "num_local_experts": 8}, True, 8),
        ({"num_attention_heads": 4, "n_routed_experts": 64}, True, 64),
        ({"num_attention_heads": 4, "num_experts": 1}, False, None),
        ({"num_attention_heads": 4}, False, None),
    ],
)
def test_moe_field_spellings(config: dict[str, Any], moe: bool, experts: int | None) -> None:
    arch = from_config(config)
    assert (arch.moe, arch.num_experts) == (moe, experts)


def test_load_config_from_file_dir_and_dict(tmp_path: Path) -> None:
    model_dir = tmp_path / "tiny-llama-2M"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(TINY_DENSE_GQA), encoding="utf-8")
    by_dir = detect(model_dir)
    by_file = detect(model_dir / "config.json")
    by_dict = detect(TINY_DENSE_GQA)
    assert by_dir == by_file
    assert by_dir.family == by_dict.family == "dense-gqa"
    assert by_dir.name == str(model_dir)
    assert by_dir.parameters_b == pytest.approx(0.002)
    assert load_config(TINY_DENSE_GQA) == TINY_DENSE_GQA


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"hidden_size": 8}', "no attention-head count"),
        ('{"num_attention_heads": "four"}', "must be a whole number"),
    ],
)
def test_bad_configs_name_the_file_and_the_problem(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        detect(path)
    assert str(path) in str(info.value)


def test_missing_heads_mentions_text_config() -> None:
    with pytest.raises(ValueError, match="looked in text_config too"):
        from_config({"text_config": {"hidden_size": 8}, "vision_config": {}})


def test_to_json_carries_family() -> None:
    data = from_config(TINY_BLIP2).to_json()
    assert data["family"] == "dense-mha"
    assert data["vision"] is True
    json.dumps(data)


def test_text_config_wins_over_the_top_level() -> None:
    """A wrapper's own top-level keys lose to its language model's: that is what vLLM shards."""
    arch = from_config(
        {"num_attention_heads": 16, "text_config": {"num_attention_heads": 64, "num_kv_heads": 8}}
    )
    assert (arch.num_attention_heads, arch.num_kv_heads, arch.attention) == (64, 8, "gqa")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"num_attention_heads": 2.5}, "num_attention_heads"),
        ({"num_kv_heads": "two"}, "num_key_value_heads"),
        ({"kv_lora_rank": 1.5}, "kv_lora_rank"),
        ({"num_local_experts": "8"}, "num_experts"),
        ({"n_embd": 7.5}, "hidden_size"),
        ({"qk_rope_head_dim": True}, "qk_rope_head_dim"),
        ({"n_layer": "12"}, "num_hidden_layers"),
        ({"n_positions": 1e3 + 0.5}, "max_position_embeddings"),
        ({"index_n_heads": [4]}, "index_n_heads"),
    ],
)
def test_a_bad_number_names_its_key(extra: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=rf"^model config x\.json: {key} must be a whole number"):
        from_config({"num_attention_heads": 4, **extra}, origin="x.json")
