"""Index builds from embedding shards in bounded memory: train on a sample, add shard by shard, merge on disk.

autofaiss builds 200M vectors with 15 GB of RAM this way; the in-process indexes
(:class:`indexes.FaissIndex`, :class:`indexes.MultiVectorIndex`) instead hold every vector (or
every token code) of the corpus plus the pending training set in one process, which is what runs
out of memory at 1-3M documents (fast-plaid#26/#47, pylate#160). Here:

- **single vector, IVF types** (``"IVF4096,PQ48"``, ``"IVF1024,Flat"``): the quantizer (and PQ)
  is trained on a seeded sample of at most ``train_size`` vectors drawn from every shard; each
  shard is then added to its own copy of the trained index (``add_with_ids``, global positions)
  and written as a part file, in parallel where ``map_fn`` is parallel (Ray tasks in
  :mod:`retrieval.scale.build`); FAISS's ``merge_ondisk`` merges the parts' inverted lists into
  one ``index.ivfdata`` file (``OnDiskInvertedLists``), memory-mapped at search. Peak memory:
  the sample, one shard, the ids; never the codes of the corpus.
- **single vector, other types** (``Flat``, ``HNSW32``): they have no inverted lists to merge,
  so shards are added one after the other into one index, which must fit in memory (``Flat``:
  ``4 * dim`` bytes per document).
- **token vectors**: the residual quantiser of :class:`indexes.MultiVectorIndex` is trained on
  a sample of tokens; each shard's codes are written straight into their slice of the final
  ``codes.npy`` (file writes, not a memory map: mapped pages would count in the process's
  resident memory) and its (centroid, document) pairs to a part file; the inverted lists are
  then filled list by list from the parts. The folder is a plain :class:`MultiVectorIndex` save,
  codes memory-mapped by its ``load``.

The folders written are the in-process indexes' own formats (``FaissIndex.load``,
``MultiVectorIndex.load`` read them). The on-disk inverted lists are referenced by the absolute
path of the final folder (``final_path``), as FAISS stores them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

from indexes import multi_vector as mv
from indexes import single_vector as sv
from indexes import storage
from indexes.base import check_finite
from indexes.shards import ShardSet

IVF_DATA = "index.ivfdata"
MapFn = Callable[[Callable, list[tuple]], list]


@contextlib.contextmanager
def _c_stdout_silenced():
    """FAISS's on-disk lists print ``resizing ...`` from C++ on stdout; a command's own output stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def serial_map(func: Callable, args: list[tuple]) -> list:
    """The default ``map_fn``: one call after the other in this process."""
    return [func(*a) for a in args]


def _ids(shards: ShardSet) -> tuple[list[str], list[int]]:
    """Every document id in shard order, and each shard's first position; a repeated id is a ``ValueError``."""
    ids, seen, starts = [], {}, []
    for number in range(len(shards)):
        starts.append(len(ids))
        for doc_id in shards.read(number, verify=False).ids:
            first = seen.setdefault(doc_id, number)
            if first != number or len(seen) == len(ids):
                raise ValueError(f"document id {doc_id!r} is in shard {first} and shard {number} of {shards.path}")
            ids.append(doc_id)
    return ids, starts


def sample_rows(shards: ShardSet, size: int, seed: int = 0) -> np.ndarray:
    """A seeded uniform sample of ``size`` rows (vectors, or token vectors) across all shards, float32."""
    counts = [len(shards.read(i, verify=False).embeddings) for i in range(len(shards))]
    total = sum(counts)
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(total, min(size, total), replace=False))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    parts = []
    for number in range(len(shards)):
        rows = picks[(picks >= bounds[number]) & (picks < bounds[number + 1])] - bounds[number]
        if len(rows):
            parts.append(np.asarray(shards.read(number, verify=False).embeddings[rows], dtype=np.float32))
    return np.concatenate(parts)


def _prepared(x, metric: str) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True, order="C")
    check_finite(x)
    if metric == "cosine":
        faiss.normalize_L2(x)
    return x


