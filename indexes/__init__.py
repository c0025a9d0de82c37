"""Indexes: documents by string id, searched by embeddings, stored as FAISS files + JSON + arrays.

``FaissIndex``: one vector per document, any FAISS factory string.
``MultiVectorIndex``: ColBERT token embeddings, IVF candidates and exact MaxSim re-ranking.
``LexicalIndex``: BM25 over texts on bm25s.

All of them: ``delete``, ``compact``, ``live_ids`` and ``search(..., subset=ids)`` (see :class:`Index`).
"""

from indexes.base import Index, IndexFormatError, SearchResult
from indexes.lexical import LexicalIndex, lexical_index
from indexes.multi_vector import MultiVectorIndex, maxsim
from indexes.single_vector import FaissIndex

__all__ = ["FaissIndex", "Index", "IndexFormatError", "LexicalIndex", "MultiVectorIndex", "SearchResult", "lexical_index", "maxsim"]
