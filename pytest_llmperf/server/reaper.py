"""A watchdog that stops a container / job by name if the pytest process dies.

Killing pytest (even with SIGKILL) kills the ``docker run`` client through PR_SET_PDEATHSIG,
but not the container: the runtime's daemon (dockerd, podman's conmon) owns it. This process,
started in its own session before the server, reads the stop commands as one JSON line on
stdin and then blocks on stdin. The parent writes ``done`` when it stopped the server itself;
end-of-file without ``done`` means the parent died, and the commands run.

Run as ``python -m pytest_llmperf.server.reaper``; standard library only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for pytest is not for us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    first = sys.stdin.readline()
    try:
        commands = json.loads(first)
    except ValueError:
        return 2
    rest = sys.stdin.read()  # blocks until the parent closes the pipe or dies
    if rest.strip() == "done":
        return 0
    for argv in commands:
        try:
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
    return 0


if __name__ == "__main__":
    sys.exit(main())
