"""Language structure of source files, and chunks of them that fit a model.

A :class:`Language` turns the text of a file into :class:`Unit` s, the pieces a reader
names. Twenty-one languages of code, markup and data (Python, JavaScript, TypeScript, Go, Rust,
Java, C, C++, C#, Ruby, PHP, Kotlin, Swift, Scala, Bash, SQL, HTML, CSS, JSON, YAML, TOML)
are read by tree-sitter (:mod:`retrieval.chunking.treesitter`, one engine and a table of
queries in :mod:`retrieval.chunking.grammars`): functions, methods, classes, structs,
interfaces, impls, with qualified names, exact 1-based lines and doc comments. Markdown
sections come from the hand-written :class:`MarkdownLanguage`: tree-sitter-markdown makes no
section of a setext heading (``Title`` over ``-----``). Python was read by the stdlib ``ast``
before; on the Python 3.11 stdlib code set (files without syntax errors) both give the
same 4,691 pairs, text for text, parsing in about the same time (6.3 s ``ast``, 7.6 s tree-sitter for 4.7 MB, under load), and
tree-sitter still finds the definitions of a file with a syntax error, so ``ast`` went.
Languages are found by file extension in a small registry (:func:`register`,
:func:`language_for`); any other text file is :data:`PLAIN_TEXT`, one unit that the chunker
cuts into line windows, as is a file mostly made of syntax errors.

:func:`chunk_files` cuts files into :class:`Chunk` s for indexing. A unit with children
(a module, a class) is replaced by its children and the lines between them (imports, a
class's own header and docstring), so every definition is its own chunk and every
non-blank line is in exactly one chunk. A chunk over the model's length (counted with
the model's own tokenizer on the text it embeds, :func:`retrieval.documents.document_text`)
is cut at its inner boundaries first (:func:`fit_chunks`): before the statements of the
function body, then before those of a block inside a statement still too long, then at
blank-line paragraphs (a Markdown section, a long docstring), and only then by lines, a single
over-long line by characters; a definition's doc comment, decorators and header stay together.
Cut by lines alone, 304 of the 391 continuation pieces of the Go code set's split units
(``evaluation.codeset --corpus chunks``, ``benchmarks/chunk_cuts.py``) began inside a statement
or an inner block (a loop cut from its header), 209 of 470 after (left: statements too long
alone); in lodash 41 of 47 before, 15 of 54 after. Ranking did not move (nDCG@10 Go 0.676 against
0.679, lodash 0.431 against 0.433; BENCHMARKS.md): the gain is chunks a reader can act on. The boundaries come from the parse
(:func:`retrieval.chunking.treesitter.line_levels`, about 5% of parsing time). Plain text keeps
plain line windows. Token counts come in large batches
from a ``count_tokens`` callable, so a whole repository costs a few tokenizer passes.

Examples
--------
>>> from retrieval.chunking.structural import language_for
>>> units = language_for("m.py").units('def f(x):\\n    "Double x."\\n    return 2 * x\\n')
>>> [(u.kind, u.name, u.start, u.end, u.docstring) for u in units[0].children]
[('function', 'f', 1, 3, 'Double x.')]
>>> units[0].children[0].code
'def f(x):\\n    return 2 * x'
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath

import numpy as np

from retrieval.chunking.grammars import LANGUAGES as TREE_SITTER_LANGUAGES
from retrieval.chunking.treesitter import tree_sitter_language
from retrieval.chunking.units import Language, Unit, UnparsableError, split_lines
from retrieval.documents import document_text

__all__ = ["Chunk", "Language", "Unit", "UnparsableError", "chunk_files", "file_units", "fit_chunks", "language_for",
           "register", "split_lines", "structural_chunks", "PLAIN_TEXT"]

CountTokens = Callable[[list[str]], Sequence[int]]
"""Tokens of each text as the model embeds it (special tokens included)."""

COUNT_BATCH = 2048  # texts per tokenizer call: large enough to be cheap, small enough to bound memory


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


class MarkdownLanguage:
    """Markdown sections: each ATX (``## Title``) or setext heading starts one; fenced code is skipped.

    A section runs to the next heading of any level; its name is the path of headings
    above it (``"Set up > Tests"``). Text before the first heading is a section named ``""``.
    """

    name = "markdown"
    extensions = (".md", ".markdown", ".mdx")

    def units(self, text: str) -> list[Unit]:
        lines = split_lines(text)
        headings: list[tuple[int, int, str]] = []  # (line, level, title)
        fence = None
        paragraph = False  # the previous line is paragraph text (a setext heading's title)
        for number, line in enumerate(lines, 1):
            if fence:
                stripped = line.strip()
                if len(line) - len(line.lstrip(" ")) < 4 and stripped.startswith(fence) and not stripped.strip(fence[0]):
                    fence = None
                continue
            if match := _FENCE.match(line):
                fence, paragraph = match.group(1), False
                continue
            if match := _ATX.match(line):
                headings.append((number, len(match.group(1)), (match.group(2) or "").strip()))
                paragraph = False
                continue
            if paragraph and (match := _SETEXT.match(line)):
                headings.append((number - 1, 1 if match.group(1)[0] == "=" else 2, lines[number - 2].strip()))
                paragraph = False
                continue
            paragraph = bool(line.strip())
        units, stack = [], []
        if lines and (not headings or headings[0][0] > 1):
            units.append(Unit("section", "", 1, headings[0][0] - 1 if headings else len(lines), code="\n".join(lines[: headings[0][0] - 1] if headings else lines)))
        for i, (number, level, title) in enumerate(headings):
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            end = headings[i + 1][0] - 1 if i + 1 < len(headings) else len(lines)
            name = " > ".join(t for _, t in stack if t)
            units.append(Unit("section", name, number, end, code="\n".join(lines[number - 1 : end])))
        return units


class PlainText:
    """Any other text: the whole file as one unit, which the chunker cuts into line windows."""

    name = "text"
    extensions: tuple[str, ...] = ()

    def units(self, text: str) -> list[Unit]:
        lines = split_lines(text)
        return [Unit("text", "", 1, len(lines), code="\n".join(lines))] if lines else []


PLAIN_TEXT = PlainText()
_LANGUAGES: dict[str, Language | str] = {}  # a str: a tree-sitter language, built on first use


def register(language: Language | str, extensions: Iterable[str] | None = None) -> None:
    """Use ``language`` (or the tree-sitter language of that name) for files with these extensions.

    The default extensions are the language's own.
    """
    if extensions is None:
        extensions = TREE_SITTER_LANGUAGES[language]["extensions"] if isinstance(language, str) else language.extensions
    for ext in extensions:
        _LANGUAGES[ext.lower() if ext.startswith(".") else f".{ext.lower()}"] = language


def language_for(path: str | PurePath) -> Language:
    """The registered language of a file by its extension; :data:`PLAIN_TEXT` otherwise."""
    language = _LANGUAGES.get(PurePath(path).suffix.lower(), PLAIN_TEXT)
    return tree_sitter_language(language) if isinstance(language, str) else language


for _name in TREE_SITTER_LANGUAGES:
    register(_name)
register(MarkdownLanguage())  # tree-sitter-markdown makes no section of a setext heading


def file_units(path: str | PurePath, text: str) -> tuple[Language, list[Unit]]:
    """The units of a file by its language, or as plain text when its language cannot read it."""
    language = language_for(path)
    try:
        return language, language.units(text)
    except UnparsableError:
        return PLAIN_TEXT, PLAIN_TEXT.units(text)


# -- chunks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """A piece of a file to embed: lines ``start..end`` of ``path`` (1-based, inclusive)."""

    path: str
    start: int
    end: int
    kind: str
    name: str
    text: str
    language: str
    signature: str = ""  # the unit's header on one line (``def f(x)``), "" for the lines between units
    docstring: str = ""  # the unit's docstring or doc comment, cleaned
    # per line of ``text``: how good a place to start a piece (lower is better, 0: only as a last resort)
    breaks: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def title(self) -> str:
        """Embedded before the text: the path and the qualified name, so both can be searched."""
        return f"{self.path} {self.name}".strip()

    @property
    def full_text(self) -> str:
        """What the model embeds (:func:`retrieval.documents.document_text`: ``title + " " + text``)."""
        return document_text(self)


GLUE_LINES = 3  # a gap this short before a definition (comments, "else:", a class header) joins it
PARAGRAPH = 1 << 20  # a line after a blank line: a place to cut after every syntax boundary, before any other line


def line_breaks(lines: list[str], levels: Sequence[int] = ()) -> list[int]:
    """Per line, where a piece may start: the syntax depth of ``levels`` (0: none), else :data:`PARAGRAPH` after a blank line."""
    return [level or (PARAGRAPH if i and line.strip() and not lines[i - 1].strip() else 0)
            for i, (line, level) in enumerate(zip(lines, list(levels) + [0] * (len(lines) - len(levels))))]


def _leaves(unit: Unit) -> Iterable[tuple[str, str, int, int, Unit | None]]:
    """``(kind, name, start, end, leaf)`` covering ``unit``: its children, and its own lines between them (leaf None)."""
    if not unit.children:
        yield unit.kind, unit.name, unit.start, unit.end, unit
        return
    cursor = unit.start
    for child in unit.children:
        if child.start > cursor:
            yield unit.kind, unit.name, cursor, child.start - 1, None
        yield from _leaves(child)
        cursor = child.end + 1
    if cursor <= unit.end:
        yield unit.kind, unit.name, cursor, unit.end, None


def structural_chunks(path: str, text: str) -> list[Chunk]:
    """One chunk per leaf unit (any length), blank edge lines trimmed and blank pieces dropped.

    A gap between definitions of at most :data:`GLUE_LINES` non-blank lines (a comment
    above a function, an ``else:``, a short class header) joins the definition after it
    rather than standing alone.
    """
    language, units = file_units(path, text)
    lines = split_lines(text)
    # plain text stays in line windows; code is cut at its syntax, Markdown at its paragraphs
    breaks = [] if language is PLAIN_TEXT else line_breaks(lines, units[0].breaks if len(units) == 1 else ())
    pieces = []
    for unit in units:
        for kind, name, start, end, leaf in _leaves(unit):
            while start <= end and not lines[start - 1].strip():
                start += 1
            while end >= start and not lines[end - 1].strip():
                end -= 1
            if start > end:
                continue
            previous = pieces[-1] if pieces else None
            if previous and previous[4] is None and leaf is not None and sum(1 for line in lines[previous[2] - 1 : previous[3]] if line.strip()) <= GLUE_LINES:
                start = pieces.pop()[2]
            pieces.append((kind, name, start, end, leaf))
    return [
        Chunk(path, start, end, kind, name, textwrap.dedent("\n".join(lines[start - 1 : end])), language.name,
              leaf.signature if leaf else "", leaf.docstring if leaf else "", _piece_breaks(breaks, start, end, leaf))
        for kind, name, start, end, leaf in pieces
    ]


def _piece_breaks(breaks: list[int], start: int, end: int, leaf: Unit | None) -> tuple[int, ...]:
    """The breaks of lines ``start..end``; a definition's doc comment, decorators and header are never cut apart.

    They are its siblings in the tree (at its own depth or above), where its body is deeper.
    """
    piece = list(breaks[start - 1 : end])
    if leaf is not None and piece and start <= leaf.start <= end and (own := breaks[leaf.start - 1]):
        for i in range(leaf.start - start + 1, len(piece)):
            if piece[i] <= own:
                piece[i] = 0
    return tuple(piece)


def _count(count_tokens: CountTokens, texts: list[str]) -> np.ndarray:
    out = np.empty(len(texts), dtype=np.int64)
    for i in range(0, len(texts), COUNT_BATCH):
        out[i : i + COUNT_BATCH] = np.asarray(count_tokens(texts[i : i + COUNT_BATCH]))
    return out


def _window(chunk: Chunk, lines: list[str], first: int, last: int) -> Chunk | None:
    """Lines ``first..last`` (0-based, inclusive, within ``chunk``) as a chunk, blank edges trimmed; None if blank."""
    while first <= last and not lines[first].strip():
        first += 1
    while last >= first and not lines[last].strip():
        last -= 1
    if first > last:
        return None
    return replace(chunk, start=chunk.start + first, end=chunk.start + last, text=textwrap.dedent("\n".join(lines[first : last + 1])),
                   breaks=chunk.breaks[first : last + 1])


def _pack_lines(chunk: Chunk, line_tokens: np.ndarray, budget: int) -> list[Chunk]:
    """Consecutive lines of ``chunk`` packed greedily into windows of at most ``budget`` tokens."""
    lines = chunk.text.split("\n")
    windows, first, used = [], 0, 0
    for i, tokens in enumerate(line_tokens):
        if i > first and used + tokens > budget:
            windows.append(_window(chunk, lines, first, i - 1))
            first, used = i, 0
        used += tokens
    windows.append(_window(chunk, lines, first, len(lines) - 1))
    return [w for w in windows if w is not None]


def _ranges(sums: np.ndarray, breaks: Sequence[int], lo: int, hi: int, budget: int) -> list[tuple[int, int]]:
    """Lines ``lo..hi-1`` in consecutive ranges of at most ``budget`` tokens, cut at the best breaks first.

    ``sums`` are the prefix sums of the line counts. The range is cut before every line of the
    lowest break level inside it (the statements of a function body, say); a segment still over
    is cut at its own lowest level in turn, and the segments are then packed greedily, in order,
    while they fit. Lines with no break (0) are cut only when no break is left, one line at a time.
    """
    if sums[hi] - sums[lo] <= budget or hi - lo == 1:
        return [(lo, hi)]
    level = min((breaks[i] for i in range(lo + 1, hi) if breaks[i]), default=0)
    cuts = [lo, *(i for i in range(lo + 1, hi) if not level or breaks[i] == level), hi]  # no break left: every line
    segments = []
    for a, b in zip(cuts, cuts[1:]):
        segments += _ranges(sums, breaks, a, b, budget) if sums[b] - sums[a] > budget else [(a, b)]
    out: list[tuple[int, int]] = []
    for a, b in segments:
        if out and sums[b] - sums[out[-1][0]] <= budget:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _pack(chunk: Chunk, line_tokens: np.ndarray, budget: int) -> list[Chunk]:
    """``chunk`` cut into pieces of at most ``budget`` tokens at its syntax or paragraph breaks, else by lines."""
    if not any(chunk.breaks[1:]):
        return _pack_lines(chunk, line_tokens, budget)
    lines = chunk.text.split("\n")
    sums = np.concatenate([[0], np.cumsum(line_tokens)])
    pieces = (_window(chunk, lines, a, b - 1) for a, b in _ranges(sums, chunk.breaks, 0, len(lines), budget))
    return [p for p in pieces if p is not None]


def _split_line(chunk: Chunk, pieces: int) -> list[Chunk]:
    """A one-line chunk cut into ``pieces`` character pieces (all keep the line's number)."""
    size = max(1, math.ceil(len(chunk.text) / max(pieces, 2)))
    return [replace(chunk, text=chunk.text[i : i + size]) for i in range(0, len(chunk.text), size)]


def _halve(chunk: Chunk) -> list[Chunk]:
    """Two halves of a chunk still over the limit: by lines, or by characters for a single line."""
    lines = chunk.text.split("\n")
    if len(lines) == 1:
        return _split_line(chunk, 2)
    middle = len(lines) // 2
    return [w for w in (_window(chunk, lines, 0, middle - 1), _window(chunk, lines, middle, len(lines) - 1)) if w is not None]


def fit_chunks(chunks: list[Chunk], count_tokens: CountTokens, max_tokens: int) -> list[Chunk]:
    """Cut every chunk over ``max_tokens`` (as embedded, title included) into consecutive pieces that fit.

    Each line is counted on its own (one batched count of the lines of all long chunks); the
    lines are cut at the chunk's best breaks first (:func:`_ranges`: statements of the body,
    then of inner blocks, then paragraphs) and packed greedily, or by lines where the chunk has
    no breaks (plain text); then every piece is counted again as a whole; a piece still over (a
    tokenizer is not exactly additive over lines) is halved until it fits. A piece of a
    single character is kept whatever its count (only an absurdly long title does that).
    """
    if not chunks:
        return []
    counts = _count(count_tokens, [c.full_text for c in chunks])
    over = [i for i, n in enumerate(counts) if n > max_tokens]
    if not over:
        return list(chunks)
    specials = int(_count(count_tokens, [""])[0])  # [CLS]/[SEP] and any prompt: in every count
    long_chunks = [chunks[i] for i in over]
    headers = _count(count_tokens, [c.title for c in long_chunks])
    line_counts = np.maximum(_count(count_tokens, [line + "\n" for c in long_chunks for line in c.text.split("\n")]) - specials, 0)
    pieces: dict[int, list[list]] = {}  # chunk index -> [piece, fits?] in file order
    offset = 0
    for i, chunk, header in zip(over, long_chunks, headers):
        n = chunk.text.count("\n") + 1
        tokens = line_counts[offset : offset + n]
        offset += n
        budget = max(max_tokens - int(header), max_tokens // 4)
        cut = _split_line(chunk, math.ceil(int(tokens[0]) / budget)) if n == 1 else _pack(chunk, tokens, budget)
        pieces[i] = [[p, None] for p in cut]
    while todo := [entry for entries in pieces.values() for entry in entries if entry[1] is None]:
        for entry, n in zip(todo, _count(count_tokens, [e[0].full_text for e in todo])):
            entry[1] = bool(n <= max_tokens or len(entry[0].text) <= 1)
        for i, entries in pieces.items():
            pieces[i] = [x for e in entries for x in ([e] if e[1] else [[h, None] for h in _halve(e[0])])]
    return [p for i, chunk in enumerate(chunks) for p in ([e[0] for e in pieces[i]] if i in pieces else [chunk])]


def chunk_files(files: Iterable[tuple[str, str]], count_tokens: CountTokens, max_tokens: int) -> list[Chunk]:
    """Chunks of ``(path, text)`` files by language structure, each at most ``max_tokens`` as embedded.

    Parameters
    ----------
    files
        Relative path (it names the language and titles every chunk) and text of each file.
    count_tokens
        Token count of each text of a list, as the model embeds it (special tokens included),
        e.g. ``lambda texts: encoder.token_lengths(model, texts)``.
    max_tokens
        The model's maximum length.
    """
    chunks = [c for path, text in files for c in structural_chunks(path, text)]
    return fit_chunks(chunks, count_tokens, max_tokens)
