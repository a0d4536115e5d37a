"""A hung server ends the run (``pytest_llmperf.loadgen.liveness``).

Without the watchdog, a server stopped with SIGSTOP mid-run made every later request wait out
its full timeout (``N / c`` waves of ``timeout``: measured 32 timeouts per 5 s wave at c=32 on
vLLM) and the next run's prompt preparation wait on ``/tokenize`` for ever (no results.json
after minutes). These tests stop the server's process group and look at what ends, when, and
what is kept.

The fast cases stop the scripted instrument's process (a stopped process is a stopped process;
the instrument just boots in a second). The ``vllm`` cases stop real vLLM servers: an external
one (the shared keyed server, thawed afterwards) and a launched one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procwatch import jsonl_lines, pids_matching, wait_for

from pytest_llmperf.core.atomic import read_jsonl
from pytest_llmperf.loadgen.liveness import LivenessPolicy, ServerHung
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.testing.instrument import Instrument
from pytest_llmperf.workload.prompts import Workload

SMALL = Workload("t", input_tokens=8, output_tokens=20)


@pytest.fixture
def inst() -> Iterator[Instrument]:
    with Instrument() as i:
        yield i
        assert i._proc is not None
        os.kill(i._proc.pid, signal.SIGCONT)  # so stop() can end it


def freeze(inst: Instrument) -> None:
    assert inst._proc is not None
    os.kill(inst._proc.pid, signal.SIGSTOP)


def test_policy_is_one_request_timeout_clamped() -> None:
    assert LivenessPolicy.for_request_timeout(20).hung_after_s == 20
    assert LivenessPolicy.for_request_timeout(1).hung_after_s == 5
    assert LivenessPolicy.for_request_timeout(600).hung_after_s == 30
    with pytest.raises(ValueError, match="must be > 0"):
        LivenessPolicy(interval_s=0)


def test_hang_mid_run_stops_sending_and_keeps_what_was_measured(
    inst: Instrument, tmp_path: Path
) -> None:
    """2,000 requests at c=8 with a 5 s timeout: without the watchdog the frozen server would
    hold the run for 1,990 / 8 waves x 5 s (about 21 minutes). With it, the run ends within
    about two request timeouts of the freeze, names the phase, and keeps every record."""
    timeout_s = 5.0
    stopped: list[float] = []

    def freeze_after_10(done: int, total: int, elapsed: float) -> None:
        if done >= 10 and not stopped:
            freeze(inst)
            stopped.append(time.monotonic())

    records = tmp_path / "run.jsonl"
    with pytest.raises(ServerHung, match="hung during the load run") as info:
        run_load(
            inst.endpoint(ttft=0.01, itl=0.01),
            SMALL,
            LoadSpec(concurrency=8, num_requests=2000, timeout_s=timeout_s),
            progress=freeze_after_10,
            records_path=records,
        )
    ended = time.monotonic()
    assert stopped
    exc = info.value
    assert exc.phase == "the load run"
    result = exc.result
    assert result is not None
    # What was measured is kept: the successes before the freeze and the timeouts after it,
    # in the result and in the JSONL file alike; the rest was never sent.
    kinds = [r.error_kind for r in result.records]
    assert kinds.count(None) >= 10
    assert set(kinds) <= {None, "timeout"}
    assert len(result.records) < 2000 / 4
    assert len(read_jsonl(records)) == len(result.records)
    # Ended within about two request timeouts of the freeze (one of silence to call it a hang,
    # one for the requests in flight), far from the ~1,250 s that waiting out every request
    # takes; the slack is for the probe period on a busy machine.
    print(f"freeze to the end of the run: {ended - stopped[0]:.1f} s")
    assert ended - stopped[0] < 3 * timeout_s + 5, ended - stopped[0]


def test_hang_during_prompt_preparation_names_tokenize(inst: Instrument) -> None:
    freeze(inst)
    t0 = time.monotonic()
    with pytest.raises(ServerHung, match=r"hung during prompt preparation \(/tokenize\)") as info:
        run_load(inst.endpoint(), SMALL, LoadSpec(concurrency=2, num_requests=4, timeout_s=5))
    assert info.value.result is None
    assert "no request was sent" in str(info.value)
    # No request timeout bounds /tokenize: only the watchdog ends this (5 s of silence).
    assert time.monotonic() - t0 < 3 * 5 + 5


def test_a_slow_stream_on_a_live_server_is_not_a_hang(inst: Instrument) -> None:
    """Requests that hang while /health answers are per-request timeouts, not a server hang:
    the watchdog must not stop a run because responses are slow."""
    slow = inst.endpoint(fault="hang", fault_after=1)
    r = run_load(slow, SMALL, LoadSpec(concurrency=4, num_requests=4, timeout_s=6))
    assert r.summary.errors == {"timeout": 4}


TWO_WORKLOADS = """\
concurrency = [4]
runs = 1
warmup_requests = 0
requests_per_level = { "4" = 5000 }
report_dir = "out"
models = ["dense-gqa"]

