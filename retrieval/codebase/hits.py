"""Hits a person can act on: ``path:line  Class.method  score``, the unit's signature and doc, or JSON.

A codebase hit is a chunk (:mod:`retrieval.chunking.structural`): lines ``start..end`` of a
file, with the qualified name, kind and language of the unit it belongs to. Printed as it
was before (``path:line  score  first line``), the first line of the answer's chunk was a
decorator or a line of other code glued above the definition for 5 of the 50 answers of this
repository's question list (``benchmarks/data/codebase_questions.jsonl``), and the enclosing
symbol was never shown.
So a hit here points at the unit's *signature* line (the first line naming the symbol,
after decorators and doc comments) and shows a few lines: the signature and the first
lines of its docstring or doc comment, which is what tells a reader whether to open it.

:func:`hit_record` gives the same as a JSON-ready dict (``path``, ``line``, ``end_line``,
``symbol``, ``kind``, ``language``, ``score``, ``snippet``) for editors and agents.

:func:`apply_floor` drops hits far below the best and says when even the best is weak.
The rule and its numbers were chosen on the question list (``benchmarks/codebase_questions.py``
prints the advice, results in BENCHMARKS.md): see :data:`RELATIVE_FLOOR` and :data:`WEAK_TOP`.

Examples
--------
>>> from retrieval.documents import Hit
>>> hit = Hit("a.py#0", 0.61, '@cache\\ndef area(r):\\n    "Area of a circle."\\n    return 3.14 * r * r',
...           metadata={"path": "a.py", "start": 10, "end": 13, "name": "area", "kind": "function", "language": "python"})
>>> print(format_hit(hit, "/nonexistent"))
/nonexistent/a.py:11  area  0.610
    def area(r):
        "Area of a circle."
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from retrieval.documents import Hit

SNIPPET_LINES = 3  # signature + two lines of doc: enough to decide, short enough for 10 hits on a screen
DOC_LANGUAGES = frozenset({"markdown", "text", "rst", "asciidoc", "org"})  # prose; --code-only leaves these out

# Hits scoring below RELATIVE_FLOOR[mode] x the best are dropped: on the question list (BENCHMARKS.md,
# "Codebase questions") a correct hit in the top 10 scored at least 0.671 x the best in dense mode, 0.533 in
# lexical, 0.522 in hybrid (convex, dense share 0.7), so these floors drop no answer seen. A best dense score
# under WEAK_TOP gets a "no good match" line: every answered question's best scored >= 0.413, every
# question the code does not answer < 0.378 (10 of them), and 0.39 lies between.
RELATIVE_FLOOR = {"dense": 0.65, "lexical": 0.5, "hybrid": 0.5}
WEAK_TOP = 0.39

_DECORATOR = re.compile(r"^\s*@")
_COMMENT = re.compile(r"^\s*(#|//|/\*|\*|--|;|<!--|\"\"\"|''')")
_DOC_OPEN = re.compile(r"^\s*[rRbBuU]?(\"\"\"|'''|\"|')")


def _short_name(symbol: str) -> str:
    """The last part of a qualified name: ``Retriever.add`` -> ``add``, ``Set up > Tests`` -> ``Tests``."""
    for separator in (" > ", "::", "."):
        symbol = symbol.rsplit(separator, 1)[-1]
    return symbol.strip()


def signature_offset(lines: list[str], symbol: str, prose: bool = False) -> int:
    """Index in ``lines`` of the unit's signature: the first line naming it outside decorators and comments
    (``prose``: any line naming it, such as a Markdown heading).

    Falls back to the first line that is not blank, a decorator or a comment, then to 0.
    """
    short = _short_name(symbol)
    if short:
        pattern = re.compile(rf"(?<![\w$]){re.escape(short)}(?![\w$])")
        for i, line in enumerate(lines):
            if pattern.search(line) and (prose or not _DECORATOR.match(line) and not _COMMENT.match(line)):
                return i
    for i, line in enumerate(lines):
        if line.strip() and not _DECORATOR.match(line) and not _COMMENT.match(line):
            return i
    return 0


def _signature_end(lines: list[str], at: int) -> int:
    """The last line of a signature starting at ``at`` (a Python ``def f(\n a,\n):`` spans lines): ends in ``:`` or ``{``."""
    for j in range(at, min(at + 8, len(lines))):
        if lines[j].split(" #")[0].rstrip().endswith((":", "{")):
            return j
    return at


def _doc_lines(lines: list[str], at: int) -> list[str]:
    """The docstring after the signature (Python) or the comment block just above it (most other languages)."""
    rest = [line for line in lines[_signature_end(lines, at) + 1 :] if line.strip()]
    if rest and (match := _DOC_OPEN.match(rest[0])):
        quote = match.group(1)
        body = rest[0][match.end() :]
        if len(quote) == 1 or quote in body:
            return rest[:1]
        return rest[: next((i for i, line in enumerate(rest[1:], 2) if quote in line), len(rest))]
    before = []
    for line in reversed(lines[:at]):
        if not _COMMENT.match(line) or not line.strip():
            break
        before.insert(0, line)
    return before


def snippet(hit: Hit, lines: int = SNIPPET_LINES, width: int = 100) -> tuple[int, list[str]]:
    """``(line, text)``: the 1-based file line of the hit's signature and up to ``lines`` lines to show.

    The shown lines are the signature and the first lines of its doc (docstring or doc
    comment); where the unit has none, the lines that follow the signature.
    """
    text_lines = hit.text.split("\n")
    prose = hit.metadata.get("language") in DOC_LANGUAGES
    at = signature_offset(text_lines, hit.metadata.get("name", ""), prose)
    doc = [] if prose else _doc_lines(text_lines, at)
    shown = [text_lines[at]] + (doc or [line for line in text_lines[at + 1 :] if line.strip()])
    shown = textwrap.dedent("\n".join(line.rstrip() for line in shown[:lines])).split("\n")  # a method's own indent goes
    shown = [line if len(line) <= width else line[: width - 3] + "..." for line in shown]
    return int(hit.metadata.get("start", 1)) + at, shown


def shown_path(root: str | Path, path: str) -> str:
    """``root/path``, relative to the working folder where it lies inside it (as an editor opens it)."""
    full = Path(root) / path
    try:
        return str(full.relative_to(Path.cwd()))
    except ValueError:
        return str(full)


def hit_record(hit: Hit, root: str | Path, lines: int = SNIPPET_LINES) -> dict:
    """A hit as a JSON-ready dict: where to jump (``path``, ``line``), the span, the symbol, the score, the snippet."""
    line, shown = snippet(hit, lines, width=10_000)
    meta = hit.metadata
    return {
        "path": shown_path(root, meta["path"]), "line": line, "start_line": int(meta.get("start", line)),
        "end_line": int(meta.get("end", line)), "symbol": meta.get("name", ""), "kind": meta.get("kind", ""),
        "language": meta.get("language", ""), "score": round(float(hit.score), 6), "snippet": "\n".join(shown),
    }


def format_hit(hit: Hit, root: str | Path, width: int = 100, lines: int = SNIPPET_LINES) -> str:
    """``path:line  symbol  score`` then ``lines`` indented lines of signature and doc (0: the header only)."""
    line, shown = snippet(hit, max(lines, 1), width - 4)
    symbol = hit.metadata.get("name") or f"({hit.metadata.get('kind') or 'text'})"
    header = f"{shown_path(root, hit.metadata['path'])}:{line}  {symbol}  {hit.score:.3f}"
    return "\n".join([header] + (["    " + s for s in shown] if lines > 0 else []))


def apply_floor(hits: list[Hit], mode: str = "dense", dense_top: float | None = None,
                relative: float | None = None) -> tuple[list[Hit], str | None]:
    """The hits worth showing, and a warning when even the best is weak (None otherwise).

    A hit scoring under ``relative`` (default: :data:`RELATIVE_FLOOR` of ``mode``) x the best is
    dropped; scores are compared only within one query and one mode, so the rule does not depend
    on the scale of the model's scores. ``dense_top``, the best dense (cosine) score of the query,
    under :data:`WEAK_TOP` is a warning: fused and BM25 scores say nothing absolute.
    """
    if not hits:
        return [], "no match"
    top = hits[0].score
    ratio = RELATIVE_FLOOR.get(mode, 0.0) if relative is None else relative
    kept = hits if top <= 0 else [h for h in hits if h.score >= ratio * top]
    weak = dense_top is not None and dense_top < WEAK_TOP
    warning = f"no good match: the best dense score {dense_top:.3f} is under {WEAK_TOP:.2f}, as for questions the code does not answer" if weak else None
    return kept, warning
