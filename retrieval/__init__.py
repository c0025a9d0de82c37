"""Retrieval: the library API that RAG apps call.

``Retriever``: one vector per document (sentence-transformers + FAISS).
``ColbertRetriever``: ColBERT token vectors (PyLate + the multi-vector FAISS index).
``python -m retrieval index|search``: a codebase or document folder, chunked by language
structure and re-indexed incrementally (:mod:`retrieval.codebase`).
``python -m retrieval serve``: the resident HTTP service (:mod:`retrieval.service`).

The names are imported on first use (PEP 562): importing torch costs 1-2 s, and a command that
only talks to a running server (:mod:`retrieval.service.client`) never needs it.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ColbertRetriever": "retrieval.colbert",
    "Document": "retrieval.documents",
    "Hit": "retrieval.documents",
    "Retriever": "retrieval.retriever",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
