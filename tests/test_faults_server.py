"""Server faults: a server that never gets ready, dies, hangs, cannot be launched, or is
interrupted with its test session. Each case must end promptly, say what happened and leave
no process behind.

Fast cases use a scripted launcher (a few lines of Python standing in for vLLM) because they
are about what happens *before* vLLM could answer; the mid-run cases use real vLLM on CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procwatch import jsonl_lines, pids_matching, wait_for

from conftest import PLANTED_KEY, process_group_members
from pytest_llmperf.core.atomic import read_jsonl
from pytest_llmperf.loadgen.run import LoadSpec, run_load
from pytest_llmperf.server import process as server_mod
from pytest_llmperf.server.process import ServerError, ServerStartTimeout, VLLMServer
from pytest_llmperf.workload.prompts import Workload

SMALL = Workload("t", input_tokens=32, output_tokens=8)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model folder that passes the pre-launch checks (the scripted launchers ignore it)."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (d / "tokenizer.json").write_text("{}")
    return d


FAKE_VLLM = """\
#!{python}
# A stand-in for vLLM's OpenAI server: behaves as MODE says, prints like vLLM does.
import http.server, json, os, signal, subprocess, sys, time
argv = sys.argv
host, port = argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1])
mode = {mode!r}
print("INFO fake vLLM: loading weights", flush=True)
if mode == "crash":
    print("(EngineCore pid=1) ERROR [core.py:1] Traceback (most recent call last):")
    print("(EngineCore pid=1) ERROR [core.py:2] RuntimeError: Unsupported CPU attention "
          "configuration: head_dim=16")
    print("RuntimeError: Engine core initialization failed. See root cause above.")
    print("echo of the key:", os.environ.get("VLLM_API_KEY"), flush=True)
    print("HF_HUB_OFFLINE:", os.environ.get("HF_HUB_OFFLINE"), flush=True)
    sys.exit(1)
if mode in ("silent", "stubborn"):
    if mode == "stubborn":  # ignores SIGTERM and has a child in its group, like an engine
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", "import signal, time\\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(600)"])
    while True:
        time.sleep(3600)

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.path == "/health":
            code, body = (503 if mode == "unhealthy" else 200), b""
        elif self.path == "/v1/models":
            code, body = 200, json.dumps({{"data": [{{"id": "someone-else"}}]}}).encode()
        else:
            code, body = 404, b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer((host, port), H).serve_forever()
