"""The ``[guardrails]`` table of the perf config: which server-side flags fail a case.

```toml
[guardrails]
fail_on = ["preemptions", "unexpected_cache_hits"]   # default: [] (every flag is a warning)
```

The flags (``verdicts.guardrails``): ``preemptions`` (vLLM preempted requests during a run),
``unexpected_cache_hits`` (prefix-cache hits in a workload without a shared prefix),
``client_late`` (the client's per-token ITL trails vLLM's engine-stamped ITL beyond the
client's timing error plus one engine step).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pytest_llmperf.verdicts.guardrails import FLAGS

GUARDRAIL_KEYS: Final[tuple[str, ...]] = ("fail_on",)


@dataclass(frozen=True)
class GuardrailSettings:
    fail_on: tuple[str, ...] = ()


def parse_guardrails(value: object, at: Any) -> GuardrailSettings:
    """Validate ``[guardrails]``; ``at`` is the config parser's key-path position."""
    if not isinstance(value, Mapping):
        at.fail(f"expected a table, got {value!r}", "write it as a TOML table: [guardrails]")
    for k in value:
        if k not in GUARDRAIL_KEYS:
            close = difflib.get_close_matches(str(k), GUARDRAIL_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            at.key(str(k)).fail(
                "unknown key",
                f"{hint}Known keys here: {', '.join(GUARDRAIL_KEYS)}; remove or rename it",
            )
    if "fail_on" not in value:
        return GuardrailSettings()
    raw = value["fail_on"]
    fat = at.key("fail_on")
    if not isinstance(raw, list | tuple):
        fat.fail(f"expected a list of flag names, got {raw!r}", f'e.g. fail_on = ["{FLAGS[0]}"]')
    names: list[str] = []
    for i, name in enumerate(raw):
        if not isinstance(name, str) or name not in FLAGS:
            close = difflib.get_close_matches(str(name), FLAGS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fat.index(i).fail(
                f"unknown guardrail flag {name!r}", f"{hint}Choose from: {', '.join(FLAGS)}"
            )
        if name not in names:
            names.append(name)
    return GuardrailSettings(fail_on=tuple(names))
