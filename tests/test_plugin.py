"""The plugin the way users meet it: real ``pytest --llmperf`` sessions (``pytester``) against
real vLLM CPU servers.

Inner sessions measure the shared ``dense_server`` through ``--llmperf-endpoint`` so they
launch nothing (a boot costs about a minute on 2 cores); only the killed-server test owns its
server. Every inner run is small (64 in / 16 out tokens, a few concurrent users, 8 requests).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.report import schema

SUBPROCESS_TIMEOUT = 600


#: These tests check gates and reports, not the client-health check (tested on its own
#: below): on a CI box shared with other jobs the OS may run the client late by more than a
#: short run's latencies, which rightly makes a run client-bound, so its limit is lifted here.
LENIENT_CLIENT = "[client]\nloop_lag_p99_ms = 60000\n"


def perf_toml(
    *,
    levels: str = "1, 4",
    requests: int = 8,
    model: str = "dense-gqa",
    tail: str = "",
    client: str = LENIENT_CLIENT,
    model_lines: str = "",
    input_tokens: int = 64,
    output_tokens: int = 16,
    warmup: int = 2,
) -> str:
    """A one-model, one-workload matrix small enough for a test."""
    return f"""\
concurrency = [{levels}]
min_requests = {requests}
warmup_requests = {warmup}
{client}
[[models]]
name = "{model}"
tiny = "dense-gqa"
{model_lines}

