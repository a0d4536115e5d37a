"""Mutation fuzzing of JSON/TOML-like documents: start from a valid document and change a few
things, so the invariants run on valid (or nearly valid) input most of the time instead of
on random structures that fail at the first key.

``mutate(doc, rng)`` returns a deep copy with 0..3 edits: a leaf replaced by an awkward value,
a number nudged, a key deleted, a list item dropped or duplicated, a misspelt key added.
About half of the results are unchanged copies (the valid seeds themselves, in new random
combinations chosen by the caller).
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

AWKWARD: tuple[Any, ...] = (
    0, -1, 1, 2, 10**9, 0.5, -0.0, math.nan, math.inf, "", "x", "dense-gqa", True, None, [], {},
)  # fmt: skip


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _edit(doc: Any, rng: random.Random) -> Any:
    paths = _paths(doc)
    path = rng.choice(paths[1:]) if len(paths) > 1 else ()
    if not path:
        return rng.choice(AWKWARD)
    parent, key = _get(doc, path[:-1]), path[-1]
    value = parent[key]
    op = rng.randrange(6)
    if op == 0:
        parent[key] = copy.deepcopy(rng.choice(AWKWARD))
    elif op == 1 and isinstance(value, int | float) and not isinstance(value, bool):
        parent[key] = rng.choice([value + 1, value - 1, value * 2, -value, value / 3])
    elif op == 2:
        del parent[key]
    elif op == 3 and isinstance(value, list) and value:
        value.append(copy.deepcopy(rng.choice(value)))
    elif op == 4 and isinstance(parent, dict):
        parent[str(key)[:-1] or "k"] = copy.deepcopy(value)  # a misspelt twin
    else:
        parent[key] = copy.deepcopy(rng.choice(AWKWARD))
    return doc


def mutate(doc: Any, rng: random.Random) -> Any:
    out = copy.deepcopy(doc)
    edits = 0 if rng.random() < 0.5 else rng.choice([1, 1, 2, 3])
    for _ in range(edits):
        out = _edit(out, rng)
    return out
