"""``plan`` subcommand: what a person sees, JSON for scripts, errors with the fix, defaults."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
from test_architectures import TINY_BLIP2, TINY_DENSE_GQA, TINY_MOE_MLA

from pytest_llmperf.cli import plan as plan_cli
from pytest_llmperf.core import versions as core_versions

DEEPSEEK_COMMAND = (
    "VLLM_ROCM_USE_AITER=1 AITER_ENABLE_VSKIP=0 python -m vllm.entrypoints.openai.api_server "
    "--model deepseek-ai/DeepSeek-V3.2 --tensor-parallel-size 8 --quantization fp8 --block-size 1"
)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = plan_cli.main(list(argv), out=out)
    return code, out.getvalue()


def write_model(tmp_path: Path, config: dict[str, object], name: str = "tiny") -> Path:
    model = tmp_path / name
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return model


def test_deepseek_profile_prints_the_study_command() -> None:
    code, text = run(
        "--model", "deepseek-v3.2", "--platform", "rocm", "--gpus", "8", "--vllm", "0.14.1"
    )
    assert code == 0
    assert "family:    moe-mla (MoE + sparse MLA" in text
    assert "rocm-sparse-mla-block-size-1" in text
    assert "asserts block_size == 1" in text
    assert text.rstrip().splitlines()[-1].strip() == DEEPSEEK_COMMAND


def test_profile_supplies_platform_gpus_and_version() -> None:
    assert (
        run("--model", "deepseek-v3.2")[1]
        == run("--model", "deepseek-v3.2", "--platform", "rocm", "--gpus", "8", "--vllm", "0.14.1")[
            1
        ]
    )


def test_json_output_has_the_plan_keys() -> None:
    code, text = run("--model", "qwen3-vl-235b", "--json")
    assert code == 0
    data = json.loads(text)
    assert {"architecture", "argv", "env", "decisions"} <= set(data)
    assert data["architecture"]["family"] == "moe-gqa"
    assert "--kv-offloading-size" in data["argv"]
    assert data["env"] == {"VLLM_USE_TRITON_FLASH_ATTN": "0"}
    assert all(d["rule"] and d["reason"] for d in data["decisions"])


def test_model_directory_on_cpu(tmp_path: Path) -> None:
    model = write_model(tmp_path, TINY_BLIP2)
    code, text = run("--model", str(model), "--platform", "cpu", "--vllm", "0.32.0", "--json")
    assert code == 0
    data = json.loads(text)
    assert data["argv"][:2] == ["--model", str(model)]
    assert data["argv"][-2:] == ["--limit-mm-per-prompt", '{"image":1,"video":0}']
    assert data["env"] == {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}


def test_config_file_path_plans_its_directory(tmp_path: Path) -> None:
    model = write_model(tmp_path, TINY_DENSE_GQA)
    code, text = run(
        "--model", str(model / "config.json"), "--platform", "cuda", "--gpus", "2", "--json",
        "--vllm", "0.14.1", "--kv-offload", "16", "--served-model-name", "tiny",
    )  # fmt: skip
    assert code == 0
    argv = json.loads(text)["argv"]
    assert argv[:4] == ["--model", str(model), "--served-model-name", "tiny"]
    assert "--kv-offloading-size" in argv


def test_refusal_exits_2_with_rule_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_model(tmp_path, TINY_MOE_MLA)
    code, text = run(
        "--model", str(model), "--platform", "rocm", "--gpus", "8", "--vllm", "0.14.1",
        "--kv-offload", "4",
    )  # fmt: skip
    assert (code, text) == (2, "")
    err = capsys.readouterr().err
    assert "[mla-no-kv-offload]" in err
    assert "drop the offloading request" in err


def test_bad_config_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("--model", str(tmp_path / "nope"), "--platform", "cpu", "--vllm", "0.32.0")
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_platform_defaults_to_detected_accelerators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("pytest_llmperf.plan.platforms")
    fake.detect_accelerators = lambda: types.SimpleNamespace(platform="rocm", count=8)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytest_llmperf.plan.platforms", fake)
    model = write_model(tmp_path, TINY_MOE_MLA)
    code, text = run("--model", str(model), "--vllm", "0.14.1", "--json")
    assert code == 0
    data = json.loads(text)
    assert data["platform"] == "rocm"
    assert data["argv"][data["argv"].index("--tensor-parallel-size") + 1] == "4"


def test_platform_falls_back_to_cpu_without_a_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pytest_llmperf.plan.platforms", None)  # import fails
    model = write_model(tmp_path, TINY_DENSE_GQA)
    code, text = run("--model", str(model), "--vllm", "0.32.0", "--json")
    assert code == 0
    assert json.loads(text)["platform"] == "cpu"


def test_vllm_version_defaults_to_the_installed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_model(tmp_path, TINY_DENSE_GQA)
    versions = {"vllm-cpu": "0.32.0"}

    def version(name: str) -> str:
        if name in versions:
            return versions[name]
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(core_versions.metadata, "version", version)
    code, text = run("--model", str(model), "--platform", "cpu", "--json")
    assert code == 0
    assert json.loads(text)["vllm_version"] == "0.32.0"
    versions.clear()
    code, _ = run("--model", str(model), "--platform", "cpu")
    assert code == 2
    assert "pass --vllm" in capsys.readouterr().err


def test_python_dash_m_dispatches_plan() -> None:
    """Through the package entry point, as users run it (a broken dispatch fails here; it
    used to be skipped when ``__main__.py`` did not name the module)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf", "plan", "--model", "deepseek-v3.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert DEEPSEEK_COMMAND in proc.stdout


def test_gpu_platform_without_gpus_asks_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("pytest_llmperf.plan.platforms")
    fake.detect_accelerators = lambda: types.SimpleNamespace(platform="cpu", count=0)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytest_llmperf.plan.platforms", fake)
    model = write_model(tmp_path, TINY_DENSE_GQA)
    code, _ = run("--model", str(model), "--platform", "cuda", "--vllm", "0.14.1")
    assert code == 2
    assert "pass --gpus" in capsys.readouterr().err
