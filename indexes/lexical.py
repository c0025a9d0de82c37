"""BM25 over document texts: bm25s scores, this module keeps ids, deletes, filters and storage.

Tokenizers: ``"english"`` is bm25s's own tokenizer (words of 2+ characters, lowercased,
bm25s's English stopwords, PyStemmer's English Snowball stemmer), the setting of MTEB's bm25s
baseline; ``"code"`` splits identifiers (``getHTTPResponse2`` -> ``gethttpresponse2 get http
response``; ``snake_case`` likewise) and keeps the whole identifier too, lowercased, unstemmed.

bm25s builds its score matrix in one pass over the whole corpus and has no incremental add
(IDF and the average length change with every document). Measured on SciFact (5,183 documents,
812k tokens, this 2-core machine, shared): tokenizing takes 4.3 s, building 1.4 s
(~1.7 us a token). So :meth:`LexicalIndex.add` only tokenizes and stores token ids, and the
first search after a change rebuilds once: a batch of adds costs one build, not one each.
:meth:`LexicalIndex.delete` needs no rebuild: deleted documents are tombstones excluded inside
the search through bm25s's ``weight_mask`` (as ``subset`` is); they still count in IDF and the
average length until the next rebuild (an add or :meth:`LexicalIndex.compact`), after which
scores equal those of an index built from scratch on the remaining documents.

Stored (:meth:`LexicalIndex.save`): bm25s's own files (``.npy`` written with
``allow_pickle=False``, JSON vocabulary and parameters) under ``bm25s/``, the token ids of each
document (``tokens.npy``, ``offsets.npy``: what a rebuild needs), ``deleted.npy``, and
``index.json`` with ids, settings and the SHA-256 of every file. No pickle anywhere.

Examples
--------
>>> from indexes import LexicalIndex
>>> index = LexicalIndex()
>>> index.add(["a", "b"], ["Cats purr when content.", "Paris is the capital of France."])
>>> index.search(["which animal purrs"], k=1).ids
[['a']]
>>> index.search(["which animal purrs"], k=1, subset=["b"]).ids  # b shares no term with the query
[[]]
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from indexes import storage
from indexes.base import Index, IndexFormatError, SearchResult, allowed_positions, check_k, claim_ids, delete_positions
from indexes.locking import ReadWriteLock

FORMAT = "bm25s-lexical"
VERSION = 1
TOKENIZERS = ("english", "code")
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
ARRAYS = ("tokens", "offsets", "deleted")

_WORD = re.compile(r"\w+")
_ASCII_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")  # HTTPResponse2 -> HTTP Response 2
_OTHER_PARTS = re.compile(r"[^\W\d_]+|[0-9]+")  # non-ASCII words: letters / digits, no case split
_local = threading.local()  # PyStemmer objects are not thread-safe: one per thread


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def code_tokens(text: str) -> list[str]:
    """Identifier-aware tokens: each word whole and, when it has several, its parts; lowercased, 2+ characters.

    >>> code_tokens("user_id = getHTTPResponse2(x)")
    ['user_id', 'user', 'id', 'gethttpresponse2', 'get', 'http', 'response']
    """
    out = []
    for word in _WORD.findall(text):
        pattern = _ASCII_PARTS if word.isascii() else _OTHER_PARTS
        parts = [p.lower() for piece in word.split("_") for p in pattern.findall(piece)]
        whole = word.lower()
        if len(whole) > 1:
            out.append(whole)
        if parts != [whole]:
            out.extend(p for p in parts if len(p) > 1)
    return out


def tokenize(texts: list[str], tokenizer: str) -> list[list[str]]:
    """Token strings of each text with the named tokenizer (``"english"`` or ``"code"``)."""
    if tokenizer == "code":
        return [code_tokens(t) for t in texts]
    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


def _check_texts(texts, what: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] is a {type(text).__name__}, not a string")
    return texts


class LexicalIndex(Index):
    """A BM25 index (bm25s) over texts with string ids, deletes and filtered search.

    Parameters
    ----------
    tokenizer
        ``"english"`` (stemmed, stopwords removed) or ``"code"`` (identifier parts).
    k1, b, delta, method
        BM25 settings passed to ``bm25s.BM25``; the defaults are MTEB's bm25s baseline
        (``lucene``, k1=1.5, b=0.75), SciFact test nDCG@10 0.6863 here vs the published 0.6874 (see BENCHMARKS.md).

    Threads: ``search`` runs concurrently from any number of threads; ``add``, ``delete``,
    ``compact`` and the rebuild of the first search after a change run one at a time and never
    beside a search (a readers-writer lock).
    """

    def __init__(self, tokenizer: str = "english", *, k1: float = 1.5, b: float = 0.75, method: str = "lucene", delta: float = 0.5):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        if method not in METHODS:
            raise ValueError(f"unknown BM25 method {method!r}; choose one of {', '.join(METHODS)}")
        self.tokenizer, self.k1, self.b, self.method, self.delta = tokenizer, float(k1), float(b), method, float(delta)
        self.ids: list[str] = []  # every document since the last rebuild, deleted ones included (positions)
        self._position: dict[str, int] = {}  # live documents only
        self.deleted = np.zeros(0, dtype=bool)
        self._vocab: dict[str, int] = {}
        self._doc_tokens: list[np.ndarray] = []  # token ids of each document, what a rebuild needs
        self._bm25: bm25s.BM25 | None = None
        self._stale = False  # documents added since the last build
        self._lock = ReadWriteLock()

    def __len__(self) -> int:
        return len(self._position)

    def live_ids(self) -> list[str]:
        """Ids not deleted, in the index's order."""
        return [doc_id for doc_id, gone in zip(self.ids, self.deleted) if not gone]

    @property
    def settings(self) -> dict:
        return {"tokenizer": self.tokenizer, "k1": self.k1, "b": self.b, "method": self.method, "delta": self.delta}

    # -- changing -----------------------------------------------------------------------------
    def add(self, ids, texts) -> None:
        """Add documents (``texts[j]`` for ``ids[j]``); ids must be new. Tokenized now, indexed by the next search."""
        ids = [str(i) for i in ids]
        texts = _check_texts(texts, "texts")
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        tokens = tokenize(texts, self.tokenizer) if texts else []
        with self._lock.write():
            claim_ids(self._position, ids, len(self.ids))
            vocab = self._vocab
            self._doc_tokens.extend(np.array([vocab.setdefault(t, len(vocab)) for t in doc], dtype=np.int32) for doc in tokens)
            self.ids.extend(ids)
            self.deleted = np.concatenate([self.deleted, np.zeros(len(ids), dtype=bool)])
            self._stale = self._stale or bool(ids)

    def delete(self, ids) -> None:
        """Remove documents by id at once (tombstones until the next rebuild); KeyError for an unknown id, nothing changed."""
        with self._lock.write():
            delete_positions(self._position, self.deleted, ids)

    def compact(self) -> None:
        """Rebuild without the deleted documents: scores then equal a fresh index of the live ones."""
        with self._lock.write():
            if self.deleted.any():
                self._rebuild()

    def _drop_deleted(self) -> None:
        keep = np.flatnonzero(~self.deleted)
        self.ids = [self.ids[i] for i in keep]
        self._doc_tokens = [self._doc_tokens[i] for i in keep]
        self.deleted = np.zeros(len(keep), dtype=bool)
        self._position = {doc_id: i for i, doc_id in enumerate(self.ids)}
        # Vocabulary of the remaining documents only, in its old order.
        used = np.zeros(len(self._vocab), dtype=bool)
        for doc in self._doc_tokens:
            used[doc] = True
        renumber = np.cumsum(used) - 1
        self._vocab = {t: int(renumber[i]) for t, i in self._vocab.items() if used[i]}
        self._doc_tokens = [renumber[doc].astype(np.int32) for doc in self._doc_tokens]

    def _rebuild(self) -> None:
        """Drop tombstones and build the bm25s index of everything stored (under the write lock)."""
        if self.deleted.any():
            self._drop_deleted()
        self._bm25 = None
        if self.ids:
            bm25 = bm25s.BM25(k1=self.k1, b=self.b, delta=self.delta, method=self.method)
            with np.errstate(divide="ignore", invalid="ignore"):  # documents of stopwords only: average length 0
                bm25.index(([d.tolist() for d in self._doc_tokens], self._vocab), create_empty_token=False, show_progress=False)
            self._bm25 = bm25
        self._stale = False

    def _build_if_stale(self) -> None:
        if self._stale:  # checked again under the lock: the first of several threads builds
            with self._lock.write():
                if self._stale:
                    self._rebuild()

    # -- searching ----------------------------------------------------------------------------
    def search(self, query_texts, k: int, *, subset=None) -> SearchResult:
        """Top-``k`` documents of each query text, best first; a document sharing no term with the query is no hit.

        ``subset``: ids the search is restricted to (ids not in the index are ignored), applied
        inside the scoring through bm25s's ``weight_mask``: the result equals the unrestricted
        ranking with the other documents left out.
        """
        check_k(k)
        queries = tokenize(_check_texts(query_texts, "query_texts"), self.tokenizer)
        self._build_if_stale()
        with self._lock.read():
            if self._bm25 is None:
                return SearchResult(ids=[[] for _ in queries], scores=[[] for _ in queries])
            # Documents added by another thread since this search's build wait for the next one.
            allowed = allowed_positions(self._position, self.deleted, subset)[: self._bm25.scores["num_docs"]]
            weights = allowed.astype(np.float32)
            ids, scores = [], []
            for tokens in queries:
                top, top_scores = self._top(tokens, k, allowed, weights)
                ids.append([self.ids[i] for i in top])
                scores.append(top_scores)
        return SearchResult(ids=ids, scores=scores)

    def _top(self, tokens: list[str], k: int, allowed: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """Best ``k`` allowed documents containing a query term: score descending, then index order."""
        vocab_size = len(self._bm25.scores["indptr"]) - 1  # words added since the build are in no document yet
        query = [i for i in (self._vocab.get(t, vocab_size) for t in tokens) if i < vocab_size]  # repeats count, as in bm25s
        token_ids = sorted(set(query))
        if not token_ids or not allowed.any():
            return np.zeros(0, dtype=np.int64), []
        all_scores = self._bm25.get_scores_from_ids(query, weight_mask=weights)
        indptr, indices = self._bm25.scores["indptr"], self._bm25.scores["indices"]
        matched = np.unique(np.concatenate([indices[indptr[t] : indptr[t + 1]] for t in token_ids]))
        candidates = matched[allowed[matched]]
        values = all_scores[candidates]
        if len(candidates) > k:  # everything tied with the k-th best joins, then one exact order
            keep = values >= np.partition(values, len(values) - k)[len(values) - k]
            candidates, values = candidates[keep], values[keep]
        order = np.lexsort((candidates, -values))[:k]
        return candidates[order], values[order].tolist()

    # -- persistence --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write bm25s's files, the token ids and ``index.json`` (checksums) atomically; tombstones are kept."""
        self._build_if_stale()
        path = Path(path)
        with self._lock.read(), storage.directory(path) as tmp:
            if self._bm25 is not None:
                self._bm25.save(tmp / "bm25s")
            lengths = np.array([len(d) for d in self._doc_tokens], dtype=np.int64)
            arrays = {
                "tokens": np.concatenate(self._doc_tokens) if self._doc_tokens else np.zeros(0, dtype=np.int32),
                "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                "deleted": self.deleted,
            }
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            storage.write_json(tmp / "vocab.json", sorted(self._vocab, key=self._vocab.get))
            meta = {"format": FORMAT, "version": VERSION, **self.settings, "num_documents": len(self.ids), "ids": self.ids}
            storage.write_description(tmp, "index.json", meta, storage.files_below(tmp))
        return path

    @classmethod
    def load(cls, path, *, mmap: bool = False, verify: bool = True) -> "LexicalIndex":
        """Read a folder written by :meth:`save`; ``mmap`` maps bm25s's score matrix instead of reading it."""
        return storage.read_consistently(path, lambda: cls._load(Path(path), mmap=mmap, verify=verify))

    @classmethod
    def _load(cls, path: Path, *, mmap: bool, verify: bool) -> "LexicalIndex":
        meta = storage.read_description(path, "index.json", FORMAT, VERSION, verify=verify, what="LexicalIndex")
        try:
            self = cls(meta["tokenizer"], k1=meta["k1"], b=meta["b"], method=meta["method"], delta=meta["delta"])
        except (KeyError, ValueError, TypeError) as exc:
            raise IndexFormatError(f"{path / 'index.json'}: bad settings ({exc})") from exc
        name = "vocab.json"
        try:
            vocab = json.loads((path / name).read_text(encoding="utf-8"))
            arrays = {}
            for name in (f"{a}.npy" for a in ARRAYS):
                arrays[name[:-4]] = np.load(path / name, allow_pickle=False)
            name = "bm25s"
            bm25 = bm25s.BM25.load(path / name, mmap=mmap, load_corpus=False) if (path / name).is_dir() else None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # JSON errors are ValueErrors
            raise IndexFormatError(f"{path / name} is truncated or corrupted: {exc}") from exc
        self._restore(path, meta, vocab, arrays, bm25)
        return self

    def _restore(self, path: Path, meta: dict, vocab, arrays: dict, bm25) -> None:
        ids, tokens, offsets, deleted = meta.get("ids"), arrays["tokens"], arrays["offsets"], arrays["deleted"]
        n = len(ids) if isinstance(ids, list) else -1
        problem = None
        if n < 0 or len(offsets) != n + 1 or len(deleted) != n or (n and offsets[-1] != len(tokens)):
            problem = f"arrays disagree with the {n} documents listed in index.json"
        elif not isinstance(vocab, list) or (len(tokens) and int(tokens.max()) >= len(vocab)):
            problem = "vocab.json does not cover the stored token ids"
        elif (bm25 is None) != (n == 0) or (bm25 is not None and (bm25.scores["num_docs"] != n or len(bm25.scores["indptr"]) != len(vocab) + 1)):
            problem = "bm25s/ disagrees with index.json"
        if problem:
            raise IndexFormatError(f"{path}: {problem}")
        self.ids, self.deleted, self._bm25 = ids, np.array(deleted, dtype=bool), bm25
        self._vocab = {t: i for i, t in enumerate(vocab)}
        if bm25 is not None:
            bm25.vocab_dict = self._vocab
        self._doc_tokens = [tokens[offsets[i] : offsets[i + 1]].astype(np.int32) for i in range(n)]
        self._position = {doc_id: i for i, doc_id in enumerate(ids) if not self.deleted[i]}
        if len(self._position) != int((~self.deleted).sum()):
            raise IndexFormatError(f"{path}: index.json lists a live id twice")


def lexical_index(setting):
    """The BM25 index a ``lexical`` setting asks for: ``True`` (english), a tokenizer name, an index, or None."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return LexicalIndex()
    if isinstance(setting, str):
        return LexicalIndex(tokenizer=setting)
    return setting
