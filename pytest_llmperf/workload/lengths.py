"""Synthetic prompt-length distributions (pure): fixed, uniform, normal and lognormal with
bounds. ``workload.datasets.prepare_length_requests`` builds each drawn length exactly."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Distribution = Literal["fixed", "uniform", "normal", "lognormal"]


@dataclass(frozen=True, slots=True)
class LengthDistribution:
    """Prompt lengths in tokens. ``fixed``: ``mean``. ``uniform``: integers in [low, high].
    ``normal``/``lognormal``: that distribution with ``mean`` and ``std`` (of the lengths
    themselves), redrawn until inside [low, high]."""

    kind: Distribution
    mean: float = 0.0
    std: float = 0.0
    low: int = 1
    high: int = 1_000_000

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "normal", "lognormal"):
            raise ValueError(
                f"unknown length distribution {self.kind!r}: use fixed, uniform, normal or "
                "lognormal"
            )
        if not 1 <= self.low <= self.high:
            raise ValueError(f"bounds must satisfy 1 <= low <= high, got [{self.low}, {self.high}]")
        if self.kind in ("fixed", "normal", "lognormal") and not self.low <= self.mean <= self.high:
            raise ValueError(f"mean {self.mean} lies outside [{self.low}, {self.high}]")
        if self.kind in ("normal", "lognormal") and not self.std > 0:
            raise ValueError(f"{self.kind} lengths need std > 0, got {self.std}")

    def sample(self, n: int, seed: int = 0) -> list[int]:
        rng = random.Random(f"lengths:{self.kind}:{seed}")
        if self.kind == "fixed":
            return [round(self.mean)] * n
        if self.kind == "uniform":
            return [rng.randint(self.low, self.high) for _ in range(n)]
        if self.kind == "normal":

            def draw() -> float:
                return rng.gauss(self.mean, self.std)
        else:  # lognormal with the given mean and std of the lengths
            sigma2 = math.log1p((self.std / self.mean) ** 2)
            mu = math.log(self.mean) - sigma2 / 2

            def draw() -> float:
                return rng.lognormvariate(mu, math.sqrt(sigma2))

        out: list[int] = []
        for _ in range(n):
            for _attempt in range(10_000):
                x = round(draw())
                if self.low <= x <= self.high:
                    break
            else:
                raise ValueError(f"the bounds [{self.low}, {self.high}] hold almost none of {self}")
            out.append(x)
        return out
