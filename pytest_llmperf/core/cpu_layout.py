"""Which CPU cores the launched server and the load generator may use when they share a host.

On a small CPU host vLLM's engine threads busy-wait on every core they may run on; a client on
the same cores is then run late by the OS and its timestamps are wrong (all chunks of a
request read at once). Measured on the project's 2-core machine (docs/measurement.md): with
the whole server on core 0 (``VLLM_CPU_OMP_THREADS_BIND=0``) and the client on core 1, the
client's event-loop lag p99 fell from 200-1,500 ms to 3-4 ms and no request arrived in one
read. ``auto`` therefore gives the server every allowed core but the last and the client the
last one. Pure parsing here; ``pinned`` is the one system call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

#: Layout settings a user can write besides an explicit ``"SERVER/CLIENT"`` pair of CPU lists.
LAYOUT_WORDS: Final[tuple[str, ...]] = ("auto", "shared")


class CpuLayoutError(ValueError):
    """A CPU layout setting that cannot be used (bad syntax, overlap, CPUs not allowed here)."""


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0,2-3"`` -> ``(0, 2, 3)`` (sorted, unique), the syntax of ``taskset -c`` and of
    ``VLLM_CPU_OMP_THREADS_BIND``."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise CpuLayoutError(f"empty entry in CPU list {text!r}")
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise CpuLayoutError(
                f"{part!r} in CPU list {text!r} is not a CPU number or range (e.g. 0 or 0-3)"
            ) from None
        if a < 0 or b < a:
            raise CpuLayoutError(f"{part!r} in CPU list {text!r} is not a valid range")
        cpus.update(range(a, b + 1))
    return tuple(sorted(cpus))


def format_cpu_list(cpus: Iterable[int]) -> str:
    """``(0, 2, 3)`` -> ``"0,2-3"``."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


@dataclass(frozen=True)
class CpuLayout:
    """The server's cores (its processes and its OpenMP compute threads) and the client's."""

    server: tuple[int, ...]
    client: tuple[int, ...]
    source: str = "auto"

    @property
    def omp_threads_bind(self) -> str:
        """The value for ``VLLM_CPU_OMP_THREADS_BIND``."""
        return format_cpu_list(self.server)

    def describe(self) -> str:
        """``"server 0 / client 1"``: what results.json and the fingerprint record."""
        return f"server {format_cpu_list(self.server)} / client {format_cpu_list(self.client)}"

    def to_json(self) -> dict[str, object]:
        """The layout as results.json's ``environment.cpu_layout`` records it
        (``CpuLayoutRecord``)."""
        import msgspec  # here, not at module level: core/ is loaded when the plugin starts

        record = CpuLayoutRecord(
            server_cpus=list(self.server),
            client_cpus=list(self.client),
            vllm_cpu_omp_threads_bind=self.omp_threads_bind,
            source=self.source,
        )
        out: dict[str, object] = msgspec.to_builtins(record)
        return out


@dataclass(frozen=True, kw_only=True)
class CpuLayoutRecord:
    """A ``CpuLayout`` as JSON: the CPU lists, the OpenMP bind value the server was given, and
    the setting it came from (``auto`` or the user's ``"SERVER/CLIENT"``)."""

    server_cpus: list[int]
    client_cpus: list[int]
    vllm_cpu_omp_threads_bind: str
    source: str


def validate_setting(setting: str) -> str:
    """The setting itself when it is ``auto``, ``shared`` or ``"SERVER/CLIENT"`` CPU lists that do
    not overlap; ``CpuLayoutError`` otherwise."""
    if setting in LAYOUT_WORDS:
        return setting
    server_text, sep, client_text = setting.partition("/")
    if not sep:
        raise CpuLayoutError(
            f"cpu_layout {setting!r} is neither 'auto', 'shared' nor 'SERVER/CLIENT' CPU lists "
            "(e.g. '0/1' or '0-6/7')"
        )
    server, client = parse_cpu_list(server_text), parse_cpu_list(client_text)
    overlap = set(server) & set(client)
    if overlap:
        raise CpuLayoutError(
            f"cpu_layout {setting!r}: CPU {format_cpu_list(overlap)} is given to both the server "
            "and the client; give each its own cores, or write 'shared'"
        )
    return setting


def choose_layout(setting: str, allowed: Iterable[int]) -> CpuLayout | None:
    """The layout for ``setting`` on a host whose process may use ``allowed`` CPUs; None means
    no pinning (``shared``, or ``auto`` with a single CPU)."""
    validate_setting(setting)
    cpus = tuple(sorted(set(allowed)))
    if setting == "shared":
        return None
    if setting == "auto":
        if len(cpus) < 2:
            return None
        return CpuLayout(server=cpus[:-1], client=cpus[-1:], source="auto")
    server_text, _, client_text = setting.partition("/")
    layout = CpuLayout(parse_cpu_list(server_text), parse_cpu_list(client_text), source=setting)
    missing = (set(layout.server) | set(layout.client)) - set(cpus)
    if missing:
        raise CpuLayoutError(
            f"cpu_layout {setting!r} names CPU {format_cpu_list(missing)}, but this process may "
            f"only use {format_cpu_list(cpus)} (taskset/cgroup limit); use those, or 'auto'"
        )
    return layout


@contextlib.contextmanager
def pinned(cpus: Iterable[int] | None) -> Iterator[None]:
    """Run the calling thread (and any process or thread it starts meanwhile, which inherit the
    mask) on ``cpus``; restore the previous mask afterwards. ``None``: no change."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
