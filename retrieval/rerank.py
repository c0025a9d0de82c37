"""Second-stage reranking of a first stage's top candidates: ColBERT MaxSim, or a cross-encoder.

- :class:`ColbertReranker`: a PyLate ColBERT model (the toolkit's trained one, or any by hub
  id or folder) embeds the query's and each candidate's tokens and scores MaxSim exactly
  (:func:`indexes.maxsim`). Candidates' token embeddings are kept in a bounded cache keyed by
  id and text, so a batch of queries sharing candidates (an evaluation, a RAG app's repeated
  questions) encodes each candidate once, not once per query that retrieved it.
- :class:`CrossEncoderReranker`: any sentence-transformers ``CrossEncoder`` by hub id or folder,
  the folder checked by :mod:`encoder.safe_loading` first (no code from it runs, no pickled
  weights are read) and loaded without a hub call.

Both give ``rerank(query, hits, k) -> hits`` (new scores, best first) and ``rerank_many``.
ColBERT MaxSim is exact here (no index): a reranker sees at most ``rerank_depth`` candidates, so
the multi-vector index's compression and candidate generation buy nothing. Measured on SciFact
(BENCHMARKS.md): MiniLM's dense top 100 reranked by a one-epoch SciFact ColBERT goes from 0.645 to
0.695 nDCG@10, Recall@100 unchanged.

Examples
--------
>>> from retrieval.rerank import ColbertReranker                      # doctest: +SKIP
>>> reranker = ColbertReranker("runs/colbert")
>>> reranker.rerank("what do cats do", retriever.search("cats", k=100), k=10)[0].id
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from encoder import ModelLoadError, default_model, resolve_dtype, use_packed_modernbert
from encoder.sentence import check_folder, default_device, guard_tokenizer
from indexes import maxsim
from retrieval.documents import Hit, document_text

CACHE_TOKENS = 1 << 21  # document token vectors a ColbertReranker keeps: 1 GiB at 128-d fp32


def load_colbert(name: str | None = None, *, device: str | None = None, dtype: str = "auto", max_length: int | None = None,
                 query_length: int | None = None, trust_remote_code: bool = False):
    """A ``pylate.models.ColBERT`` by hub id or folder; a plain encoder gets PyLate's fresh 128-d projection.

    ModernBERT-based models run through the packed encoder (:func:`encoder.use_packed_modernbert`).
    A folder is checked first (:func:`encoder.safe_loading.check_model_folder`) and read without
    any hub call; ``trust_remote_code`` lets it name code outside the toolkit's allow-list.
    """
    from pylate import models

    name = str(name or default_model())
    local = Path(name).is_dir()
    check_folder(name, trust_remote_code)
    device = device or default_device()
    try:
        model = models.ColBERT(name, device=device, document_length=max_length, query_length=query_length,
                               trust_remote_code=trust_remote_code, local_files_only=local)
    except Exception as exc:
        raise ModelLoadError(f"could not load ColBERT model {name!r}: {type(exc).__name__}: {exc}") from exc
    guard_tokenizer(model)
    return use_packed_modernbert(model).to(resolve_dtype(dtype, device)).eval()


class Reranker:
    """What every reranker offers: :meth:`rerank` one query's hits, :meth:`rerank_many` a batch's."""

    def scores(self, queries: list[str], hit_lists: list[list[Hit]]) -> list[np.ndarray]:
        raise NotImplementedError

    def rerank_many(self, queries: list[str], hit_lists: list[list[Hit]], k: int | None = None) -> list[list[Hit]]:
        """Each query's hits re-scored and re-ordered (best first), the top ``k`` kept (all by default)."""
        if len(queries) != len(hit_lists):
            raise ValueError(f"{len(queries)} queries for {len(hit_lists)} lists of hits")
        out = []
        for hits, scores in zip(hit_lists, self.scores(list(queries), [list(h) for h in hit_lists])):
            order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
            out.append([replace(hits[i], score=float(scores[i])) for i in order[:k]])
        return out

    def rerank(self, query: str, hits: list[Hit], k: int | None = None) -> list[Hit]:
        """``hits`` re-scored for ``query``, best first, the top ``k`` kept (all by default)."""
        return self.rerank_many([query], [hits], k)[0]


