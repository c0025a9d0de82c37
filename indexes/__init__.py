"""Indexes: documents by string id, searched by embeddings, stored as FAISS files + JSON.

``FaissIndex``: one vector per document, any FAISS factory string.
"""

from indexes.base import Index, IndexFormatError, SearchResult
from indexes.single_vector import FaissIndex

__all__ = ["FaissIndex", "Index", "IndexFormatError", "SearchResult"]
