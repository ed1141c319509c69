"""Numeric helpers for tiny-model."""

from __future__ import annotations

import math


def rms_norm(values: list[float], weight: list[float], eps: float = 1e-6) -> list[float]:
    mean_square = sum(v * v for v in values) / max(len(values), 1)
    scale = 1.0 / math.sqrt(mean_square + eps)
    return [v * scale * w for v, w in zip(values, weight)]
