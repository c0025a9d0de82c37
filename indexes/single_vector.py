"""One vector per document in a FAISS index built from a factory string.

FAISS factory strings are the configuration language: ``"Flat"`` (exact),
``"HNSW32"`` (graph), ``"IVF64,Flat"``, ``"IVF1024,PQ32"`` (inverted lists, compressed).
Search-time knobs use FAISS's own parameter strings (``"nprobe=32,efSearch=256"``).
Cosine similarity is inner product over L2-normalised vectors.

Indexes that need training (IVF, PQ) collect added vectors until the first search or
save (or :meth:`FaissIndex.train`), then train on them — FAISS subsamples large sets
itself — and add them, so documents can be added in small batches.

Deletes are tombstones, excluded inside every search by an ``IDSelectorBitmap`` in the index's
own SearchParameters (as ``subset`` filters are); :meth:`FaissIndex.compact` removes them: IVF
lists rewritten from their stored codes, flat codes by FAISS ``remove_ids``, HNSW (no
``remove_ids``) rebuilt from its stored vectors. A selector alone starves approximate searches on
small subsets: measured on 20,000 random vectors (``python -m benchmarks.filtered_search``),
recall@10 over the subset with FAISS's selector at the index's settings is 0.76 (HNSW32,
efSearch=128) and 0.57 (IVF128, nprobe=32) for a 0.5% subset, 0.96 / 0.74 at 5%; so small
subsets are searched exhaustively (rules in :meth:`FaissIndex._filtered`), recall 1.000 at
0.4-2x the selector's time.

Examples
--------
>>> import numpy as np
>>> from indexes import FaissIndex
>>> index = FaissIndex(dim=4, factory="Flat")
>>> index.add(["a", "b"], np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype="float32"))
>>> index.search(np.array([[0.9, 0.1, 0, 0]], dtype="float32"), k=1).ids
[['a']]
"""

from __future__ import annotations

import shutil
from pathlib import Path

import faiss
import numpy as np

from indexes import storage
from indexes.base import (
    Index, IndexFormatError, SearchResult, allowed_positions, check_finite, check_k, claim_ids, delete_positions,
)
from indexes.locking import ReadWriteLock