class ColbertReranker(Reranker):
    """MaxSim of a ColBERT model over the candidates' token embeddings.

    Parameters
    ----------
    model
        A loaded ``pylate.models.ColBERT``, or its hub id / folder (:func:`load_colbert`).
    device, dtype, document_length, query_length, trust_remote_code
        Passed to :func:`load_colbert` when ``model`` is a name.
    batch_size
        Texts per encoding batch.
    cache_tokens
        Document token vectors kept between calls (least recently used dropped first).

    Threads: ``rerank`` runs from any number of threads (tokenization serialized per model,
    the cache under a lock).
    """

    def __init__(self, model=None, *, device: str | None = None, dtype: str = "float32", document_length: int | None = None,
                 query_length: int | None = None, batch_size: int = 32, cache_tokens: int = CACHE_TOKENS,
                 trust_remote_code: bool = False):
        if model is None or isinstance(model, (str, Path)):
            model = load_colbert(model, device=device, dtype=dtype, max_length=document_length, query_length=query_length,
                                 trust_remote_code=trust_remote_code)
        self.model, self.batch_size, self.cache_tokens = model, batch_size, cache_tokens
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cached_tokens = 0
        self._lock = threading.Lock()

    def _encode(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        out = self.model.encode(texts, is_query=is_query, batch_size=self.batch_size, show_progress_bar=False)
        return [np.asarray(e, dtype=np.float32) for e in out]

    def document_tokens(self, hits: list[Hit]) -> list[np.ndarray]:
        """Token embeddings of each hit's text (title + text), from the cache or encoded once per distinct text."""
        keys = [(h.id, hashlib.sha1(document_text(h).encode("utf-8", "surrogatepass")).hexdigest()) for h in hits]
        with self._lock:
            found = {key: self._cache[key] for key in keys if key in self._cache}
            for key in found:
                self._cache.move_to_end(key)
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        if missing:
            text_of = {key: document_text(h) for key, h in zip(keys, hits)}
            found.update(zip(missing, self._encode([text_of[key] for key in missing], is_query=False)))
            with self._lock:
                for key in missing:
                    if key not in self._cache:
                        self._cache[key] = found[key]
                        self._cached_tokens += len(found[key])
                while self._cached_tokens > self.cache_tokens and self._cache:
                    self._cached_tokens -= len(self._cache.popitem(last=False)[1])
        return [found[key] for key in keys]

    def scores(self, queries: list[str], hit_lists: list[list[Hit]]) -> list[np.ndarray]:
        query_tokens = self._encode(queries, is_query=True)
        tokens = self.document_tokens([h for hits in hit_lists for h in hits])
        out, start = [], 0
        for q, hits in zip(query_tokens, hit_lists):
            docs = tokens[start : start + len(hits)]
            out.append(maxsim(q, docs) if docs else np.zeros(0, dtype=np.float32))
            start += len(hits)
        return out


class CrossEncoderReranker(Reranker):
    """A sentence-transformers ``CrossEncoder`` scoring each (query, candidate) pair.

    Parameters
    ----------
    model
        A loaded ``CrossEncoder``, or its hub id / folder (checked by :mod:`encoder.safe_loading`).
    device, max_length, batch_size, trust_remote_code
        Loading and scoring settings.

    Threads: ``rerank`` runs from any number of threads; the model scores one batch at a time.
    """

    def __init__(self, model, *, device: str | None = None, max_length: int | None = None, batch_size: int = 32,
                 trust_remote_code: bool = False):
        if isinstance(model, (str, Path)):
            from sentence_transformers import CrossEncoder

            name = str(model)
            check_folder(name, trust_remote_code)
            try:
                model = CrossEncoder(name, device=device or default_device(), max_length=max_length,
                                     trust_remote_code=trust_remote_code, local_files_only=Path(name).is_dir())
            except Exception as exc:
                raise ModelLoadError(f"could not load cross-encoder {name!r}: {type(exc).__name__}: {exc}") from exc
        self.model, self.batch_size = model, batch_size
        self._lock = threading.Lock()  # the tokenizer's padding state is shared: one batch at a time

    def scores(self, queries: list[str], hit_lists: list[list[Hit]]) -> list[np.ndarray]:
        pairs = [(q, document_text(h)) for q, hits in zip(queries, hit_lists) for h in hits]
        with self._lock:
            flat = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False) if pairs else []
        flat = np.asarray(flat, dtype=np.float32).reshape(len(pairs), -1)[:, -1]  # a two-label model: the positive one
        bounds = np.cumsum([0] + [len(h) for h in hit_lists])
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def is_colbert_folder(name: str) -> bool:
    """Whether a model folder is a PyLate ColBERT one (its ``modules.json`` names a PyLate module)."""
    modules = Path(name) / "modules.json"
    if not modules.is_file():
        return False
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return any(isinstance(m, dict) and str(m.get("type", "")).startswith("pylate") for m in entries)


def load_reranker(name: str, *, device: str | None = None, dtype: str = "float32", trust_remote_code: bool = False) -> Reranker:
    """The reranker a model name means: ``colbert:NAME`` / ``cross-encoder:NAME``, else a PyLate folder (or a hub
    id naming ColBERT) is a :class:`ColbertReranker` and anything else a :class:`CrossEncoderReranker`."""
    kind, _, rest = name.partition(":")
    if kind in ("colbert", "cross-encoder") and rest:
        name = rest
    else:
        kind = "colbert" if is_colbert_folder(name) or (not Path(name).exists() and "colbert" in name.lower()) else "cross-encoder"
    if kind == "colbert":
        return ColbertReranker(name, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    return CrossEncoderReranker(name, device=device, trust_remote_code=trust_remote_code)