"""


def fake_launcher(tmp_path: Path, mode: str) -> list[str]:
    path = tmp_path / f"fake-vllm-{mode}"
    path.write_text(FAKE_VLLM.format(python=sys.executable, mode=mode))
    path.chmod(0o755)
    return [str(path)]


# --------------------------------------------------------------------------------------------
# never ready: a timeout that names the phase, with the log tail
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "phase"),
    [
        ("silent", "starting the process"),
        ("unhealthy", "waiting for /health to answer 200 (it answered 503)"),
        ("wrong-model", "waiting for /v1/models to list 'tiny'"),
    ],
)
def test_never_ready_times_out_naming_the_phase_with_log_tail(
    tmp_path: Path, model_dir: Path, mode: str, phase: str
) -> None:
    launcher = fake_launcher(tmp_path, mode)
    srv = VLLMServer(
        model_dir, served_model_name="tiny", launcher=launcher, ready_timeout=3, stop_grace=5
    )
    t0 = time.monotonic()
    with pytest.raises(ServerStartTimeout) as info:
        srv.start()
    assert time.monotonic() - t0 < 15
    msg = str(info.value)
    assert "did not become ready within 3 s" in msg
    assert phase in msg
    assert "fake vLLM: loading weights" in msg  # the log tail
    assert str(srv.log_path) in msg
    assert not pids_matching(launcher[0])  # stopped on the way out


def test_early_death_reports_the_root_cause_line_within_seconds(
    tmp_path: Path, model_dir: Path
) -> None:
    srv = VLLMServer(model_dir, launcher=fake_launcher(tmp_path, "crash"), api_key=PLANTED_KEY)
    t0 = time.monotonic()
    with pytest.raises(ServerError) as info:
        srv.start()
    assert time.monotonic() - t0 < 10
    err = info.value
    assert err.root_cause == "RuntimeError: Unsupported CPU attention configuration: head_dim=16"
    assert "exited with code 1" in str(err)
    assert PLANTED_KEY not in str(err)  # the fake echoed it to its log; the message redacts it
    assert "***" in str(err)


def test_root_cause_comes_from_this_launch_not_an_earlier_life(
    tmp_path: Path, model_dir: Path
) -> None:
    log = tmp_path / "server.log"  # a restarted server appends to its log
    log.write_text("WARNING [core_client.py:817] engine core exited unexpectedly\n")
    srv = VLLMServer(model_dir, launcher=fake_launcher(tmp_path, "crash"), log_path=log)
    with pytest.raises(ServerError) as info:
        srv.start()
    assert info.value.root_cause == (
        "RuntimeError: Unsupported CPU attention configuration: head_dim=16"
    )
    assert "exited unexpectedly" in log.read_text()


def test_the_log_names_each_launch_and_a_local_model_folder_runs_offline(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each launch appends its (redacted) command line to the log, then the server's output;
    a local folder runs with HF_HUB_OFFLINE=1 unless the caller set it."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    log = tmp_path / "server.log"
    launcher = fake_launcher(tmp_path, "crash")
    srv = VLLMServer(model_dir, launcher=launcher, log_path=log, api_key=PLANTED_KEY)
    with pytest.raises(ServerError):
        srv.start()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(ServerError):
        srv.start()
    lines = log.read_text().splitlines()
    launches = [i for i, line in enumerate(lines) if line.startswith("# llmperf launch: ")]
    assert len(launches) == 2 and launches[0] == 0
    assert lines[0].removeprefix("# llmperf launch: ").startswith(launcher[0])
    assert str(model_dir) in lines[0]
    assert not any(PLANTED_KEY in lines[i] for i in launches)  # (the fake echoes it itself)
    offline = [line for line in lines if line.startswith("HF_HUB_OFFLINE:")]
    assert offline == ["HF_HUB_OFFLINE: 1", "HF_HUB_OFFLINE: 0"]
    assert launches[1] > lines.index("HF_HUB_OFFLINE: 1")


def test_stop_escalates_to_sigkill_and_reaps_the_whole_group(
    tmp_path: Path, model_dir: Path
) -> None:
    launcher = fake_launcher(tmp_path, "stubborn")
    srv = VLLMServer(model_dir, launcher=launcher, ready_timeout=1, stop_grace=1)
    with pytest.raises(ServerStartTimeout):
        srv.start()  # start() stops what it launched when it gives up
    assert not pids_matching(launcher[0])
    assert not pids_matching("signal.SIG_IGN")  # the child in its group too


def test_server_dies_with_its_parent_even_on_sigkill(tmp_path: Path, model_dir: Path) -> None:
    launcher = fake_launcher(tmp_path, "wrong-model")
    script = textwrap.dedent(
        f"""
        from pytest_llmperf.server.process import VLLMServer
        VLLMServer({str(model_dir)!r}, launcher={launcher!r}, ready_timeout=600).start()
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: pids_matching(launcher[0]), 30, "the scripted server to start")
        parent.kill()  # no atexit, no finally: only PR_SET_PDEATHSIG can clean up
        parent.wait()
        wait_for(lambda: not pids_matching(launcher[0]), 10, "the orphaned server to exit")
    finally:
        parent.kill()
        for pid in pids_matching(launcher[0]):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# cannot launch: a clear error before (or within seconds of) launch
# --------------------------------------------------------------------------------------------