FORMAT = "faiss-single-vector"
VERSION = 2  # 2: tombstones ("deleted" positions) in index.json
INDEX_FILE = "index.faiss"
META_FILE = "index.json"
METRICS = {"cosine": faiss.METRIC_INNER_PRODUCT, "ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def default_search_params(index) -> str:
    """Accurate-by-default knobs: FAISS's own defaults (nprobe=1, efSearch=16) lose recall at k=100."""
    params = []
    try:
        ivf = faiss.extract_index_ivf(index)
        # Queries sit far from document clusters: at k=100 probing an eighth of the lists (32 at least) keeps
        # nDCG@10 within 0.001 of exact on SciFact, where nprobe=16 of 64 loses 0.012.
        params.append(f"nprobe={min(ivf.nlist, max(32, ivf.nlist // 8))}")
    except RuntimeError:
        pass
    if isinstance(index, faiss.IndexHNSW):
        params.append("efSearch=128")
    return ",".join(params)


class FaissIndex(Index):
    """A single-vector FAISS index with string document ids.

    Parameters
    ----------
    dim
        Embedding dimension.
    factory
        FAISS factory string, e.g. ``"Flat"``, ``"HNSW32"``, ``"IVF256,PQ32"``.
    metric
        ``"cosine"`` (normalised inner product, the default), ``"ip"`` or ``"l2"``
        (scores are then negated squared distances, so higher is always better).
    search_params
        FAISS ParameterSpace string such as ``"nprobe=32"``; default: see
        :func:`default_search_params`.

    Threads: ``search`` runs concurrently from any number of threads; ``add``, ``train``,
    ``set_search_params`` and the lazy training of the first search run one at a time, and
    never beside a search (a readers-writer lock), so a search never sees a half-trained index.
    """

    def __init__(self, dim: int, factory: str = "Flat", metric: str = "cosine", search_params: str | None = None):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        try:
            index = faiss.index_factory(int(dim), factory, METRICS[metric])
        except RuntimeError as exc:
            raise ValueError(f"invalid FAISS factory string {factory!r} for dim {dim}: {exc}") from exc
        self._init(index, factory, metric, search_params, ids=[])

    def _init(self, index, factory, metric, search_params, ids, deleted=()):
        self.index = index
        self.dim = index.d
        self.factory = factory
        self.metric = metric
        self.ids: list[str] = ids  # every position, in FAISS's internal order (label j is ids[j]); deleted ones too
        self.deleted = np.zeros(len(ids), dtype=bool)
        self.deleted[list(deleted)] = True
        self._position = {doc_id: i for i, doc_id in enumerate(ids) if not self.deleted[i]}  # live documents
        self._pending: list[np.ndarray] = []  # added before training; the last rows of self.ids
        self._lock = ReadWriteLock()
        self.lists_file: Path | None = None  # inverted lists in a file of their own (built from shards): read-only
        self.set_search_params(default_search_params(index) if search_params is None else search_params)

    @classmethod
    def like(cls, other: "FaissIndex") -> "FaissIndex":
        """An empty index with ``other``'s factory, metric, search parameters and training (if trained).

        Vectors added to it are encoded as ``other`` encodes them: shards of one collection,
        or the reference a compacted index is compared with.
        """
        other.train()
        with other._lock.read():
            index = faiss.clone_index(other.index)
        index.reset()
        self = cls.__new__(cls)
        self._init(index, other.factory, other.metric, other.search_params, ids=[])
        return self

    def set_search_params(self, params: str) -> None:
        """Apply FAISS search-time parameters (``"nprobe=32,efSearch=256"``)."""
        with self._lock.write():
            self._apply_params(self.index, params)
            self.search_params = params

    def _apply_params(self, index, params: str) -> None:
        if params:
            try:
                faiss.ParameterSpace().set_index_parameters(index, params)
            except RuntimeError as exc:
                raise ValueError(f"search parameters {params!r} do not apply to {self.factory!r}: {exc}") from exc

    def __len__(self) -> int:
        return len(self._position)

    def live_ids(self) -> list[str]:
        """Ids not deleted, in the index's order."""
        return [doc_id for doc_id, gone in zip(self.ids, self.deleted) if not gone]

    def _prepare(self, vectors) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {x.shape}")
        check_finite(x)
        if self.metric == "cosine":
            x = x.copy()
            faiss.normalize_L2(x)
        return x

    def _check_writable(self, what: str) -> None:
        if self.lists_file is not None:
            raise ValueError(f"cannot {what}: this index's inverted lists live in {self.lists_file} (built from shards), "
                             "which changes in place; encode new shards and run build-index instead")

    def add(self, ids, embeddings) -> None:
        self._check_writable("add documents")
        ids = [str(i) for i in ids]
        x = self._prepare(embeddings)
        if len(ids) != len(x):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        with self._lock.write():
            start = len(self.ids)
            claim_ids(self._position, ids, start)
            self.ids.extend(ids)
            self.deleted = np.concatenate([self.deleted, np.zeros(len(ids), dtype=bool)])
            if self.index.is_trained:
                self.index.add(x)
            else:
                self._pending.append(x)

    def train(self) -> None:
        """Train on the vectors added so far (if the index needs it), then index them."""
        if self._pending:  # checked again under the lock: the first of several threads trains
            with self._lock.write():
                self._train()

    def _train(self) -> None:
        if not self._pending:
            return
        x = np.concatenate(self._pending)
        try:
            self.index.train(x)
        except RuntimeError as exc:
            raise ValueError(
                f"FAISS index {self.factory!r} could not train on {len(x)} vectors ({exc}); "
                "add more documents before searching, or choose a smaller factory (fewer IVF lists / PQ bits)"
            ) from exc
        self.index.add(x)
        self._pending = []

    def search(self, queries, k: int, *, subset=None) -> SearchResult:
        """Top-``k`` documents of each query; ``subset`` (ids) restricts the search inside FAISS (see :meth:`_filtered`)."""
        check_k(k)
        q = self._prepare(queries)
        self.train()
        with self._lock.read():
            filtered = subset is not None or self.deleted.any()
            allowed = allowed_positions(self._position, self.deleted, subset) if filtered else None
            count = len(self._position) if allowed is None else int(allowed.sum())
            if not count:
                return SearchResult(ids=[[] for _ in q], scores=[[] for _ in q])
            if allowed is None:
                scores, labels = self.index.search(q, min(k, count))
            else:
                scores, labels = self._filtered(q, min(k, count), allowed, count)
            ids = self.ids
        if self.metric == "l2":
            scores = -scores
        hits, out_scores = [], []
        for row_labels, row_scores in zip(labels, scores):
            keep = row_labels >= 0  # IVF/HNSW may return fewer than k
            hits.append([ids[j] for j in row_labels[keep]])
            out_scores.append(row_scores[keep].tolist())
        return SearchResult(ids=hits, scores=out_scores)

    def _filtered(self, q: np.ndarray, k: int, allowed: np.ndarray, count: int):
        """FAISS search restricted to the ``allowed`` positions through an ``IDSelectorBitmap``.

        The selector rides in the index's own SearchParameters (IVF: nprobe, max_codes; HNSW:
        efSearch at least k), so an allowed document is scored exactly as unfiltered. Where
        the restriction would starve the approximate search, it turns exhaustive over the
        subset: IVF probes every list when the subset holds no more vectors than the usual
        probe scans (membership is checked before any distance); HNSW, and indexes whose search
        takes no selector (``PQ``, ``RFlat``), score the subset's stored vectors exactly when
        ``count**2 <= efSearch * L * ntotal``, ``L`` the bottom layer's links (2M): a filtered
        graph walk computes about ``efSearch * L * ntotal / count`` distances, exhaustive ``count`` or always, respectively.
        """
        core, outer = self._core()
        if isinstance(core, faiss.IndexHNSW) and outer is None and count**2 <= core.hnsw.efSearch * core.hnsw.nb_neighbors(0) * len(allowed):
            return self._exact_subset(q, k, np.flatnonzero(allowed))
        bits = np.packbits(allowed, bitorder="little")  # FAISS's bitmap: bit i & 7 of byte i >> 3
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        if isinstance(core, faiss.IndexIVF):
            nprobe = core.nlist if count * core.nlist <= len(allowed) * core.nprobe else core.nprobe
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe, max_codes=core.max_codes)
        elif isinstance(core, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(core.hnsw.efSearch, k))
        else:
            params = faiss.SearchParameters(sel=selector)
        if outer is not None:
            params = faiss.SearchParametersPreTransform(index_params=params)
        try:
            return self.index.search(q, k, params=params)
        except RuntimeError:  # this index type takes no selector
            return self._exact_subset(q, k, np.flatnonzero(allowed))

    def _exact_subset(self, q: np.ndarray, k: int, positions: np.ndarray, chunk: int = 1 << 16):
        """Exhaustive search over the stored (reconstructed) vectors of ``positions``: the index's own scores."""
        flat = faiss.IndexFlat(self.dim, self.index.metric_type)
        for start in range(0, len(positions), chunk):
            flat.add(self.index.reconstruct_batch(positions[start : start + chunk]))
        scores, labels = flat.search(q, k)
        return scores, np.where(labels >= 0, positions[np.maximum(labels, 0)], -1)

    def _core(self):
        """``(the IVF / HNSW / flat index that searches, the IndexPreTransform around it or None)``."""
        index = faiss.downcast_index(self.index)
        if isinstance(index, faiss.IndexPreTransform):
            return faiss.downcast_index(index.index), index
        return index, None

    # -- deleting -----------------------------------------------------------------------------
    def delete(self, ids) -> None:
        """Remove documents at once (tombstones, excluded inside every search until :meth:`compact`); KeyError for an unknown id."""
        with self._lock.write():
            delete_positions(self._position, self.deleted, ids)  # tombstones only: on-disk lists stay as they are

    def compact(self) -> None:
        """Drop deleted vectors: IVF lists rewritten without them (codes kept, labels renumbered), flat
        codes through FAISS ``remove_ids``, HNSW rebuilt from its stored vectors; then searches equal an
        index of the remaining documents added to the same trained quantizers.
        """
        with self._lock.write():
            if not self.deleted.any():
                return
            self._check_writable("compact")
            keep = ~self.deleted
            stored = self.index.ntotal
            if stored:
                self.index = self._compacted(keep[:stored])
            if self._pending:
                rest = np.concatenate(self._pending)[keep[stored:]]
                self._pending = [rest] if len(rest) else []
            self.ids = [self.ids[i] for i in np.flatnonzero(keep)]
            self.deleted = np.zeros(len(self.ids), dtype=bool)
            self._position = {doc_id: i for i, doc_id in enumerate(self.ids)}

    def _compacted(self, keep: np.ndarray):
        core, outer = self._core()
        if isinstance(core, faiss.IndexIVF):
            compact_ivf(core, keep)
            if outer is not None:
                outer.ntotal = core.ntotal
            return self.index
        if not isinstance(core, faiss.IndexHNSW):
            gone = np.flatnonzero(~keep).astype(np.int64)
            try:  # flat codes (Flat, PQ, SQ) remove in place, keeping the order: labels stay positions
                self.index.remove_ids(faiss.IDSelectorBatch(len(gone), faiss.swig_ptr(gone)))
                return self.index
            except RuntimeError:
                pass
        return self._rebuilt(np.flatnonzero(keep))

    def _rebuilt(self, positions: np.ndarray, chunk: int = 1 << 16):
        """A fresh index of the factory holding the stored vectors of ``positions`` (trained on them if it must be)."""
        index = faiss.index_factory(self.dim, self.factory, self.index.metric_type)
        if not index.is_trained:
            index.train(self.index.reconstruct_batch(positions))
        for start in range(0, len(positions), chunk):
            index.add(self.index.reconstruct_batch(positions[start : start + chunk]))
        self._apply_params(index, self.search_params)
        return index

    def save(self, path) -> Path:
        """Write ``index.faiss`` (FAISS native) and ``index.json`` (ids, settings, checksum) atomically."""
        self.train()
        path = Path(path)
        with self._lock.read(), storage.directory(path) as tmp:
            faiss.write_index(self.index, str(tmp / INDEX_FILE))
            meta = {
                "format": FORMAT,
                "version": VERSION,
                "factory": self.factory,
                "metric": self.metric,
                "dim": self.dim,
                "search_params": self.search_params,
                "num_documents": len(self.ids),
                "ids": self.ids,
                "deleted": np.flatnonzero(self.deleted).tolist(),  # tombstones are kept: a loaded index searches the same
            }
            files = [INDEX_FILE]
            if self.lists_file is not None:  # unchanged since load (the index refuses writes): a copy is a snapshot
                shutil.copyfile(self.lists_file, tmp / self.lists_file.name)
                meta["ivfdata"] = self.lists_file.name
                files.append(self.lists_file.name)
            storage.write_description(tmp, META_FILE, meta, files)
        return path

    @classmethod
    def load(cls, path, *, mmap: bool = False, verify: bool = True) -> "FaissIndex":
        """Read a folder written by :meth:`save`.

        ``mmap`` maps the FAISS file instead of reading it (large flat/IVF indexes);
        ``verify`` checks the file's SHA-256 against the one recorded at save.
        """
        return storage.read_consistently(path, lambda: cls._load(path, mmap=mmap, verify=verify))

    @classmethod
    def _load(cls, path, *, mmap: bool = False, verify: bool = True):
        path = Path(path)
        meta = storage.read_description(path, META_FILE, FORMAT, VERSION, verify=verify, what="FaissIndex")
        index_path = path / INDEX_FILE
        if INDEX_FILE not in meta["sha256"] and not index_path.is_file():
            raise IndexFormatError(f"{index_path} is missing: {path} is not a saved FaissIndex")
        try:
            # Lists in a file of their own (indexes.from_shards) are found beside index.faiss; FAISS 1.15 cannot
            # read such an index with IO_FLAG_MMAP (it crashes), and the lists are memory-mapped anyway.
            flags = faiss.IO_FLAG_ONDISK_SAME_DIR if meta.get("ivfdata") else (faiss.IO_FLAG_MMAP if mmap else 0)
            index = faiss.read_index(str(index_path), flags)
        except RuntimeError as exc:
            raise IndexFormatError(f"{index_path} is truncated or corrupted: {exc}") from exc
        ids = meta.get("ids")
        if not isinstance(ids, list) or index.ntotal != len(ids) or index.d != meta.get("dim"):
            raise IndexFormatError(
                f"{path}: index holds {index.ntotal} vectors of dim {index.d}, "
                f"description lists {len(ids) if isinstance(ids, list) else '?'} ids of dim {meta.get('dim')}"
            )
        deleted = meta.get("deleted", [])
        if not isinstance(deleted, list) or not all(isinstance(i, int) and 0 <= i < len(ids) for i in deleted):
            raise IndexFormatError(f"{path / META_FILE}: 'deleted' is not a list of positions below {len(ids)}")
        self = cls.__new__(cls)
        self._init(index, meta["factory"], meta["metric"], meta.get("search_params", ""), ids=ids, deleted=deleted)
        if meta.get("ivfdata"):
            self.lists_file = path / meta["ivfdata"]
        return self


