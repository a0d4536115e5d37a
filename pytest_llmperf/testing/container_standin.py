"""A STAND-IN for a container CLI (``docker``/``podman``), for tests on hosts without a
container runtime. It is not a container: it runs the given command on this host.

What it honours is what the plugin's container launcher relies on, so a test through it checks
the launcher's side for real: ``run [--rm] [-d] --name NAME [-e K=V | -e K] [--env-file F]
[--entrypoint E] IMAGE|--rootfs DIR [CMD...]`` starts ``E CMD...`` in a new session with ONLY
the environment given by ``-e``/``--env-file`` (plus PATH, HOME and LANG, as an image would
set), like a container that does not inherit the client's environment; ``stop [-t S] NAME``
SIGTERMs the "container" and SIGKILLs it after S seconds; ``rm [-f] NAME`` forgets (and with
``-f`` kills) it; ``ps`` lists running names. Like ``docker run``, killing the foreground
client leaves the "container" running, and SIGTERM/SIGINT to the client are forwarded.
Other flags (``-v``, ``--device``, ``--network``, ``-p``, …) are accepted and ignored.

State lives in ``$LLMPERF_STANDIN_STATE`` (default ``/tmp/llmperf-container-standin-UID``).
Run as ``python -m pytest_llmperf.testing.container_standin``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pytest_llmperf.server.process import group_alive

_VALUED = {
    "-v",
    "--volume",
    "--device",
    "--network",
    "--net",
    "-p",
    "--publish",
    "--group-add",
    "--ipc",
    "--security-opt",
    "--gpus",
    "--shm-size",
    "--cgroups",
    "--user",
    "-u",
    "--workdir",
    "-w",
}
_IMAGE_ENV = ("PATH", "HOME", "LANG")


def state_dir() -> Path:
    d = Path(
        os.environ.get("LLMPERF_STANDIN_STATE", f"/tmp/llmperf-container-standin-{os.getuid()}")
    )
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _record(name: str) -> Path:
    return state_dir() / f"{name}.json"


def _read_env_file(path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        k, sep, v = line.partition("=")
        if sep:
            env[k] = v
        elif k in os.environ:
            env[k] = os.environ[k]
    return env


def _parse_run(args: list[str]) -> tuple[str | None, bool, dict[str, str], list[str]]:
    """``docker run``'s arguments as ``(name, detach, env, command)``: the options it honours,
    the ones it skips, and the command after the image (with ``--entrypoint`` in front)."""
    name = None
    detach = False
    entrypoint: str | None = None
    env = {k: os.environ[k] for k in _IMAGE_ENV if k in os.environ}
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--rm", "-i", "-t", "--init", "--privileged"):
            pass
        elif a == "-d":
            detach = True
        elif a == "--name":
            name, i = args[i + 1], i + 1
        elif a in ("-e", "--env"):
            k, sep, v = args[i + 1].partition("=")
            env[k] = v if sep else os.environ.get(k, "")
            i += 1
        elif a == "--env-file":
            env.update(_read_env_file(args[i + 1]))
            i += 1
        elif a == "--entrypoint":
            entrypoint, i = args[i + 1], i + 1
        elif a == "--rootfs":
            i += 2
            break
        elif a in _VALUED:
            i += 1
        elif a.startswith("-"):
            pass  # --flag=value and flags without a value
        else:
            i += 1  # the image
            break
        i += 1
    cmd = args[i:]
    return name, detach, env, [entrypoint, *cmd] if entrypoint else cmd


def run(args: list[str]) -> int:
    name, detach, env, cmd = _parse_run(args)
    if not cmd:
        print("container-standin: no command to run", file=sys.stderr)
        return 125
    if name is None:
        name = f"standin-{os.getpid()}"
    if _record(name).exists():
        old = json.loads(_record(name).read_text())
        if group_alive(old["pgid"]):
            print(f'container-standin: the name "{name}" is already in use', file=sys.stderr)
            return 125
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    _record(name).write_text(json.dumps({"pgid": proc.pid, "cmd": cmd}))
    if detach:
        print(name)
        return 0

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = proc.wait()
    return rc if rc >= 0 else 128 - rc


def stop(args: list[str]) -> int:
    grace = 10.0
    names = []
    i = 0
    while i < len(args):
        if args[i] in ("-t", "--time"):
            grace, i = float(args[i + 1]), i + 1
        else:
            names.append(args[i])
        i += 1
    rc = 0
    for name in names:
        rec = _record(name)
        if not rec.exists():
            print(f"container-standin: no container {name}", file=sys.stderr)
            rc = 125
            continue
        pgid = json.loads(rec.read_text())["pgid"]
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)  # no event exists for "a whole process group has exited"
        if group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        print(name)
    return rc


def rm(args: list[str]) -> int:
    force = "-f" in args or "--force" in args
    rc = 0
    for name in [a for a in args if not a.startswith("-")]:
        rec = _record(name)
        if not rec.exists():
            rc = 0 if force else 125
            continue
        pgid = json.loads(rec.read_text())["pgid"]
        if group_alive(pgid):
            if not force:
                print(f"container-standin: {name} is running; stop it or use -f", file=sys.stderr)
                rc = 125
                continue
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rec.unlink(missing_ok=True)
        print(name)
    return rc


def ps(_args: list[str]) -> int:
    for rec in sorted(state_dir().glob("*.json")):
        if group_alive(json.loads(rec.read_text())["pgid"]):
            print(rec.stem)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: container_standin run|stop|rm|ps ...", file=sys.stderr)
        return 2
    commands = {"run": run, "stop": stop, "rm": rm, "ps": ps}
    if argv[0] not in commands:
        print(f"container-standin: unknown command {argv[0]!r}", file=sys.stderr)
        return 125
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
