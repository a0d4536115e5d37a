"""Tiny checkpoints: deterministic, cached, and buildable from the command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmperf.plan.architectures import detect
from pytest_llmperf.server.tiny_models import ARCHS, build_tiny_model


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def test_build_is_deterministic_and_cached(tmp_path: Path) -> None:
    first = build_tiny_model("dense-gqa", tmp_path / "a")
    second = build_tiny_model("dense-gqa", tmp_path / "b")
    assert _digest(first) == _digest(second)
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model("dense-gqa", tmp_path / "a") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime  # cached, not rebuilt


@pytest.mark.parametrize(
    ("arch", "family", "vision"),
    [
        ("dense-gqa", "dense-gqa", False),
        ("moe-gqa", "moe-gqa", False),
        ("moe-mla", "moe-mla", False),
        ("vision", "dense-mha", True),
        ("vision-multi", "dense-gqa", True),
    ],
)
def test_each_family_is_what_it_claims(arch: str, family: str, vision: bool) -> None:
    folder = build_tiny_model(arch)
    found = detect(folder)
    assert found.family == family
    assert found.vision is vision
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok.get("chat_template") or (folder / "chat_template.jinja").is_file()


def test_mla_shape_fits_the_cpu_mla_kernel() -> None:
    cfg = json.loads((build_tiny_model("moe-mla") / "config.json").read_text())
    assert cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"] == 576
    assert cfg["topk_method"] == "noaux_tc"


def test_vision_tokenizer_has_image_token_without_attribute_trap() -> None:
    folder = build_tiny_model("vision")
    cfg = json.loads((folder / "config.json").read_text())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.convert_tokens_to_ids("<image>") == cfg["image_token_index"]
    assert cfg["num_query_tokens"] == 32
    assert cfg["vision_config"]["initializer_range"] == 0.02


def test_cli_builds_into_out_dir(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_llmperf",
            "tiny-model",
            "--arch",
            "moe-gqa",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path
    assert (folder / "model.safetensors").is_file()


def test_unknown_arch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        build_tiny_model("rnn")
    assert set(ARCHS) == {"dense-gqa", "moe-gqa", "moe-mla", "vision", "vision-multi"}


def test_build_in_child_keeps_torch_out_of_this_process(tmp_path: Path) -> None:
    """The process that drives load builds checkpoints in a child: torch and transformers are
    never imported in it, and a cached checkpoint is found without starting a child."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pytest_llmperf.server.tiny_models import build_tiny_model_in_child\n"
        f"p = build_tiny_model_in_child('dense-gqa', Path({str(tmp_path)!r}))\n"
        "assert (p / 'config.json').is_file(), p\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(p)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    built = Path(out.stdout.strip().splitlines()[-1])
    assert built.parent == tmp_path and detect(str(built)).family
    mtime = (built / "config.json").stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0 and (built / "config.json").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("arch", ["dense-gqa", "moe-gqa", "moe-mla", "vision-multi"])
def test_text_models_have_positions_for_the_long_context_presets(arch: str) -> None:
    """The 8K preset (8,192 prompt + 512 output tokens) fits every rotary tiny model: its
    config, its tokenizer and the launch plan all say at least 16K positions."""
    from pytest_llmperf.config.records import WorkloadRef
    from pytest_llmperf.plan.launch_plan import make_plan
    from pytest_llmperf.session.engine import context_needed

    folder = build_tiny_model(arch)
    cfg = json.loads((folder / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    assert text["max_position_embeddings"] >= 16384
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok["model_max_length"] == text["max_position_embeddings"]
    arch_facts = detect(str(folder))
    need = context_needed([WorkloadRef.from_preset("long-context-8k")])
    assert need == 8960
    plan = make_plan(
        arch_facts, platform="cpu", vllm_version="0.32.0", gpus=0, model=str(folder),
        workload_max_len=need, images_per_prompt=1 if arch_facts.vision else None,
    )  # fmt: skip
    args = list(plan.args)
    assert args[args.index("--max-model-len") + 1] == "8960"


def test_recipe_key_follows_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache key hashes the recipe's data: a checkpoint built with other positions is
    never found under the new recipe's name (old caches cannot shadow it)."""
    from pytest_llmperf.server import tiny_models as tm

    keys = {a: tm.recipe_key(a) for a in ARCHS}
    assert len(set(keys.values())) == len(ARCHS)
    monkeypatch.setitem(tm._TEXT_COMMON, "max_position_embeddings", 8192)
    assert tm.recipe_key("dense-gqa") != keys["dense-gqa"]
    assert tm.recipe_key("moe-mla") != keys["moe-mla"]
    assert tm.recipe_key("vision") == keys["vision"]  # BLIP-2 has its own (learned) positions
    monkeypatch.setitem(tm._IDEFICS3_RECIPE, "image_seq_len", 64)
    assert tm.recipe_key("vision-multi") != keys["vision-multi"]


def test_positions_change_no_weight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotary models have no position weights: the old 8,192-position recipe and today's give
    byte-identical weights, so the measured default models compute exactly what they did."""
    from pytest_llmperf.server import tiny_models as tm

    new = build_tiny_model("dense-gqa")
    monkeypatch.setitem(tm._TEXT_COMMON, "max_position_embeddings", 8192)
    old = build_tiny_model("dense-gqa", tmp_path)
    assert old.name != new.name
    assert json.loads((old / "config.json").read_text())["max_position_embeddings"] == 8192
    assert (old / "model.safetensors").read_bytes() == (new / "model.safetensors").read_bytes()


def test_vision_multi_processor_expands_each_image() -> None:
    """Idefics3's processor (PIL, no torchvision) turns each of several images into
    ``<fake_token_around_image><global-img>`` + 16 ``<image>`` + ``<fake_token_around_image>``."""
    from PIL import Image
    from transformers import AutoProcessor

    from pytest_llmperf.server.tiny_models import IDEFICS3_IMAGE_SEQ_LEN

    folder = build_tiny_model("vision-multi")
    proc = AutoProcessor.from_pretrained(folder)
    assert len(proc.tokenizer) == 1024 - 8  # the image tokens are in the BPE vocabulary
    images = [Image.new("RGB", (112, 112), c) for c in ("red", "green", "blue")]
    base = proc(text="a b c", return_tensors="np")["input_ids"].shape[1]
    out = proc(text="a b c<image><image><image>", images=[images], return_tensors="np")
    per_image = (out["input_ids"].shape[1] - base) / 3
    assert per_image == IDEFICS3_IMAGE_SEQ_LEN + 3
    assert out["pixel_values"].shape[:2] == (1, 3)