def train_single(shards: ShardSet, factory: str, metric: str = "cosine", train_size: int | None = None, seed: int = 0):
    """An empty FAISS index of ``factory``, trained (where it needs training) on a sample of the shards."""
    try:
        index = faiss.index_factory(shards.dim, factory, sv.METRICS[metric])
    except RuntimeError as exc:
        raise ValueError(f"invalid FAISS factory string {factory!r} for dim {shards.dim}: {exc}") from exc
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist if _is_ivf(index) else 256
        size = train_size or max(64 * nlist, 65_536)  # FAISS wants 39-256 points per centroid; PQ 256 x 39
        sample = _prepared(sample_rows(shards, size, seed), metric)
        try:
            index.train(sample)
        except RuntimeError as exc:
            raise ValueError(f"FAISS index {factory!r} could not train on {len(sample)} vectors: {exc}") from exc
    return index


def _is_ivf(index) -> bool:
    try:
        faiss.extract_index_ivf(index)
        return True
    except RuntimeError:
        return False


def add_shard_part(trained_file: str, shards_path: str, number: int, start: int, part_file: str, metric: str) -> int:
    """Add shard ``number`` to a copy of the trained index in ``trained_file`` and write it to ``part_file``.

    Runs anywhere the files are visible (a Ray task); returns the vectors added.
    """
    shard = ShardSet(shards_path).read(number)
    index = faiss.read_index(trained_file)
    index.add_with_ids(_prepared(shard.embeddings, metric), np.arange(start, start + len(shard.ids), dtype=np.int64))
    faiss.write_index(index, part_file)
    return len(shard.ids)


def _complete(shards: ShardSet | str | Path, kind: str) -> ShardSet:
    """The shard set (opened from its folder if need be), complete and of ``kind``, else ValueError."""
    shards = shards if isinstance(shards, ShardSet) else ShardSet(shards)
    shards.check_complete()
    if shards.kind != kind:
        held, index = {"multi": ("token vectors", "multi-vector"), "single": ("one vector per document", "single-vector")}[shards.kind]
        raise ValueError(f"{shards.path} holds {held}: build a {index} index from it")
    return shards


FLAT_UP_TO = 1_000_000  # 'auto' keeps exact search up to here: 1M x 384 fp32 is 1.5 GB in memory


