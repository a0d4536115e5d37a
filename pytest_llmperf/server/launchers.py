"""How a vLLM server is started: on this host, in a container, as a Slurm step, over Ray.

A launcher turns the launch plan's vLLM arguments and environment into the command that runs,
and says where each environment variable goes (the client process, a 0600 ``--env-file`` read
by the container runtime, Slurm's ``--export`` by name, the Ray head's environment). Secrets
(the API key, a hub token) never appear on a command line: ``ps`` and ``/proc/PID/cmdline``
show argv to every user of the host.

Each launcher also says how to stop what it started *by name* (``docker stop NAME``,
``scancel --name NAME``), because killing a container client or ``srun`` leaves the container
or the job holding the GPUs. :mod:`.process` runs those commands on every stop path and hands
them to a reaper process that runs them if pytest itself is killed.

Building a command starts nothing (standard library, plus the plan's launcher constants).

Size (about 600 lines), kept in one module on purpose: the six launcher kinds share one
small protocol (``Launcher``) and differ in a few dozen lines each; the container, Slurm and
Ray launchers each hold their own stop-by-name and secret-placement rules, and one file lets a
reader check those security rules side by side. Splitting per kind would scatter them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pytest_llmperf.plan.launch_plan import DEFAULT_LAUNCHER, VLLM_SERVER_MODULE

KINDS: Final[tuple[str, ...]] = ("local", "prefix", "docker", "podman", "slurm", "ray")
CONTAINER_KINDS: Final[frozenset[str]] = frozenset({"docker", "podman"})
#: What runs vLLM's OpenAI server inside a container image (vLLM's images have python3 and
#: vLLM; their own entrypoints differ between releases, so the plugin names the module).
CONTAINER_COMMAND: Final[tuple[str, ...]] = ("python3", "-m", VLLM_SERVER_MODULE)
#: This interpreter (one home: ``plan.launch_plan.DEFAULT_LAUNCHER``).
LOCAL_COMMAND: Final[tuple[str, ...]] = DEFAULT_LAUNCHER
#: Device access a container needs per platform. ROCm: the kernel driver and render nodes plus
#: the video group (AMD's documented ``docker run`` for vLLM); CUDA: the NVIDIA runtime hook on
#: docker, a CDI device on podman.
ROCM_DEVICES: Final[tuple[str, ...]] = (
    "--device",
    "/dev/kfd",
    "--device",
    "/dev/dri",
    "--group-add",
    "video",
    "--ipc",
    "host",
    "--security-opt",
    "seccomp=unconfined",
)
CUDA_DEVICES: Final[Mapping[str, tuple[str, ...]]] = {
    "docker": ("--gpus", "all", "--ipc", "host"),
    "podman": ("--device", "nvidia.com/gpu=all", "--ipc", "host"),
}
#: Environment variables the user's shell may hold that a server needs as secrets.
HUB_TOKEN_VARS: Final[tuple[str, ...]] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
ENV_FILE_PLACEHOLDER: Final[str] = "<private 0600 env-file>"
PORT_PLACEHOLDER: Final[str] = "<port>"
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]+")


def launch_env(plan_env: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """The server process's environment: ours, unbuffered output, the plan's, then the secrets."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(plan_env)
    env.update(secrets)
    return env


