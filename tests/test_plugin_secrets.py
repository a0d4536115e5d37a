"""The plugin registers every secret a session knows of before anything is written: the API
key, the process's secret-named environment, and each model's secret-named ``env``."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from pytest_llmperf.core import redact
from pytest_llmperf.plugin import _register_secrets


@pytest.fixture
def clean_secrets() -> Iterator[None]:
    redact.forget_secrets()
    yield
    redact.forget_secrets()


def test_key_process_and_model_secrets_are_redacted(
    clean_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMPERF_TEST_SERVICE_TOKEN", "proc-secret-123")
    perf = SimpleNamespace(
        models=[
            SimpleNamespace(env={}),
            SimpleNamespace(env={"HF_TOKEN": "hf-secret-456", "PLAIN": "visible-789"}),
        ]
    )
    _register_secrets("api-key-000", perf)  # type: ignore[arg-type]
    out = redact.redact_text("api-key-000 proc-secret-123 hf-secret-456 visible-789")
    assert out == "<redacted> <redacted> <redacted> visible-789"