def ivf_pq_factory(n: int, dim: int) -> str:
    """IVF-PQ for ``n`` vectors: about 4 sqrt(n) lists (capped at 4,096), ``dim / 8`` sub-quantizers.

    Measured (BENCHMARKS.md, "Scale"): 10M x 384 builds in 7 minutes within 2.9 GB and answers
    in 40 ms p50 on 2 cores; 16,384 lists would need 4x the training sample. An HNSW quantizer
    assigns 10M vectors to lists in minutes instead of an hour of exact distances; ``np`` skips
    polysemous training (~10 CPU-minutes at PQ48 that only Hamming-filtered search uses).
    """
    nlist = int(min(4096, 2 ** round(np.log2(4 * np.sqrt(max(n, 1))))))
    m = max(d for d in range(1, dim // 8 + 1) if dim % d == 0)  # PQ's sub-quantizers must divide the dimension
    return f"IVF{nlist}_HNSW32,PQ{m}np"


def auto_factory(n: int, dim: int) -> str:
    """What ``build-index --index auto`` builds for ``n`` vectors: ``Flat`` up to :data:`FLAT_UP_TO`, else :func:`ivf_pq_factory`."""
    return "Flat" if n <= FLAT_UP_TO else ivf_pq_factory(n, dim)


def build_single(shards: ShardSet | str | Path, path: str | Path, factory: str, *, metric: str = "cosine",
                 train_size: int | None = None, seed: int = 0, map_fn: MapFn = serial_map,
                 final_path: str | Path | None = None, search_params: str | None = None) -> Path:
    """Build a :class:`indexes.FaissIndex` folder at ``path`` from single-vector shards.

    Parameters
    ----------
    shards
        A complete :class:`indexes.shards.ShardSet` (or its folder).
    factory, metric, search_params
        As for :class:`indexes.FaissIndex`; ``"auto"``: :func:`auto_factory`.
    train_size
        Vectors sampled to train IVF / PQ (default ``max(64 * nlist, 65,536)``).
    map_fn
        ``map_fn(func, [args, ...])``: how the per-shard adds of an IVF index run (serially by default).
    final_path
        Where the folder will live when ``path`` is inside a folder being built: the merged
        inverted lists are referenced by this absolute path.
    """
    shards = _complete(shards, "single")
    if metric not in sv.METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(sv.METRICS)}")
    ids, starts = _ids(shards)
    factory = auto_factory(len(ids), shards.dim) if factory == "auto" else factory
    index = train_single(shards, factory, metric, train_size, seed)
    path = Path(path)
    with storage.directory(path) as tmp, tempfile.TemporaryDirectory(prefix=".parts-", dir=Path(path).absolute().parent) as parts:
        files = [sv.INDEX_FILE]
        if _is_ivf(index):
            trained = str(Path(parts) / "trained.faiss")
            faiss.write_index(index, trained)
            jobs = [(trained, str(shards.path.absolute()), i, starts[i], str(Path(parts) / f"part-{i:05d}.faiss"), metric)
                    for i in range(len(shards))]
            map_fn(add_shard_part, jobs)
            with _c_stdout_silenced():
                merge_ondisk(index, [job[4] for job in jobs], str(tmp / IVF_DATA))
            ivf = faiss.extract_index_ivf(index)
            faiss.downcast_InvertedLists(ivf.invlists).filename = str(Path(final_path or path).absolute() / IVF_DATA)
            files.append(IVF_DATA)
        else:
            for number in range(len(shards)):
                index.add(_prepared(shards.read(number).embeddings, metric))
        faiss.write_index(index, str(tmp / sv.INDEX_FILE))
        params = sv.default_search_params(index) if search_params is None else search_params
        del index  # unmaps the merged lists before the folder is swapped in
        meta = {"format": sv.FORMAT, "version": sv.VERSION, "factory": factory, "metric": metric, "dim": shards.dim,
                "search_params": params, "num_documents": len(ids), "ids": ids}
        if IVF_DATA in files:  # lists in a file of their own: read with IO_FLAG_ONDISK_SAME_DIR, never IO_FLAG_MMAP
            meta["ivfdata"] = IVF_DATA
        storage.write_description(tmp, sv.META_FILE, meta, files)
    return path


def encode_token_shard(codec_file: str, shards_path: str, number: int, codes_file: str, token_start: int,
                       first_doc: int, pairs_file: str) -> int:
    """Codes of shard ``number``'s tokens written into ``codes_file`` at ``token_start``; its (list, doc) pairs saved.

    Runs anywhere the files are visible (a Ray task); returns the tokens encoded.
    """
    shard = ShardSet(shards_path).read(number)
    codec = faiss.read_index(codec_file)
    width = codec.coarse_code_size()
    lists, done = [], token_start
    header = _npy_header_size(codes_file)
    with open(codes_file, "r+b") as f:
        for lo in range(0, len(shard.embeddings), 1 << 16):
            codes = codec.sa_encode(mv.normalize(np.asarray(shard.embeddings[lo : lo + (1 << 16)], dtype=np.float32)))
            f.seek(header + done * codes.shape[1])
            f.write(codes.tobytes())
            done += len(codes)
            lists.append(sum(codes[:, b].astype(np.int64) << (8 * b) for b in range(width)))
    docs = np.repeat(np.arange(first_doc, first_doc + len(shard.ids), dtype=np.int64), shard.doclens)
    pairs = np.unique(np.concatenate(lists) << 32 | docs)  # sorted by list, then document
    np.save(pairs_file, pairs, allow_pickle=False)
    return done - token_start


def _npy_header_size(path: str | Path) -> int:
    """Bytes before the data of an ``.npy`` file (mapping it touches no page)."""
    return int(np.load(path, mmap_mode="r", allow_pickle=False).offset)


def _empty_npy(path: Path, shape: tuple, dtype) -> None:
    """An ``.npy`` of ``shape`` whose data is written later with plain file writes."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    del arr


def train_codec(shards: ShardSet, nbits: int, nlist: int | None, train_tokens_per_centroid: int, kmeans_iters: int, seed: int):
    """The residual quantiser of :class:`indexes.MultiVectorIndex`, trained on a sample of the shards' tokens."""
    total = sum(int(shards.read(i, verify=False).doclens.sum()) for i in range(len(shards)))
    nlist = nlist or mv.default_nlist(total)
    sample = mv.normalize(sample_rows(shards, nlist * train_tokens_per_centroid, seed))
    codec = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(shards.dim), shards.dim, nlist, mv.QTYPES[nbits], faiss.METRIC_INNER_PRODUCT, True)
    codec.cp.niter, codec.cp.seed, codec.cp.spherical = kmeans_iters, seed, True
    codec.cp.max_points_per_centroid = train_tokens_per_centroid
    try:
        codec.train(sample)
    except RuntimeError as exc:
        raise ValueError(f"could not train {nlist} centroids on {len(sample)} tokens: {exc}") from exc
    return codec, nlist, total