class LauncherError(ValueError):
    """A launcher setting that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True)
class LauncherConfig:
    """A model's ``[models.launcher]`` table. ``kind`` picks the launcher; the other fields
    apply to the kinds named in their comments and are refused elsewhere by the config loader.
    """

    kind: str = "local"
    #: local/ray: the Python command that runs vLLM (default: this interpreter); prefix: the
    #: whole prefix; docker/podman: the command run inside the image.
    command: tuple[str, ...] = ()
    #: docker/podman/slurm/ray: the CLI to run (a path or a command prefix), default the kind's
    #: own tool (docker, podman, srun, ray).
    cli: tuple[str, ...] = ()
    image: str | None = None  # docker/podman
    rootfs: str | None = None  # podman --rootfs DIR instead of an image
    network: str = "host"  # docker/podman: host | publish
    volumes: tuple[str, ...] = ()  # docker/podman: HOST:CONTAINER[:OPTS]
    run_args: tuple[str, ...] = ()  # docker/podman run / srun: extra arguments, as given
    devices: tuple[str, ...] | None = None  # docker/podman: replaces the platform's devices
    config_path: str | None = None  # host path of the config.json the server will read
    partition: str | None = None  # slurm
    nodelist: str | None = None  # slurm: the node the server runs on (its URL host)
    time_limit: str | None = None  # slurm
    cpus_per_task: int | None = None  # slurm
    address: str | None = None  # ray: an existing cluster's GCS address (else RAY_ADDRESS)
    start_head: bool = False  # ray: start a head (and local_workers workers) for this server
    local_workers: int = 0  # ray
    head_port: int = 6379  # ray
    num_cpus: int | None = None  # ray: CPUs each started Ray node advertises

    @property
    def is_container(self) -> bool:
        return self.kind in CONTAINER_KINDS


@dataclass(frozen=True)
class LaunchContext:
    """What a launcher needs to know about the server it starts."""

    served_name: str
    platform: str = "cpu"
    nodes: int = 1
    gpus: int = 0
    model_path: str | None = None  # a local model folder the server reads
    extra_mounts: tuple[str, ...] = ()  # host folders the server writes (compile cache, …)


@dataclass
class Prepared:
    """One launch made concrete: what to run, in which environment, and how to undo it."""

    argv: list[str]
    env: dict[str, str]
    stop_commands: list[list[str]] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)
    name: str | None = None


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's hub token(s), passed to a server like any other secret."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in HUB_TOKEN_VARS if environ.get(k)}


def owned_name(served_name: str, port: int | None) -> str:
    """A container / job name the plugin owns: its prefix, the model, the port and our pid."""
    base = _NAME_BAD.sub("-", served_name).strip("-.") or "server"
    return f"llmperf-{base}-{port if port is not None else PORT_PLACEHOLDER}-{os.getpid()}"


def _private_env_file(values: Mapping[str, str]) -> tuple[Path, Path]:
    """Write ``values`` to an env-file only this user can read, in a private temp folder."""
    for k, v in values.items():
        if "\n" in v or "\r" in v or "\0" in v:
            raise LauncherError(
                f"environment variable {k} holds a line break; an --env-file cannot carry it, "
                "remove the line break from the value"
            )
    folder = Path(tempfile.mkdtemp(prefix="llmperf-env-"))  # mkdtemp makes it 0700
    path = folder / "server.env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for k, v in values.items():
            fh.write(f"{k}={v}\n")
    return folder, path


class Launcher:
    """Base: the local launch (this host, this environment). Subclasses change the command,
    where the environment goes and how to stop."""

    kind = "local"

    def __init__(self, config: LauncherConfig, context: LaunchContext) -> None:
        self.config = config
        self.context = context

    # -- what runs ---------------------------------------------------------------------------
    def vllm_command(self) -> tuple[str, ...]:
        return self.config.command or LOCAL_COMMAND

    def bind_host(self, host: str) -> str:
        """The address vLLM binds to (inside a container with a published port: all)."""
        return host

    def command(
        self, vllm_args: Sequence[str], *, host: str, port: int | None, env_file: str | None = None
    ) -> list[str]:
        return [
            *self.vllm_command(),
            *vllm_args,
            "--host",
            self.bind_host(host),
            "--port",
            str(port) if port is not None else PORT_PLACEHOLDER,
        ]

    def placement(self, plan_env: Mapping[str, str], secrets: Sequence[str]) -> list[str]:
        """One line per environment variable: its name and where it goes (values of secrets
        are never shown)."""
        where = "the vLLM process's environment"
        lines = [f"{k}={shlex.quote(v)} -> {where}" for k, v in plan_env.items()]
        lines += [f"{k} (secret) -> {where}" for k in secrets]
        return lines

    def describe(self) -> list[str]:
        return [f"launcher: {self.kind}"]

    # -- starting and stopping ---------------------------------------------------------------
    def executable(self) -> str:
        return self.vllm_command()[0]

    def preflight(self) -> None:
        exe = self.executable()
        if shutil.which(exe) is None:
            raise LauncherError(
                f"launch command {exe!r} is not an executable on PATH; give an absolute path "
                f"or fix the {self.kind} launcher's command / the --llmperf-launcher option"
            )

    def prepare(
        self,
        vllm_args: Sequence[str],
        *,
        plan_env: Mapping[str, str],
        secrets: Mapping[str, str],
        host: str,
        port: int,
    ) -> Prepared:
        env = launch_env(plan_env, secrets)
        return Prepared(self.command(vllm_args, host=host, port=port), env)

    def start_services(self, env: Mapping[str, str], log: Any) -> None:
        """Start what the server needs before it runs (a Ray head); nothing by default."""

    def stop_services(self) -> None:
        """Stop what :meth:`start_services` started; idempotent."""


class PrefixLauncher(Launcher):
    """Any other command prefix (today's ``--llmperf-launcher``); the environment and the key
    go to the prefix's process, which must pass them on itself."""

    kind = "prefix"

    def vllm_command(self) -> tuple[str, ...]:
        if not self.config.command:
            raise LauncherError("a prefix launcher needs command = [...]")
        return self.config.command

    def placement(self, plan_env: Mapping[str, str], secrets: Sequence[str]) -> list[str]:
        where = f"the environment of {self.config.command[0]!r} (it must pass it on)"
        lines = [f"{k}={shlex.quote(v)} -> {where}" for k, v in plan_env.items()]
        return lines + [f"{k} (secret) -> {where}" for k in secrets]


class ContainerLauncher(Launcher):
    """``docker run`` / ``podman run`` with a container name the plugin owns."""

    def __init__(self, config: LauncherConfig, context: LaunchContext) -> None:
        super().__init__(config, context)
        self.kind = config.kind
        if not config.image and not config.rootfs:
            raise LauncherError(
                f'a {config.kind} launcher needs image = "..." (e.g. '
                "vllm/vllm-openai-rocm:v0.14.1)"
                + (" or rootfs = DIR" if config.kind == "podman" else "")
            )
        if config.rootfs and config.kind != "podman":
            raise LauncherError("rootfs is a podman option; use image with docker")
        if config.network not in ("host", "publish"):
            raise LauncherError(f'network {config.network!r}: use "host" or "publish"')
        self.name: str | None = None

    def cli(self) -> tuple[str, ...]:
        return self.config.cli or (self.kind,)

    def executable(self) -> str:
        return self.cli()[0]

    def vllm_command(self) -> tuple[str, ...]:
        return self.config.command or CONTAINER_COMMAND

    def bind_host(self, host: str) -> str:
        return "0.0.0.0" if self.config.network == "publish" else host

    def devices(self) -> tuple[str, ...]:
        if self.config.devices is not None:
            return self.config.devices
        if self.context.platform == "rocm":
            return ROCM_DEVICES
        if self.context.platform == "cuda":
            return CUDA_DEVICES[self.kind]
        return ()

    def mounts(self) -> list[str]:
        vols = list(self.config.volumes)
        targets = {v.split(":")[1] for v in vols if v.count(":") >= 1}
        wanted = []
        if self.context.model_path and Path(self.context.model_path).is_absolute():
            if Path(self.context.model_path).is_dir():
                wanted.append(f"{self.context.model_path}:{self.context.model_path}:ro")
        wanted += [f"{m}:{m}" for m in self.context.extra_mounts]
        for v in wanted:
            if v.split(":")[1] not in targets:
                vols.append(v)
        return vols

    def command(
        self, vllm_args: Sequence[str], *, host: str, port: int | None, env_file: str | None = None
    ) -> list[str]:
        cfg = self.config
        port_s = str(port) if port is not None else PORT_PLACEHOLDER
        name = self.name or owned_name(self.context.served_name, port)
        argv = [*self.cli(), "run", "--rm", "--name", name]
        argv += ["--env-file", env_file or ENV_FILE_PLACEHOLDER]
        argv += list(self.devices())
        if cfg.network == "host":
            argv += ["--network", "host"]
        else:
            argv += ["-p", f"{host}:{port_s}:{port_s}"]
        for v in self.mounts():
            argv += ["-v", v]
        argv += list(cfg.run_args)
        inner = self.vllm_command()
        argv += ["--entrypoint", inner[0]]
        argv += ["--rootfs", cfg.rootfs] if cfg.rootfs else [str(cfg.image)]
        argv += [*inner[1:], *vllm_args, "--host", self.bind_host(host), "--port", port_s]
        return argv

    def placement(self, plan_env: Mapping[str, str], secrets: Sequence[str]) -> list[str]:
        where = f"inside the container, via {self.kind} run --env-file (0600, removed after)"
        lines = [f"{k}={shlex.quote(v)} -> {where}" for k, v in plan_env.items()]
        return lines + [f"{k} (secret) -> {where}" for k in secrets]

    def describe(self) -> list[str]:
        what = f"image {self.config.image}" if self.config.image else f"rootfs {self.config.rootfs}"
        return [
            f"launcher: {self.kind} ({what}; container {owned_name(self.context.served_name, None)}"
            f", stopped with `{shlex.join(self.cli())} stop` and removed by name)"
        ]

    def prepare(
        self,
        vllm_args: Sequence[str],
        *,
        plan_env: Mapping[str, str],
        secrets: Mapping[str, str],
        host: str,
        port: int,
    ) -> Prepared:
        self.name = owned_name(self.context.served_name, port)
        for folder in self.context.extra_mounts:
            Path(folder).mkdir(parents=True, exist_ok=True)  # else the runtime makes it root's
        values = {"PYTHONUNBUFFERED": "1", **plan_env, **secrets}
        folder, path = _private_env_file(values)
        env = {k: v for k, v in os.environ.items() if k not in secrets}
        argv = self.command(vllm_args, host=host, port=port, env_file=str(path))
        cli = list(self.cli())
        stops = [
            [*cli, "stop", "-t", "10", self.name],
            [*cli, "rm", "-f", self.name],
        ]
        return Prepared(argv, env, stops, [folder], self.name)

    def read_file(self, path: str, timeout: float = 120.0) -> str:
        """A file as the server will see it: read inside the image (``run --rm cat``)."""
        cfg = self.config
        argv = [*self.cli(), "run", "--rm"]
        for v in self.mounts():
            argv += ["-v", v]
        argv += ["--entrypoint", "cat"]
        argv += ["--rootfs", cfg.rootfs] if cfg.rootfs else [str(cfg.image)]
        argv.append(path)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LauncherError(f"cannot run {shlex.join(argv)}: {exc}") from None
        if done.returncode != 0:
            err = (done.stderr or done.stdout).strip().splitlines()
            raise LauncherError(
                f"{path} cannot be read inside {cfg.image or cfg.rootfs} "
                f"({err[-1] if err else f'exit {done.returncode}'}); mount the model folder with "
                'volumes = ["HOST:CONTAINER"], or set config_path to a host copy of config.json'
            )
        return done.stdout


class SlurmLauncher(Launcher):
    """``srun`` with the job's resources; environment by name through ``--export``."""

    kind = "slurm"

    def cli(self) -> tuple[str, ...]:
        return self.config.cli or ("srun",)

    def executable(self) -> str:
        return self.cli()[0]

    def bind_host(self, host: str) -> str:
        return "0.0.0.0" if self.config.nodelist else host

    def command(
        self,
        vllm_args: Sequence[str],
        *,
        host: str,
        port: int | None,
        env_file: str | None = None,
        export: Sequence[str] = (),
    ) -> list[str]:
        cfg, ctx = self.config, self.context
        name = owned_name(ctx.served_name, port)
        argv = [*self.cli(), "--job-name", name, "--nodes", str(ctx.nodes), "--ntasks", "1"]
        if ctx.platform in ("cuda", "rocm") and ctx.gpus:
            argv += ["--gpus-per-node", str(ctx.gpus)]
        if cfg.cpus_per_task:
            argv += ["--cpus-per-task", str(cfg.cpus_per_task)]
        if cfg.partition:
            argv += ["--partition", cfg.partition]
        if cfg.nodelist:
            argv += ["--nodelist", cfg.nodelist]
        if cfg.time_limit:
            argv += ["--time", cfg.time_limit]
        argv += ["--export", ",".join(["ALL", *export]) if export else "ALL"]
        argv += list(cfg.run_args)
        return argv + super().command(vllm_args, host=host, port=port)

    def placement(self, plan_env: Mapping[str, str], secrets: Sequence[str]) -> list[str]:
        where = "srun's environment, exported to the job step by name (--export)"
        lines = [f"{k}={shlex.quote(v)} -> {where}" for k, v in plan_env.items()]
        return lines + [f"{k} (secret) -> {where}, its value never on argv" for k in secrets]

    def describe(self) -> list[str]:
        return [
            f"launcher: slurm (job {owned_name(self.context.served_name, None)}, cancelled with "
            "`scancel --name` on stop)"
        ]

    def prepare(
        self,
        vllm_args: Sequence[str],
        *,
        plan_env: Mapping[str, str],
        secrets: Mapping[str, str],
        host: str,
        port: int,
    ) -> Prepared:
        env = launch_env(plan_env, secrets)
        names = sorted({"PYTHONUNBUFFERED", *plan_env, *secrets})
        argv = self.command(vllm_args, host=host, port=port, export=names)
        name = owned_name(self.context.served_name, port)
        return Prepared(argv, env, [["scancel", "--name", name]], [], name)


class RayLauncher(Launcher):
    """vLLM over Ray: join a running cluster (``address`` or ``RAY_ADDRESS``) or start a head
    (and local worker nodes) for this server, and stop what was started."""

    kind = "ray"

    def __init__(self, config: LauncherConfig, context: LaunchContext) -> None:
        super().__init__(config, context)
        if not config.start_head and not (config.address or os.environ.get("RAY_ADDRESS")):
            raise LauncherError(
                'a ray launcher needs address = "HEAD:6379" (or RAY_ADDRESS in the '
                "environment) to join a cluster, or start_head = true to start one here"
            )
        if config.local_workers and not config.start_head:
            raise LauncherError("local_workers needs start_head = true (they join that head)")
        self._procs: list[subprocess.Popen[bytes]] = []

    def ray_cli(self) -> tuple[str, ...]:
        if self.config.cli:
            return self.config.cli
        beside = Path(sys.executable).with_name("ray")
        return (str(beside),) if beside.exists() else ("ray",)

    def address(self) -> str:
        if self.config.start_head:
            return f"127.0.0.1:{self.config.head_port}"
        return str(self.config.address or os.environ.get("RAY_ADDRESS"))

    def command(
        self, vllm_args: Sequence[str], *, host: str, port: int | None, env_file: str | None = None
    ) -> list[str]:
        args = list(vllm_args)
        if "--distributed-executor-backend" not in args:
            args += ["--distributed-executor-backend", "ray"]
        return super().command(args, host=host, port=port)

    def node_commands(self) -> list[list[str]]:
        """The ``ray start`` commands this launcher runs (none when it joins a cluster)."""
        if not self.config.start_head:
            return []
        cli = list(self.ray_cli())
        common = ["--block", "--disable-usage-stats"]
        if self.config.num_cpus is not None:
            common += ["--num-cpus", str(self.config.num_cpus)]
        head = [*cli, "start", "--head", "--port", str(self.config.head_port)]
        head += ["--include-dashboard", "false", *common]
        workers = [
            [*cli, "start", "--address", self.address(), *common]
            for _ in range(self.config.local_workers)
        ]
        return [head, *workers]

    def placement(self, plan_env: Mapping[str, str], secrets: Sequence[str]) -> list[str]:
        where = (
            "the vLLM driver's and every started Ray node's environment (Ray workers inherit "
            "the environment of their `ray start`)"
            if self.config.start_head
            else "the vLLM driver's environment; export it on every node before `ray start` "
            "(docs/multinode.md)"
        )
        lines = [f"RAY_ADDRESS={self.address()} -> the vLLM driver's environment"]
        lines += [f"{k}={shlex.quote(v)} -> {where}" for k, v in plan_env.items()]
        return lines + [f"{k} (secret) -> the vLLM driver's environment" for k in secrets]

    def describe(self) -> list[str]:
        if not self.config.start_head:
            return [f"launcher: ray (joins the cluster at {self.address()}; starts no Ray node)"]
        lines = ["launcher: ray (starts these Ray nodes, stops them after the server):"]
        lines += [f"  ray node: {shlex.join(c)}" for c in self.node_commands()]
        return lines

    def prepare(
        self,
        vllm_args: Sequence[str],
        *,
        plan_env: Mapping[str, str],
        secrets: Mapping[str, str],
        host: str,
        port: int,
    ) -> Prepared:
        prepared = super().prepare(
            vllm_args, plan_env=plan_env, secrets=secrets, host=host, port=port
        )
        prepared.env["RAY_ADDRESS"] = self.address()
        return prepared

    def start_services(self, env: Mapping[str, str], log: Any) -> None:
        from .process import die_with_parent

        node_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
        for argv in self.node_commands():
            log.write(f"# llmperf ray node: {shlex.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=node_env,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
            self._procs.append(proc)
            if len(self._procs) == 1:
                self._wait_head(node_env)
        if len(self._procs) > 1:
            self._wait_nodes(node_env, len(self._procs))

    def _status(self, env: Mapping[str, str]) -> str | None:
        argv = [*self.ray_cli(), "status", "--address", self.address()]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, env=dict(env), timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    def _wait_head(self, env: Mapping[str, str], timeout: float = 120.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._procs[0].poll() is not None:
                raise LauncherError(
                    f"the Ray head exited with code {self._procs[0].returncode}; see the log"
                )
            if self._status(env) is not None:  # a health check: `ray status` answers
                return
        raise LauncherError(f"the Ray head did not answer `ray status` within {timeout:.0f} s")

    def _wait_nodes(self, env: Mapping[str, str], want: int, timeout: float = 120.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self._status(env) or ""
            active = out.split("Active:", 1)[-1].split("Pending:", 1)[0]
            if active.count("node_") >= want:
                return
        raise LauncherError(f"{want} Ray nodes did not all join within {timeout:.0f} s")

    def stop_services(self) -> None:
        from .process import stop_process_group

        for proc in reversed(self._procs):
            stop_process_group(proc, grace=20.0)
        self._procs.clear()


def make_launcher(config: LauncherConfig | None, context: LaunchContext) -> Launcher:
    """The launcher for a model's config (``None``: local)."""
    config = config or LauncherConfig()
    classes: dict[str, type[Launcher]] = {
        "local": Launcher,
        "prefix": PrefixLauncher,
        "docker": ContainerLauncher,
        "podman": ContainerLauncher,
        "slurm": SlurmLauncher,
        "ray": RayLauncher,
    }
    try:
        cls = classes[config.kind]
    except KeyError:
        raise LauncherError(
            f"unknown launcher kind {config.kind!r}; use one of {', '.join(KINDS)}"
        ) from None
    return cls(config, context)


def from_prefix(prefix: Sequence[str]) -> LauncherConfig:
    """A bare command prefix (``--llmperf-launcher``, ``launch_prefix``) as a launcher."""
    return LauncherConfig(kind="prefix", command=tuple(prefix))
