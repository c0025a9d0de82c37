"""Documents and hits, and the one function that says what gets embedded for a document.

Examples
--------
>>> from retrieval.documents import as_document, document_text
>>> document_text({"title": "RoPE", "text": "Rotary embeddings rotate queries and keys."})
'RoPE Rotary embeddings rotate queries and keys.'
>>> as_document(("a", "text only"), auto_id="0").id
'a'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


def document_text(doc) -> str:
    """What gets embedded for a document: ``title + " " + text``, as BEIR and MTEB do.

    ``doc`` is a :class:`Document`, a BEIR record (a mapping with ``text`` and optional
    ``title``) or a string (embedded as it is).
    """
    if isinstance(doc, str):
        return doc
    if isinstance(doc, Mapping):
        title, text = doc.get("title") or "", doc.get("text") or ""
    else:
        title, text = doc.title or "", doc.text or ""
    return f"{title} {text}".strip()


@dataclass
class Hit:
    """One retrieved document, or one chunk of a long one.

    A chunk's ``id`` is ``parent#i``; ``parent_id`` is the id its document was added under and
    ``start``/``end`` its character offsets in that document's text. Whole documents have
    ``parent_id=None``; a document hit of ``group_by_document`` carries the offsets of its best chunk.
    """

    id: str
    score: float
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)
    parent_id: str | None = None
    start: int | None = None
    end: int | None = None


@dataclass
class Document:
    """A document as the retrievers store it: id, text, optional title, any other fields as ``metadata``.

    A chunk of a longer document also has ``parent_id`` and its character offsets ``start``/``end``
    in the parent's text (:mod:`retrieval.chunking`).
    """

    id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)
    start: int | None = None
    end: int | None = None
    parent_id: str | None = None

    @property
    def full_text(self) -> str:
        """What gets embedded (:func:`document_text`)."""
        return document_text(self)

    @property
    def parent(self) -> str:
        """The id this document was added under: its parent's for a chunk, else its own."""
        return self.parent_id or self.id

    def record(self) -> dict:
        """The fields to store (the chunk fields only where set), as ``Document(**record)`` reads them back."""
        return {k: v for k, v in vars(self).items() if v is not None or k not in ("parent_id", "start", "end")}


def read_documents(path) -> list[Document]:
    """The documents of a JSONL file of :meth:`Document.record` lines; a bad line is an ``IndexFormatError`` naming it."""
    from indexes import IndexFormatError

    docs = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                docs.append(Document(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise IndexFormatError(f"{path}:{line_no}: corrupted document record: {exc}") from exc
    return docs


def as_document(item, auto_id: str) -> Document:
    """A document from a string, an ``(id, text)`` pair or a mapping with ``text`` (and ``id``/``_id``, ``title``)."""
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(id=auto_id, text=item)
    if isinstance(item, Mapping):
        if not isinstance(item.get("text"), str):
            raise ValueError(f"document {item.get('id', item.get('_id', auto_id))!r} has no string 'text' field")
        rest = {k: v for k, v in item.items() if k not in ("id", "_id", "text", "title")}
        doc_id = item.get("id", item.get("_id", auto_id))
        return Document(id=str(doc_id), text=item["text"], title=item.get("title") or "", metadata=rest)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], str):
        return Document(id=str(item[0]), text=item[1])
    raise ValueError(f"cannot read a document from {type(item).__name__}: give a str, (id, text) or a dict with 'text'")