def _fill_lists(pair_files: list[str], nlist: int, out: Path) -> np.ndarray:
    """``list_docs.npy`` filled list by list from the parts' sorted pairs; returns the list offsets."""
    counts = np.zeros(nlist, dtype=np.int64)
    for file in pair_files:
        counts += np.bincount(np.load(file) >> 32, minlength=nlist)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    _empty_npy(out, (int(offsets[-1]),), np.int32)
    cursor = offsets[:-1].copy()
    data = np.load(out, mmap_mode="r+", allow_pickle=False)
    if len(data):
        for file in pair_files:  # shards in document order: each list stays sorted by document
            pairs = np.load(file)
            lists, docs = pairs >> 32, (pairs & 0xFFFFFFFF).astype(np.int32)
            per_list = np.bincount(lists, minlength=nlist)
            within = np.arange(len(pairs)) - np.repeat(np.cumsum(per_list) - per_list, per_list)
            data[cursor[lists] + within] = docs
            cursor += per_list
        data.flush()
    del data
    return offsets


def build_multi(shards: ShardSet | str | Path, path: str | Path, *, nbits: int = 4, nlist: int | None = None, nprobe: int = 8,
                rerank: int = 256, kmeans_iters: int = 10, train_tokens_per_centroid: int = 64, seed: int = 0,
                map_fn: MapFn = serial_map) -> Path:
    """Build a :class:`indexes.MultiVectorIndex` folder at ``path`` from token-vector shards (settings as there)."""
    shards = _complete(shards, "multi")
    if nbits not in mv.QTYPES:
        raise ValueError(f"nbits must be one of {sorted(mv.QTYPES)}, not {nbits}")
    ids, starts = _ids(shards)
    codec, nlist, total = train_codec(shards, nbits, nlist, train_tokens_per_centroid, kmeans_iters, seed)
    doclens = np.concatenate([shards.read(i, verify=False).doclens for i in range(len(shards))])
    doc_offsets = np.concatenate([[0], np.cumsum(doclens)]).astype(np.int64)
    path = Path(path)
    with storage.directory(path) as tmp, tempfile.TemporaryDirectory(prefix=".parts-", dir=path.absolute().parent) as parts:
        faiss.write_index(codec, str(tmp / "codec.faiss"))
        _empty_npy(tmp / "codes.npy", (total, codec.sa_code_size()), np.uint8)
        jobs = []
        for i in range(len(shards)):
            first_doc = starts[i]
            jobs.append((str(tmp / "codec.faiss"), str(shards.path.absolute()), i, str(tmp / "codes.npy"),
                         int(doc_offsets[first_doc]), first_doc, str(Path(parts) / f"pairs-{i:05d}.npy")))
        map_fn(encode_token_shard, jobs)
        list_offsets = _fill_lists([job[-1] for job in jobs], nlist, tmp / "list_docs.npy")
        np.save(tmp / "list_offsets.npy", list_offsets, allow_pickle=False)
        np.save(tmp / "doc_offsets.npy", doc_offsets, allow_pickle=False)
        np.save(tmp / "deleted.npy", np.zeros(len(ids), dtype=bool), allow_pickle=False)
        meta = {"format": mv.FORMAT, "version": mv.VERSION, "dim": shards.dim, "nbits": nbits, "nlist": nlist, "nprobe": nprobe,
                "rerank": rerank, "num_documents": len(ids), "num_tokens": total, "ids": ids}
        storage.write_description(tmp, "index.json", meta, ["codec.faiss"] + [f"{name}.npy" for name in mv.ARRAYS])
    return path


