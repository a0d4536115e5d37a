"""What the pytest11 entry point costs a project that installs the plugin but runs plain pytest.

Two figures, each the median of ``--repeat`` fresh interpreters:
1. ``-X importtime``: cumulative import time of ``pytest_llmperf.plugin`` after ``import pytest``
   (everything the entry point pulls in that pytest had not already imported);
2. CPU time of ``pytest --collect-only`` in an empty folder with the plugin vs ``-p no:llmperf``.
Goal (issue 17): <= 30 ms on top of pytest. Run: ``python benchmarks/entry_import_cost.py``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

GOAL_MS = 30.0


def importtime_ms() -> float:
    """Cumulative µs of our modules imported by the entry point, from ``-X importtime``."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_llmperf.plugin"],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in res.stderr.splitlines():
        # "import time:      self [us] |  cumulative | imported package"
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] in ("pytest_llmperf", "pytest_llmperf.plugin"):
            total += int(parts[1])
    return total / 1000


def collect_ms(folder: Path, *extra: str) -> float:
    """CPU time (user + system) of one ``pytest --collect-only``: robust to other tenants."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
        cwd=folder,
        capture_output=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    imp = statistics.median(importtime_ms() for _ in range(args.repeat))
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
        with_p, without = [], []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            with_p.append(collect_ms(folder))
            without.append(collect_ms(folder, "-p", "no:llmperf"))
    delta = statistics.median(with_p) - statistics.median(without)
    print(f"import of pytest_llmperf.plugin after pytest (median of {args.repeat}): {imp:.1f} ms")
    print(
        "pytest --collect-only CPU time, plugin on vs -p no:llmperf: "
        f"{statistics.median(with_p):.0f} ms"
        f" vs {statistics.median(without):.0f} ms (difference {delta:+.1f} ms)"
    )
    ok = imp <= GOAL_MS and delta <= GOAL_MS
    print(f"goal <= {GOAL_MS:.0f} ms on top of pytest: {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
