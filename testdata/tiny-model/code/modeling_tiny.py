"""Minimal modelling code for tiny-model (illustrative; not imported by omsign)."""

from __future__ import annotations

from .utils.helpers import rms_norm


class TinyConfig:
    def __init__(self, hidden_size: int = 192, num_hidden_layers: int = 2, vocab_size: int = 512) -> None:
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.vocab_size = vocab_size


def forward_norm(values: list[float], weight: list[float]) -> list[float]:
    return rms_norm(values, weight)