[client]
loop_lag_p99_ms = 60000

[[workloads]]
name = "a"
preset = "text"
input_tokens = 8
output_tokens = 20

[[workloads]]
name = "b"
preset = "text"
input_tokens = 8
output_tokens = 20
"""


def test_after_a_hang_the_next_case_sends_nothing(inst: Instrument, tmp_path: Path) -> None:
    """Through the plugin: the case that hung fails naming the hang, the next case for the
    same server fails at once without sending (no records file), results.json is written."""
    (tmp_path / "llmperf.toml").write_text(TWO_WORKLOADS)
    sink = (tmp_path / "stdout.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "--llmperf", "-p", "no:cacheprovider", "-rA",
            f"--llmperf-endpoint={inst.base_url}",
            "--llmperf-served-model=instrument?ttft=0.005&itl=0.01",
            "--llmperf-request-timeout=5",
        ],
        cwd=tmp_path,
        stdout=sink,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    folder = tmp_path / "out" / "records"
    try:
        deadline = time.monotonic() + 120
        while not any(p.read_bytes().count(b"\n") >= 20 for p in folder.glob("*.jsonl")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        freeze(inst)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()
    stdout = (tmp_path / "stdout.txt").read_text()
    assert proc.returncode == 1, stdout[-3000:]
    assert "hung during the load run" in stdout
    assert "nothing sent: the server hung earlier in this session" in stdout
    assert len(list(folder.glob("*.jsonl"))) == 1  # the second case sent nothing
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["cases"]) == 1


# --------------------------------------------------------------------------------------------
# real vLLM
# --------------------------------------------------------------------------------------------

EXTERNAL_CONFIG = """\
concurrency = [32]
runs = 2
warmup_requests = 0
requests_per_level = { "32" = 2000 }
report_dir = "out"
models = ["dense-gqa"]

[[workloads]]
name = "small"
preset = "text"
input_tokens = 32
output_tokens = 8