[[workloads]]
name = "text"
preset = "text"
input_tokens = {input_tokens}
output_tokens = {output_tokens}
{tail}"""


def against(server: Any) -> list[str]:
    """Options that point an inner session at an already-running server."""
    return [
        "--llmperf",
        "--llmperf-endpoint",
        server.base_url,
        "--llmperf-served-model",
        server.served_model_name,
    ]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *args, timeout=SUBPROCESS_TIMEOUT
    )


def results(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / ".llmperf" / "results.json").read_text())


def out(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


# -- without vLLM -----------------------------------------------------------------------------


def test_marker_tests_skipped_with_reason_without_llmperf(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llmperf(model="dense-gqa", concurrency=1, throughput_floor=1)
        def test_perf(llmperf_run):
            llmperf_run()

        def test_plain():
            pass
        """
    )
    result = run(pytester, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*perf test: run with --llmperf to measure*"])
    assert "llmperf::" not in result.stdout.str()  # no matrix without --llmperf
    assert not (pytester.path / ".llmperf").exists()


HEAVY = (
    "scipy", "numpy", "matplotlib", "aiohttp", "vllm", "torch", "transformers", "openai", "msgspec",
)  # fmt: skip
#: All the package a plain ``pytest`` loads: the entry point and its option declarations.
ENTRY_MODULES = ("pytest_llmperf.plugin", "pytest_llmperf.plugin_options")


def test_plugin_import_is_light() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_llmperf.plugin"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            imported[m.group(4)] = int(m.group(2))
    heavy = sorted(n for n in imported if n.split(".")[0] in HEAVY)
    assert not heavy, f"the plugin imports heavy modules at start-up: {heavy}"
    ours = sorted(n for n in imported if n.startswith("pytest_llmperf."))
    assert ours == list(ENTRY_MODULES), ours
    # What the plugin adds on top of pytest, measured in the same process (so a busy machine
    # slows both alike): a small fraction of pytest's own import (7 ms vs ~150 ms idle).
    ours_us, pytest_us = imported["pytest_llmperf.plugin"], imported["pytest"]
    assert ours_us < 0.25 * pytest_us, (ours_us, pytest_us)


def test_plain_session_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import sys

        def test_modules():
            heavy = {HEAVY!r}
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
            ours = sorted(m for m in sys.modules if m.startswith("pytest_llmperf."))
            assert ours == {list(ENTRY_MODULES)!r}, ours
            assert not [m for m in loaded if m.split(".")[0] in ("aiohttp", "vllm", "scipy")]
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_unknown_config_key_is_a_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(tail="concurency = [1]\n"))
    result = run(pytester, "--llmperf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "llmperf.toml" in err and "concurency" in err, err
    assert "Traceback" not in out(result)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--llmperf-concurrency", "1,x"], "--llmperf-concurrency"),
        (["--llmperf-runs", "0"], "runs"),
        (["--llmperf-models", "nope"], "nope"),
    ],
)
def test_bad_command_line_values_name_the_option(
    pytester: pytest.Pytester, args: list[str], named: str
) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    result = run(pytester, "--llmperf", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert named in result.stderr.str(), result.stderr.str()


def test_bad_gate_value_names_the_key(pytester: pytest.Pytester) -> None:
    tail = '\n[[gates]]\nmodel = "dense-gqa"\np99_ttft_ms_max = -5\n'
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(tail=tail))
    result = run(pytester, "--llmperf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "gates[0].p99_ttft_ms_max" in result.stderr.str(), result.stderr.str()


def test_case_ids_are_stable_and_follow_the_options(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    first = run(pytester, "--llmperf", "--collect-only", "-q")
    second = run(pytester, "--llmperf", "--collect-only", "-q")
    ids = [ln for ln in first.stdout.lines if ln.startswith("llmperf::")]
    assert ids == [
        "llmperf::test_perf[dense-gqa-text-c1]",
        "llmperf::test_perf[dense-gqa-text-c4]",
    ]
    assert ids == [ln for ln in second.stdout.lines if ln.startswith("llmperf::")]
    third = run(pytester, "--llmperf", "--collect-only", "-q", "--llmperf-concurrency", "2,500")
    assert [ln for ln in third.stdout.lines if ln.startswith("llmperf::")] == [
        "llmperf::test_perf[dense-gqa-text-c2]",
        "llmperf::test_perf[dense-gqa-text-c500]",
    ]


def test_xdist_is_refused_with_a_reason(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    result = run(pytester, "--llmperf", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "must not run in parallel" in result.stderr.str()
    # Plain xdist sessions are not affected by the plugin.
    pytester.makepyfile("def test_a():\n    pass\n")
    run(pytester, "-n", "2").assert_outcomes(passed=1)


def test_plan_prints_every_launch_and_starts_nothing(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    t0 = time.monotonic()
    result = run(
        pytester, "--llmperf-plan", "--llmperf-platform", "cpu", "--llmperf-vllm-version", "0.32.0"
    )
    assert result.ret == 0, out(result)
    text = result.stdout.str()
    assert "== dense-gqa" in text
    command = next(ln for ln in result.stdout.lines if ln.strip().startswith("command:"))
    assert "--served-model-name dense-gqa" in command
    # 64 + 16 tokens + the template margin, rounded up to 256; a fixed 1 GiB CPU KV cache
    assert "--max-model-len 256" in command and "--gpu-memory-utilization" not in command
    assert "VLLM_CPU_KVCACHE_SPACE=1" in text
    assert "nothing was started" in text
    assert not (pytester.path / ".llmperf" / "server-logs").exists()
    assert time.monotonic() - t0 < 60  # no server boot hidden in there


def test_plan_sizes_the_context_for_hand_written_tests_too(pytester: pytest.Pytester) -> None:
    """A marker test's workload that the config's matrix does not list still sizes its
    model's server (500 + 1000 + 64 -> 1792), so its requests fit."""
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llmperf(model="dense-gqa", workload="long-output")
        def test_long(llmperf_run):
            llmperf_run()
        """
    )
    args = ("--llmperf-platform", "cpu", "--llmperf-vllm-version", "0.32.0")
    result = run(pytester, "--llmperf-plan", *args)
    assert result.ret == 0, out(result)
    command = next(ln for ln in result.stdout.lines if ln.strip().startswith("command:"))
    assert "--max-model-len 1792" in command, command


@pytest.mark.parametrize(
    ("shapes", "limit", "expected"),
    [
        ([(64, 16, 0)], None, 256),  # 144 needed
        ([(500, 100, 0), (64, 16, 0)], None, 768),  # the longest request decides
        ([(100, 200, 1)], 2048, 768),  # vision: 256 tokens allowed per image
        ([(100, 200, 3)], 2048, 1280),
        ([(4096, 512, 0)], 5000, 4864),  # fits a 5000-position model (a power of two did not)
        ([(4096, 512, 0)], 4700, 4700),  # rounding stops at the model's positions
        ([(8192, 512, 0)], 8192, 8960),  # needs more than 8192: the plan refuses it
        ([], None, None),  # no workload: the platform's rule decides
    ],
)
def test_context_is_sized_to_the_workload(
    shapes: list[tuple[int, int, int]], limit: int | None, expected: int | None
) -> None:
    from pytest_llmperf.config import WorkloadRef
    from pytest_llmperf.session.engine import CONTEXT_GRANULE, context_needed

    refs = [
        WorkloadRef(f"w{i}", "text", a, b, n, "chat" if n else "completions")
        for i, (a, b, n) in enumerate(shapes)
    ]
    got = context_needed(refs, limit)
    assert got == expected
    if got is not None and limit is None:
        need = max(a + b + 256 * n + 64 for a, b, n in shapes)
        assert need <= got < need + CONTEXT_GRANULE and got % CONTEXT_GRANULE == 0


# -- against the shared real server -----------------------------------------------------------


@pytest.mark.vllm
def test_passing_matrix_writes_every_report(pytester: pytest.Pytester, dense_server: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    tail = '\n[[gates]]\nmodel = "dense-gqa"\ntotal_token_throughput_min = 1\n'
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(tail=tail))
    junit = pytester.path / "junit.xml"
    result = run(pytester, *against(dense_server), "-v", f"--junitxml={junit}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "llmperf::test_perf?dense-gqa-text-c1? PASSED*",
            "llmperf::test_perf?dense-gqa-text-c4? PASSED*",
            "*llmperf summary*",
            "llmperf: 2 cases, 0 failing",
            "*dense-gqa/text: peak * tok/s at c=*",
            "report: *report.html",
        ]
    )
    report = pytester.path / ".llmperf"
    doc = results(pytester)
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    assert doc["complete"] is True
    assert [c["case_id"] for c in doc["cases"]] == ["dense-gqa-text-c1", "dense-gqa-text-c4"]
    assert all(c["passed"] and c["runs"][0]["metrics"]["success_rate"] == 1 for c in doc["cases"])
    for name in ("throughput.png", "latency.png"):
        assert (report / name).read_bytes().startswith(b"\x89PNG"), name
        assert (report / name).stat().st_size > 5_000, name
    html = (report / "report.html").read_text()
    # the report's two plots come before the case table; the server timelines (one per
    # case) and the History section that follow inline their own
    main_part, rest = html.split("<h2>Cases</h2>", 1)
    assert main_part.count("data:image/png;base64,") == 2 and "dense-gqa-text-c4" in html
    timelines = rest.split("<h2>Server timelines</h2>", 1)[1].split("<h2>History</h2>")[0]
    for case in ("dense-gqa-text-c1", "dense-gqa-text-c4"):
        assert f"<img alt='server timeline of {case}' src='data:image/png;base64," in timelines
    bench = json.loads((report / "benchmark.json").read_text())
    assert {b["name"] for b in bench["benchmarks"]} >= {"test_perf[dense-gqa-text-c1]"}
    for c in ("c1", "c4"):  # raw per-request records, one JSON line per measured request
        lines = (report / "records" / f"dense-gqa-text-{c}-run1.jsonl").read_text().splitlines()
        assert len(lines) == 8
        assert all(json.loads(ln)["error_kind"] is None for ln in lines)
    props = {
        tc.get("name"): {p.get("name"): float(p.get("value")) for p in tc.iter("property")}
        for tc in ET.parse(junit).getroot().iter("testcase")
    }
    c4 = props["test_perf[dense-gqa-text-c4]"]
    assert c4["llmperf.success_rate"] == 1.0
    assert c4["llmperf.total_token_throughput"] > 1 and c4["llmperf.p99_ttft_ms"] > 0


@pytest.mark.vllm
def test_failing_throughput_floor_says_by_how_much(
    pytester: pytest.Pytester, dense_server: Any
) -> None:
    tail = '\n[[gates]]\nmodel = "dense-gqa"\ntotal_token_throughput_min = 1e9\n'
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(levels="2", tail=tail))
    result = run(pytester, *against(dense_server))
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    # The failure section names the case and shows measured, limit, margin and key numbers.
    section = text[text.index("_ test_perf[dense-gqa-text-c2] _") :]
    assert "dense-gqa-text-c2: 1 of 2 gates failed" in section
    m = re.search(
        r"FAIL total_token_throughput >= 1,000,000,000 tok/s: measured ([\d,]+) tok/s "
        r"\((\d+\.\d)% below the floor\)",
        section,
    )
    assert m, section
    measured = float(m.group(1).replace(",", ""))
    assert 0 < measured < 1e9
    assert float(m.group(2)) == pytest.approx(100 * (1 - measured / 1e9), abs=0.1)
    assert "ok   success_rate == 100.0%" in section
    assert re.search(r"run: throughput [\d,]+ tok/s / [\d,]+ tok/s / [\d.]+ req/s", section)
    assert "TTFT p50/p99" in section and "errors none" in section
    assert "Traceback" not in section  # an assertion message, not a stack dump
    # The terminal summary highlights the failing case.
    assert "!! dense-gqa-text-c2: gate failed: total_token_throughput >= " in text
    assert results(pytester)["cases"][0]["passed"] is False


@pytest.mark.vllm
def test_failing_p99_ceiling_in_a_marker_test(pytester: pytest.Pytester, dense_server: Any) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml())
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llmperf(model="dense-gqa", workload="text", concurrency=2, requests=8,
                             p99_ceiling_ms=0.5)
        def test_latency(llmperf_server, llmperf_run):
            assert llmperf_server.endpoint.model == "dense-gqa"
            llmperf_run()

        @pytest.mark.llmperf(model="dense-gqa", workload="text", concurrency=2, requests=8,
                             p99_ceiling_ms=600_000, throughput_floor=1)
        def test_latency_ok(llmperf_run):
            result = llmperf_run()
            assert result.passed and len(result.runs) == 1
        """
    )
    result = run(pytester, *against(dense_server), "--llmperf-no-matrix")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert "llmperf::" not in text
    # a p99 ceiling is judged by order-statistic bounds: from 8 requests there is no upper bound
    # on the p99, but the lower one (the 7th of 8) is far past 0.5 ms, so the gate FAILs
    assert re.search(
        r"FAIL p99_e2el_ms <= 0\.5 ms at 95% confidence: lower bound [\d,.]+ ms "
        r"\([\d,.]+% over the ceiling\), too few for an upper bound on p99",
        text,
    ), text
    assert "dense-gqa-text-c2: 1 of 2 gates failed" in text


@pytest.mark.vllm
def test_multi_run_statistics(pytester: pytest.Pytester, dense_server: Any) -> None:
    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(levels="2"))
    result = run(pytester, *against(dense_server), "--llmperf-runs", "3")
    result.assert_outcomes(passed=1)
    (case,) = results(pytester)["cases"]
    assert len(case["runs"]) == 3
    for metric in ("total_token_throughput", "output_throughput", "p99_ttft_ms"):
        s = case["summary"][metric]
        assert s["n"] == 3 and s["confidence"] == 0.95
        assert s["ci_low"] <= s["mean"] <= s["ci_high"] and s["cov"] >= 0
    per_run = [r["metrics"]["total_token_throughput"] for r in case["runs"]]
    assert case["summary"]["total_token_throughput"]["mean"] == pytest.approx(sum(per_run) / 3)
    assert "±" in result.stdout.str()  # the summary shows the interval
    records = pytester.path / ".llmperf" / "records"
    assert sorted(p.name for p in records.iterdir()) == [
        f"dense-gqa-text-c2-run{i}.jsonl" for i in (1, 2, 3)
    ]


def run_in_terminal(cwd: Path, args: list[str]) -> tuple[int, str]:
    """Run pytest on a pseudo-terminal, as a person at a shell would; returns the raw bytes."""
    pty = pytest.importorskip("pty")
    main, sub = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        stdin=sub,
        stdout=sub,
        stderr=sub,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=SUBPROCESS_TIMEOUT)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def screen_lines(raw: str) -> list[str]:
    """Each line as a person sees it: what is left after carriage returns, colours removed."""
    return [ln.rsplit("\r", 1)[-1] for ln in re.sub(r"\x1b\[[0-9;]*m", "", raw).split("\r\n")]


@pytest.mark.parametrize("verbose", [True, False])
def test_live_progress_line_keeps_pytest_output_intact(
    pytester: pytest.Pytester, verbose: bool
) -> None:
    """On a terminal the progress line is drawn over pytest's current line and then put back.
    (Served by the load generator's scripted instrument: this is about output, not speed.)"""
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(levels="1, 2", requests=12))
    with running_instrument() as inst:
        args = ["--llmperf", "--llmperf-endpoint", inst.base_url]
        args += ["--llmperf-served-model", "instrument?ttft=0.05&itl=0.01"]
        code, raw = run_in_terminal(pytester.path, [*args, "-v"] if verbose else args)
    assert code == 0, raw
    assert "llmperf: dense-gqa-text-c1: 1/12 requests, " in raw  # the live line was drawn
    assert "output tok/s" in raw
    screen = screen_lines(raw)
    assert not [ln for ln in screen if "llmperf: dense-gqa" in ln], screen  # and wiped
    if verbose:
        assert [ln.split(" PASSED")[0] for ln in screen if " PASSED" in ln] == [
            "llmperf::test_perf[dense-gqa-text-c1]",
            "llmperf::test_perf[dense-gqa-text-c2]",
        ], screen
    else:
        lines = [ln for ln in screen if ln.startswith("llmperf ")]
        assert len(lines) == 1 and re.fullmatch(r"llmperf \.\. +\[100%\]", lines[0]), screen


def test_client_bound_run_fails_as_such(pytester: pytest.Pytester) -> None:
    """A run whose client could not be trusted fails, blaming the measurement, not the server
    (forced here with an impossible event-loop-lag limit)."""
    from pytest_llmperf.testing.instrument import running_instrument

    strict = "[client]\nloop_lag_p99_ms = 0.001\n"
    pytester.path.joinpath("llmperf.toml").write_text(
        perf_toml(levels="2", requests=8, client=strict)
    )
    with running_instrument() as inst:
        result = run(
            pytester,
            "--llmperf",
            "--llmperf-endpoint",
            inst.base_url,
            "--llmperf-served-model",
            "instrument?ttft=0.01&itl=0.002",
        )
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "dense-gqa-text-c2: client-bound measurement: event-loop lag p99 " in text
    assert "> 0.001 ms" in text and "(not the server's fault)" in text
    assert "!! dense-gqa-text-c2: client-bound measurement" in text  # summary highlights it
    (case,) = results(pytester)["cases"]
    assert case["client_bound"] is True and case["passed"] is False


# -- a server that dies mid-run ---------------------------------------------------------------


def _pids_serving(name: str) -> list[int]:
    """Our own vLLM api_server processes serving ``name`` (found by their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in argv and name.encode() in argv:
            pids.append(int(entry.name))
    return pids


@pytest.mark.vllm
def test_server_killed_mid_run_fails_with_root_cause(pytester: pytest.Pytester) -> None:
    """The inner session launches its own server; once some requests have completed, the
    server is killed. The case must count the failures and say the server died, and why."""
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    pytester.path.joinpath("llmperf.toml").write_text(
        # The CPU plan's fixed 1 GiB KV cache: the shared dense_server may be running beside it.
        perf_toml(levels="4", requests=600, model=name)
    )
    records = pytester.path / ".llmperf" / "records" / f"{name}-text-c4-run1.jsonl"
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.wait(0.2):
            try:
                done = records.read_text().count("\n")
            except OSError:
                continue
            if done >= 20:
                for pid in _pids_serving(name):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = run(pytester, "--llmperf", "--llmperf-platform", "cpu")
    finally:
        stop.set()
        thread.join()
    assert killed, "the server was never killed: " + out(result)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert f"{name}-text-c4: server died during the run: server died" in text, text
    assert "root cause: killed by SIGKILL (from outside vLLM" in text
    (case,) = results(pytester)["cases"]
    summary = case["runs"][0]["detail"]["summary"]
    assert 20 <= summary["completed"] < 600 and summary["metrics"]["success_rate"] < 1
    assert sum(case["errors"].values()) == 600 - summary["completed"], case["errors"]
    assert "FAIL success_rate == 100.0%" in text and "errors " in text
    assert not _pids_serving(name)  # nothing left running


def test_external_server_dying_mid_run_is_named(pytester: pytest.Pytester) -> None:
    """A server this session did not launch (here the scripted instrument, which exits on its
    first request) is reported as gone, with the failures counted, not as a slow server."""
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(levels="2", requests=8))
    with running_instrument() as inst:
        result = run(
            pytester,
            "--llmperf",
            "--llmperf-endpoint",
            inst.base_url,
            "--llmperf-served-model",
            "instrument?ttft=0.01&itl=0.002&fault=die&fault_after=1",
        )
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert f"the server at {inst.base_url} died or stopped answering during the run" in text
    assert "look at its own log for the root cause" in text
    assert "FAIL success_rate == 100.0%" in text


def test_marker_tests_stop_their_server_after_the_last_one(pytester: pytest.Pytester) -> None:
    """A server used only by hand-written tests is released right after the last test that
    needs its model, not at session end (here against the scripted instrument, with
    ``PerfEngine.release`` recorded)."""
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(perf_toml(levels="1", requests=2))
    pytester.makeconftest(
        """
        import pytest_llmperf.session.engine as engine

        events = []
        _release = engine.PerfEngine.release

        def release(self, spec):
            events.append("release " + spec.name)
            _release(self, spec)

        engine.PerfEngine.release = release

        def pytest_sessionfinish(session):
            (session.config.rootpath / "events.txt").write_text("\\n".join(events))
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from conftest import events

        @pytest.mark.llmperf(model="dense-gqa", requests=2)
        def test_a(llmperf_run):
            llmperf_run(); events.append("ran a")

        @pytest.mark.llmperf(model="moe-gqa", requests=2)
        def test_b(llmperf_run):
            llmperf_run(); events.append("ran b")

        @pytest.mark.llmperf(model="dense-gqa", requests=2)
        def test_c(llmperf_run):
            llmperf_run(); events.append("ran c")
        """
    )
    with running_instrument() as inst:
        result = run(
            pytester,
            "--llmperf",
            "--llmperf-no-matrix",
            "--llmperf-endpoint",
            inst.base_url,
            "--llmperf-served-model",
            "instrument?ttft=0.001&itl=0.001",
        )
    result.assert_outcomes(passed=3)
    events = (pytester.path / "events.txt").read_text().splitlines()
    assert events == ["ran a", "ran b", "release moe-gqa", "ran c", "release dense-gqa"], events
