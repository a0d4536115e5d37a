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
    assert set(ARCHS) == {"dense-gqa", "moe-gqa", "moe-mla", "vision"}


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
