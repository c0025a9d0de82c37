"""The ``where`` language of ``Retriever.search``: a filter over documents, evaluated to the set of ids it keeps.

A filter is a dict; its keys AND together. A key is a field of the document's ``metadata``
or one of the fields every document has: ``id`` (the indexed piece's own id, ``parent#i`` for
a chunk), ``title``, ``text`` (the piece's text) and ``parent_id`` (the id the document was
added under: a chunk's parent, or a whole document's own id). A value is

- anything else: an exact match (``{"source": "a.md"}``, ``{"year": 2024}``);
- ``{"$in": [v, ...]}``: one of the values;
- ``{"$prefix": "src/"}``: a string field starting with it;
- ``{"$glob": "src/**/*.py"}``: a string field matching a path pattern (``*`` and ``?`` within
  one ``/``-separated part, ``**`` across parts);
- ``{"$regex": "^v[0-9]+"}``: a string field in which the regular expression matches (``re.search``).

A document without the field never matches. The ids go to the index search as its ``subset``
(FAISS ``IDSelector``, the multi-vector index's candidate mask, bm25s's weight mask), so a
filtered search is exact over the subset, never a post-filtered top-k (which returns fewer
than k hits, or none, when the filter is selective). Evaluating a filter is one pass over the
documents in Python; the retriever keeps the last filters' id sets until its documents change,
so a RAG app repeating the same filter pays the pass once.

Examples
--------
>>> from retrieval.documents import Document
>>> docs = [Document("a", "x", metadata={"path": "src/a.py"}), Document("b", "y", metadata={"path": "doc/b.md"})]
>>> matching_ids({"path": {"$glob": "src/**"}}, docs)
['a']
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping

from retrieval.documents import Document

OPERATORS = ("$in", "$prefix", "$glob", "$regex")
MISSING = object()


def glob_pattern(pattern: str) -> re.Pattern:
    """A compiled regular expression for a path glob: ``**`` any parts, ``*`` / ``?`` within a part."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def field_value(doc: Document, name: str):
    """A document's value for a filter key; :data:`MISSING` when it has none."""
    if name == "id":
        return doc.id
    if name == "parent_id":
        return doc.parent_id or doc.id
    if name in ("title", "text"):
        return getattr(doc, name)
    return doc.metadata.get(name, MISSING)


def _condition(name: str, value) -> Callable[[object], bool]:
    """The test one key's value applies to a document's field value."""
    if not isinstance(value, Mapping):
        return lambda v: v is not MISSING and v == value
    if len(value) != 1 or next(iter(value)) not in OPERATORS:
        raise ValueError(f"where[{name!r}]: expected a value or one of {{{', '.join(OPERATORS)}}}: ..., got {dict(value)!r}")
    op, arg = next(iter(value.items()))
    if op == "$in":
        if isinstance(arg, (str, bytes)) or not isinstance(arg, Iterable):
            raise ValueError(f"where[{name!r}]: $in takes a list of values, not {arg!r}")
        values = list(arg)
        return lambda v: v is not MISSING and any(v == a for a in values)
    if not isinstance(arg, str):
        raise ValueError(f"where[{name!r}]: {op} takes a string, not {arg!r}")
    if op == "$prefix":
        return lambda v: isinstance(v, str) and v.startswith(arg)
    try:
        pattern = glob_pattern(arg) if op == "$glob" else re.compile(arg)
    except re.error as exc:
        raise ValueError(f"where[{name!r}]: bad {op} pattern {arg!r}: {exc}") from exc
    if op == "$glob":
        return lambda v: isinstance(v, str) and pattern.match(v) is not None
    return lambda v: isinstance(v, str) and pattern.search(v) is not None


def compile_where(where: Mapping) -> Callable[[Document], bool]:
    """A predicate over documents for a ``where`` dict; bad filters raise ``ValueError`` naming the key."""
    if not isinstance(where, Mapping):
        raise ValueError(f"where must be a dict of field: condition, not {type(where).__name__}")
    tests = []
    for name, value in where.items():
        if not isinstance(name, str):
            raise ValueError(f"where: field names are strings, not {name!r}")
        tests.append((name, _condition(name, value)))
    return lambda doc: all(test(field_value(doc, name)) for name, test in tests)


def matching_ids(where: Mapping, documents: Iterable[Document]) -> list[str]:
    """Ids of the documents a ``where`` filter keeps, in the order given."""
    keep = compile_where(where)
    return [doc.id for doc in documents if keep(doc)]


def where_key(where: Mapping) -> str | None:
    """A cache key for a filter (canonical JSON); ``None`` when the filter holds values JSON cannot write."""
    try:
        return json.dumps(where, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return None


class FilterCache:
    """The id sets of the last ``size`` filters, valid until the documents change (:meth:`clear`); thread-safe.

    A filter evaluated while a change lands is returned but not kept (its generation is stale).
    """

    def __init__(self, size: int = 64):
        self.size, self._generation, self._sets = size, 0, {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._sets.clear()

    def ids(self, where: Mapping | None, documents: Callable[[], Iterable[Document]]) -> list[str] | None:
        """The ids ``where`` keeps among ``documents()`` (None for no filter), from the cache when it was asked before."""
        if not where:
            return None
        key = where_key(where)
        with self._lock:
            generation, cached = self._generation, self._sets.get(key) if key else None
        if cached is not None:
            return cached
        ids = matching_ids(where, documents())
        with self._lock:
            if key and generation == self._generation:
                if len(self._sets) >= self.size:
                    self._sets.pop(next(iter(self._sets)))
                self._sets[key] = ids
        return ids
