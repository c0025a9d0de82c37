"""Indexes: documents by string id, searched by embeddings, stored as FAISS files + JSON + arrays.

``FaissIndex``: one vector per document, any FAISS factory string.
``MultiVectorIndex``: ColBERT token embeddings, IVF candidates and exact MaxSim re-ranking.
"""

from indexes.base import Index, IndexFormatError, SearchResult
from indexes.multi_vector import MultiVectorIndex, maxsim
from indexes.single_vector import FaissIndex

__all__ = ["FaissIndex", "Index", "IndexFormatError", "MultiVectorIndex", "SearchResult", "maxsim"]
