"""Validation toolkit: typed readers that name the key path, what is wrong and what to do."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from pytest_llmperf.config.vocab import (
    _MAX_CONCURRENCY,
    _MAX_MULTIPLIER,
    _NAME_RE,
    ConfigError,
)
from pytest_llmperf.workload.presets import MULTIPLIERS


@dataclass(frozen=True)
class KeyPath:
    """A position in the config document, so every error can name its key path."""

    source: str
    path: str

    def key(self, name: str) -> KeyPath:
        return KeyPath(self.source, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> KeyPath:
        return KeyPath(self.source, f"{self.path}[{i}]")

    def fail(self, problem: str, fix: str) -> NoReturn:
        raise ConfigError(self.source, self.path, problem, fix)


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _table(value: object, at: KeyPath, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        at.fail(f"expected a table, got {_kind(value)}", "write it as a TOML table ([...])")
    for k in value:
        if not isinstance(k, str) or k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            at.key(str(k)).fail(
                "unknown key", f"{hint}Known keys here: {', '.join(known)}; remove or rename it"
            )
    return value


def _env_table(value: object, at: KeyPath, *, example: str) -> dict[str, str]:
    """An ``env = { NAME = "value" }`` table: string names to string values (``example`` is the
    quoted assignment the error suggests)."""
    if not isinstance(value, Mapping):
        at.fail(f"expected a table, got {_kind(value)}", 'write env = { NAME = "value" }')
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            at.key(str(k)).fail(
                f"an environment variable needs a name, got {k!r}", f"name it, e.g. {example}"
            )
        if not isinstance(v, str):
            at.key(k).fail(
                f"environment values must be strings, got {_kind(v)} {v!r}",
                f"quote the value, e.g. {example}",
            )
        out[k] = v
    return out


def _put_int(
    out: dict[str, Any],
    table: Mapping[str, Any],
    at: KeyPath,
    key: str,
    *,
    minimum: int,
    maximum: int,
    what: str,
) -> None:
    """``out[key]`` = the integer ``table[key]`` (checked as ``_int`` does) when the key is set."""
    if key in table:
        out[key] = _int(table[key], at.key(key), minimum=minimum, maximum=maximum, what=what)


def _int(value: object, at: KeyPath, *, minimum: int, maximum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        at.fail(
            f"expected {what} (an integer), got {_kind(value)} {value!r}", "write a whole number"
        )
    if not minimum <= value <= maximum:
        at.fail(
            f"{value} is out of range for {what}",
            f"use an integer from {minimum} to {maximum:,}",
        )
    return value


def _number(
    value: object, at: KeyPath, *, minimum: float, maximum: float, what: str, open_min: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        at.fail(f"expected {what} (a number), got {_kind(value)} {value!r}", "write a number")
    x = float(value)
    if not math.isfinite(x):
        at.fail(f"{what} must be a finite number, got {value!r}", "write a finite number")
    if x < minimum or (open_min and x == minimum) or x > maximum:
        low = f"above {minimum:g}" if open_min else f"at least {minimum:g}"
        at.fail(
            f"{value!r} is out of range for {what}", f"use a number {low} and at most {maximum:g}"
        )
    return x


def _str(value: object, at: KeyPath, *, what: str) -> str:
    if not isinstance(value, str) or not value:
        at.fail(f"expected {what} (a non-empty string), got {_kind(value)} {value!r}", "quote it")
    return value


def _name(value: object, at: KeyPath, *, what: str) -> str:
    s = _str(value, at, what=what)
    if not _NAME_RE.match(s):
        at.fail(
            f"{what} {s!r} cannot be used in a test id",
            "use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return s


def _choice(value: object, at: KeyPath, choices: Sequence[str], *, what: str) -> str:
    s = _str(value, at, what=what)
    if s not in choices:
        close = difflib.get_close_matches(s, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        at.fail(f"unknown {what} {s!r}", f"{hint}Choose one of: {', '.join(choices)}")
    return s


def _list(value: object, at: KeyPath, *, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        at.fail(f"expected a list of {what}, got {_kind(value)} {value!r}", "write [..., ...]")
    return list(value)


def _str_list(value: object, at: KeyPath, *, what: str) -> tuple[str, ...]:
    return tuple(_str(v, at.index(i), what=what) for i, v in enumerate(_list(value, at, what=what)))


def _levels(value: object, at: KeyPath) -> tuple[int, ...]:
    """Concurrency levels: an integer or a non-empty list; sorted, duplicates dropped."""
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        at.fail("no concurrency levels given", "list at least one, e.g. [1, 16, 64]")
    levels = [
        _int(
            v,
            at.index(i) if isinstance(value, list | tuple) else at,
            minimum=1,
            maximum=_MAX_CONCURRENCY,
            what="a concurrency level",
        )
        for i, v in enumerate(items)
    ]
    return tuple(sorted(set(levels)))


def _multiplier(value: object, at: KeyPath) -> float:
    if isinstance(value, str):
        return MULTIPLIERS[_choice(value, at, tuple(MULTIPLIERS), what="request multiplier")]
    return _number(
        value,
        at,
        minimum=0.0,
        maximum=_MAX_MULTIPLIER,
        what="the request multiplier",
        open_min=True,
    )
