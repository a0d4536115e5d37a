"""What a model is, read from its Hugging Face ``config.json``: the facts launch rules key on.

vLLM's right flags depend on the attention kind (MLA vs GQA vs MHA), MoE vs dense, head counts and
vision, not on the model's name. This module turns a config into a typed :class:`Architecture`;
only :func:`load_config` touches the file system.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

AttentionKind = Literal["mha", "gqa", "mla", "sparse-mla"]

_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads")
_KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "num_query_groups")
_EXPERT_KEYS = ("n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts")
_EXPERTS_PER_TOKEN_KEYS = ("num_experts_per_tok", "moe_topk", "num_selected_experts", "top_k")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
_VISION_KEYS = ("vision_config", "vision_tower_config", "visual")
_SPARSE_MLA_KEYS = ("index_topk", "index_n_heads", "index_head_dim")
_SPARSE_MLA_MODEL_TYPES = frozenset({"deepseek_v32"})
# "405B", "235B-A22B", "1.5B", "8x7B" style size hints in model names.
_SIZE_RE = re.compile(r"(?<![\w.])(?:(\d+)x)?(\d+(?:\.\d+)?)([BbMm])(?![a-zA-Z0-9])")
_ACTIVE_RE = re.compile(r"-A(\d+(?:\.\d+)?)B\b")
_ATTENTION_LABELS = {"mha": "MHA", "gqa": "GQA", "mla": "MLA", "sparse-mla": "sparse MLA"}


@dataclass(frozen=True)
class Architecture:
    """The architecture facts of one model, as vLLM's launch rules see them."""

    model_type: str
    attention: AttentionKind
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int | None
    moe: bool
    vision: bool
    num_experts: int | None = None
    experts_per_token: int | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    max_position_embeddings: int | None = None
    rope_scaled: bool = False  # a RoPE-scaling factor may let vLLM serve beyond the above
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    index_topk: int | None = None
    index_n_heads: int | None = None
    quantization: str | None = None
    parameters_b: float | None = None
    active_parameters_b: float | None = None
    needs_remote_code: bool = False
    text_model_type: str | None = None
    name: str | None = None

    @property
    def is_mla(self) -> bool:
        return self.attention in ("mla", "sparse-mla")

    @property
    def family(self) -> str:
        """``moe-mla``, ``moe-gqa``, ``dense-gqa``, ``dense-mha``, …: the study's grouping.

        Sparse MLA (DeepSeek-V3.2) belongs to the MLA family; :attr:`attention` says it is sparse.
        """
        attention = "mla" if self.is_mla else self.attention
        return f"{'moe' if self.moe else 'dense'}-{attention}"

    def describe(self) -> str:
        """One line for people: ``MoE + sparse MLA + vision, 128 heads``."""
        parts = ["MoE" if self.moe else "Dense", _ATTENTION_LABELS[self.attention]]
        if self.vision:
            parts.append("vision")
        heads = f"{self.num_attention_heads} heads"
        if self.attention == "gqa":
            heads += f" / {self.num_kv_heads} KV"
        if self.moe and self.num_experts:
            heads += f", {self.num_experts} experts ({self.experts_per_token or '?'} per token)"
        if self.quantization:
            heads += f", {self.quantization}"
        return " + ".join(parts) + ", " + heads

    def to_json(self) -> dict[str, Any]:
        """The fields, after the computed ``family`` (what ``plan --json`` prints)."""
        return {"family": self.family, **msgspec.to_builtins(self)}


