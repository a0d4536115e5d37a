"""A warm test runner for mutmut 2: one process imports pytest, scipy and the rest once, then
forks a fresh child per mutant that re-imports only this repository's modules (which mutmut has
just rewritten on disk) and runs pytest in it.

mutmut 2 starts its ``--runner`` command once per mutant; a cold ``python -m pytest`` here costs
3 s of CPU in imports alone (about 10 s of wall time on 2 busy cores), which made one module's run
take hours. The runner command becomes ``mutation_runner.py run SOCKET``, a small client that exits
0 when pytest passed and 1 when it did not. mutmut 2 reads only status 1 as "killed", so a mutant
that breaks the module's import (pytest: collection error, status 2) would pass for a survivor;
here every failed run of the baseline-green tests is a kill.

    python scripts/mutation_runner.py serve SOCKET ROOT -- PYTEST_ARGS...   # in the scratch copy
    python scripts/mutation_runner.py run SOCKET                            # mutmut's --runner

Bytecode is never written (two mutants of one size written within one second would otherwise
share a stale .pyc). If mutmut's timeout kills the client, the server kills the child.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

sys.dont_write_bytecode = True
_RUNNER_CRASHED = 75


def _purge(root: str) -> None:
    """Forget every imported module whose file lies under ``root`` (the repository copy)."""
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if path and os.path.realpath(path).startswith(root + os.sep):
            del sys.modules[name]


def _install_code_cache() -> None:
    """Compile each source text once: the server and every child reuse the code object of a
    file whose bytes are unchanged, so a child compiles (and assertion-rewrites) only the one
    file mutmut has just mutated. Without it each child recompiled the whole package (pytest
    rewrites every module of a pytest11 plugin's distribution) and the test files: about 1 s of
    a launch_plan mutant's 2 s. The key is the path and the source's hash, never a timestamp.
    """
    import hashlib
    from importlib import _bootstrap_external as bootstrap

    from _pytest.assertion import rewrite

    codes: dict[tuple[str, bytes], object] = {}
    plain = bootstrap.SourceLoader.source_to_code

    def source_to_code(self: object, data: bytes, path: str, *, _optimize: int = -1) -> object:
        key = (str(path), hashlib.blake2b(bytes(data), digest_size=16).digest())
        if key not in codes:
            codes[key] = plain(self, data, path, _optimize=_optimize)
        return codes[key]

    rewrite_plain = rewrite._rewrite_test
    rewritten: dict[tuple[str, bytes], tuple[bytes, object]] = {}

    def rewrite_test(fn: os.PathLike[str], config: object) -> tuple[bytes, object]:
        with open(fn, "rb") as f:
            key = (str(fn), hashlib.blake2b(f.read(), digest_size=16).digest())
        if key not in rewritten:
            rewritten[key] = rewrite_plain(fn, config)
        return rewritten[key]

    bootstrap.SourceLoader.source_to_code = source_to_code  # type: ignore[method-assign]
    rewrite._rewrite_test = rewrite_test  # type: ignore[assignment]


def _run_child(root: str, args: list[str], log: str) -> int:
    pid = os.fork()
    if pid == 0:  # the child: fresh project modules, warm everything else
        try:
            _purge(root)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import pytest

            code = int(pytest.main(list(args)))
        except BaseException:  # a crash of this wrapper, not of the tests: never a kill
            code = _RUNNER_CRASHED
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    return pid


def serve(sock_path: str, root: str, args: list[str]) -> None:
    root = os.path.realpath(root)
    os.chdir(root)
    # Warm up: collect once in this process (imports scipy, pydantic, hypothesis, the plugin and
    # the tests), then forget the repository's own modules so each child imports them afresh.
    import pytest

    _install_code_cache()
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1), os.dup(2)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        pytest.main([*args, "--collect-only", "-q"])
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    _purge(root)

    log = os.path.join(root, "mutation-runner.log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    server.bind(sock_path)
    server.listen(1)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            pid = _run_child(root, args, log)
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    try:
                        conn.sendall(f"{code}\n".encode())
                    except OSError:
                        pass
                    break
                readable, _, _ = select.select([conn], [], [], 0.02)
                if readable and not conn.recv(1):  # the client was killed (mutmut's timeout)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break


def run(sock_path: str) -> int:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(sock_path)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = client.recv(64)
            if not chunk:
                break
            reply += chunk
        code = int(reply.decode().strip())
    except (OSError, ValueError) as exc:
        code, why = _RUNNER_CRASHED, f"no result from the server at {sock_path}: {exc}"
    else:
        why = "the runner's child crashed"
    if code == _RUNNER_CRASHED:
        # Never let a broken runner count as a kill: report it and say "survived", so the
        # run's figure can only be too low.
        print(f"mutation_runner: {why}", file=sys.stderr)
        return 0
    return 0 if code == 0 else 1


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "serve" and "--" in argv:
        cut = argv.index("--")
        serve(argv[1], argv[2], argv[cut + 1 :])
        return 0
    if len(argv) == 2 and argv[0] == "run":
        return run(argv[1])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
