"""Config vocabularies (presets, profiles, multipliers), bounds and ``ConfigError``.

The vocabularies are imported from their one home in the stage that owns them (tiny models,
study profiles, workload presets and multipliers); this module only names them for the parser.
"""

from __future__ import annotations

import re
from typing import Final

from pytest_llmperf.plan.profiles import PROFILES
from pytest_llmperf.server.tiny_models import ARCHS, VISION_ARCHS
from pytest_llmperf.workload.presets import ENDPOINT_PATHS

# --------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------

#: The study's concurrency levels (saturation sweep plus the low end of the AITER ablation).
STUDY_CONCURRENCY: Final[tuple[int, ...]] = (1, 5, 10, 25, 50, 100, 150, 200, 300, 500, 750, 1000)
#: Tiny random-weight CPU models, one per architecture family (home: ``tiny_models.ARCHS``).
TINY_ARCHS: Final[tuple[str, ...]] = ARCHS
#: The study's four models, by profile name (home: ``plan.profiles.PROFILES``).
STUDY_PROFILES: Final[tuple[str, ...]] = tuple(PROFILES)
#: Models known to accept images (the tiny ``vision`` and ``vision-multi`` models and every
#: study profile whose config has a vision tower); a ``path`` model's ability is unknown, so it
#: is trusted. How many images each takes is the server's to say (see ``workload.prompts``).
VISION_MODELS: Final[frozenset[str]] = frozenset(
    {*VISION_ARCHS, *(name for name, p in PROFILES.items() if "vision_config" in p.config)}
)
#: The request endpoints a workload may use (home: ``workload.presets.ENDPOINT_PATHS``);
#: ``MULTIPLIERS`` (quick 0.5x, default 1x, thorough 3x) lives in ``workload.presets`` too.
ENDPOINTS: Final[tuple[str, ...]] = tuple(ENDPOINT_PATHS)

#: Fewest requests a level runs before the multiplier: p99 needs about 100 samples to be more
#: than "the slowest request".
DEFAULT_MIN_REQUESTS: Final[int] = 100
DEFAULT_WARMUP_REQUESTS: Final[int] = 10

# Bounds that catch typos (an extra zero, 1e9) before they become a hung session.
_MAX_CONCURRENCY = 100_000
_MAX_RUNS = 1_000
_MAX_REQUESTS = 10_000_000
_MAX_TOKENS = 10_000_000
_MAX_IMAGES = 1_000
_MAX_MULTIPLIER = 100.0

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(ValueError):
    """A configuration mistake: where it is (file, key path), what is wrong, and what to do."""

    def __init__(self, source: str, key: str, problem: str, fix: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}. {fix[:1].upper()}{fix[1:]}")
