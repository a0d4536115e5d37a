"""``python -m pytest_llmperf history`` as a user runs it (real subprocesses, real SQLite files):
import past results.json and baseline files, then the no-argument table and plots from the
default store beside the report folder; prune and check; bad input; the ``[history]`` table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.history.store import HistoryStore
from pytest_llmperf.verdicts.baseline import from_runs, save
from pytest_llmperf.verdicts.fingerprint import Fingerprint

ROOT = Path(__file__).resolve().parent.parent
CASE = "dense-gqa-text-c4"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmperf", "history", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def night(day: int, level: float) -> dict:
    runs = [
        {"metrics": {"total_token_throughput": level * f, "p99_e2el_ms": 100_000 / level * f,
                     "success_rate": 1.0}}
        for f in (0.99, 1.0, 1.01, 0.995, 1.005)
    ]  # fmt: skip
    return {
        "schema_version": 1,
        "created": f"2026-11-{day:02d}T22:00:00+00:00",
        "complete": True,
        "environment": {"platform": "cpu", "vllm_version": "0.32.0", "host": "ci"},
        "cases": [{"case_id": CASE, "model": "dense-gqa", "workload": "text", "concurrency": 4,
                   "environment": {"model": "dense-gqa"}, "runs": runs, "gates": []}],
    }  # fmt: skip


def write_nights(base: Path, levels: list[float]) -> list[Path]:
    paths = []
    for i, level in enumerate(levels, start=1):
        p = base / f"night-{i:02d}" / "results.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(night(i, level)))
        paths.append(p)
    return paths


def test_import_then_no_argument_history_reads_the_default_store(tmp_path: Path) -> None:
    write_nights(tmp_path / "old", [1000.0] * 6 + [850.0] * 6)
    imp = cli(tmp_path, "import", str(tmp_path / "old"))
    assert imp.returncode == 0, imp.stderr
    assert imp.stdout.count("imported as session") == 12
    store = tmp_path / "llmperf-history.sqlite"  # beside the default report folder .llmperf
    assert store.is_file()
    again = cli(tmp_path, "import", str(tmp_path / "old" / "night-01"))
    assert "already stored as session #1" in again.stdout

    shown = cli(tmp_path)  # no arguments at all
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"history sqlite:///{store}: 2 series" in text, text
    assert CASE in text and "total_token_throughput" in text and "p99_e2el_ms" in text
    # the drop at night 7: size, date and the sessions around it
    assert "!! 2026-11-07  -15.0%" in text and "(sessions #6 .. #7)" in text, text
    pngs = sorted((tmp_path / ".llmperf" / "history").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plots: 1 PNG(s) in {tmp_path / '.llmperf' / 'history'}" in text

    js = cli(tmp_path, "--no-plots", "--metric", "total_token_throughput", "--json", "h.json")
    (series,) = json.loads((tmp_path / "h.json").read_text())
    (cp,) = series["change_points"]
    assert cp["session_after"] == 7 and cp["date"].startswith("2026-11-07") and cp["worse"]
    assert js.returncode == 0


def test_baseline_file_import_joins_the_pytest_series(tmp_path: Path) -> None:
    fp = Fingerprint(platform="cpu", vllm_version="0.32.0")
    runs = {CASE: [{"total_token_throughput": 1000.0 + i} for i in range(5)]}
    path = save(from_runs("llmperf", fp, runs, created="2026-10-01T00:00:00+00:00"),
                tmp_path / "baselines" / "llmperf-x.json")  # fmt: skip
    res = cli(tmp_path, "import", str(path))
    assert res.returncode == 0 and "imported as session #1" in res.stdout, res.stderr
    with HistoryStore(tmp_path / "llmperf-history.sqlite") as s:
        (session,) = s.sessions()
        assert session["source"] == "baseline" and session["baseline_saved"]
        assert len(s.values()) == 5


def test_prune_and_check(tmp_path: Path) -> None:
    write_nights(tmp_path / "old", [1000.0] * 5)
    cli(tmp_path, "import", str(tmp_path / "old"))
    dry = cli(tmp_path, "prune", "--keep-last", "2", "--dry-run")
    assert "would delete 3 session(s): 1, 2, 3" in dry.stdout, dry.stdout + dry.stderr
    gone = cli(tmp_path, "prune", "--before", "2026-11-02")
    assert "deleted 1 session(s): 1" in gone.stdout
    ok = cli(tmp_path, "check")
    assert ok.returncode == 0 and "4 sessions, consistent" in ok.stdout


def test_no_store_and_bad_input_say_what_to_do(tmp_path: Path) -> None:
    empty = cli(tmp_path)
    assert empty.returncode == 2 and "no history store at" in empty.stderr
    assert "run pytest --llmperf once" in empty.stderr
    missing = cli(tmp_path, "import", str(tmp_path / "nope.json"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    bad = cli(tmp_path, "import", str(junk))
    assert bad.returncode == 1 and "not a pytest-llmperf results.json" in bad.stderr
    cfg = tmp_path / "llmperf.toml"
    cfg.write_text("[history]\ntolerence = 0.1\n")
    typo = cli(tmp_path)
    assert typo.returncode != 0 and "history.tolerence: unknown key" in typo.stderr
    assert "did you mean 'tolerance'" in typo.stderr.lower()


def test_config_store_setting_is_used(tmp_path: Path) -> None:
    (tmp_path / "llmperf.toml").write_text('[history]\nstore = "db/nightly.sqlite"\n')
    write_nights(tmp_path / "old", [1000.0] * 3)
    res = cli(tmp_path, "import", str(tmp_path / "old"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "db" / "nightly.sqlite").is_file()
    assert not (tmp_path / "llmperf-history.sqlite").exists()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"metrics": ["nope"]}, "history.metrics[0]: metric 'nope' has no known direction"),
        ({"ignore_fields": ["gpu"]}, "history.ignore_fields[0]: unknown fingerprint field"),
        ({"drift_guard": "yes"}, "history.drift_guard: expected true or false"),
        ({"tolerance": 2}, "history.tolerance: expected a relative tolerance from 0 to 1"),
    ],
)
def test_history_table_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"history": table})
    assert message in str(err.value)


def test_history_table_values_are_kept() -> None:
    h = parse_config({"history": {"drift_guard": True, "tolerance": 0.08, "window": 30}}).history
    assert (h.drift_guard, h.tolerance, h.window, h.record) == (True, 0.08, 30, True)