def compact_ivf(ivf, keep: np.ndarray) -> None:
    """Rewrite the inverted lists of ``ivf`` without the entries whose label ``j`` has ``keep[j]`` False.

    Codes are copied as stored (no re-encoding) and labels renumbered to ``0..kept-1`` in order,
    so each list is what adding the kept vectors to the same trained index would give.
    """
    renumber = np.cumsum(keep, dtype=np.int64) - 1
    lists, size = ivf.invlists, ivf.code_size
    fresh = faiss.ArrayInvertedLists(ivf.nlist, size)
    for list_no in range(ivf.nlist):
        n = lists.list_size(list_no)
        if not n:
            continue
        labels = faiss.rev_swig_ptr(lists.get_ids(list_no), n).copy()
        codes = faiss.rev_swig_ptr(lists.get_codes(list_no), n * size).reshape(n, size)
        mask = keep[labels]
        if mask.any():
            kept_codes = np.ascontiguousarray(codes[mask])
            kept_labels = np.ascontiguousarray(renumber[labels[mask]])
            fresh.add_entries(list_no, int(mask.sum()), faiss.swig_ptr(kept_labels), faiss.swig_ptr(kept_codes))
    ivf.replace_invlists(fresh, True)
    fresh.this.disown()  # the index owns it now
    ivf.ntotal = int(keep.sum())
    if ivf.direct_map.type != faiss.DirectMap.NoMap:
        ivf.make_direct_map(True)
