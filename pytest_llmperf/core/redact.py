"""Secrets never reach a file or a log: one redaction used by every writer and printer.

Two mechanisms, both applied by every output path of the package:

- **By name.** An environment variable whose name looks like a secret (``HF_TOKEN``,
  ``VLLM_API_KEY``, ``AWS_SECRET_ACCESS_KEY``…) is shown as ``<redacted>`` wherever an
  environment is written (``redact_env``), and so is the value of a command-line flag named like
  one (``--api-key X``, ``--hf-token=X``; ``redact_argv``).
- **By value.** Every secret the session knows of (the API key, the values of secret-named
  variables in a model's ``env`` and in this process's environment) is registered once
  (``register_secret``); ``redact_text`` replaces each of them, also in its JSON- and
  HTML-escaped forms, in any text about to be written (results, records, reports, baselines,
  history, server-log lines, error messages). Atomic writes and JSONL records go through it, so
  a writer that forgets the by-name step still leaks nothing it was told about.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

#: Environment-variable names treated as secrets (deliberately broad: over-redacting a launch
#: environment costs a little reproducibility, leaking a token costs a rotation).
SECRET_ENV: Final[re.Pattern[str]] = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.I)
#: Command-line flags whose value is a secret (``--api-key``, ``--hf-token``, ``--password``),
#: but not ``--max-num-batched-tokens`` or ``--ssl-keyfile`` (paths and sizes are not secrets).
SECRET_FLAG: Final[re.Pattern[str]] = re.compile(
    r"^--?(?:[\w-]*[-_])?(?:token|key|secret|password|passwd|credentials?)$", re.I
)
REDACTED: Final[str] = "<redacted>"
#: Shorter values are not registered as secrets: replacing "1" or "true" everywhere would
#: corrupt documents, and real tokens and keys are far longer.
MIN_SECRET_LENGTH: Final[int] = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_forms: tuple[str, ...] = ()


def is_secret_name(name: str) -> bool:
    """Whether an environment variable called ``name`` holds a secret."""
    return bool(SECRET_ENV.search(name))


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret: ``redact_text`` removes it from every later output."""
    global _forms
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        forms = set()
        for s in _secrets:
            forms |= {s, json.dumps(s)[1:-1], html.escape(s), html.escape(s, quote=False)}
        # Longest first, so a secret that contains another is replaced whole.
        _forms = tuple(sorted(forms, key=len, reverse=True))


def register_env_secrets(env: Mapping[str, str]) -> None:
    """Register the value of every secret-named variable of ``env``."""
    for k, v in env.items():
        if is_secret_name(k) and isinstance(v, str):
            register_secret(v)


def register_process_secrets() -> None:
    """Register the secret-named variables of this process's environment (``HF_TOKEN``, a CI's
    ``GITHUB_TOKEN``): launched servers inherit them, and their logs end up in reports."""
    register_env_secrets(os.environ)


def forget_secrets() -> None:
    """Drop every registered secret (tests; a long-lived process between sessions)."""
    global _forms
    with _lock:
        _secrets.clear()
        _forms = ()


def redact_text(text: str) -> str:
    """``text`` with every registered secret (and its escaped forms) replaced by ``<redacted>``."""
    forms = _forms
    if not forms:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``env`` with secret-named variables' values replaced by ``<redacted>``."""
    return {k: REDACTED if is_secret_name(str(k)) else v for k, v in env.items()}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A copy of a command line with the values of secret flags replaced (``--api-key X``,
    ``--hf-token=X``) and registered secrets removed from every other argument."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_text(arg))
    return out


def redact(obj: Any) -> Any:
    """Every string in a JSON-like value (dicts, lists, tuples) through ``redact_text``; keys
    too. Cheap when no secret is registered (the value itself is returned)."""
    if not _forms:
        return obj
    return _walk(obj)


def _walk(obj: Any) -> Any:
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Mapping):
        return {_walk(k) if isinstance(k, str) else k: _walk(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_walk(v) for v in obj]
    return obj
