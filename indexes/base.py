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


def allowed_positions(position: dict[str, int], deleted: np.ndarray, subset) -> np.ndarray:
    """Which positions a search may return: live documents, and of those only ``subset``'s when given.

    ``position`` maps each live id to its position; ids of ``subset`` not in it (unknown or
    deleted) are ignored, so a filter built from stale metadata cannot fail a search.
    """
    if subset is None:
        return ~np.asarray(deleted, dtype=bool)
    if isinstance(subset, (str, bytes)):
        raise TypeError("subset must be an iterable of document ids, not one string")
    allowed = np.zeros(len(deleted), dtype=bool)
    allowed[[position[i] for i in map(str, subset) if i in position]] = True
    return allowed


def delete_positions(position: dict[str, int], deleted: np.ndarray, ids) -> list[int]:
    """Tombstone ``ids``: drop them from ``position``, set ``deleted``; KeyError naming unknown ids, nothing changed."""
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be an iterable of document ids, not one string")
    ids = list(dict.fromkeys(map(str, ids)))
    unknown = [i for i in ids if i not in position]
    if unknown:
        raise KeyError(f"not in the index: {', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}")
    gone = [position.pop(i) for i in ids]
    deleted[gone] = True
    return gone


@dataclass
class SearchResult:
    """Hits for a batch of queries, best first; a query may get fewer than ``k`` hits."""

    ids: list[list[str]]
    scores: list[list[float]]


class Index(ABC):
    """Documents identified by string ids, searched by queries.

    Implementations: :class:`indexes.FaissIndex` (one vector per document),
    :class:`indexes.MultiVectorIndex` (token vectors) and :class:`indexes.LexicalIndex` (BM25 on
    texts; ``add`` takes texts and ``search`` query texts). All are safe from threads: searches
    run concurrently, changes one at a time and never beside a search.

    Every index has the same change and filter semantics:

    - ``delete(ids)`` removes documents at once (a search never returns them again); an unknown
      id raises KeyError and nothing is deleted. Indexes that cannot remove in place keep
      tombstones until :meth:`compact`. Upsert is ``delete`` then ``add``.
    - ``compact()`` drops the tombstones' data; afterwards searches equal those of an index
      built from scratch with the remaining documents (on the same trained quantizers); a no-op
      where there are none.
    - ``search(queries, k, *, subset=None)``: ``subset`` is an iterable of ids the search is
      restricted to, applied inside the search (FAISS ID selectors, candidate masks, bm25s
      weight masks), so the result equals a brute-force ranking of the subset by the index's
      own scores, never a post-filtered fixed top-k. Ids of ``subset`` not in the index are ignored.
    """

    ids: list[str]  # every document position, in the index's order (deleted ones too until compaction)

    @abstractmethod
    def add(self, ids: list[str], embeddings) -> None:
        """Add documents; ids must be new (or deleted before)."""

    @abstractmethod
    def search(self, queries, k: int, *, subset=None) -> SearchResult:
        """Top-``k`` documents of each query, highest score first, among ``subset`` when given."""

    @abstractmethod
    def delete(self, ids) -> None:
        """Remove documents by id; KeyError for an unknown id, with nothing changed."""

    @abstractmethod
    def compact(self) -> None:
        """Drop what deleted documents still occupy; searches then equal a rebuilt index's."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write to a folder atomically (FAISS native files + JSON, never pickle)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> "Index":
        """Read a folder written by :meth:`save`; raise :class:`IndexFormatError` if it is damaged."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of live documents."""

    def live_ids(self) -> list[str]:
        """Ids of the documents a search can return, in the index's order (deleted ones left out)."""
        return list(self.ids)
