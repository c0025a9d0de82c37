"""What a language plug-in produces: :class:`Unit` s, the named pieces of a file, with exact lines.

Shared by the tree-sitter languages (:mod:`retrieval.chunking.treesitter`) and the hand-written
ones (:mod:`retrieval.chunking.structural`), so neither imports the other. Lines are numbered the
way Python's tokenizer and tree-sitter number them (:func:`split_lines`): ``str.splitlines``
also splits at form feeds, which shifted every line number after one in the stdlib's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol


class UnparsableError(ValueError):
    """A language could not read a file (a syntax error); callers fall back to plain text."""


@dataclass(frozen=True)
class Unit:
    """A named piece of a file.

    Attributes
    ----------
    kind
        ``"module"``, ``"class"``, ``"function"``, ``"method"``, ``"section"``, ``"text"``, or
        another kind of the language (``"struct"``, ``"interface"``, ``"impl"``, ``"key"``...).
    name
        Qualified name: ``"Retriever.add"``, ``"Set up > Tests"``; ``""`` for a module.
    start, end
        First and last line, 1-based and inclusive (a definition starts at its first decorator
        or at its doc comment).
    docstring
        The unit's own docstring or doc comment, cleaned (``inspect.cleandoc``); ``""`` if none.
    code
        The unit's lines with its own docstring removed, dedented.
    children
        Units inside this one, in order, not overlapping (a class's methods).
    signature
        The definition's header on one line (``def f(x: int) -> str``), ``""`` where none.
    doc_span
        First and last line of the docstring or doc comment, ``()`` if none.
    breaks
        Per line of the unit, how good a place it is to start a piece when the unit is too long
        for the model: the tree depth of the syntax node that starts the line (1: a top-level
        statement; lower is better), ``0`` where no node starts it (a continuation line, a
        closing brace). Filled for a tree-sitter file's root unit only, ``()`` elsewhere.
    """

    kind: str
    name: str
    start: int
    end: int
    docstring: str = ""
    code: str = ""
    children: tuple[Unit, ...] = ()
    signature: str = ""
    doc_span: tuple[int, ...] = ()
    breaks: tuple[int, ...] = field(default=(), repr=False, compare=False)


class Language(Protocol):
    """What a language plug-in provides: a name, its file extensions, and its units."""

    name: str
    extensions: tuple[str, ...]

    def units(self, text: str) -> list[Unit]:
        """Top-level units of a file, in order, not overlapping; raise :class:`UnparsableError` if unreadable."""


def split_lines(text: str) -> list[str]:
    """Lines as Python's tokenizer numbers them: only ``\\n``, ``\\r\\n`` and ``\\r`` end a line.

    ``str.splitlines`` also splits at form feeds and other separators, which would shift
    every line number after them.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def byte_prefix(line: str, col: int) -> str:
    """``line`` up to byte column ``col`` (``ast`` and tree-sitter columns count UTF-8 bytes)."""
    return line.encode("utf-8")[:col].decode("utf-8", errors="replace")


def byte_suffix(line: str, col: int) -> str:
    """``line`` from byte column ``col``."""
    return line.encode("utf-8")[col:].decode("utf-8", errors="replace")


def without_docstring(lines: list[str], start: int, end: int, doc: tuple[int, int, int, int]) -> list[str]:
    """Lines ``start..end`` (1-based) without a docstring at ``(first line, byte col, last line, byte col)``.

    Whatever shares a line with the docstring (``def f(): "doc"; return 1``) stays; lines
    left blank go.
    """
    first, first_col, last, last_col = doc
    after = byte_suffix(lines[last - 1], last_col).lstrip().removeprefix(";").lstrip()
    rest = (byte_prefix(lines[first - 1], first_col) + after).rstrip()
    return lines[start - 1 : first - 1] + ([rest] if rest.strip() else []) + lines[last:end]
