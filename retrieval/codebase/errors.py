"""The codebase commands' one error type, in a module of its own so the light client path imports no torch."""

from __future__ import annotations


class CodebaseError(ValueError):
    """Bad input for indexing or searching a codebase; the message says what to do."""
