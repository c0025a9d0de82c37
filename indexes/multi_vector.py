"""Many vectors per document (ColBERT late interaction) on FAISS.

Each document is a variable number of token embeddings; its score for a query is MaxSim:
the sum over query tokens of the best dot product with any of the document's tokens.

Storage, per token: the FAISS code of an IVF residual scalar quantiser
(``IndexIVFScalarQuantizer.sa_encode``): the token's centroid (2 bytes up to 65,536
centroids) and its residual at ``nbits`` per dimension (64 bytes at dim 128 and 4 bits,
PLAID's budget at nbits=4). Per (centroid, document) pair, 4 bytes of inverted list.
Everything lives in numpy arrays in document order, so nothing of shape
(documents x longest x dim) is ever built, and the codes can be memory-mapped.

Search, per query with token embeddings Q:

1. candidate generation: centroid scores ``S = Q C^T``; each query token probes its
   ``nprobe`` best centroids; the candidates are the documents with a token there;
2. approximate scoring (PLAID's centroid interaction): a candidate scores
   ``sum_i max_c (S[i, c] - floor_i)`` over the probed centroids ``c`` it has a token in,
   where ``floor_i`` is token ``i``'s lowest probed score (a token that misses is imputed
   with it, as XTR does);
3. with ``ndocs > rerank`` (PLAID's stage 3), the ``ndocs`` best candidates are scored by centroid
   interaction, MaxSim with every document token replaced by its centroid (``S`` looked up, no
   residual read), and the ``rerank`` best of those go on;
4. the ``rerank`` best candidates are re-scored with exact MaxSim on their decoded tokens.

``exhaustive=True`` skips 1-2 and scores every document on its decoded tokens;
:func:`maxsim` scores raw embeddings and is the reference.

Steps 1-3 run in :mod:`indexes.maxsim_kernels` (C++, compiled on first use) for ``nbits`` 4 and
8: the same arithmetic in one pass per query, 2.6-2.9x less CPU per query than the torch/numpy loop
below on a 1,200-document SciFact subset (``benchmarks.multi_vector_ablation``), with equal ids (ties at
the candidate cut go to the lower position in both) and exact scores equal to float rounding.
The torch/numpy loop stays as the tested reference and the fallback (``index.kernels = False``,
other widths, or no compiler).

Deletes are tombstones, a candidate mask inside step 2 (so are ``subset`` filters); a subset no
larger than ``rerank`` skips 1-2 and is scored exactly, since the exact re-scoring of ``rerank``
documents is what an unfiltered search spends anyway, while candidate generation would miss
subset documents whose tokens sit in unprobed centroids. :meth:`MultiVectorIndex.compact` drops
the deleted codes by array slicing (no re-encoding): the arrays equal those of an index that
added only the remaining documents to the same trained codec.

Examples
--------
>>> import numpy as np
>>> from indexes import MultiVectorIndex
>>> rng = np.random.default_rng(0)
>>> docs = [rng.normal(size=(n, 16)).astype("float32") for n in (30, 50, 40, 60) * 25]
>>> index = MultiVectorIndex(dim=16, nbits=8)
>>> index.add([f"d{i}" for i in range(len(docs))], docs)
>>> index.search([docs[7][:5]], k=1).ids
[['d7']]
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np
import torch

from indexes import maxsim_kernels, storage
from indexes.base import (
    Index, IndexFormatError, SearchResult, allowed_positions, check_finite, check_k, claim_ids, delete_positions,
)
from indexes.locking import ReadWriteLock

FORMAT = "faiss-multi-vector"
VERSION = 1
QTYPES = {
    4: faiss.ScalarQuantizer.QT_4bit,
    6: faiss.ScalarQuantizer.QT_6bit,
    8: faiss.ScalarQuantizer.QT_8bit,
    16: faiss.ScalarQuantizer.QT_fp16,
}
ARRAYS = ("codes", "doc_offsets", "list_offsets", "list_docs", "deleted")


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def segment_maxsim(query: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """MaxSim of one query against documents stored back to back (``lengths`` tokens each)."""
    sims = tokens @ query.T  # (document tokens, query tokens)
    return torch.segment_reduce(sims, "max", lengths=lengths, axis=0).sum(dim=1)


def maxsim(query: np.ndarray, documents: list[np.ndarray], max_tokens: int = 1 << 18) -> np.ndarray:
    """Exact MaxSim of a query against every document, ``max_tokens`` document tokens at a time.

    The reference that every approximate search is measured against. Documents are
    never padded: each chunk is the concatenation of whole documents.
    """
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    scores = np.empty(len(documents), dtype=np.float32)
    start = 0
    while start < len(documents):
        stop, size = start, 0
        while stop < len(documents) and (stop == start or size + len(documents[stop]) <= max_tokens):
            size += len(documents[stop])
            stop += 1
        chunk = documents[start:stop]
        tokens = torch.from_numpy(np.concatenate(chunk).astype(np.float32, copy=False))
        lengths = torch.tensor([len(d) for d in chunk])
        scores[start:stop] = segment_maxsim(q, tokens, lengths).numpy()
        start = stop
    return scores


def default_nlist(num_tokens: int) -> int:
    """A power of two near ``4 * sqrt(tokens)``, as PLAID sizes its centroids, at most one per token."""
    return int(min(max(2 ** round(math.log2(4 * math.sqrt(max(num_tokens, 1)))), 1), num_tokens, 1 << 16))


class MultiVectorIndex(Index):
    """A ColBERT index: IVF candidates from FAISS, exact MaxSim re-ranking.

    Parameters
    ----------
    dim
        Token embedding dimension (128 for ColBERT).
    nbits
        Bits per dimension of the stored residuals: 4 (default, 64 bytes per token at
        dim 128), 6, 8, or 16 (fp16, near lossless). 8 is the setting for quality: on
        SciFact with a trained ColBERT it scored above exhaustive float MaxSim and above
        WARP, at 132 bytes per token against WARP's 148, and searched no slower than 4
        (byte-aligned codes; BENCHMARKS.md, "Against WARP at nbits 8").
    nlist
        Number of centroids; default :func:`default_nlist` of the tokens seen at training.
    nprobe
        Centroids probed per query token.
    rerank
        Candidates re-scored with exact MaxSim (PLAID's ``n_full_scores``).
    ndocs
        Candidates scored by centroid interaction before the ``rerank`` best of them are scored
        exactly (PLAID's ``ndocs``); 0 (default) or at most ``rerank``: no such stage.
    kmeans_iters, train_tokens_per_centroid, seed
        k-means settings: FAISS trains on a seeded sample of at most
        ``nlist * train_tokens_per_centroid`` tokens.

    Threads: ``search`` runs concurrently from any number of threads; ``add``, ``delete``,
    ``compact``, ``train`` and the lazy training of the first search run one at a time and never beside a
    search (a readers-writer lock), so a search never sees arrays from two different states.
    """

    def __init__(
        self,
        dim: int = 128,
        *,
        nbits: int = 4,
        nlist: int | None = None,
        nprobe: int = 8,
        rerank: int = 256,
        ndocs: int = 0,
        kmeans_iters: int = 10,
        train_tokens_per_centroid: int = 64,
        seed: int = 0,
    ):
        if nbits not in QTYPES:
            raise ValueError(f"nbits must be one of {sorted(QTYPES)}, not {nbits}")
        self.dim, self.nbits, self.nlist = int(dim), nbits, nlist
        self.nprobe, self.rerank, self.ndocs = nprobe, rerank, ndocs
        self.kmeans_iters, self.train_tokens_per_centroid, self.seed = kmeans_iters, train_tokens_per_centroid, seed
        self.codec = None  # FAISS IndexIVFScalarQuantizer, trained; its own lists stay empty
        self.ids: list[str] = []
        self._position: dict[str, int] = {}
        self.codes = np.zeros((0, 0), dtype=np.uint8)
        self.doc_offsets = np.zeros(1, dtype=np.int64)
        self.list_offsets = np.zeros(1, dtype=np.int64)
        self.list_docs = np.zeros(0, dtype=np.int32)
        self.deleted = np.zeros(0, dtype=bool)
        self._pending: list[np.ndarray] = []  # fp16 tokens of documents added before training
        self.kernels = True  # search through maxsim_kernels where built; False: the torch reference path
        self._lock = ReadWriteLock()

    @classmethod
    def like(cls, other: "MultiVectorIndex") -> "MultiVectorIndex":
        """An empty index with ``other``'s settings and (a copy of) its trained codec.

        Documents added to it are encoded exactly as ``other`` encodes them: shards of one
        collection, or the reference a compacted index is compared with.
        """
        new = cls(other.dim, nbits=other.nbits, nlist=other.nlist, nprobe=other.nprobe, rerank=other.rerank,
                  ndocs=other.ndocs, kmeans_iters=other.kmeans_iters, train_tokens_per_centroid=other.train_tokens_per_centroid, seed=other.seed)
        if other.codec is not None:
            new.codec = faiss.clone_index(other.codec)
            new._cache_codec_params()
            new.codes = np.zeros((0, new.codec.sa_code_size()), dtype=np.uint8)
            new.list_offsets = np.zeros(new.nlist + 1, dtype=np.int64)
        return new

    @property
    def search_params(self) -> str:
        return f"nprobe={self.nprobe},rerank={self.rerank}" + (f",ndocs={self.ndocs}" if self.ndocs else "")  # unset: the form older records have

    def set_search_params(self, params: str) -> None:
        """Search knobs as a FAISS-style string: ``"nprobe=16,rerank=512"``, ``"nprobe=8,ndocs=1024,rerank=64"``."""
        for item in filter(None, (params or "").split(",")):
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if key not in ("nprobe", "rerank", "ndocs") or not value.isdigit() or int(value) < (key != "ndocs"):
                raise ValueError(f"search parameter {item!r}: expected nprobe=N or rerank=N (N >= 1), or ndocs=N (N >= 0)")
            setattr(self, key, int(value))

    # -- adding -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._position)

    @property
    def num_tokens(self) -> int:
        return int(self.doc_offsets[-1]) + sum(len(p) for p in self._pending)

    def add(self, ids, embeddings) -> None:
        """Add documents: ``embeddings[j]`` is an array ``(tokens_j, dim)`` for ``ids[j]``."""
        ids = [str(i) for i in ids]
        if len(ids) != len(embeddings):
            raise ValueError(f"{len(ids)} ids for {len(embeddings)} documents")
        tokens = []
        for doc_id, emb in zip(ids, embeddings):
            emb = np.asarray(emb)
            if emb.ndim != 2 or emb.shape[1] != self.dim or len(emb) == 0:
                raise ValueError(f"document {doc_id!r}: expected token embeddings of shape (n >= 1, {self.dim}), got {emb.shape}")
            check_finite(emb, f"document {doc_id!r}: token embeddings")
            tokens.append(emb)
        with self._lock.write():
            start = len(self.ids)
            claim_ids(self._position, ids, start)
            self.ids.extend(ids)
            self.deleted = np.concatenate([self.deleted, np.zeros(len(ids), dtype=bool)])
            if self.codec is None:
                self._pending.extend(normalize(t).astype(np.float16) for t in tokens)
            else:
                self._append(tokens)

    def train(self) -> None:
        """Train the centroids and the residual quantiser on the documents added so far, then index them."""
        if self.codec is None and self._pending:  # checked again under the lock: the first of several threads trains
            with self._lock.write():
                self._train()

    def _train(self) -> None:
        if self.codec is not None or not self._pending:
            return
        tokens = np.concatenate(self._pending)
        nlist = self.nlist or default_nlist(len(tokens))
        rng = np.random.default_rng(self.seed)
        sample_size = min(len(tokens), nlist * self.train_tokens_per_centroid)
        sample = tokens[np.sort(rng.choice(len(tokens), sample_size, replace=False))].astype(np.float32)
        codec = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(self.dim), self.dim, nlist, QTYPES[self.nbits], faiss.METRIC_INNER_PRODUCT, True
        )
        codec.cp.niter, codec.cp.seed, codec.cp.spherical = self.kmeans_iters, self.seed, True
        codec.cp.max_points_per_centroid = self.train_tokens_per_centroid  # we sampled already
        try:
            codec.train(sample)
        except RuntimeError as exc:
            raise ValueError(f"could not train {nlist} centroids on {len(sample)} tokens: {exc}") from exc
        self.codec, self.nlist = codec, nlist
        self._cache_codec_params()
        self.codes = np.zeros((0, codec.sa_code_size()), dtype=np.uint8)
        self.list_offsets = np.zeros(nlist + 1, dtype=np.int64)
        pending, self._pending = self._pending, []
        self._append(pending)

    def _append(self, tokens: list[np.ndarray]) -> None:
        """Encode the tokens of the last ``len(tokens)`` documents and extend the arrays."""
        first_doc = len(self.ids) - len(tokens)
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        codes = np.concatenate(
            [self.codec.sa_encode(normalize(np.concatenate(tokens[i : i + 4096]))) for i in range(0, len(tokens), 4096)]
        )
        lists = self._lists_of(codes)
        docs = np.repeat(np.arange(first_doc, first_doc + len(tokens), dtype=np.int64), lengths)
        pairs = np.unique(lists * len(self.ids) + docs)  # (centroid, document) pairs, sorted by centroid
        old_lists = np.repeat(np.arange(self.nlist), np.diff(self.list_offsets))
        all_lists = np.concatenate([old_lists, pairs // len(self.ids)])
        all_docs = np.concatenate([self.list_docs, (pairs % len(self.ids)).astype(np.int32)])
        order = np.argsort(all_lists, kind="stable")
        self.list_docs = all_docs[order]
        self.list_offsets = np.concatenate([[0], np.cumsum(np.bincount(all_lists, minlength=self.nlist))])
        self.codes = np.concatenate([self.codes, codes])
        self.doc_offsets = np.concatenate([self.doc_offsets, self.doc_offsets[-1] + np.cumsum(lengths)])

    def _cache_codec_params(self) -> None:
        self._centroids = torch.from_numpy(self.codec.quantizer.reconstruct_n(0, self.nlist))
        trained = faiss.vector_to_array(self.codec.sq.trained)
        self._sq_ranges = torch.from_numpy(trained.reshape(2, self.dim)) if len(trained) == 2 * self.dim else None

    def _lists_of(self, codes: np.ndarray) -> np.ndarray:
        """Centroid of each token, read from the little-endian list number that opens its FAISS code."""
        width = self.codec.coarse_code_size()
        return sum(codes[:, b].astype(np.int64) << (8 * b) for b in range(width))

    def delete(self, ids) -> None:
        """Remove documents by id at once (tombstones: never returned; their codes stay until :meth:`compact`).

        KeyError for an unknown id, with nothing deleted.
        """
        with self._lock.write():
            delete_positions(self._position, self.deleted, ids)

    def compact(self) -> None:
        """Drop the deleted documents' codes and inverted-list entries, renumbering the rest in order.

        The arrays then equal those of an index that added only the remaining documents to the
        same trained codec (same codes, same lists), so searches give the same ids and scores.
        """
        with self._lock.write():
            if not self.deleted.any():
                return
            keep = ~self.deleted
            if self.codec is None:  # untrained: the fp16 tokens wait in _pending, one array per document
                self._pending = [t for t, kept in zip(self._pending, keep) if kept]
            else:
                rows, lengths = self._rows(np.flatnonzero(keep))
                renumber = (np.cumsum(keep) - 1).astype(np.int32)
                entry_lists = np.repeat(np.arange(self.nlist), np.diff(self.list_offsets))
                live = keep[self.list_docs]
                self.codes = np.ascontiguousarray(self.codes[rows])
                self.doc_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
                self.list_docs = renumber[self.list_docs[live]]
                self.list_offsets = np.concatenate([[0], np.cumsum(np.bincount(entry_lists[live], minlength=self.nlist))]).astype(np.int64)
            self.ids = [self.ids[i] for i in np.flatnonzero(keep)]
            self.deleted = np.zeros(len(self.ids), dtype=bool)
            self._position = {doc_id: i for i, doc_id in enumerate(self.ids)}

    def live_ids(self) -> list[str]:
        """Ids not deleted, in the index's order (``ids`` keeps the deleted ones: codes are positional)."""
        return [doc_id for doc_id, gone in zip(self.ids, self.deleted) if not gone]

    # -- searching ----------------------------------------------------------------------------
    def _rows(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token rows of ``docs`` back to back, and the length of each document."""
        starts, lengths = self.doc_offsets[docs], self.doc_offsets[docs + 1] - self.doc_offsets[docs]
        ends = np.cumsum(lengths)
        return np.repeat(starts - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0), lengths

    def _token_scores(self, query: torch.Tensor, centroid_scores: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        """Dot products ``(len(rows), query tokens)`` of the decoded tokens with the query tokens.

        A decoded token is ``centroid + vmin + (code + 1/2) * vdiff / levels`` (FAISS's
        scalar quantiser), so its dot product with ``q`` is the centroid's score (already
        computed) plus a constant plus ``code . (q * vdiff / levels)``: one matmul on the
        codes, with no decoded copy of the tokens. Other widths decode through FAISS.
        """
        codes = np.ascontiguousarray(self.codes[rows])
        lists = torch.from_numpy(self._lists_of(codes))
        if self.nbits not in (4, 8):
            return torch.from_numpy(self.codec.sa_decode(codes)) @ query.T
        body = torch.from_numpy(codes[:, self.codec.coarse_code_size() :])
        vmin, vdiff = self._sq_ranges
        step = vdiff / (2**self.nbits - 1)
        weights = query * step
        if self.nbits == 4:  # two dimensions a byte, the even one in the low nibble
            sims = (body & 15).float() @ weights[:, 0::2].T + (body >> 4).float() @ weights[:, 1::2].T
        else:
            sims = body.float() @ weights.T
        return sims + (query @ (vmin + step / 2)) + centroid_scores.T[lists]

    def _exact(self, query: torch.Tensor, centroid_scores: torch.Tensor, docs: np.ndarray, max_tokens: int = 1 << 17) -> np.ndarray:
        """Exact MaxSim on the stored tokens of ``docs``, about ``max_tokens`` tokens at a time."""
        scores = np.empty(len(docs), dtype=np.float32)
        cumulative = np.cumsum(self.doc_offsets[docs + 1] - self.doc_offsets[docs])
        start = 0
        while start < len(docs):
            done = cumulative[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(cumulative, done + max_tokens, side="right")))
            rows, lengths = self._rows(docs[start:stop])
            sims = self._token_scores(query, centroid_scores, rows)
            best = torch.segment_reduce(sims, "max", lengths=torch.from_numpy(lengths), axis=0)
            scores[start:stop] = best.sum(dim=1).numpy()
            start = stop
        return scores

    def _candidates(self, scores: np.ndarray, nprobe: int, rerank: int, allowed: np.ndarray) -> np.ndarray:
        """The ``rerank`` best ``allowed`` documents by centroid interaction; ``scores``: (query tokens, nlist)."""
        nprobe = min(nprobe, self.nlist)
        probe = np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]
        gains = np.take_along_axis(scores, probe, axis=1)
        gains -= gains.min(axis=1, keepdims=True)
        starts, counts = self.list_offsets[probe].ravel(), (self.list_offsets[probe + 1] - self.list_offsets[probe]).ravel()
        ends = np.cumsum(counts)
        rows = np.repeat(starts - (ends - counts), counts) + np.arange(ends[-1] if len(ends) else 0)
        docs = self.list_docs[rows]
        candidates, where = np.unique(docs, return_inverse=True)
        best = np.zeros((len(scores), len(candidates)), dtype=np.float32)
        token = np.repeat(np.arange(len(scores)), nprobe)
        np.maximum.at(best, (np.repeat(token, counts), where), np.repeat(gains.ravel(), counts))
        approx = best.sum(axis=0)
        live = allowed[candidates]  # the candidate mask: deleted documents and those outside a subset
        candidates, approx = candidates[live], approx[live]
        if len(candidates) > rerank:  # ties at the cut go to the lower position, as in maxsim_kernels
            candidates = np.sort(candidates[np.lexsort((candidates, -approx))[:rerank]])
        return candidates

    def _prune(self, centroid_scores: torch.Tensor, docs: np.ndarray, rerank: int) -> np.ndarray:
        """The ``rerank`` best of ``docs`` by centroid interaction (sums in float64, as maxsim_kernels; ties: lower position)."""
        if len(docs) <= rerank:
            return docs
        rows, lengths = self._rows(docs)
        lists = torch.from_numpy(self._lists_of(np.ascontiguousarray(self.codes[rows])))
        best = torch.segment_reduce(centroid_scores.T[lists], "max", lengths=torch.from_numpy(lengths), axis=0)
        approx = best.double().sum(dim=1).numpy()
        return np.sort(docs[np.lexsort((docs, -approx))[:rerank]])

    def search(self, queries, k: int, *, subset=None, nprobe: int | None = None, rerank: int | None = None,
               ndocs: int | None = None, exhaustive: bool = False) -> SearchResult:
        """Top-``k`` documents of each query (``queries[i]``: token embeddings ``(n_i, dim)``).

        ``subset``: ids the search is restricted to, a candidate mask inside the search; when
        the subset holds no more documents than ``rerank``, all of them are scored exactly (the
        budget reranking spends anyway), so the result equals exhaustive MaxSim over the subset.
        ``nprobe``, ``rerank`` and ``ndocs`` override the index's settings for this call;
        ``exhaustive`` scores every allowed document with exact MaxSim on the stored tokens.
        """
        check_k(k)
        checked = []
        for query in queries:
            q = np.asarray(query)
            if q.ndim != 2 or q.shape[1] != self.dim or not len(q):
                raise ValueError(f"expected query token embeddings of shape (n >= 1, {self.dim}), got {q.shape}")
            check_finite(q, "query token embeddings")
            checked.append(q)
        self.train()
        with self._lock.read():
            return self._search(checked, k, subset, nprobe or self.nprobe, rerank or self.rerank,
                                self.ndocs if ndocs is None else ndocs, exhaustive)

    def _search(self, queries: list[np.ndarray], k: int, subset, nprobe: int, rerank: int, ndocs: int,
                exhaustive: bool) -> SearchResult:
        ids, scores = [], []
        if self.codec is None or not len(self):
            return SearchResult(ids=[[] for _ in queries], scores=[[] for _ in queries])
        allowed = allowed_positions(self._position, self.deleted, subset)
        everyone = np.flatnonzero(allowed)
        fixed = everyone if exhaustive or len(everyone) <= rerank else None
        if self.kernels and self.nbits in (4, 8) and maxsim_kernels.load() is not None:
            positions, exact = maxsim_kernels.search(self, [normalize(q) for q in queries], k, nprobe, rerank, allowed, fixed, ndocs)
            return SearchResult(ids=[[self.ids[d] for d in row] for row in positions], scores=[row.tolist() for row in exact])
        for q in queries:
            q = torch.from_numpy(normalize(q))
            centroid_scores = q @ self._centroids.T  # (query tokens, nlist)
            if fixed is not None:
                docs = fixed
            elif ndocs > rerank:
                docs = self._prune(centroid_scores, self._candidates(centroid_scores.numpy(), nprobe, ndocs, allowed), rerank)
            else:
                docs = self._candidates(centroid_scores.numpy(), nprobe, rerank, allowed)
            exact = self._exact(q, centroid_scores, docs)
            top = np.argsort(-exact, kind="stable")[:k]
            ids.append([self.ids[d] for d in docs[top]])
            scores.append(exact[top].tolist())
        return SearchResult(ids=ids, scores=scores)

    def bytes_per_token(self) -> float:
        """Stored bytes per token: codes plus inverted lists plus document offsets."""
        total = self.codes.nbytes + self.list_docs.nbytes + self.list_offsets.nbytes + self.doc_offsets.nbytes
        return total / max(self.num_tokens, 1)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write ``codec.faiss`` (FAISS native), one ``.npy`` per array and ``index.json``, atomically."""
        self.train()
        if self.codec is None:
            raise ValueError("nothing to save: the index is empty")
        path = Path(path)
        with self._lock.read(), storage.directory(path) as tmp:
            faiss.write_index(self.codec, str(tmp / "codec.faiss"))
            for name in ARRAYS:
                np.save(tmp / f"{name}.npy", getattr(self, name), allow_pickle=False)
            files = ["codec.faiss"] + [f"{name}.npy" for name in ARRAYS]
            meta = {
                "format": FORMAT,
                "version": VERSION,
                "dim": self.dim,
                "nbits": self.nbits,
                "nlist": self.nlist,
                "nprobe": self.nprobe,
                "rerank": self.rerank,
                "ndocs": self.ndocs,
                "num_documents": len(self.ids),
                "num_tokens": self.num_tokens,
                "ids": self.ids,
            }
            storage.write_description(tmp, "index.json", meta, files)
        return path

    @classmethod
    def load(cls, path, *, mmap: bool = True, verify: bool = True) -> "MultiVectorIndex":
        """Read a folder written by :meth:`save`; ``mmap`` maps the token codes instead of reading them."""
        return storage.read_consistently(path, lambda: cls._load(path, mmap=mmap, verify=verify))

    @classmethod
    def _load(cls, path, *, mmap: bool = True, verify: bool = True):
        path = Path(path)
        meta = storage.read_description(path, "index.json", FORMAT, VERSION, verify=verify, what="MultiVectorIndex")
        self = cls(meta["dim"], nbits=meta["nbits"], nlist=meta["nlist"], nprobe=meta["nprobe"], rerank=meta["rerank"],
                   ndocs=meta.get("ndocs", 0))
        try:
            self.codec = faiss.read_index(str(path / "codec.faiss"))
            for name in ARRAYS:
                setattr(self, name, np.load(path / f"{name}.npy", mmap_mode="r" if mmap and name == "codes" else None, allow_pickle=False))
        except (RuntimeError, ValueError, OSError) as exc:
            raise IndexFormatError(f"{path} is truncated or corrupted: {exc}") from exc
        self.ids = meta["ids"]
        self._cache_codec_params()
        n = len(self.ids)
        if len(self.doc_offsets) != n + 1 or len(self.deleted) != n or len(self.codes) != self.doc_offsets[-1]:
            raise IndexFormatError(f"{path}: arrays disagree with the {n} documents listed in index.json")
        self.deleted = np.array(self.deleted)  # writable: delete() after load
        self._position = {doc_id: i for i, doc_id in enumerate(self.ids) if not self.deleted[i]}
        return self
