"""One JSON Schema document from msgspec structs: the shared step of every generated schema.

``report.records`` (``results.json``) and ``verdicts.baseline_records`` (``baselines/*.json``)
each name their root struct and the file's head (``$schema``, ``$id``, ``title``); this builds
the document the same way for both. Pure; imports ``msgspec`` only when called from those
record modules, which the pytest entry point does not import at start-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgspec


def schema_document(types: Sequence[Any], root: str, head: Mapping[str, str]) -> dict[str, Any]:
    """The draft 2020-12 schema whose top level is struct ``root`` (first of ``types``).

    The other ``types`` are kept in ``$defs`` for references from free-form fields; a
    docstring's single line breaks become spaces (they are not paragraphs); defs are sorted.
    The document is plain JSON values, as its file reads back (a dataclass field's tuple
    default, e.g. ``ClientHealth.reasons``, becomes a list).
    """
    (top, *_), defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    assert top == {"$ref": f"#/$defs/{root}"}, top
    body = dict(defs.pop(root))
    body.pop("title", None)
    for d in (body, *defs.values()):
        if "description" in d:
            d["description"] = re.sub(r"(?<!\n)\n(?!\n)", " ", d["description"])
    document = {**head, **body, "$defs": dict(sorted(defs.items()))}
    return cast("dict[str, Any]", json.loads(json.dumps(document)))


def schema_file_text(document: Mapping[str, Any]) -> str:
    """A schema document as a shipped file's text (two-space indent, final newline)."""
    return json.dumps(document, indent=2) + "\n"