def load_config(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a config: a ``config.json`` path, a model directory holding one, or a dict as is.

    The only I/O in this module, so everything downstream can be fed plain dicts in tests.
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"model config {path} does not exist; pass a config.json, a model directory "
            "holding one, or a profile name"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read model config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"model config {path} is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"model config {path} must hold a JSON object, not {type(data).__name__}")
    if not data.get("_name_or_path"):
        data["_name_or_path"] = str(path.parent)  # the directory name often states the size
    return data


def detect(source: str | Path | Mapping[str, Any], *, name: str | None = None) -> Architecture:
    """Load (if needed) and classify a config: the one-call entry point."""
    origin = source if not isinstance(source, Mapping) else None
    config = load_config(source)
    return from_config(config, name=name, origin=str(origin) if origin is not None else None)


def from_config(
    config: Mapping[str, Any], *, name: str | None = None, origin: str | None = None
) -> Architecture:
    """Classify a config dict. Vision models keep their language model in ``text_config``."""
    where = f"model config {origin}" if origin else "model config"
    if not isinstance(config, Mapping):
        raise ValueError(f"{where} must be a JSON object, not {type(config).__name__}")
    text = config.get("text_config") or config.get("language_config") or config.get("llm_config")
    text = text if isinstance(text, Mapping) else {}
    look = _ConfigLookup(config, text, where)

    heads, kv_heads = _head_counts(look)
    model_type = str(config.get("model_type") or text.get("model_type") or "unknown")
    text_type = str(text["model_type"]) if text.get("model_type") else None
    attention, kv_lora_rank = _attention_kind(look, {model_type, text_type}, heads, kv_heads)

    experts = look.whole(_EXPERT_KEYS, "num_experts")
    per_token = look.whole(_EXPERTS_PER_TOKEN_KEYS, "num_experts_per_tok")
    moe = bool(experts and experts > 1)
    hidden = look.whole(_HIDDEN_KEYS, "hidden_size")
    head_dim, nope, rope = _head_dims(look, attention, heads, hidden)

    label = name or str(config.get("_name_or_path") or text.get("_name_or_path") or "") or None
    total_b, active_b = _size_hint(label)
    return Architecture(
        model_type=model_type,
        attention=attention,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        moe=moe,
        vision=any(config.get(key) for key in _VISION_KEYS),
        num_experts=experts if moe else None,
        experts_per_token=per_token if moe else None,
        num_layers=look.whole(_LAYER_KEYS, "num_hidden_layers"),
        hidden_size=hidden,
        max_position_embeddings=look.whole(
            ("max_position_embeddings", "n_positions"), "max_position_embeddings"
        ),
        rope_scaled=_rope_scaled(look.pick(("rope_scaling",)), look.pick(("rope_parameters",))),
        kv_lora_rank=kv_lora_rank,
        q_lora_rank=look.whole(("q_lora_rank",), "q_lora_rank"),
        qk_rope_head_dim=rope,
        qk_nope_head_dim=nope,
        v_head_dim=look.whole(("v_head_dim",), "v_head_dim"),
        index_topk=look.whole(("index_topk",), "index_topk"),
        index_n_heads=look.whole(("index_n_heads",), "index_n_heads"),
        quantization=_quantization(config, text),
        parameters_b=total_b,
        active_parameters_b=active_b,
        needs_remote_code=bool(config.get("auto_map")),
        text_model_type=text_type,
        name=label,
    )


@dataclass(frozen=True)
class _ConfigLookup:
    """A config and its language model's part (``text_config``), which wins where both say."""

    config: Mapping[str, Any]
    text: Mapping[str, Any]
    where: str  # "model config <path>", the start of every error message

    def pick(self, keys: tuple[str, ...]) -> Any:
        """The first of ``keys`` set (not None), in ``text_config`` first, then the top level."""
        for layer in (self.text, self.config):
            for key in keys:
                if layer.get(key) is not None:
                    return layer[key]
        return None

    def whole(self, keys: tuple[str, ...], key: str) -> int | None:
        """:meth:`pick` as a whole number (``key`` names it in the error), or None if unset."""
        return _as_int(self.pick(keys), key, self.where)


def _head_counts(look: _ConfigLookup) -> tuple[int, int]:
    """(attention heads, KV heads); a config without a head count is not a language model's."""
    heads = look.whole(_HEAD_KEYS, "num_attention_heads")
    if heads is None or heads <= 0:
        inside = " (looked in text_config too)" if look.text else ""
        raise ValueError(
            f"{look.where} has no attention-head count{inside}: expected one of "
            f"{', '.join(_HEAD_KEYS)}; is this a language model's config.json?"
        )
    kv_heads = look.whole(_KV_HEAD_KEYS, "num_key_value_heads")
    if kv_heads is None and (look.text.get("multi_query") or look.config.get("multi_query")):
        kv_heads = 1
    return heads, kv_heads if kv_heads and kv_heads > 0 else heads


def _attention_kind(
    look: _ConfigLookup, model_types: set[str | None], heads: int, kv_heads: int
) -> tuple[AttentionKind, int | None]:
    """(attention kind, ``kv_lora_rank``): a KV LoRA rank means MLA, an indexer sparse MLA."""
    kv_lora_rank = look.whole(("kv_lora_rank",), "kv_lora_rank")
    sparse = any(look.pick((key,)) is not None for key in _SPARSE_MLA_KEYS) or bool(
        model_types & _SPARSE_MLA_MODEL_TYPES
    )
    attention: AttentionKind
    if kv_lora_rank:
        attention = "sparse-mla" if sparse else "mla"
    elif kv_heads < heads:
        attention = "gqa"
    else:
        attention = "mha"
    return attention, kv_lora_rank


def _head_dims(
    look: _ConfigLookup, attention: AttentionKind, heads: int, hidden: int | None
) -> tuple[int | None, int | None, int | None]:
    """(head_dim, qk_nope_head_dim, qk_rope_head_dim): MLA's head is nope + rope wide."""
    head_dim = look.whole(("head_dim",), "head_dim")
    nope = look.whole(("qk_nope_head_dim",), "qk_nope_head_dim")
    rope = look.whole(("qk_rope_head_dim",), "qk_rope_head_dim")
    if attention in ("mla", "sparse-mla") and nope is not None and rope is not None:
        head_dim = nope + rope
    elif head_dim is None and hidden:
        head_dim = hidden // heads
    return head_dim, nope, rope


def _as_int(value: Any, key: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{where}: {key} must be a whole number, got {value!r}")
    return int(value)


def _rope_scaled(*settings: Any) -> bool:
    return any(isinstance(s, Mapping) and (s.get("factor") or 1) != 1 for s in settings)


def _quantization(config: Mapping[str, Any], text: Mapping[str, Any]) -> str | None:
    for layer in (config, text):
        quant = layer.get("quantization_config") or layer.get("compression_config")
        if isinstance(quant, Mapping):
            method = quant.get("quant_method") or quant.get("format") or "unknown"
            return str(method)
    return None


def _size_hint(label: str | None) -> tuple[float | None, float | None]:
    """Parameter scale from the model's name, in billions, when the name states it."""
    if not label:
        return None, None
    base = label.rstrip("/").rsplit("/", 1)[-1]
    active = _ACTIVE_RE.search(base)
    stripped = _ACTIVE_RE.sub("", base)
    match = _SIZE_RE.search(stripped)
    if not match:
        return None, float(active.group(1)) if active else None
    count = int(match.group(1) or 1)
    size = float(match.group(2)) * count
    if match.group(3) in "Mm":
        size /= 1000
    return size, float(active.group(1)) if active else None
