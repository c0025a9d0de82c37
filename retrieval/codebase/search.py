"""Searching a codebase index: grep-like filters turned into the Retriever's ``where``, the mode, the floor.

Filters (``--path 'src/**' --lang go --kind function --code-only --grep REGEX``) become one
``where`` dict (:mod:`retrieval.filters`), so they apply *inside* the index search (FAISS
``IDSelector``, bm25s weight mask) and ``-k 10`` returns 10 hits whenever 10 chunks match,
where filtering the top-k afterwards returns fewer or none for a selective filter. ``--grep``
is ``{"text": {"$regex": ...}}``: the candidates are the units in which the pattern matches,
ranked by meaning, like ColGREP's regex pre-filter. Values of ``--lang`` and ``--kind`` are
checked against what the index holds, so a typo is an error naming the known values rather
than an empty answer.

The default mode is the one that answered most questions of the question list first
(``benchmarks/codebase_questions.py``, BENCHMARKS.md "Codebase questions"): hybrid, dense and
BM25-on-identifier-tokens fused with the dense share 0.7 (:data:`FUSION`). BM25 alone answers
fewer questions first than dense (0.50 against 0.56) but different ones, and the fusion wins
both (0.62); names spelt as in the code (``parseDuration`` for ``parse_duration``) are where
BM25's identifier tokens help most.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from retrieval.codebase.hits import DOC_LANGUAGES, apply_floor
from retrieval.codebase.errors import CodebaseError
from retrieval.documents import Hit

DEFAULT_MODE = "hybrid"
# Convex fusion of min-max normalised scores, dense share 0.7. On the question list (BENCHMARKS.md) top-1 / MRR@10:
# dense 0.56 / 0.697, BM25 on code tokens 0.50 / 0.625, convex with dense share 0.3 0.54 / 0.657, 0.5 0.58 / 0.696,
# 0.6 (the Retriever's default) 0.60 / 0.710, 0.7 0.62 / 0.723, RRF 0.56 / 0.682.
FUSION = {"fusion": "convex", "weight": 0.7}
GLOB_CHARS = frozenset("*?[")


def _values(given) -> list[str]:
    """``["go", "rust"]`` from ``["go,rust"]`` or ``["go", "rust"]`` (repeated flags and commas both work)."""
    return [v.strip() for item in (given or []) for v in str(item).split(",") if v.strip()]


def _known(retriever, field: str) -> set[str] | None:
    """The values of a metadata field in the index; None for a searcher without local documents (a server's client)."""
    documents = getattr(retriever, "documents", None)
    if documents is None:
        return None
    return {str(d.metadata.get(field)) for d in documents.values() if d.metadata.get(field) is not None}


def _check(flag: str, values: list[str], known: set[str] | None, what: str) -> None:
    if known is not None and (unknown := [v for v in values if v not in known]):
        raise CodebaseError(f"{flag} {', '.join(unknown)}: the index holds no chunks {what} ({flag[2:]}s: {', '.join(sorted(known))})")


def path_condition(pattern: str) -> dict:
    """A ``--path`` value as a condition on the ``path`` field: a glob, or a folder / file name when it has no glob characters."""
    pattern = pattern.strip().removeprefix("./")
    if GLOB_CHARS & set(pattern):
        return {"$glob": pattern}
    folder = pattern.rstrip("/")
    return {"$regex": rf"^{re.escape(folder)}(/|\Z)"}


def where_filter(retriever, *, path: str | None = None, lang=None, kind=None, code_only: bool = False,
                 grep: str | None = None) -> dict | None:
    """The ``where`` of these filters over ``retriever``'s chunks (None when there are none).

    Raises :class:`CodebaseError` for a language or kind the index does not hold, ``--code-only``
    with only prose languages, and a ``--grep`` that is not a regular expression.
    """
    where: dict = {}
    if path:
        where["path"] = path_condition(path)
    if lang := _values(lang):
        _check("--lang", lang, _known(retriever, "language"), "in it")
        languages = set(lang) - DOC_LANGUAGES if code_only else set(lang)
        if not languages:
            raise CodebaseError(f"--code-only leaves none of --lang {', '.join(lang)}: {', '.join(sorted(DOC_LANGUAGES))} are prose")
        where["language"] = {"$in": sorted(languages)}
    elif code_only:  # any language but prose: a regex needs no list of the languages the index holds
        where["language"] = {"$regex": rf"^(?!({'|'.join(sorted(DOC_LANGUAGES))})$)"}
    if kind := _values(kind):
        _check("--kind", kind, _known(retriever, "kind"), "of it")
        where["kind"] = {"$in": kind}
    if grep is not None:
        try:
            re.compile(grep)
        except re.error as exc:
            raise CodebaseError(f"--grep {grep!r} is not a regular expression: {exc}") from None
        where["text"] = {"$regex": grep}
    return where or None


def modes(retriever) -> list[str]:
    """The modes this index answers in: ``dense`` always; ``lexical`` and ``hybrid`` where it keeps a BM25 index."""
    if "mode" not in inspect.signature(retriever.search).parameters or getattr(retriever, "lexical", None) is None:
        return ["dense"]
    return ["dense", "lexical", "hybrid"]


def run_query(retriever, query: str, k: int = 10, *, mode: str | None = None, where: dict | None = None,
              floor: bool = True) -> tuple[list[Hit], str | None, str]:
    """``(hits, warning, mode)``: the best ``k`` chunks, less those far below the best when ``floor``.

    ``mode`` None is :data:`DEFAULT_MODE` where the index offers it, else ``dense``.
    """
    offered = modes(retriever)
    if mode is None:
        mode = DEFAULT_MODE if DEFAULT_MODE in offered else "dense"
    elif mode not in offered:
        raise CodebaseError(f"--mode {mode}: this index has no lexical index (modes: {', '.join(offered)}); re-index with --rebuild")
    options = {"mode": mode, **(FUSION if mode == "hybrid" else {})} if len(offered) > 1 else {}
    if where is not None:
        options["where"] = where
    if mode == "lexical" or not floor or not hasattr(retriever, "embed_queries"):
        hits, dense_top = retriever.search(query, k=k, **options), None
    else:  # the floor reads the best dense score: fused scores are normalised per query, so their best is always ~1
        embeddings = retriever.embed_queries([query])
        dense = retriever.search_by_vector(embeddings, k if mode == "dense" else 1, **({"where": where} if where else {}))[0]
        hits = dense if mode == "dense" else retriever.search(query, k=k, query_embeddings=embeddings, **options)
        dense_top = dense[0].score if dense else None
    if not floor:
        return hits, None, mode
    kept, warning = apply_floor(hits, mode, dense_top)
    if not hits and where:
        warning = "no match: no chunk passes the filters"
    return kept, warning, mode


def search_codebase(out: str | Path, query: str, k: int = 10, *, model=None, device: str | None = None, mode: str | None = None,
                    floor: bool = False, **filters) -> list[Hit]:
    """The ``k`` best chunks for ``query`` under ``filters`` (:func:`where_filter`'s keywords); metadata holds ``path``,
    ``start``, ``end``, ``name``, ``kind``, ``language``."""
    from retrieval.codebase.index import load_codebase  # torch and the model: not on the client's path

    retriever, _ = load_codebase(out, model=model, device=device)
    return run_query(retriever, query, k, mode=mode, where=where_filter(retriever, **filters), floor=floor)[0]