[[gates]]
success_rate_min = 0.0
"""


@pytest.mark.vllm
def test_sigstopped_external_vllm_ends_the_session(keyed_server: object, tmp_path: Path) -> None:
    """The issue's case on real vLLM: an external server SIGSTOPped mid-run at c=32 with
    ~1,900 requests left and a 5 s request timeout (waiting them out: ~300 s for the run, then
    the next run's /tokenize for ever). The session ends, the case fails naming the hang and
    the phase, results.json keeps the measured run, its second run is never started."""
    from conftest import PLANTED_KEY
    from pytest_llmperf.server.process import VLLMServer

    assert isinstance(keyed_server, VLLMServer) and keyed_server.pid is not None
    pgid = keyed_server.pid
    (tmp_path / "llmperf.toml").write_text(EXTERNAL_CONFIG)
    key_file = tmp_path.parent / f"{tmp_path.name}-key"
    key_file.write_text(PLANTED_KEY + "\n")
    sink = (tmp_path / "stdout.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "--llmperf", "-p", "no:cacheprovider", "-rA",
            f"--llmperf-endpoint={keyed_server.base_url}", "--llmperf-served-model=dense-gqa",
            f"--llmperf-api-key-file={key_file}", "--llmperf-request-timeout=5",
        ],
        cwd=tmp_path,
        stdout=sink,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    records = tmp_path / "out" / "records" / "dense-gqa-small-c32-run1.jsonl"
    try:
        wait_for(lambda: jsonl_lines(records) >= 100, 300, "100 records", proc)
        os.killpg(pgid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        proc.wait(timeout=120)
        session_s = time.monotonic() - stopped_at
    finally:
        os.killpg(pgid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()
    stdout = (tmp_path / "stdout.txt").read_text()
    print(f"SIGSTOP to the end of the session: {session_s:.1f} s")
    assert proc.returncode == 1, stdout[-3000:]
    assert session_s < 3 * 5 + 15, session_s  # two request timeouts, probe period, exit
    assert "hung during the load run" in stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    (case,) = [c for c in results["cases"] if c["case_id"] == "dense-gqa-small-c32"]
    assert case["errors"].get("timeout", 0) >= 1
    kept = read_jsonl(records)
    assert sum(r["error_kind"] is None for r in kept) >= 100
    assert len(kept) < 2000 / 2
    assert not (tmp_path / "out" / "records" / "dense-gqa-small-c32-run2.jsonl").exists()
    # Thawed, the shared server serves the next test as before.
    again = run_load(keyed_server.endpoint, SMALL, LoadSpec(concurrency=2, num_requests=4))
    assert again.summary.success_rate == 1.0


LAUNCHED_CONFIG = """\
concurrency = [2, 32]
runs = 1
warmup_requests = 0
requests_per_level = {{ "2" = 6, "32" = 2000 }}
report_dir = "out"
baseline_dir = "baselines"

[[models]]
name = "{name}"
tiny = "dense-gqa"
workloads = ["small"]
env = {{ VLLM_CACHE_ROOT = "{cache}", HF_TOKEN = "{token}" }}
extra_args = ["--gpu-memory-utilization", "0.08"]

[[workloads]]
name = "small"
preset = "text"
input_tokens = 32
output_tokens = 8

[[gates]]
success_rate_min = 0.0
"""

PLANTED_HF_TOKEN = "hf_llmperfPlantedCanary5e1f0c9a7b3d"


@pytest.mark.vllm
def test_launched_session_with_secrets_survives_a_hang_and_leaks_nothing(
    tmp_path: Path, vllm_cache_root: str
) -> None:
    """One launched real-vLLM session that uses a model ``env`` with a planted ``HF_TOKEN``,
    an API key from a key file and ``--llmperf-launcher``: the first case passes (a baseline is
    asked for; a session with a failed case declines to save one); the server's group is
    SIGSTOPped in the second (c=32, 2,000 requests, 5 s timeout). The session ends, the hang
    is named, results.json keeps both cases, the launcher's words start the logged command,
    no server is left, and neither secret is in any file the session wrote (listed in the
    test's output) or in its terminal output."""
    from conftest import PLANTED_KEY

    name = f"hang{os.getpid()}"
    (tmp_path / "llmperf.toml").write_text(
        LAUNCHED_CONFIG.format(name=name, cache=vllm_cache_root, token=PLANTED_HF_TOKEN)
    )
    secrets = tmp_path.parent / f"{tmp_path.name}-secret"
    secrets.mkdir()
    key_file = secrets / "key"
    key_file.write_text(PLANTED_KEY + "\n")
    launcher = f"{sys.executable} -m vllm.entrypoints.openai.api_server"
    sink = (tmp_path / "stdout.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "--llmperf", "-p", "no:cacheprovider", "-rA",
            f"--junitxml={tmp_path / 'junit.xml'}", f"--llmperf-api-key-file={key_file}",
            f"--llmperf-launcher={launcher}", "--llmperf-save-baseline",
            "--llmperf-request-timeout=5",
        ],
        cwd=tmp_path,
        stdout=sink,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    records = tmp_path / "out" / "records" / f"{name}-small-c32-run1.jsonl"
    session_s = None
    try:
        wait_for(lambda: jsonl_lines(records) >= 100, 600, "100 records", proc)
        (server,) = {os.getpgid(p) for p in pids_matching("--served-model-name", name)}
        os.killpg(server, signal.SIGSTOP)
        stopped_at = time.monotonic()
        proc.wait(timeout=180)
        session_s = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in pids_matching("--served-model-name", name):  # never leave one behind
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(pid), signal.SIGCONT)
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        sink.close()
    stdout = (tmp_path / "stdout.txt").read_text()
    print(f"SIGSTOP to the end of the launched session: {session_s:.1f} s")
    assert proc.returncode == 1, stdout[-3000:]
    assert session_s < 3 * 5 + 30, session_s  # two timeouts, probe period, stopping vLLM
    assert "hung during the load run" in stdout
    assert not pids_matching("--served-model-name", name), "the hung server was left running"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["case_id"] for c in results["cases"]] == [f"{name}-small-c2", f"{name}-small-c32"]
    assert results["cases"][1]["environment"]["launch_env"]["HF_TOKEN"] == "<redacted>"
    assert sum(r["error_kind"] is None for r in read_jsonl(records)) >= 100
    log = (tmp_path / "out" / "server-logs" / f"{name}.log").read_text()
    launch = next(ln for ln in log.splitlines() if ln.startswith("# llmperf launch: "))
    assert launch.removeprefix("# llmperf launch: ").startswith(launcher)
    # No secret anywhere: every file the session wrote, and what it printed.
    inputs = {tmp_path / "llmperf.toml"}  # the user's own config holds the token, by design
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p not in inputs)
    names = {p.name for p in written}
    assert {"results.json", "junit.xml", f"{name}.log", "report.html"} <= names
    assert any(p.suffix == ".jsonl" for p in written)
    print("files checked:", *(str(p.relative_to(tmp_path)) for p in written), sep="\n  ")
    for path in written:
        data = path.read_bytes()
        assert PLANTED_HF_TOKEN.encode() not in data, path
        assert PLANTED_KEY.encode() not in data, path
