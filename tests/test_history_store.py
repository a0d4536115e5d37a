"""The history store against real databases: SQLite files, and a real PostgreSQL server this
module starts from Debian's package (installed with apt-get when missing and we are root).

Concurrency and crashes use real processes (``tests/history_writer.py``): two writers at once,
and a writer SIGKILLed inside its transaction.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmperf.history.model import (
    CaseEntry,
    HistoryError,
    Redactor,
    SessionRecord,
    from_results,
    iso,
    new_uid,
)
from pytest_llmperf.history.store import HistoryStore, display_url
from pytest_llmperf.verdicts.fingerprint import Fingerprint

WRITER = Path(__file__).with_name("history_writer.py")
ROOT = Path(__file__).resolve().parent.parent
PLANTED = "sk-llmperf-history-canary-7d2f41"
#: A second key, only ever under a secret-looking name (no process knows its value).
PLANTED_BY_NAME = "hf-llmperf-canary-by-name-0a9c"


def make_session(i: int, *, value: float = 1000.0, case: str = "m-text-c4") -> SessionRecord:
    fp = Fingerprint(platform="cpu", model_name="tiny:m", vllm_version="0.32.0")
    runs = tuple({"total_token_throughput": value + r, "p99_e2el_ms": 50.0 + r} for r in range(3))
    entry = CaseEntry(case, "m", "text", 4, runs, fp)
    return SessionRecord(
        uid=new_uid("t", i), started=iso(1_700_000_000 + 86400 * i), cases=(entry,)
    )


# -- PostgreSQL -------------------------------------------------------------------------------


def _initdb() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return found[-1] if found else shutil.which("initdb")


def _install_postgres() -> str:
    """apt-get install postgresql (root only); returns why it failed, or ''."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get, so it cannot be installed here"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return f"'{' '.join(cmd)}' failed: {proc.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server on a free loopback port; yields its base URL."""
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is not installed")
    initdb = _initdb()
    why = ""
    if initdb is None:
        why = _install_postgres()
        initdb = _initdb()
    if initdb is None:
        pytest.skip(
            f"PostgreSQL is not installed (no initdb) and {why or 'apt-get did not add it'}"
        )
    bindir = Path(initdb).parent
    base = Path(tempfile.mkdtemp(prefix="llmperf-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the package's postgres user does
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    init = subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "llmperf",
         "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"initdb failed: {init.stderr.strip()[-400:]}")
    opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1"
    start = subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"),
         "-w", "-t", "120", "start"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if start.returncode != 0:
        log = (base / "log").read_text(errors="replace")[-400:] if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]} {log}")
    try:
        yield f"postgresql+psycopg://llmperf@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: str, request: pytest.FixtureRequest) -> str:
    """A fresh database on the module's server for one test."""
    import psycopg

    name = "t_" + new_uid(request.node.nodeid)[:20]
    with psycopg.connect(f"{postgres.replace('+psycopg', '')}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("pg_url")


# -- basics -----------------------------------------------------------------------------------


def test_record_read_back_idempotent_and_consistent(store_url: str) -> None:
    with HistoryStore(store_url) as store:
        first = store.record(make_session(0))
        again = store.record(make_session(0))
        store.record(make_session(1, value=900.0))
        assert first.stored and not again.stored and again.session_id == first.session_id
        rows = store.values(metrics=["total_token_throughput"])
        assert [r["value"] for r in rows] == [1000.0, 1001.0, 1002.0, 900.0, 901.0, 902.0]
        assert {r["case_id"] for r in rows} == {"m-text-c4"}
        assert len(store.sessions()) == 2 and len(store.fingerprints()) == 1
        assert store.verify() == []


def test_prune_keeps_the_newest_and_removes_children(store_url: str) -> None:
    with HistoryStore(store_url) as store:
        for i in range(5):
            store.record(make_session(i))
        assert store.prune(keep_last=2, dry_run=True) == [1, 2, 3]
        assert len(store.sessions()) == 5  # dry run deleted nothing
        assert store.prune(before=iso(1_700_000_000 + 86400 * 1)) == [1]
        assert store.prune(keep_last=2) == [2, 3]
        assert [s["id"] for s in store.sessions()] == [4, 5]
        assert len(store.values()) == 2 * 3 * 2
        assert store.verify() == []
        with pytest.raises(HistoryError, match="say what to prune"):
            store.prune()


def test_missing_sqlite_store_is_a_clear_error_when_reading(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match=r"no history store at .*run pytest --llmperf once"):
        HistoryStore(tmp_path / "nothing.sqlite", create=False)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with HistoryStore(path) as store:
        store.record(make_session(0))
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE llmperf_meta SET value = '99' WHERE key='schema_version'")
    with pytest.raises(HistoryError, match="newer pytest-llmperf"), HistoryStore(path) as store:
        store.sessions()


def test_password_never_shown() -> None:
    shown = display_url("postgresql+psycopg://ci:hunter2secret@db.example:5432/perf")
    assert "hunter2secret" not in shown and "ci:***@db.example" in shown


# -- secrets ----------------------------------------------------------------------------------


def results_doc(key: str, by_name: str = PLANTED_BY_NAME) -> dict:
    """A results.json as the plugin writes it, with a secret in every place one could hide."""
    return {
        "schema_version": 1,
        "tool": {"name": "pytest-llmperf", "version": "0.1.0"},
        "created": "2026-11-01T20:00:00+00:00",
        "updated": "2026-11-01T20:05:00+00:00",
        "complete": True,
        "environment": {"host": "ci-1", "platform": "cpu", "vllm_version": "0.32.0",
                        "MY_SERVICE_TOKEN": by_name, "note": f"curl -H 'Bearer {key}'"},
        "cases": [{
            "case_id": "dense-gqa-text-c4", "model": "dense-gqa", "workload": "text",
            "concurrency": 4, "passed": True, "status": "OK", "client_bound": False,
            "environment": {"model": "dense-gqa",
                            "launch_argv": ["--model", "/m", "--api-key", key, f"--hf-token={key}"],
                            "launch_env": {"VLLM_API_KEY": key, "VLLM_CPU_KVCACHE_SPACE": "1"}},
            "runs": [{"metrics": {"total_token_throughput": 1000.0 + i, "success_rate": 1.0}}
                     for i in range(3)],
            "gates": [{"name": "floor", "metric": "m", "measured": 1, "limit": 0, "kind": "min",
                       "passed": True, "margin_pct": 1, "note": key}],
        }],
    }  # fmt: skip


def _all_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_planted_key_never_reaches_the_store_via_import(tmp_path: Path) -> None:
    """`history import` of a results.json that holds a planted key in the session environment,
    launch argv and env, and a gate note; and the same key in a secret-named environment
    variable of the importing process. The raw database file must not contain it."""
    src = tmp_path / "old" / "results.json"
    src.parent.mkdir()
    src.write_text(json.dumps(results_doc(PLANTED)))
    store = tmp_path / "llmperf-history.sqlite"
    env = {**os.environ, "DEPLOY_SECRET": PLANTED, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf", "history", "import", str(src),
         "--store", str(store)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "imported as session #1" in proc.stdout
    raw = _all_bytes(store)
    assert PLANTED.encode() not in raw and PLANTED_BY_NAME.encode() not in raw
    assert b"Bearer <redacted>" in raw and b"ci-1" in raw  # the rest is kept
    with HistoryStore(store) as s:
        assert [r["value"] for r in s.values(metrics=["total_token_throughput"])] == [
            1000.0, 1001.0, 1002.0,
        ]  # fmt: skip


def test_redaction_keeps_a_clean_fingerprint_and_its_id() -> None:
    """The workload's token counts are no secret: a fingerprint without secrets is stored
    unchanged (same id), so tonight's case finds its stored series."""
    fp = Fingerprint(
        platform="cpu", model_name="tiny:m", launch_argv=("--port", "8000"),
        launch_env=(("VLLM_CPU_KVCACHE_SPACE", "1"),),
        workload='{"concurrency":4,"input_tokens":64,"output_tokens":16}',
    )  # fmt: skip
    red = Redactor.from_environ({"X_TOKEN": PLANTED})
    assert red.fingerprint(fp) == fp and red.fingerprint(fp).id() == fp.id()
    secret = Fingerprint(platform="cpu", launch_env=(("HF_TOKEN", PLANTED_BY_NAME),),
                         launch_argv=("--api-key", PLANTED))  # fmt: skip
    assert PLANTED not in json.dumps(red.fingerprint(secret).to_dict())
    assert PLANTED_BY_NAME not in json.dumps(red.fingerprint(secret).to_dict())


def test_redactor_scrubs_values_keys_and_flags() -> None:
    red = Redactor.from_environ({"X_PASSWORD": PLANTED, "PATH": "/usr/bin"})
    rec = from_results(results_doc(PLANTED)).redacted(red)
    text = json.dumps([rec.environment, [c.gates for c in rec.cases]])
    assert PLANTED not in text and PLANTED_BY_NAME not in text
    assert "/usr/bin" not in red.secrets
    assert rec.environment["MY_SERVICE_TOKEN"] == "<redacted>"
    assert rec.environment["note"] == "curl -H 'Bearer <redacted>'"
    assert red.argv(["--api-key", PLANTED, "--port", "8000", f"--token={PLANTED}"]) == [
        "--api-key", "<redacted>", "--port", "8000", "--token=<redacted>",
    ]  # fmt: skip


# -- concurrency and crashes (real processes) -------------------------------------------------


def _writer(url: str, tag: str, n: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), url, tag, str(n), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
    return proc


def test_two_concurrent_writers_leave_a_consistent_store(store_url: str) -> None:
    HistoryStore(store_url).ensure_schema()
    a, b = _writer(store_url, "a", 25), _writer(store_url, "b", 25)
    for p in (a, b):  # both released at once: their transactions interleave
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p, tag in ((a, "a"), (b, "b")):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and f"done {tag}" in out, err
    with HistoryStore(store_url) as store:
        sessions = store.sessions()
        assert sorted(s["suite"] for s in sessions) == ["a"] * 25 + ["b"] * 25
        assert len(store.values()) == 50 * 4 * 5 * 6
        assert store.verify() == []


def test_writer_killed_mid_transaction_loses_nothing_stored(store_url: str) -> None:
    with HistoryStore(store_url) as store:
        for i in range(3):
            store.record(make_session(i))
    victim = _writer(store_url, "victim", 1, "hang")
    assert victim.stdin is not None and victim.stdout is not None
    victim.stdin.write("go\n")
    victim.stdin.flush()
    assert victim.stdout.readline().strip() == "MID-TRANSACTION", victim.stderr
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    with HistoryStore(store_url) as store:
        assert store.verify() == []
        assert [s["uid"] for s in store.sessions()] == [new_uid("t", i) for i in range(3)]
        assert len(store.values()) == 3 * 3 * 2
        store.record(make_session(3))  # the lock died with the writer
        assert len(store.sessions()) == 4 and store.verify() == []
