"""Secrets never reach a file or a log (``pytest_llmperf.core.redact``), and the launch command
is what ``--llmperf-launcher`` and a model's ``launch_prefix`` say.

The end-to-end check (a launched real-vLLM session with a planted ``HF_TOKEN``, a key file and a
launcher, every output file searched) is ``tests/test_hang.py::test_launched_session_...``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmperf.core import redact
from pytest_llmperf.core.atomic import JsonlWriter, write_json_atomic, write_text_atomic
from pytest_llmperf.report import write_report
from pytest_llmperf.server.process import ServerError
from pytest_llmperf.verdicts.case_result import CaseResult

PLANTED_TOKEN = "hf_plantedCanary0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    redact.forget_secrets()
    yield
    redact.forget_secrets()


def test_env_is_redacted_by_name() -> None:
    env = {
        "HF_TOKEN": "x",
        "VLLM_API_KEY": "y",
        "AWS_SECRET_ACCESS_KEY": "z",
        "OMP_NUM_THREADS": "2",
    }
    assert redact.redact_env(env) == {
        "HF_TOKEN": "<redacted>",
        "VLLM_API_KEY": "<redacted>",
        "AWS_SECRET_ACCESS_KEY": "<redacted>",
        "OMP_NUM_THREADS": "2",
    }


def test_argv_secret_flags_are_redacted_but_sizes_are_not() -> None:
    argv = ["vllm", "--api-key", "k1", "--hf-token=k2", "--max-num-batched-tokens", "8192"]
    argv += ["--ssl-keyfile", "/etc/key.pem", "--tokenizer", "/m"]
    assert redact.redact_argv(argv) == [
        "vllm", "--api-key", "<redacted>", "--hf-token=<redacted>",
        "--max-num-batched-tokens", "8192", "--ssl-keyfile", "/etc/key.pem", "--tokenizer", "/m",
    ]  # fmt: skip


def test_registered_values_leave_text_in_every_escaped_form() -> None:
    odd = 'tok"en<&>\\value'
    redact.register_secret(odd)
    redact.register_secret("short")  # under MIN_SECRET_LENGTH: never registered
    for text in (odd, json.dumps({"v": odd}), f"<td>{__import__('html').escape(odd)}</td>"):
        assert "tok" not in redact.redact_text(text), text
    assert redact.redact_text("short and true") == "short and true"
    assert redact.redact({"a": [odd, 3], odd: "k"}) == {"a": ["<redacted>", 3], "<redacted>": "k"}


def test_registration_comes_from_model_env_and_process_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redact.register_env_secrets({"HF_TOKEN": PLANTED_TOKEN, "OMP_NUM_THREADS": "123456"})
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_processCanary987654")
    redact.register_process_secrets()
    text = f"{PLANTED_TOKEN} ghp_processCanary987654 123456"
    assert redact.redact_text(text) == "<redacted> <redacted> 123456"


def test_every_writer_redacts(tmp_path: Path) -> None:
    redact.register_secret(PLANTED_TOKEN)
    write_json_atomic(tmp_path / "a.json", {"env": {"X": PLANTED_TOKEN}})
    write_text_atomic(tmp_path / "b.txt", f"token {PLANTED_TOKEN}")
    with JsonlWriter(tmp_path / "c.jsonl") as w:
        w.write({"error_detail": f"server said {PLANTED_TOKEN}"})
    case = CaseResult(
        case_id="m-w-c1",
        model="m",
        workload="w",
        concurrency=1,
        runs=({"output_throughput": 1.0, "success_rate": 1.0},),
        environment={"launch_env": {"SOMETHING": PLANTED_TOKEN}},
    )
    paths = write_report(tmp_path / "report", [case], environment={"note": PLANTED_TOKEN})
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"a.json", "b.txt", "c.jsonl", "results.json"}
    assert paths.html.is_file()
    for path in written:
        assert PLANTED_TOKEN.encode() not in path.read_bytes(), path
    assert b"<redacted>" in (tmp_path / "report" / "results.json").read_bytes()


def test_server_error_messages_are_redacted() -> None:
    redact.register_secret(PLANTED_TOKEN)
    exc = ServerError(f"launch {PLANTED_TOKEN}", root_cause=PLANTED_TOKEN, log_tail=PLANTED_TOKEN)
    assert PLANTED_TOKEN not in str(exc)
    assert PLANTED_TOKEN not in (exc.root_cause or "") + exc.log_tail


# ------------------------------------------------------------------ through the plugin


PLAN_TOML = """\
concurrency = [1]
[[models]]
name = "plain"
tiny = "dense-gqa"
env = {{ HF_TOKEN = "{token}", OMP_NUM_THREADS = "2" }}

