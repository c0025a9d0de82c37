"""Retrieval: the library API that RAG apps call.

``Retriever``: one vector per document (sentence-transformers + FAISS).
``ColbertRetriever``: ColBERT token vectors (PyLate + the multi-vector FAISS index).
"""

from retrieval.colbert import ColbertRetriever
from retrieval.retriever import Document, Hit, Retriever

__all__ = ["ColbertRetriever", "Document", "Hit", "Retriever"]
