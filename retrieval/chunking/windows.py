"""Long documents cut into chunks the model reads whole: token windows, the text's own structure, or a caller's chunker.

A document whose embedded text (:func:`retrieval.documents.document_text`) is longer than
the model's length would be truncated: everything after the first 256 tokens (MiniLM) would
be invisible to dense search. :func:`chunk_documents` replaces it by chunks ``parent#0``,
``parent#1``, ... that each fit, carrying ``parent_id`` and the character offsets
``start``/``end`` of the chunk in the parent's ``text``, the parent's title and metadata.

The default cut is a window of the model's own tokens (offsets from the fast tokenizer), as
many tokens as fit beside the title and the special tokens, each window overlapping the last
by ``overlap`` tokens (default 32, an eighth of MiniLM's window; not tuned by measurement yet): a
sentence cut at a window's end is whole in the next one. Cutting by tokens rather than characters or
words makes every chunk fill the window exactly, whatever the text's characters per token. A
20,149-token document becomes 92 chunks at MiniLM's 256, and a question about its last paragraph
finds it, which the same document truncated does not (tests/retrieval/chunking/test_windows.py).

``chunker="auto"`` (the default) cuts a long document that names a source file (metadata
``path``, ``file_path``, ``source``, ``filename`` or ``file_name``, else an id such as ``docs/setup.md``)
whose extension the structural registry knows (code, markup and data by tree-sitter, Markdown
sections: :func:`retrieval.chunking.structural.language_for`) at its definitions or sections
instead, as the codebase index does (:func:`retrieval.chunking.structural.structural_chunks`): a
chunk is one function, class body or section, with the document's title followed by the qualified
name (``Retriever.add``, ``Set up > Tests``) as its title. Only long documents are cut, as with
windows: a document that fits is embedded whole, whatever its kind. Measured on code (BENCHMARKS.md,
"code sets", MiniLM at 256 tokens): searching whole files for the function a doc comment describes,
tree-sitter chunks scored nDCG@10 0.679 against 0.499 for line windows on Go's standard library and
0.433 against 0.413 on lodash; a chunk holds one whole definition instead of pieces of two windows.
Markdown sections against windows are not measured yet. The structural module (and tree-sitter,
2.5 s of import on the loaded machine) loads only when a long document names a file with an
extension, so plain text pays nothing for it. ``chunker="windows"`` cuts every
document into token windows; a callable taking a :class:`~retrieval.documents.Document` returns
its pieces, each a ``(start, end)`` character span of its text or a mapping with ``text`` and
optional ``start``, ``end``, ``title`` and metadata keys. A piece still over the model's length
is cut into token windows in turn.

Examples
--------
>>> window_spans([(0, 4), (5, 9), (10, 14), (15, 19)], size=2, overlap=1)
[(0, 9), (5, 14), (10, 19)]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from encoder.sentence import guard_tokenizer
from retrieval.documents import Document, Hit

log = logging.getLogger(__name__)
DEFAULT_OVERLAP = 32
MARGIN = 1  # a window re-tokenized may gain a token at a word-piece boundary
AUTO, WINDOWS = "auto", "windows"
PATH_KEYS = ("path", "file_path", "source", "filename", "file_name")  # ours, LlamaIndex's, LangChain's
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9_+-]*$")  # "a.md", not "2019.03" nor "doc#1"

Chunker = Callable[[Document], Sequence]
CountTokens = Callable[[list[str]], Sequence[int]]
TokenOffsets = Callable[[list[str]], list[list[tuple[int, int]]]]


@dataclass
class Piece:
    """One piece of a document: its text, its span in the parent's text (when it is a slice) and its own fields."""

    text: str
    start: int | None = None
    end: int | None = None
    title: str | None = None
    metadata: dict = field(default_factory=dict)


def chunk_id(parent_id: str, i: int) -> str:
    return f"{parent_id}#{i}"


def window_spans(offsets: Sequence[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of ``size`` tokens, each starting ``size - overlap`` tokens after the last."""
    if size < 1:
        raise ValueError(f"a chunk must hold at least one token, not {size}")
    overlap = max(0, min(overlap, size - 1))
    step, spans, first = size - overlap, [], 0
    while first < len(offsets):
        last = min(first + size, len(offsets)) - 1
        spans.append((int(offsets[first][0]), int(offsets[last][1])))
        if last == len(offsets) - 1:
            break
        first += step
    return spans


def model_token_offsets(model) -> TokenOffsets:
    """Character offsets of each text's tokens under a model's tokenizer (words for a slow tokenizer)."""
    tokenizer, lock = model.tokenizer, guard_tokenizer(model)
    if not getattr(tokenizer, "is_fast", False):
        return lambda texts: [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]

    def offsets(texts: list[str]) -> list[list[tuple[int, int]]]:
        with lock:
            encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        return [[(a, b) for a, b in row if b > a] for row in encoded["offset_mapping"]]

    return offsets


def as_pieces(doc: Document, result) -> list[Piece]:
    """A chunker's answer as pieces; anything else is a ``ValueError`` naming the document."""
    pieces = []
    for i, item in enumerate(result):
        if isinstance(item, Mapping) and isinstance(item.get("text"), str):
            rest = {k: v for k, v in item.items() if k not in ("text", "start", "end", "title")}
            pieces.append(Piece(item["text"], item.get("start"), item.get("end"), item.get("title"), rest))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, int) for x in item):
            start, end = item
            if not 0 <= start <= end <= len(doc.text):
                raise ValueError(f"document {doc.id!r}: chunk {i} span {item} is outside its {len(doc.text)} characters")
            pieces.append(Piece(doc.text[start:end], start, end))
        else:
            raise ValueError(f"document {doc.id!r}: chunk {i} is {type(item).__name__}; a chunker returns (start, end) "
                             "spans or dicts with 'text'")
    return [p for p in pieces if p.text.strip()]


