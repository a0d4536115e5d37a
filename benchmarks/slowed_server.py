"""Run a command (the main job) with every vLLM server it starts held to a fraction of a CPU.

Issue 10 asks that a server made 30% slower fail the default gates while the unchanged server
passes. This makes the server slower the way a regression would, without touching the plugin or
vLLM: each vLLM server process (the API server and its EngineCore children) is moved, as it
appears, into a cgroup-v1 ``cpu`` group whose CFS quota is ``--cpu-fraction`` of one core. The
shipped ``auto`` CPU layout gives a launched server one core on this 2-core machine, so a
fraction of 0.7 takes about 30% of its compute.

    .venv/bin/python benchmarks/slowed_server.py --cpu-fraction 0.7 \\
        --unchanged /tmp/derive/s1/results.json -- bash scripts/main-job.sh

Prints, at the end, the command's exit status, each case's output throughput against the
unchanged session's (when ``--unchanged`` names its results.json), the gates that failed, and a
verdict against the goal: the slowed job must fail its gates. Needs root and a writable
``/sys/fs/cgroup/cpu`` (cgroup v1); it says so and stops otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
SERVER_MARKERS = ("vllm.entrypoints", "vllm serve", "VLLM::")


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def server_pids() -> set[int]:
    """vLLM server processes and every descendant of them (EngineCore, its workers)."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    roots = {p for p in pids if any(m in _cmdline(p) for m in SERVER_MARKERS)}
    out = set(roots)
    changed = True
    while changed:
        changed = False
        for p in pids:
            if p not in out and _parent(p) in out:
                out.add(p)
                changed = True
    return out


def make_group(fraction: float) -> Path:
    if not (CGROUP_ROOT / "cpu.cfs_quota_us").exists():
        sys.exit(f"slowed_server: no cgroup-v1 cpu controller at {CGROUP_ROOT}; cannot throttle")
    group = CGROUP_ROOT / f"llmperf-slow-{os.getpid()}"
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * fraction)))
    return group


def mover(group: Path, stop: threading.Event, moved: set[int]) -> None:
    """Move each new server process into the group (all its threads go with it)."""
    while not stop.is_set():
        for pid in server_pids() - moved:
            try:
                (group / "cgroup.procs").write_text(str(pid))
                moved.add(pid)
            except OSError:
                pass  # it exited between the scan and the move
        stop.wait(0.2)  # a poll of /proc: there is no event for "a process appeared"


def summarise(results: Path, unchanged: Path | None) -> tuple[int, list[str]]:
    data = json.loads(results.read_text())
    base: dict[str, float] = {}
    if unchanged is not None:
        for c in json.loads(unchanged.read_text())["cases"]:
            runs = c.get("runs") or []
            if runs:
                base[c["case_id"]] = runs[0]["detail"]["summary"]["metrics"]["output_throughput"]
    failed_cases = 0
    lines = []
    for c in data["cases"]:
        runs = c.get("runs") or []
        out = runs[0]["detail"]["summary"]["metrics"]["output_throughput"] if runs else float("nan")
        failing = [g["name"] for g in c.get("gates", []) if not g.get("passed", True)]
        failed_cases += bool(failing)
        ratio = f"{out / base[c['case_id']]:.2f}" if c["case_id"] in base else "-"
        lines.append(
            f"  {c['case_id']:24s} out tok/s {out:8.0f}  vs unchanged {ratio:>5s}  "
            f"failed gates: {', '.join(failing) or 'none'}"
        )
    return failed_cases, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cpu-fraction", type=float, default=0.7, help="CPU quota of the server")
    ap.add_argument("--unchanged", type=Path, help="results.json of the unchanged server's run")
    ap.add_argument("--report-dir", type=Path, default=Path("/tmp/slowed-server"))
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd or not 0 < args.cpu_fraction <= 1:
        ap.error("give a command after -- and a --cpu-fraction in (0, 1]")
    group = make_group(args.cpu_fraction)
    stop, moved = threading.Event(), set[int]()
    watcher = threading.Thread(target=mover, args=(group, stop, moved), daemon=True)
    watcher.start()
    try:
        rc = subprocess.call([*cmd, "--llmperf-report-dir", str(args.report_dir)])
    finally:
        stop.set()
        watcher.join()
        throttled = (group / "cpu.stat").read_text().split()
        for pid in (group / "cgroup.procs").read_text().split():
            (CGROUP_ROOT / "cgroup.procs").write_text(pid)
        group.rmdir()
    stat = dict(zip(throttled[::2], throttled[1::2], strict=False))
    print(f"\nslowed_server: quota {args.cpu_fraction:.2f} of a core, {len(moved)} processes held;")
    print(f"  cgroup cpu.stat: nr_throttled={stat.get('nr_throttled')} of {stat.get('nr_periods')}")
    failed_cases, lines = summarise(args.report_dir / "results.json", args.unchanged)
    print(f"command exit status {rc}; cases with a failing gate: {failed_cases}")
    print("\n".join(lines))
    met = rc != 0 and failed_cases > 0
    print(f"goal: the slowed server fails the default gates -> {'MET' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
