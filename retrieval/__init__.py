"""Retrieval: the library API that RAG apps call.

``Retriever``: one vector per document (sentence-transformers + FAISS).
``ColbertRetriever``: ColBERT token vectors (PyLate + the multi-vector FAISS index).
``python -m retrieval index|search``: a codebase or document folder, chunked by language
structure and re-indexed incrementally (:mod:`retrieval.codebase`).
"""

from retrieval.colbert import ColbertRetriever
from retrieval.retriever import Document, Hit, Retriever

__all__ = ["ColbertRetriever", "Document", "Hit", "Retriever"]