[[models]]
name = "prefixed"
tiny = "dense-gqa"
launch_prefix = ["/opt/pre fix/bin/python", "-m", "vllm.entrypoints.openai.api_server"]

[[workloads]]
name = "text"
preset = "text"
input_tokens = 64
output_tokens = 16
"""


def test_plan_output_redacts_env_and_shows_launcher_and_prefix(tmp_path: Path) -> None:
    """``--llmperf-plan`` with a planted ``HF_TOKEN`` in a model's env: the token is not
    printed (the variable is, as ``<redacted>``); ``--llmperf-launcher`` is split like a shell
    would split it (a quoted path with a space stays one argument) and starts the command of a
    model without a ``launch_prefix``; a model's ``launch_prefix`` wins over it."""
    (tmp_path / "llmperf.toml").write_text(PLAN_TOML.format(token=PLANTED_TOKEN))
    launcher = "'/opt/my venv/bin/python' -m vllm.entrypoints.openai.api_server"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--llmperf-plan",
            "--llmperf-platform", "cpu", "--llmperf-vllm-version", "0.32.0",
            f"--llmperf-launcher={launcher}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert PLANTED_TOKEN not in text
    assert "HF_TOKEN=<redacted>" in text and "OMP_NUM_THREADS=2" in text
    commands = [
        shlex.split(ln.split("command:", 1)[1]) for ln in text.splitlines() if "command:" in ln
    ]
    plain, prefixed = commands
    words = shlex.split(launcher)
    assert words[0] == "/opt/my venv/bin/python" and len(words) == 3
    assert plain[:3] == words and "--model" in plain[3:]
    assert prefixed[:3] == ["/opt/pre fix/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert "/opt/my" not in prefixed


def test_launcher_words_reach_the_server_command() -> None:
    """The split launcher is the start of the argv ``VLLMServer`` executes (no shell)."""
    from pytest_llmperf.server.process import VLLMServer

    words = shlex.split("'/opt/my venv/bin/python' -m vllm.entrypoints.openai.api_server")
    server = VLLMServer("/m", args=("--model", "/m", "--hf-token", PLANTED_TOKEN), launcher=words)
    argv = server.command()
    assert argv[:3] == words and argv[3:5] == ["--model", "/m"]
    assert redact.redact_argv(argv)[argv.index("--hf-token") + 1] == "<redacted>"


def test_exact_forms_boundaries_and_nesting() -> None:
    """Written to kill the mutants of core/redact.py that the tests above let survive."""
    import html

    redact.register_secret("abcdef")  # exactly MIN_SECRET_LENGTH: registered
    assert redact.redact_text("x abcdef y") == "x <redacted> y"
    odd = 'tok"en<&>\\value'
    redact.register_secret(odd)
    assert redact.redact_text(json.dumps({"v": odd})) == '{"v": "<redacted>"}'
    assert redact.redact_text(html.escape(odd, quote=False)) == "<redacted>"
    assert redact.redact_text(html.escape(odd)) == "<redacted>"
    redact.register_secret("abcdef-and-longer")  # contains the first: replaced whole
    assert redact.redact_text("abcdef-and-longer") == "<redacted>"
