"""Launcher kinds: the commands they build, where the environment goes, what stops them.

No server is started here (tests/test_launch_container.py boots real vLLM through a container
runtime); these check the command lines and the env-file, which need no vLLM.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pytest_llmperf.server.launchers import (
    ENV_FILE_PLACEHOLDER,
    LaunchContext,
    LauncherConfig,
    LauncherError,
    make_launcher,
)

ARGS = ("--model", "/models/m", "--tensor-parallel-size", "8")
PLAN_ENV = {"VLLM_ROCM_USE_AITER": "1", "AITER_ENABLE_VSKIP": "0"}
SECRET = "sk-never-on-argv-0123"


def _ctx(**kw: object) -> LaunchContext:
    base: dict[str, object] = {"served_name": "ds", "platform": "rocm", "gpus": 8}
    base.update(kw)
    return LaunchContext(**base)  # type: ignore[arg-type]


def test_docker_rocm_command_has_devices_name_host_network_and_env_file_not_values() -> None:
    launcher = make_launcher(
        LauncherConfig(kind="docker", image="vllm/vllm-openai-rocm:v0.14.1"), _ctx()
    )
    argv = launcher.command(ARGS, host="127.0.0.1", port=8000)
    assert argv[:3] == ["docker", "run", "--rm"]
    name = argv[argv.index("--name") + 1]
    assert name.startswith("llmperf-ds-8000-")
    assert argv[argv.index("--env-file") + 1] == ENV_FILE_PLACEHOLDER
    for dev in ("/dev/kfd", "/dev/dri"):
        assert argv[argv.index(dev) - 1] == "--device"
    assert argv[argv.index("--network") + 1] == "host"
    image = argv.index("vllm/vllm-openai-rocm:v0.14.1")
    assert argv[image + 1 :][:2] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert argv[-4:] == ["--host", "127.0.0.1", "--port", "8000"]
    assert not any("AITER" in a for a in argv)  # the plan's env travels in the env-file


def test_cuda_devices_differ_between_docker_and_podman() -> None:
    ctx = _ctx(platform="cuda")
    d = make_launcher(LauncherConfig(kind="docker", image="i"), ctx).command(ARGS, host="h", port=1)
    p = make_launcher(LauncherConfig(kind="podman", image="i"), ctx).command(ARGS, host="h", port=1)
    assert d[d.index("--gpus") + 1] == "all"
    assert p[p.index("--device") + 1] == "nvidia.com/gpu=all"


def test_published_port_binds_all_inside_the_container() -> None:
    launcher = make_launcher(LauncherConfig(kind="docker", image="i", network="publish"), _ctx())
    argv = launcher.command(ARGS, host="127.0.0.1", port=9000)
    assert argv[argv.index("-p") + 1] == "127.0.0.1:9000:9000"
    assert argv[-4:] == ["--host", "0.0.0.0", "--port", "9000"]
    assert "--network" not in argv


def test_prepare_writes_a_private_env_file_and_keeps_secrets_off_argv(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    launcher = make_launcher(LauncherConfig(kind="podman", image="i"), _ctx(model_path=str(model)))
    prep = launcher.prepare(
        ARGS, plan_env=PLAN_ENV, secrets={"VLLM_API_KEY": SECRET}, host="127.0.0.1", port=8001
    )
    try:
        env_file = Path(prep.argv[prep.argv.index("--env-file") + 1])
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
        lines = env_file.read_text().splitlines()
        assert f"VLLM_API_KEY={SECRET}" in lines
        assert "VLLM_ROCM_USE_AITER=1" in lines and "AITER_ENABLE_VSKIP=0" in lines
        assert not any(SECRET in a for a in prep.argv)
        assert "VLLM_API_KEY" not in prep.env  # not even in the client's environment
        assert f"{model}:{model}:ro" in prep.argv  # the model folder is mapped in
        assert prep.stop_commands[0][:2] == ["podman", "stop"]
        assert prep.stop_commands[-1] == ["podman", "rm", "-f", prep.name]
    finally:
        for d in prep.temp_dirs:
            for f in d.iterdir():
                f.unlink()
            d.rmdir()


def test_env_file_refuses_a_line_break() -> None:
    launcher = make_launcher(LauncherConfig(kind="docker", image="i"), _ctx())
    with pytest.raises(LauncherError, match="line break"):
        launcher.prepare(ARGS, plan_env={"X": "a\nb"}, secrets={}, host="h", port=1)


def test_container_without_image_is_a_clear_error() -> None:
    with pytest.raises(LauncherError, match="needs image"):
        make_launcher(LauncherConfig(kind="docker"), _ctx())


def test_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(LauncherError, match="local, prefix, docker, podman, slurm, ray"):
        make_launcher(LauncherConfig(kind="kubernetes"), _ctx())


def test_slurm_exports_names_only_and_cancels_by_name() -> None:
    launcher = make_launcher(
        LauncherConfig(kind="slurm", partition="gpu", time_limit="01:00:00"), _ctx(nodes=1)
    )
    prep = launcher.prepare(
        ARGS, plan_env=PLAN_ENV, secrets={"VLLM_API_KEY": SECRET}, host="127.0.0.1", port=8002
    )
    argv = prep.argv
    assert argv[0] == "srun"
    assert argv[argv.index("--gpus-per-node") + 1] == "8"
    export = argv[argv.index("--export") + 1].split(",")
    assert export[0] == "ALL" and {"VLLM_API_KEY", "VLLM_ROCM_USE_AITER"} <= set(export)
    assert not any(SECRET in a for a in argv)
    assert prep.env["VLLM_API_KEY"] == SECRET  # srun's own environment, exported by name
    assert prep.stop_commands == [["scancel", "--name", prep.name]]


def test_ray_join_needs_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(LauncherError, match="address"):
        make_launcher(LauncherConfig(kind="ray"), _ctx(nodes=2))
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    launcher = make_launcher(LauncherConfig(kind="ray"), _ctx(nodes=2))
    prep = launcher.prepare(ARGS, plan_env=PLAN_ENV, secrets={}, host="h", port=1)
    assert prep.env["RAY_ADDRESS"] == "head:6379"
    assert prep.argv[prep.argv.index("--distributed-executor-backend") + 1] == "ray"
    assert launcher.node_commands() == []  # joins, starts nothing


def test_ray_local_head_and_workers_commands() -> None:
    launcher = make_launcher(
        LauncherConfig(kind="ray", start_head=True, local_workers=1, head_port=6390, num_cpus=1),
        _ctx(platform="cpu", gpus=0),
    )
    head, worker = launcher.node_commands()
    assert head[1:4] == ["start", "--head", "--port"] and "--block" in head
    assert worker[1:4] == ["start", "--address", "127.0.0.1:6390"]


def test_placement_names_where_each_variable_goes_and_hides_secret_values() -> None:
    launcher = make_launcher(LauncherConfig(kind="docker", image="i"), _ctx())
    lines = launcher.placement(PLAN_ENV, ["VLLM_API_KEY"])
    assert any(ln.startswith("VLLM_ROCM_USE_AITER=1 -> inside the container") for ln in lines)
    assert any(ln.startswith("VLLM_API_KEY (secret) -> inside the container") for ln in lines)


def test_local_passes_plan_env_and_secrets_in_the_process_environment() -> None:
    launcher = make_launcher(None, _ctx(platform="cpu"))
    prep = launcher.prepare(
        ARGS, plan_env=PLAN_ENV, secrets={"VLLM_API_KEY": SECRET}, host="h", port=1
    )
    assert prep.env["VLLM_ROCM_USE_AITER"] == "1" and prep.env["VLLM_API_KEY"] == SECRET
    assert not any(SECRET in a for a in prep.argv)
    assert prep.stop_commands == []


def test_read_file_inside_the_image_through_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model facts come from where the server reads them: here the container stand-in (which
    reads this host's files) plays the runtime; a missing file is a clear error."""
    import sys

    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama"}')
    cli = (sys.executable, "-m", "pytest_llmperf.testing.container_standin")
    monkeypatch.setenv("LLMPERF_STANDIN_STATE", str(tmp_path / "state"))
    launcher = make_launcher(LauncherConfig(kind="docker", image="i", cli=cli), _ctx())
    assert '"llama"' in launcher.read_file(str(cfg))
    with pytest.raises(LauncherError, match="cannot be read inside i"):
        launcher.read_file(str(tmp_path / "missing" / "config.json"))
