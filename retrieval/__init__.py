"""Retrieval: the library API (``Retriever``) that RAG apps call."""

from retrieval.retriever import Document, Hit, Retriever

__all__ = ["Document", "Hit", "Retriever"]
