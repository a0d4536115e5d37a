"""Where a running OpenAI-compatible server is: the one value every downstream module needs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Endpoint:
    """A server to send load to. ``api_key`` is never shown in ``repr`` (reports, logs, errors)."""

    base_url: str  # e.g. "http://127.0.0.1:8000" (no trailing /v1)
    model: str  # the served model name, as listed by /v1/models
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"endpoint URL {self.base_url!r} must start with http:// or https:// "
                "(for example http://127.0.0.1:8000)"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/").removesuffix("/v1"))

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def resolve_api_key(*, env_var: str = "LLMPERF_API_KEY", key_file: str | None = None) -> str | None:
    """API key from a file (first line) or an environment variable; never from the command line,
    so it does not land in shell history, ``ps`` output or pytest's recorded invocation."""
    if key_file:
        path = Path(key_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read API key file {path}: {exc.strerror}") from None
        key = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not key:
            raise ValueError(f"API key file {path} is empty; put the key on its first line")
        return key
    return os.environ.get(env_var) or None
