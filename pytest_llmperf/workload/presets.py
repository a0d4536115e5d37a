"""The workload vocabularies, in one pure home: the request shape (``Workload``), the study's
named presets (``WORKLOADS``), the endpoint paths and the named request multipliers.

No I/O and no HTTP stack, so the config (which must stay cheap to import) and the load generator
read the same tables. ``workload.prompts`` builds the requests from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

ENDPOINT_PATHS: Final[dict[str, str]] = {
    "completions": "/v1/completions",
    "chat": "/v1/chat/completions",
}


#: Named request multipliers, as in the study (quick 0.5x, default 1x, thorough 3x).
MULTIPLIERS: Final[dict[str, float]] = {"quick": 0.5, "default": 1.0, "thorough": 3.0}


#: The longest image side a workload may ask for (a typo guard: 112 px is the default, the
#: study's models resize to at most a few thousand pixels).
MAX_IMAGE_SIDE: Final[int] = 8192
#: The image side the tiny vision models are built for (``server.tiny_models.IMAGE_SIZE``).
DEFAULT_IMAGE_SIZE: Final[tuple[int, int]] = (112, 112)


@dataclass(frozen=True, slots=True)
class Workload:
    """A request shape. ``input_tokens`` is the exact prompt length as the server counts it
    (for chat: the templated prompt; for vision: the text part, image tokens come on top)."""

    name: str
    kind: Literal["text", "vision"] = "text"
    endpoint: Literal["completions", "chat"] = "completions"
    input_tokens: int = 500
    output_tokens: int = 100
    images_per_request: int = 0
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    shared_prefix_tokens: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("text", "vision"):
            raise ValueError(f"workload {self.name!r}: kind must be 'text' or 'vision'")
        if self.endpoint not in ENDPOINT_PATHS:
            raise ValueError(f"workload {self.name!r}: endpoint must be 'completions' or 'chat'")
        if self.kind == "vision" and self.endpoint != "chat":
            raise ValueError(f"workload {self.name!r}: vision requests need endpoint='chat'")
        if self.kind == "vision" and self.images_per_request < 1:
            raise ValueError(f"workload {self.name!r}: vision needs images_per_request >= 1")
        if self.kind == "text" and self.images_per_request:
            raise ValueError(f"workload {self.name!r}: text workloads carry no images")
        w, h = self.image_size
        if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
            raise ValueError(
                f"workload {self.name!r}: image_size must be two sides in pixels, each 1 to "
                f"{MAX_IMAGE_SIDE}, got {w}x{h}"
            )
        if self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError(f"workload {self.name!r}: input and output tokens must be >= 1")
        if not 0 <= self.shared_prefix_tokens < self.input_tokens:
            raise ValueError(
                f"workload {self.name!r}: shared_prefix_tokens must be in [0, input_tokens)"
            )

    @property
    def path(self) -> str:
        return ENDPOINT_PATHS[self.endpoint]


WORKLOADS: Final[dict[str, Workload]] = {
    w.name: w
    for w in (
        Workload("text", input_tokens=500, output_tokens=100),
        Workload(
            "vision",
            kind="vision",
            endpoint="chat",
            input_tokens=100,
            output_tokens=200,
            images_per_request=1,
        ),
        # the study's stress cases with several images per request
        Workload(
            "vision-3-images",
            kind="vision",
            endpoint="chat",
            input_tokens=100,
            output_tokens=200,
            images_per_request=3,
        ),
        Workload(
            "vision-5-images",
            kind="vision",
            endpoint="chat",
            input_tokens=100,
            output_tokens=200,
            images_per_request=5,
        ),
        Workload("long-context-2k", input_tokens=2048, output_tokens=512),
        Workload("long-context-4k", input_tokens=4096, output_tokens=512),
        Workload("long-context-8k", input_tokens=8192, output_tokens=512),
        Workload("long-output", input_tokens=500, output_tokens=1000),
    )
}
