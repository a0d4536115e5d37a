"""Container CLIs for the launcher tests: real podman where this host can run it, and the
scripted stand-in (``pytest_llmperf.testing.container_standin``) everywhere.

Podman on these machines (Debian's 4.3) fails as installed: crun on ``setrlimit
RLIMIT_NOFILE`` (fixed by a ``CONTAINERS_CONF`` with ``default_ulimits = []``), then "cgroups in
hybrid mode not supported" (the host mounts cgroup v1 controllers plus a v2 ``unified`` tree),
then "mount `sysfs` to `sys`: Device or resource busy" and "pivot_root: Device or resource
busy" with ``--rootfs /``. What works: a wrapper that enters a private mount namespace
(``unshare -m``), mounts a pure cgroup2 tree on /sys/fs/cgroup, bind-mounts / on a folder, and
runs ``podman --storage-driver vfs --runtime crun`` there with ``--cgroups=disabled``, host
network, ``-v /sys:/sys`` and ``--rootfs`` that folder: the container then runs this machine's
own vLLM without any image. :func:`real_podman` builds that wrapper and proves it with a
``run --rm … /bin/true``; it returns the exact error where that fails.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_llmperf.server.launchers import LauncherConfig

STANDIN_CLI = (sys.executable, "-m", "pytest_llmperf.testing.container_standin")

_WRAPPER = """#!/bin/bash
# podman on this host: private mount namespace, pure cgroup2, / bound on the rootfs folder.
export CONTAINERS_CONF={conf}
exec unshare -m bash -c 'mount --make-rprivate / && umount -l /sys/fs/cgroup && \
mount -t cgroup2 none /sys/fs/cgroup && mount --bind / {rootfs} && \
exec podman --storage-driver vfs --runtime crun "$@"' podman-here "$@"
"""


@dataclass(frozen=True)
class Runtime:
    """A container CLI and the launcher settings that run this host's vLLM through it."""

    label: str
    cli: tuple[str, ...]
    launcher: LauncherConfig
    env: dict[str, str]  # what the test process needs set to use it (the stand-in's state)

    def ps_names(self) -> list[str]:
        """Names of the containers this runtime knows (running or not)."""
        argv = (
            [*self.cli, "ps", "-a", "--format", "{{.Names}}"]
            if self.label == "podman"
            else [
                *self.cli,
                "ps",
            ]
        )
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **self.env},
            check=False,
        )
        return [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]


def standin(folder: Path) -> Runtime:
    state = folder / "standin-state"
    launcher = LauncherConfig(
        kind="docker", image="standin-image", cli=STANDIN_CLI, command=_vllm_command()
    )
    return Runtime("standin", STANDIN_CLI, launcher, {"LLMPERF_STANDIN_STATE": str(state)})


def _vllm_command() -> tuple[str, ...]:
    return (sys.executable, "-m", "vllm.entrypoints.openai.api_server")


def real_podman(folder: Path) -> Runtime | str:
    """Real podman through the wrapper above, or the reason it cannot run here."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman)"
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return "the podman wrapper needs root and unshare(1) to set up its mount namespace"
    folder.mkdir(parents=True, exist_ok=True)
    rootfs = folder / "rootfs"
    rootfs.mkdir(exist_ok=True)
    conf = folder / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n')
    wrapper = folder / "podman-here"
    wrapper.write_text(_WRAPPER.format(conf=conf, rootfs=rootfs))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    run_args = ("--cgroups=disabled", "-v", "/sys:/sys", "--ipc", "host")
    probe = [str(wrapper), "run", "--rm", *run_args, "--network", "host"]
    probe += ["--rootfs", str(rootfs), "/bin/true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman probe failed to run: {exc}"
    if done.returncode != 0:
        err = (done.stderr or done.stdout).strip().splitlines()
        return f"podman cannot start a container here: {err[-1] if err else done.returncode}"
    launcher = LauncherConfig(
        kind="podman",
        rootfs=str(rootfs),
        cli=(str(wrapper),),
        run_args=run_args,
        command=_vllm_command(),
    )
    return Runtime("podman", (str(wrapper),), launcher, {})
