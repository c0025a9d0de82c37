"""The one interface every index implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class IndexFormatError(RuntimeError):
    """A stored index is missing, truncated, corrupted or of another format."""


def claim_ids(position: dict[str, int], ids: list[str], start: int) -> None:
    """Map new ``ids`` to positions ``start, start + 1, ...``; on a duplicate, undo and raise ValueError."""
    for i, doc_id in enumerate(ids):
        if position.setdefault(doc_id, start + i) != start + i:
            for added in ids[:i]:
                del position[added]
            raise ValueError(f"document id {doc_id!r} is already in the index")


def check_finite(x: np.ndarray, what: str = "vectors") -> None:
    """Refuse NaN or infinite values: FAISS would index them and return meaningless neighbours."""
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1)) if x.ndim > 1 else [0]
        raise ValueError(f"{what} hold NaN or infinite values (row {int(bad[0])}{' and others' if len(bad) > 1 else ''})")


def check_k(k) -> None:
    """``k`` must be a positive whole number of hits."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")


@dataclass
class SearchResult:
    """Hits for a batch of queries, best first; a query may get fewer than ``k`` hits."""

    ids: list[list[str]]
    scores: list[list[float]]


class Index(ABC):
    """Documents identified by string ids, searched by query embeddings.

    Implementations: :class:`indexes.FaissIndex` (one vector per document) and
    :class:`indexes.MultiVectorIndex` (token vectors). Both are safe from threads: searches
    run concurrently, changes one at a time and never beside a search.
    """

    ids: list[str]  # every document added, in the index's order

    @abstractmethod
    def add(self, ids: list[str], embeddings) -> None:
        """Add documents; ids must be new."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """Top-``k`` documents of each query, highest score first."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write to a folder atomically (FAISS native files + JSON, never pickle)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> "Index":
        """Read a folder written by :meth:`save`; raise :class:`IndexFormatError` if it is damaged."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents."""

    def live_ids(self) -> list[str]:
        """Ids of the documents a search can return, in the index's order (deleted ones left out)."""
        return list(self.ids)
