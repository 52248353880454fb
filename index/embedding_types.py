"""The embedder interface and the input format every backend shares (no backend imports here, so no cycle)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Embedder(Protocol):
    model_id: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def passage_budget(self, title: str) -> int: ...

    def embed_passages(self, texts: list[str], titles: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def passage_input(title: str, text: str, prefix: str = "") -> str:
    """The title goes to the embedding as context; it is not part of the stored chunk text."""
    return f"{prefix}{title}\n{text}" if title else f"{prefix}{text}"
