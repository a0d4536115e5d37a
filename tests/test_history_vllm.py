"""The history on real vLLM, through real ``pytest --llmperf`` sessions (``pytester``) against
the shared ``dense_server`` and, for the degradation, a server of its own.

``test_sessions_are_recorded_and_shown`` (default suite, no extra boot): two sessions are
recorded in the default store with their commit and full fingerprint, the report gets its
History section, and ``python -m pytest_llmperf history`` lists them.

``test_history_reports_the_change_at_the_degraded_session`` (opt-in, ``LLMPERF_SLOW=1``, about
6 minutes): nine sessions; from session K on the server is launched with ``--max-num-seqs 1``
(one request at a time: a large throughput cost at concurrency 16). ``history`` must report the
change at session K with the commits around it, and the drift guard in the last session must
fail the case and name the nights. Short runs on a shared 2-core box vary by 25-40% from one
session to the next, so it needs several sessions on each side for Otava's p < 0.001:
``LLMPERF_SLOW=1 pytest tests/test_history_vllm.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_plugin import against, out, perf_toml, run

from pytest_llmperf.history.store import HistoryStore

K = 5
SESSIONS = 9
CASE = "dense-gqa-text-c16"
SLOW = pytest.mark.skipif(
    not os.environ.get("LLMPERF_SLOW"),
    reason="9 real-vLLM sessions and a server boot (~6 min): run with LLMPERF_SLOW=1",
)
ROOT = Path(__file__).resolve().parent.parent
CONFIG = perf_toml(levels="16", requests=48, warmup=4, output_tokens=32)


@pytest.mark.vllm
def test_sessions_are_recorded_and_shown(
    pytester: pytest.Pytester, dense_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(CONFIG.replace("[16]", "[4]"))
    for i in (1, 2):
        monkeypatch.setenv("LLMPERF_COMMIT", f"commit{i:02d}")
        guard = ["--llmperf-drift-guard"] if i == 2 else []
        res = run(pytester, *against(dense_server), "--llmperf-runs", "2", *guard)
        assert res.ret == 0, out(res)
        assert f"history: session #{i} recorded in sqlite:///" in out(res), out(res)
    case = "dense-gqa-text-c4"
    html = (pytester.path / ".llmperf" / "report.html").read_text()
    assert "<h2>History</h2>" in html and case in html.split("<h2>History</h2>")[1]
    assert list((pytester.path / ".llmperf" / "history").glob("history-dense-gqa-text-c4-*.png"))
    with HistoryStore(pytester.path / "llmperf-history.sqlite") as s:
        sessions = s.sessions()
        assert [x["commit_sha"] for x in sessions] == ["commit01", "commit02"]
        assert all(x["source"] == "pytest" and x["n_cases"] == 1 for x in sessions)
        rows = s.values(metrics=["total_token_throughput"])
        assert len(rows) == 4 and not any(r["partial_fingerprint"] for r in rows)
        (fp,) = s.fingerprints().values()
        assert fp["model_name"] == "dense-gqa" and fp["workload"]["concurrency"] == 4
        assert s.verify() == []
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf", "history", "--no-plots"],
        cwd=pytester.path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    # A store that cannot be written costs the session nothing but the history, and says so.
    (pytester.path / "blocker").write_text("a file where the store's folder would go")
    res = run(pytester, *against(dense_server), "--llmperf-history", "blocker/h.sqlite")
    assert res.ret == 0, out(res)
    assert "history NOT recorded: cannot create the folder of the history store" in out(res)
    assert "history import <report dir>/results.json" in out(res)
    assert re.search(rf"{case}\s+total_token_throughput\s+\w{{8}}\s+2\s", shown.stdout), (
        shown.stdout
    )


@SLOW
@pytest.mark.vllm
def test_history_reports_the_change_at_the_degraded_session(
    pytester: pytest.Pytester,
    dense_server: Any,
    own_tiny_server: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(CONFIG)
    degraded = None
    outputs = []
    for i in range(1, SESSIONS + 1):
        if i == K:
            degraded = own_tiny_server("dense-gqa", ("--max-num-seqs", "1"))
        server = dense_server if i < K else degraded
        monkeypatch.setenv("LLMPERF_COMMIT", f"commit{i:02d}")
        extra = ["--llmperf-drift-guard"] if i == SESSIONS else []
        res = run(pytester, *against(server), "--llmperf-runs", "3", "-rA", *extra)
        outputs.append(out(res))
        text = out(res)
        assert f"history: session #{i} recorded in" in text, text
        if i < SESSIONS:
            assert res.ret == 0, text

    # The drift guard of the last session: no baseline, so it looks at the stored sessions.
    last = outputs[-1]
    assert f"{CASE}: DRIFT in total_token_throughput" in last, last
    assert "The shift spans the nights" in last and f"(commit{K - 1:02d})" in last, last
    html = (pytester.path / ".llmperf" / "report.html").read_text()
    assert "<h2>History</h2>" in html and f"commit{K - 1:02d}" in html

    store = pytester.path / "llmperf-history.sqlite"
    with HistoryStore(store) as s:
        assert len(s.sessions()) == SESSIONS and s.verify() == []
        levels = [
            sum(r["value"] for r in rows) / len(rows)
            for sid in range(1, SESSIONS + 1)
            if (rows := [r for r in s.values(metrics=["total_token_throughput"])
                         if r["session_id"] == sid])
        ]  # fmt: skip
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf", "history", "--metric", "total_token_throughput"],
        cwd=pytester.path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    text = shown.stdout
    print(text, "session levels (tok/s):", [round(v) for v in levels])
    assert shown.returncode == 0, shown.stderr
    assert f"commits commit{K - 1:02d} .. commit{K:02d}" in text, text
    assert f"(sessions #{K - 1} .. #{K})" in text and "!! " in text, text
    assert text.count("!! ") == 1, text  # that change and no other
