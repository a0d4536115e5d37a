"""The config validators' contract: every error names the file and key path, says what was
wrong (with the offending value and its kind) and what to do. Messages are pinned in full:
they are the user interface of a bad llmperf.toml."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from pytest_llmperf.config import validate as v
from pytest_llmperf.config.vocab import ConfigError

AT = v.KeyPath("llmperf.toml", "models[0]")


def message(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    return str(err.value)


def test_key_paths_and_their_errors() -> None:
    root = v.KeyPath("cfg.toml", "")
    assert root.key("models").index(2).key("name") == v.KeyPath("cfg.toml", "models[2].name")
    assert message(root.fail, "it is wrong", "fix it") == "cfg.toml: it is wrong. Fix it"
    assert (
        message(AT.fail, "it is wrong", "fix it") == "llmperf.toml: models[0]: it is wrong. Fix it"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        AT.path = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "a boolean"), (3, "an integer"), (2.5, "a number"), ("x", "a string"),
     ([1], "a list"), ({"a": 1}, "a table"), (None, "NoneType")],
)  # fmt: skip
def test_errors_name_the_kind_of_the_wrong_value(value: object, kind: str) -> None:
    assert v._kind(value) == kind


def test_table_errors() -> None:
    assert message(v._table, [1], AT, ("name",)) == (
        "llmperf.toml: models[0]: expected a table, got a list. Write it as a TOML table ([...])"
    )
    assert message(v._table, {"nmae": 1}, AT, ("name", "env")) == (
        "llmperf.toml: models[0].nmae: unknown key. "
        "Did you mean 'name'? Known keys here: name, env; remove or rename it"
    )
    assert message(v._table, {"zzz": 1}, AT, ("name", "env")) == (
        "llmperf.toml: models[0].zzz: unknown key. Known keys here: name, env; remove or rename it"
    )
    assert v._table({"name": 1}, AT, ("name",)) == {"name": 1}


def test_integer_errors_and_bounds() -> None:
    kw = {"minimum": 1, "maximum": 100_000, "what": "a concurrency level"}
    assert v._int(1, AT, **kw) == 1 and v._int(100_000, AT, **kw) == 100_000
    assert message(v._int, True, AT, **kw) == (
        "llmperf.toml: models[0]: expected a concurrency level (an integer), got a boolean True. "
        "Write a whole number"
    )
    assert message(v._int, 100_001, AT, **kw) == (
        "llmperf.toml: models[0]: 100001 is out of range for a concurrency level. "
        "Use an integer from 1 to 100,000"
    )
    assert "0 is out of range" in message(v._int, 0, AT, **kw)


def test_number_errors_and_bounds() -> None:
    kw = {"minimum": 0.0, "maximum": 100.0, "what": "the request multiplier"}
    assert v._number(0, AT, **kw) == 0.0 and v._number(100, AT, **kw) == 100.0
    assert message(v._number, "1", AT, **kw) == (
        "llmperf.toml: models[0]: expected the request multiplier (a number), got a string '1'. "
        "Write a number"
    )
    assert message(v._number, False, AT, **kw).startswith(
        "llmperf.toml: models[0]: expected the request multiplier (a number), got a boolean"
    )
    assert message(v._number, math.inf, AT, **kw) == (
        "llmperf.toml: models[0]: the request multiplier must be a finite number, got inf. "
        "Write a finite number"
    )
    assert message(v._number, 100.5, AT, **kw) == (
        "llmperf.toml: models[0]: 100.5 is out of range for the request multiplier. "
        "Use a number at least 0 and at most 100"
    )
    assert "-1 is out of range" in message(v._number, -1, AT, **kw)
    assert message(v._number, 0.0, AT, open_min=True, **kw) == (
        "llmperf.toml: models[0]: 0.0 is out of range for the request multiplier. "
        "Use a number above 0 and at most 100"
    )
    assert v._number(0.001, AT, open_min=True, **kw) == 0.001


def test_string_name_and_choice_errors() -> None:
    assert message(v._str, "", AT, what="a model name") == (
        "llmperf.toml: models[0]: expected a model name (a non-empty string), got a string ''. "
        "Quote it"
    )
    assert "got an integer 5" in message(v._str, 5, AT, what="a model name")
    assert v._name("tiny-1.b_x", AT, what="a model name") == "tiny-1.b_x"
    assert message(v._name, "-tiny", AT, what="a model name") == (
        "llmperf.toml: models[0]: a model name '-tiny' cannot be used in a test id. "
        "Use letters, digits, '.', '_' and '-', starting with a letter or digit"
    )
    choices = ("completions", "chat")
    assert v._choice("chat", AT, choices, what="endpoint") == "chat"
    assert message(v._choice, "chats", AT, choices, what="endpoint") == (
        "llmperf.toml: models[0]: unknown endpoint 'chats'. "
        "Did you mean 'chat'? Choose one of: completions, chat"
    )
    assert message(v._choice, "zzz", AT, choices, what="endpoint") == (
        "llmperf.toml: models[0]: unknown endpoint 'zzz'. Choose one of: completions, chat"
    )


def test_list_errors_name_the_item() -> None:
    assert v._list(("a",), AT, what="names") == ["a"]
    assert message(v._list, "a,b", AT, what="names") == (
        "llmperf.toml: models[0]: expected a list of names, got a string 'a,b'. Write [..., ...]"
    )
    assert v._str_list(["a", "b"], AT, what="a name") == ("a", "b")
    assert message(v._str_list, ["a", 2], AT, what="a name").startswith(
        "llmperf.toml: models[0][1]: expected a name (a non-empty string), got an integer 2"
    )


def test_concurrency_levels() -> None:
    assert v._levels(8, AT) == (8,)
    assert v._levels([64, 1, 16, 1], AT) == (1, 16, 64)
    assert message(v._levels, [], AT) == (
        "llmperf.toml: models[0]: no concurrency levels given. List at least one, e.g. [1, 16, 64]"
    )
    assert message(v._levels, [1, 0], AT).startswith(
        "llmperf.toml: models[0][1]: 0 is out of range"
    )
    assert message(v._levels, 0, AT).startswith("llmperf.toml: models[0]: 0 is out of range")


def test_request_multiplier_by_name_or_number() -> None:
    assert v._multiplier("thorough", AT) == 3.0
    assert v._multiplier(2, AT) == 2.0
    assert v._multiplier(100, AT) == 100.0
    assert "Did you mean 'quick'?" in message(v._multiplier, "quik", AT)
    assert "Use a number above 0 and at most 100" in message(v._multiplier, 0, AT)