def test_port_already_taken_fails_before_launch(model_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        srv = VLLMServer(model_dir, launcher=fake_launcher(tmp_path, "silent"), port=port)
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            srv.start()
    assert srv.pid is None  # nothing was launched


def test_unwritable_log_directory_fails_before_launch(model_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = blocker / "logs" / "server.log"  # root ignores permissions; a file in the way does not
    srv = VLLMServer(model_dir, launcher=fake_launcher(tmp_path, "silent"), log_path=log)
    with pytest.raises(ServerError, match=r"cannot write the server log .*writable log directory"):
        srv.start()
    assert srv.pid is None


@pytest.mark.parametrize("kind", ["missing", "not-executable", "a-directory"])
def test_launch_command_that_is_not_executable(model_dir: Path, tmp_path: Path, kind: str) -> None:
    exe = tmp_path / "vllm-launcher"
    if kind == "not-executable":
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o644)
    elif kind == "a-directory":
        exe.mkdir()
    srv = VLLMServer(model_dir, launcher=[str(exe), "serve"])
    with pytest.raises(ServerError, match="is not an executable on PATH") as info:
        srv.start()
    assert str(exe) in str(info.value)
    assert srv.pid is None


def test_a_launcher_the_kernel_cannot_run_is_named_and_nothing_is_left(
    model_dir: Path, tmp_path: Path
) -> None:
    """An executable file whose interpreter is missing passes the pre-launch checks and fails
    at the process start: the error names it, and the server is stopped and unregistered."""
    exe = tmp_path / "bad-interpreter"
    exe.write_text("#!/nonexistent/python\n")
    exe.chmod(0o755)
    srv = VLLMServer(model_dir, launcher=[str(exe), "serve"], log_path=tmp_path / "s.log")
    with pytest.raises(ServerError, match=f"cannot launch '{exe}': No such file or directory"):
        srv.start()
    assert srv.pid is None
    assert srv not in server_mod._LIVE  # stopped: nothing left for the exit-time cleanup
    assert (tmp_path / "s.log").read_text().startswith(f"# llmperf launch: {exe} serve ")


def test_missing_vllm_in_the_launchers_python(model_dir: Path) -> None:
    # -S: no site-packages, so this Python cannot import vLLM, like a wrong interpreter.
    launcher = [sys.executable, "-S", "-m", "vllm.entrypoints.openai.api_server"]
    srv = VLLMServer(model_dir, launcher=launcher)
    t0 = time.monotonic()
    with pytest.raises(ServerError) as info:
        srv.start()
    assert time.monotonic() - t0 < 10
    assert info.value.root_cause == "ModuleNotFoundError: No module named 'vllm'"
    assert "vLLM is not installed for the launcher" in str(info.value)


def test_missing_vllm_with_the_default_launcher_fails_before_launch(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = server_mod.importlib.util.find_spec
    monkeypatch.setattr(
        server_mod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "vllm" else real(name, *a),
    )
    with pytest.raises(ServerError, match=r"vLLM is not installed in .*pip install") as info:
        VLLMServer(model_dir).start()
    assert "--llmperf-launcher" in str(info.value)


def test_model_dir_without_a_tokenizer_fails_before_launch(tmp_path: Path) -> None:
    from pytest_llmperf.server.tiny_models import build_tiny_model

    src = build_tiny_model("dense-gqa")
    bare = tmp_path / "no-tokenizer"
    shutil.copytree(src, bare, ignore=shutil.ignore_patterns("tokenizer*"))
    with pytest.raises(ServerError, match="has no tokenizer") as info:
        VLLMServer(bare).start()
    assert str(bare) in str(info.value)
    assert "tokenizer.save_pretrained" in str(info.value)
    (bare / "config.json").unlink()
    with pytest.raises(ServerError, match=r"has no config\.json"):
        VLLMServer(bare).start()


# --------------------------------------------------------------------------------------------
# real vLLM: a server that hangs mid-run
# --------------------------------------------------------------------------------------------


@pytest.mark.vllm
def test_hung_server_per_request_timeouts_fire_and_the_run_ends(keyed_server: VLLMServer) -> None:
    pgid = keyed_server.pid
    assert pgid is not None
    stopped = []

    def freeze_after_8(done: int, total: int, elapsed: float) -> None:
        if done >= 8 and not stopped:
            os.killpg(pgid, signal.SIGSTOP)  # the whole group: API server and engine
            stopped.append(time.monotonic())

    timeout_s = 3.0
    t0 = time.monotonic()
    try:
        r = run_load(
            keyed_server.endpoint,
            SMALL,
            LoadSpec(concurrency=8, num_requests=24, timeout_s=timeout_s),
            progress=freeze_after_8,
        )
        elapsed = time.monotonic() - t0
    finally:
        os.killpg(pgid, signal.SIGCONT)
    assert stopped
    # 16 requests were left after the freeze: at most 2 waves of 8 timeouts, plus the
    # after-run /metrics scrape, which gives up after its own 10 s.
    assert elapsed < 2 * timeout_s + 10 + 15, elapsed
    assert r.summary.errors.get("timeout", 0) >= 8
    assert set(r.summary.errors) <= {"timeout"}
    assert r.summary.completed >= 8
    timed_out = [rec for rec in r.records if rec.error_kind == "timeout"]
    assert all(rec.end - rec.start < timeout_s + 2 for rec in timed_out)
    # Thawed, the same server serves again (the shared server is left as it was found).
    again = run_load(keyed_server.endpoint, SMALL, LoadSpec(concurrency=4, num_requests=8))
    assert again.summary.success_rate == 1.0


# --------------------------------------------------------------------------------------------
# real vLLM through the plugin: death mid-run, restart for the next test, SIGTERM mid-run
# --------------------------------------------------------------------------------------------

INNER_CONFIG = """\
concurrency = [4, 8]
runs = 1
warmup_requests = 0
requests_per_level = {{ "4" = 3000, "8" = 3000 }}
report_dir = "out"

[[models]]
name = "{name}"
tiny = "dense-gqa"
workloads = ["small"]
env = {{ VLLM_CACHE_ROOT = "{cache}" }}
# A small memory reservation, so the restart does not depend on what else the machine runs.
extra_args = ["--gpu-memory-utilization", "0.08"]

[[workloads]]
name = "small"
preset = "text"
input_tokens = 32
output_tokens = 8

[[gates]]
success_rate_min = 0.0
"""


def xfail_if_sigterm_was_swallowed(returncode: int, stdout: str) -> None:
    """Regression guard: SIGTERM must not be swallowed inside an event-loop callback (the
    plugin's handler used to raise KeyboardInterrupt there; uvloop logged "Fatal error on
    transport" and the run went on as if no signal had come)."""
    assert not (returncode != 2 and "Fatal error on transport" in stdout), (
        f"SIGTERM was swallowed by an event-loop callback (exit {returncode})"
    )


def engine_core_pid(name: str) -> int | None:
    for pid in pids_matching("--served-model-name", name):
        for child in process_group_members(os.getpgid(pid)):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"EngineCore" in cmdline:  # vLLM retitles it "VLLM::EngineCore"
                return child
    return None


@pytest.fixture
def inner_project(tmp_path: Path, vllm_cache_root: str) -> Iterator[tuple[Path, str]]:
    name = f"faultkill{os.getpid()}"
    (tmp_path / "llmperf.toml").write_text(INNER_CONFIG.format(name=name, cache=vllm_cache_root))
    yield tmp_path, name
    for pid in pids_matching("--served-model-name", name):  # never leave one behind
        os.killpg(os.getpgid(pid), signal.SIGKILL)


@pytest.mark.vllm
def test_server_death_mid_run_then_restart_then_sigterm(inner_project: tuple[Path, str]) -> None:
    """One inner session, three faults in order: the engine process is killed mid-run (the
    case fails with "server died" and the log's root cause, the run ends promptly); the next
    case restarts the server; SIGTERM mid-run stops pytest promptly, stops the server group,
    and leaves valid partial results."""
    root, name = inner_project
    out = root / "out"
    key_file = root / "key"
    key_file.write_text(PLANTED_KEY + "\n")
    sink = (root / "stdout.txt").open("w")  # a file: a full pipe would block pytest
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "--llmperf", "-p", "no:cacheprovider", "-rA",
            f"--junitxml={root / 'junit.xml'}", f"--llmperf-api-key-file={key_file}",
            "--llmperf-request-timeout=30",
        ],
        cwd=root,
        stdout=sink,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        first = out / "records" / f"{name}-small-c4-run1.jsonl"
        second = out / "records" / f"{name}-small-c8-run1.jsonl"
        stdout_file = root / "stdout.txt"
        wait_for(lambda: jsonl_lines(first) >= 20, 600, "first records", proc, stdout_file)
        core = engine_core_pid(name)
        assert core is not None, "no EngineCore process in the server's group"
        killed_at = time.monotonic()
        os.kill(core, signal.SIGKILL)  # what the OOM killer does to the biggest process
        wait_for(lambda: (out / "results.json").is_file(), 60, "the failed case's results")
        case_end = time.monotonic() - killed_at
        results = json.loads((out / "results.json").read_text())
        wait_for(lambda: jsonl_lines(second) >= 20, 600, "restarted records", proc, stdout_file)
        os.kill(proc.pid, signal.SIGTERM)
        sigterm_at = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        exit_s = time.monotonic() - sigterm_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sink.close()
    stdout = (root / "stdout.txt").read_text()

    # Death: the failed case was recorded within seconds, with failures of the right kind.
    assert case_end < 30, case_end
    (case,) = [c for c in results["cases"] if c["case_id"] == f"{name}-small-c4"]
    errors = case.get("errors") or {}
    assert errors and set(errors) <= {"server_died", "connection", "stream_error", "http_5xx"}
    # docs/faults.md: requests sent after the death fail as server_died (not plain connection
    # errors): the run was blamed on the death
    assert errors.get("server_died", 0) >= 1, errors
    assert "server died" in stdout
    assert "root cause:" in stdout
    assert "engine core exited unexpectedly" in stdout
    log = (out / "server-logs" / f"{name}.log").read_text()
    assert log.count("# llmperf launch:") == 2, "the next case did not restart the server"
    # Whatever SIGTERM did: nothing left running, records valid, the key nowhere.
    assert not pids_matching("--served-model-name", name)
    for path in (first, second):
        rows = read_jsonl(path)
        assert rows and all(isinstance(r, dict) and "index" in r for r in rows)
        assert path.read_text().endswith("\n")  # no torn last line either
    for path in [*out.rglob("*"), root / "junit.xml", root / "stdout.txt"]:
        if path.is_file() and "vllm-cache" not in path.parts:
            assert PLANTED_KEY.encode() not in path.read_bytes(), path
    assert PLANTED_KEY not in stdout
    # SIGTERM: prompt exit (2, interrupted); results.json holds only the finished case.
    xfail_if_sigterm_was_swallowed(proc.returncode, stdout)
    assert exit_s < 45, exit_s
    assert proc.returncode == 2, stdout[-3000:]
    final = json.loads((out / "results.json").read_text())
    assert [c["case_id"] for c in final["cases"]] == [f"{name}-small-c4"]


# --------------------------------------------------------------------------------------------
# Ctrl-C against an external server: partial results kept, the server is not ours to stop
# --------------------------------------------------------------------------------------------

EXTERNAL_CONFIG = """\
concurrency = [1, 2]
warmup_requests = 0
requests_per_level = { "1" = 3, "2" = 5000 }
report_dir = "out"
models = ["dense-gqa"]

[[workloads]]
name = "small"
preset = "text"
input_tokens = 8
output_tokens = 20
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_keeps_partial_results(tmp_path: Path, sig: signal.Signals) -> None:
    """Scripted server (it streams slowly and never tires) as an external endpoint: the
    interrupt ends pytest within seconds, the finished case is in results.json, the cut-off
    run's records are valid JSON lines, and the external server is left running."""
    from pytest_llmperf.testing.instrument import Instrument

    (tmp_path / "llmperf.toml").write_text(EXTERNAL_CONFIG)
    with Instrument() as inst, (tmp_path / "stdout.txt").open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "pytest", "--llmperf", "-p", "no:cacheprovider", "-rA",
                f"--llmperf-endpoint={inst.base_url}",
                "--llmperf-served-model=instrument?ttft=0.005&itl=0.02",
            ],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            # a default SIGINT even when this suite runs as a background job, which starts
            # with SIGINT ignored (measurement.md): else Ctrl-C could never reach pytest
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        try:
            records = tmp_path / "out" / "records" / "dense-gqa-small-c2-run1.jsonl"
            wait_for(
                lambda: jsonl_lines(records) >= 10,
                120,
                "the second case's records",
                proc,
                tmp_path / "stdout.txt",
            )
            proc.send_signal(sig)
            t0 = time.monotonic()
            proc.wait(timeout=60)
            exit_s = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert inst.alive  # external mode never stops a server it did not launch
    stdout = (tmp_path / "stdout.txt").read_text()
    xfail_if_sigterm_was_swallowed(proc.returncode, stdout)
    assert exit_s < 30, exit_s
    assert proc.returncode == 2, stdout[-3000:]
    assert "KeyboardInterrupt" in stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["case_id"] for c in results["cases"]] == ["dense-gqa-small-c1"]
    rows = read_jsonl(records)
    assert len(rows) >= 10 and records.read_text().endswith("\n")
    assert all(r["error_kind"] is None for r in rows)
