"""The side calls that ask a server "are you answering?" and "which vLLM are you?", in one home.

Plain blocking ``urllib`` GETs with the endpoint's auth header: they run between measurements
(readiness, liveness, identity), never on the measured hot path, which keeps its own aiohttp
client (``loadgen``). The async in-run probes (``loadgen.liveness``, ``loadgen.resources``)
share the run's event loop and connection pool, so they stay there.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pytest_llmperf.core.endpoint import Endpoint


def http_get(endpoint: Endpoint, path: str, *, timeout: float) -> tuple[int, bytes]:
    """``GET path`` at ``endpoint``: ``(status, body)``; an HTTP error status comes back with an
    empty body. A connection or timeout failure raises (``OSError``, ``http.client`` errors)."""
    req = urllib.request.Request(endpoint.url(path), headers=endpoint.headers())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def served_version(endpoint: Endpoint, timeout: float = 10.0) -> str | None:
    """The vLLM version the server itself reports (``GET /version``); None when it cannot say
    (no such route, not JSON, unreachable)."""
    try:
        status, body = http_get(endpoint, "/version", timeout=timeout)
        if status != 200:
            return None
        return str(json.loads(body)["version"]) or None
    except Exception:  # any failure means "unknown" here; callers say so
        return None
