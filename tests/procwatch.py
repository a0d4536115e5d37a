"""Test helpers that watch processes and files from outside: which processes run, and waiting
for an observable condition (records on disk, a process gone) instead of sleeping."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def pids_matching(*needles: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains every needle."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(n in cmd for n in needles):
            found.append(int(entry))
    return found


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen[Any] | None = None,
    output: Path | None = None,
) -> Any:
    """Poll an observable condition (a file, a process table) until it holds or time runs out;
    give up at once if ``proc`` (the process expected to make it true) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = output.read_text()[-4000:] if output is not None else ""
            raise AssertionError(f"exited ({proc.returncode}) before {what}:\n{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def jsonl_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def communicate_stopped(
    proc: subprocess.Popen[str], *, stop_s: float | None, run_s: float = 0.0, timeout: float = 300
) -> str:
    """Wait for ``proc`` (exit 0 asserted) and return its stdout's last line. With ``stop_s``
    the OS is kept from running it: SIGSTOP for ``stop_s``, SIGCONT for ``run_s``, over and
    over — a starved client, made exact."""
    import contextlib
    import signal
    import threading

    done = threading.Event()

    def stopper() -> None:
        while not done.wait(run_s):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGSTOP)
            done.wait(stop_s)  # the stop itself
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)

    thread = threading.Thread(target=stopper, daemon=True)
    if stop_s is not None:
        thread.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        if stop_s is not None:
            thread.join()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    return out.strip().splitlines()[-1]
