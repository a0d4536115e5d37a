"""Security: loopback-only servers, API keys that stay secret, argument-list launches, and
configuration and baselines parsed as data.

The key tests plant a unique key and grep every file a session writes for it.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import pytest_llmperf
from conftest import PLANTED_KEY, process_group_members
from pytest_llmperf.config import ConfigError, load_config
from pytest_llmperf.core.endpoint import Endpoint, resolve_api_key
from pytest_llmperf.server.process import VLLMServer
from pytest_llmperf.verdicts.baseline import BaselineError
from pytest_llmperf.verdicts.baseline import load as load_baseline

PACKAGE = Path(pytest_llmperf.__file__).parent


def _listening_addresses(port: int) -> list[str]:
    """Local addresses in LISTEN state on ``port``, from the kernel's socket tables."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            # /proc/net/tcp prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(family, raw))
    return found


# --------------------------------------------------------------------------------------------
# where servers listen
# --------------------------------------------------------------------------------------------


def test_loopback_is_the_default_everywhere() -> None:
    from pytest_llmperf.session.engine import EngineOptions

    assert VLLMServer("/m").host == "127.0.0.1"
    assert EngineOptions(rootdir=Path("."), report_dir=Path(".")).host == "127.0.0.1"
    assert "--host" in VLLMServer("/m", port=1).command()
    assert VLLMServer("/m", port=1).command()[-4:] == ["--host", "127.0.0.1", "--port", "1"]


@pytest.mark.vllm
def test_launched_server_listens_on_loopback_only(keyed_server: VLLMServer) -> None:
    assert keyed_server.port is not None
    assert _listening_addresses(keyed_server.port) == ["127.0.0.1"]


# --------------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------------


def test_api_key_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {PLANTED_KEY}  \nsecond line ignored\n")
    assert resolve_api_key(key_file=str(key_file)) == PLANTED_KEY
    monkeypatch.setenv("LLMPERF_API_KEY", PLANTED_KEY)
    assert resolve_api_key() == PLANTED_KEY
    monkeypatch.delenv("LLMPERF_API_KEY")
    assert resolve_api_key() is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty") as info:
        resolve_api_key(key_file=str(tmp_path / "empty"))
    assert PLANTED_KEY not in str(info.value)


def test_api_key_is_not_in_reprs_or_the_launch_command() -> None:
    ep = Endpoint("http://127.0.0.1:1", "m", PLANTED_KEY)
    assert PLANTED_KEY not in repr(ep)
    srv = VLLMServer("/m", api_key=PLANTED_KEY, port=1)
    assert PLANTED_KEY not in " ".join(srv.command())  # argv is world-readable (ps)
    assert PLANTED_KEY not in repr(srv)


@pytest.mark.vllm
def test_keyed_server_keeps_the_key_out_of_its_process_table_and_log(
    keyed_server: VLLMServer,
) -> None:
    assert keyed_server.pid is not None
    for pid in process_group_members(keyed_server.pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert PLANTED_KEY.encode() not in cmdline
    assert PLANTED_KEY not in keyed_server.log_text()
    # ... and still enforces it: the key travels in the environment.
    url = keyed_server.base_url + "/v1/models"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert info.value.code == 401
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {PLANTED_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


EXTERNAL_CONFIG = """\
concurrency = [2]
runs = 1
warmup_requests = 0
requests_per_level = { "2" = 20 }
report_dir = "out"
baseline_dir = "baselines"
models = ["dense-gqa"]

[[workloads]]
name = "small"
preset = "text"
input_tokens = 32
output_tokens = 8

[[gates]]
success_rate_min = 1.0
"""


@pytest.mark.vllm
def test_planted_key_appears_in_no_output_of_a_session(
    keyed_server: VLLMServer, tmp_path: Path
) -> None:
    """An external-endpoint session with the key from a file: it passes (so the key was sent
    to the endpoint) and no report, record, baseline, junit file, log or output contains it."""
    (tmp_path / "llmperf.toml").write_text(EXTERNAL_CONFIG)
    secrets = tmp_path.parent / f"{tmp_path.name}-secret"
    secrets.mkdir()
    key_file = secrets / "key"
    key_file.write_text(PLANTED_KEY + "\n")
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "--llmperf", "-p", "no:cacheprovider", "-rA",
            f"--junitxml={tmp_path / 'junit.xml'}",
            f"--llmperf-endpoint={keyed_server.base_url}", "--llmperf-served-model=dense-gqa",
            f"--llmperf-api-key-file={key_file}", "--llmperf-save-baseline",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "1 passed" in output
    assert PLANTED_KEY not in output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "results.json" for p in written)
    assert any(p.suffix == ".jsonl" for p in written)
    for path in written:
        assert PLANTED_KEY.encode() not in path.read_bytes(), path
    assert PLANTED_KEY not in keyed_server.log_text()


# --------------------------------------------------------------------------------------------
# no shell, no code execution
# --------------------------------------------------------------------------------------------

_FORBIDDEN_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("marshal", "loads"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("shelve", "open"),
}
_FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
_FORBIDDEN_MODULES = {"pickle", "marshal", "shelve", "yaml", "dill", "cloudpickle"}


def _package_sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    return files


def test_no_shell_true_anywhere_in_the_package() -> None:
    offenders = []
    for path in _package_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "shell" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"shell=True (launch commands must be argument lists): {offenders}"


def test_nothing_in_the_package_executes_or_unpickles_data() -> None:
    offenders = []
    for path in _package_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    mods.append(node.module)
                offenders += [f"{where} imports {m}" for m in mods if m in _FORBIDDEN_MODULES]
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in _FORBIDDEN_NAMES:
                    offenders.append(f"{where} calls {f.id}()")
                if (
                    isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Name)
                    and (f.value.id, f.attr) in _FORBIDDEN_CALLS
                ):
                    offenders.append(f"{where} calls {f.value.id}.{f.attr}()")
    assert not offenders, offenders
    assert "import tomllib" in (PACKAGE / "config" / "files.py").read_text()
    assert "import json" in (PACKAGE / "verdicts" / "baseline.py").read_text()


_PAYLOAD = "__import__('os').system('touch {flag}')"


def test_config_strings_are_data_never_code(tmp_path: Path) -> None:
    flag = tmp_path / "PWNED"
    payload = _PAYLOAD.format(flag=flag)
    (tmp_path / "llmperf.toml").write_text(
        f"[[models]]\nname = {json.dumps(payload)}\ntiny = 'dense-gqa'\n"
    )
    with pytest.raises(ConfigError, match=r"models\[0\]\.name"):
        load_config(tmp_path)
    (tmp_path / "llmperf.toml").write_text(
        f"[[models]]\nname = 'ok'\ntiny = 'dense-gqa'\nextra_args = [{json.dumps(payload)}]\n"
    )
    cfg = load_config(tmp_path)  # a string argument stays a string (it goes into argv)
    assert cfg.models[0].extra_args == (payload,)
    assert not flag.exists()


def test_baselines_are_json_never_unpickled(tmp_path: Path) -> None:
    flag = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {flag}",))

    pickled = tmp_path / "baseline.json"
    pickled.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(BaselineError, match="not valid JSON"):
        load_baseline(pickled)
    code = tmp_path / "code.json"
    code.write_text(json.dumps({"schema_version": 1, "suite": _PAYLOAD.format(flag=flag)}))
    with pytest.raises(BaselineError):
        load_baseline(code)
    assert not flag.exists()
