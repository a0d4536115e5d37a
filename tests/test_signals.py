"""SIGTERM during a transport callback cancels the run (deterministic, no server needed).

The original bug: the plugin's SIGTERM handler raised ``KeyboardInterrupt`` wherever the main
thread was. When that was inside a uvloop protocol callback (``data_received`` of a streaming
response), uvloop logged "Fatal error on transport" and the run went on as if no signal had
come. End-to-end interrupt tests catch that only by chance (the signal must land inside a
callback). Here the signal is raised *from* a ``data_received`` callback, so the handler runs
there every time: the fix (call asyncio.Runner's SIGINT handler, which cancels the main task)
must end the run; the old behaviour sleeps through it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, socket, sys
    import uvloop
    from pytest_llmperf import plugin

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    plugin._install_sigterm_handler()
    inside = []

    class Stream(asyncio.Protocol):
        def data_received(self, data):
            inside.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # delivered while this callback runs
            for _ in range(10000):
                pass

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        await loop.create_connection(Stream, sock=a)
        b.send(b"data: chunk\\n\\n")
        await asyncio.sleep(3)  # a run that goes on
        print("SLEPT THROUGH SIGTERM", inside, flush=True)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        print("INTERRUPTED", inside, flush=True)
        sys.exit(2)
    """
)


def _sigint(disposition: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN if disposition == "ignored" else signal.SIG_DFL)


# "ignored": how a shell starts a background job (``pytest … &`` in a CI script); Python then
# installs no KeyboardInterrupt handler for SIGINT and asyncio.Runner none of its own, so the
# SIGTERM handler has no Ctrl-C to borrow and must still end the run.
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_inside_a_uvloop_callback_cancels_the_run(sigint: str) -> None:
    pytest.importorskip("uvloop")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: _sigint(sigint),
    )
    out = proc.stdout + proc.stderr
    assert "INTERRUPTED [True]" in proc.stdout, out
    assert "SLEPT THROUGH" not in out
    assert "Fatal error" not in out
    assert proc.returncode == 2, out
