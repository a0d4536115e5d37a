"""The engine's two side calls through ``core.probe``: which model an external endpoint serves
(``/v1/models``) and whether an external server went away (``/health``), against the scripted
instrument (a real HTTP server) and a port nothing listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmperf.core.endpoint import Endpoint
from pytest_llmperf.server.process import ServerError
from pytest_llmperf.session.engine import EngineOptions, PerfEngine, ServerHandle
from pytest_llmperf.testing.instrument import Instrument, running_instrument


@pytest.fixture(scope="module")
def inst() -> Iterator[Instrument]:
    with running_instrument() as i:
        yield i


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _engine(tmp_path: Path) -> PerfEngine:
    from pytest_llmperf.config import load_config

    config = load_config(tmp_path)
    return PerfEngine(config, EngineOptions(rootdir=tmp_path, report_dir=tmp_path / "out"))


def test_first_model_is_the_first_one_the_endpoint_lists(tmp_path: Path, inst: Instrument) -> None:
    assert _engine(tmp_path)._first_model(inst.base_url) == "instrument"


@pytest.mark.parametrize("where", ["closed", "404"])
def test_an_endpoint_that_cannot_list_models_says_what_to_do(
    tmp_path: Path, inst: Instrument, where: str
) -> None:
    url = _closed_port_url() if where == "closed" else inst.base_url + "/nowhere"
    with pytest.raises(ServerError) as err:
        _engine(tmp_path)._first_model(url)
    text = str(err.value)
    assert text.startswith(f"cannot list models at {url}/v1/models (")
    assert ("HTTP 404" in text) == (where == "404"), text
    assert "check --llmperf-endpoint, or name the model with --llmperf-served-model" in text


def test_went_away_asks_health_only_after_connection_errors(
    tmp_path: Path, inst: Instrument
) -> None:
    engine = _engine(tmp_path)

    def handle(url: str) -> ServerHandle:
        return ServerHandle(Endpoint(url, "m"))

    assert not engine._went_away(handle(inst.base_url), {"connection": 2})  # /health answers
    assert engine._went_away(handle(_closed_port_url()), {"connection": 2})
    assert engine._went_away(handle(inst.base_url + "/nowhere"), {"server_died": 1})  # 404
    # other errors are the server's answers: it did not go away, and nothing is asked
    assert not engine._went_away(handle(_closed_port_url()), {"timeout": 3, "http_5xx": 1})