def chunker_setting(chunker) -> Chunker | str:
    """``"auto"`` (also for None), ``"windows"`` or a callable; anything else is a ``ValueError``."""
    if chunker is None:
        return AUTO
    if callable(chunker) or chunker in (AUTO, WINDOWS):
        return chunker
    raise ValueError(f"chunker must be 'auto', 'windows' or a callable returning a document's pieces, not {chunker!r}")


def document_path(doc: Document) -> str | None:
    """The file a document names (metadata ``path``, ``file_path``, ``source``, ... or its id), if it has an extension."""
    for value in [*(doc.metadata.get(key) for key in PATH_KEYS), doc.id]:
        if isinstance(value, str) and _EXTENSION.search(PurePath(value).name):
            return value
    return None


def line_spans(text: str) -> tuple[list[int], list[int]]:
    """Character offsets where each line starts and ends (its line break excluded), lines numbered as
    :func:`retrieval.chunking.units.split_lines` numbers them."""
    starts, ends, position = [], [], 0
    for match in re.finditer(r"\r\n|\r|\n", text):
        starts.append(position)
        ends.append(match.start())
        position = match.end()
    return starts + [position], ends + [len(text)]


def structural_pieces(doc: Document, path: str) -> list[Piece] | None:
    """``doc`` cut at the definitions or sections of the language ``path`` names; None where it names none.

    Each piece is the exact slice of the document's lines (indentation kept, so offsets point into
    its text), titled with the document's title and the unit's qualified name.
    """
    from retrieval.chunking import structural  # tree-sitter loads here: for the first code or Markdown document

    try:
        if structural.language_for(path) is structural.PLAIN_TEXT:
            return None
        chunks = structural.structural_chunks(path, doc.text)
    except ImportError as exc:  # a grammar package missing: the document is cut as plain text
        log.warning("document %r (%s) cut into token windows: %s", doc.id, path, exc)
        return None
    starts, ends = line_spans(doc.text)
    pieces = []
    for chunk in chunks:
        start, end = starts[chunk.start - 1], ends[chunk.end - 1]
        title = f"{doc.title} {chunk.name}".strip() if chunk.name else None
        pieces.append(Piece(doc.text[start:end], start, end, title))
    return pieces


@dataclass
class Chunking:
    """How documents are cut: the model's length, its token counter and offsets, the overlap, a chunker.

    ``chunker``: ``"auto"`` (default; None too), ``"windows"`` or a callable (see the module docstring).
    """

    max_tokens: int
    count_tokens: CountTokens
    token_offsets: TokenOffsets
    overlap: int = DEFAULT_OVERLAP
    chunker: Chunker | str | None = AUTO

    def __post_init__(self):
        self.chunker = chunker_setting(self.chunker)

    def windows(self, piece: Piece, title: str) -> list[Piece]:
        """``piece`` cut into token windows that fit beside ``title``."""
        budget = self.max_tokens - int(self.count_tokens([title])[0]) - MARGIN
        spans = window_spans(self.token_offsets([piece.text])[0], max(budget, 1), self.overlap)
        base = piece.start
        return [Piece(piece.text[a:b], None if base is None else base + a, None if base is None else base + b, piece.title,
                      piece.metadata) for a, b in spans]

    def split(self, docs: list[Document]) -> list[Document]:
        """The documents to index: short ones as they are, long ones (or those the chunker cuts) as chunks."""
        custom = callable(self.chunker)
        counts = None if custom else self.count_tokens([d.full_text for d in docs])
        out = []
        for i, doc in enumerate(docs):
            if custom:
                pieces = as_pieces(doc, self.chunker(doc))
                if len(pieces) == 1 and pieces[0].text == doc.text and not pieces[0].metadata:
                    pieces = [] if self.count_tokens([doc.full_text])[0] <= self.max_tokens else pieces
            elif counts[i] <= self.max_tokens:
                pieces = []
            else:
                path = document_path(doc) if self.chunker == AUTO else None
                pieces = (path and structural_pieces(doc, path)) or [Piece(doc.text, 0, len(doc.text))]
            out.extend((self._chunks(doc, pieces) if pieces else None) or [doc])  # nothing to cut: the document as it is
        return out

    def _chunks(self, doc: Document, pieces: list[Piece]) -> list[Document]:
        fitted = []
        lengths = self.count_tokens([f"{p.title if p.title is not None else doc.title} {p.text}".strip() for p in pieces])
        for piece, length in zip(pieces, lengths):
            title = piece.title if piece.title is not None else doc.title
            fitted.extend(self.windows(piece, title) if length > self.max_tokens else [piece])
        return [
            Document(chunk_id(doc.id, j), p.text, p.title if p.title is not None else doc.title, {**doc.metadata, **p.metadata},
                     parent_id=doc.id, start=p.start, end=p.end)
            for j, p in enumerate(fitted)
        ]


def best_chunk_per_document(hits: list[Hit], document: Callable[[str], Document | None]) -> list[Hit]:
    """Documents ranked by their best chunk (MaxP): each parent once, with its own text, the best chunk's score and offsets.

    ``document(parent_id)`` gives the stored document (None when it went since the search).
    """
    best: dict[str, Hit] = {}
    for hit in hits:
        parent = hit.parent_id or hit.id
        if parent in best:
            continue
        doc = document(parent) or Document(parent, hit.text, hit.title, hit.metadata)
        best[parent] = Hit(id=parent, score=hit.score, text=doc.text, title=doc.title, metadata=doc.metadata,
                           start=hit.start, end=hit.end)
    return list(best.values())
