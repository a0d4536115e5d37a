"""The small config modules (``config.overrides``, ``config.files``): what mutation testing
found unchecked (docs/mutation.md)."""

from __future__ import annotations
