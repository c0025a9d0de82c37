"""Native search loop of :class:`indexes.MultiVectorIndex` (``csrc/maxsim.cpp``), compiled on first use.

Why native: on SciFact token embeddings (1.2 M tokens, nprobe 8, rerank 256, one thread) the
torch/numpy loop spent its time outside arithmetic: ``np.unique`` and ``np.maximum.at`` over
~60 k inverted-list entries per query for the candidates, then widening 60 k x 64 code bytes
into two float matrices for two matmuls, and ``segment_reduce``. The kernel does the same
arithmetic in one pass per query (a stamp per document instead of a candidates matrix; codes
widened to float one token at a time, in L1, and multiplied against every query token at once,
decompression fused with scoring) and runs queries of a batch on ``torch.get_num_threads()``
threads. Measured against the reference path and WARP in ``benchmarks.multi_vector_ablation``.

The torch path in :mod:`indexes.multi_vector` stays the reference and the fallback: for
``nbits`` 6 and 16, where no C++ compiler is found, or with ``INDEXES_CPU_KERNELS=0``. Exact
scores agree with it to float rounding (summation order), which tests check.

The library is built with the system ``g++`` (plain C ABI, no torch headers: a ~5 s build) into
``$INDEXES_KERNELS_DIR`` (default ``~/.cache/indexes-kernels``), once per source, flags and CPU,
written to a temporary name and renamed, so concurrent first uses never load a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "maxsim.cpp"
FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread"]
#: Queries handed to the kernel per call (its output rows: ``CHUNK * rerank``).
CHUNK = 64

_lock = threading.Lock()
_state: dict[str, object] = {}
_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


def _library_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode())
    try:
        digest.update(Path("/proc/cpuinfo").read_bytes().split(b"\n\n")[0])  # what -march=native targets
    except OSError:
        pass
    folder = Path(os.environ.get("INDEXES_KERNELS_DIR", Path.home() / ".cache" / "indexes-kernels"))
    return folder / f"maxsim_{digest.hexdigest()[:16]}.so"


def _build(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run(["g++", *FLAGS, str(SOURCE), "-o", tmp], check=True, capture_output=True, text=True, timeout=300)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load():
    """The compiled library, or None where it cannot be built here (reason logged once)."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib = None
        if os.environ.get("INDEXES_CPU_KERNELS", "1") == "0":
            _state["why"] = "disabled by INDEXES_CPU_KERNELS=0"
        else:
            try:
                path = _library_path()
                if not path.is_file():
                    logger.info("compiling the multi-vector search kernel into %s (once per machine)", path)
                    _build(path)
                lib = ctypes.CDLL(str(path))
                lib.mv_search.restype = ctypes.c_int
                lib.mv_search.argtypes = [_ptr, _i64, _i64, _i64, _i64, _ptr, _i64, _ptr, _ptr, _i64, _ptr, _ptr, _ptr, _ptr,
                                          _i64, _ptr, _ptr, _i64, _i64, _i64, _i64, _ptr, _i64, _i64, _ptr, _ptr, _ptr, _i64]
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", None) or str(exc)
                _state["why"] = f"{type(exc).__name__}: {detail.strip().splitlines()[-1] if detail.strip() else ''}"
                lib = None
        if lib is None:
            logger.warning("multi-vector search kernel unavailable (%s); using the torch path", _state["why"])
        _state["lib"] = lib
        return lib


def unavailable_reason() -> str | None:
    """Why :func:`load` returned None (None when the library loaded, or before a load)."""
    return _state.get("why")  # type: ignore[return-value]


def _pointer(array: np.ndarray) -> int:
    return array.ctypes.data


def _padded(queries: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Queries as one ``(n, nqp, dim)`` array, ``nqp`` a multiple of 8 (zero rows), and their token counts."""
    nqp = -(-max(len(q) for q in queries) // 8) * 8
    padded = np.zeros((len(queries), nqp, queries[0].shape[1]), dtype=np.float32)
    for row, q in enumerate(queries):
        padded[row, : len(q)] = q
    return padded, np.array([len(q) for q in queries], dtype=np.int64)


def search(index, queries: list[np.ndarray], k: int, nprobe: int, rerank: int, allowed: np.ndarray,
           fixed: np.ndarray | None, ndocs: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Top-``k`` positions and exact scores per (normalised) query: :meth:`MultiVectorIndex._search`'s loop.

    ``fixed``: positions every query scores exactly (exhaustive, or a subset no larger than
    ``rerank``), else each query's ``rerank`` best candidates (``ndocs > rerank``: the best of its
    ``ndocs`` best by centroid interaction).
    """
    lib = load()
    codes = np.ascontiguousarray(index.codes)
    doc_offsets = np.ascontiguousarray(index.doc_offsets, dtype=np.int64)
    list_offsets = np.ascontiguousarray(index.list_offsets, dtype=np.int64)
    list_docs = np.ascontiguousarray(index.list_docs, dtype=np.int32)
    allowed = np.ascontiguousarray(allowed, dtype=np.uint8)
    fixed = None if fixed is None else np.ascontiguousarray(fixed, dtype=np.int64)
    width = len(fixed) if fixed is not None else rerank
    centroids = np.ascontiguousarray(index._centroids.numpy(), dtype=np.float32)
    vmin, vdiff = (np.ascontiguousarray(r.numpy(), dtype=np.float32) for r in index._sq_ranges)
    nprobe = min(nprobe, index.nlist)
    threads = torch.get_num_threads()
    chunk = max(1, min(CHUNK, (1 << 20) // max(width, 1)))  # output rows of at most ~12 MB (exhaustive: width = documents)
    ids, scores = [], []
    for start in range(0, len(queries), chunk):
        padded, lengths = _padded(queries[start : start + chunk])
        out_docs = np.zeros((len(padded), max(width, 1)), dtype=np.int64)
        out_scores = np.zeros((len(padded), max(width, 1)), dtype=np.float32)
        counts = np.zeros(len(padded), dtype=np.int64)
        status = lib.mv_search(
            _pointer(codes), codes.shape[1], index.codec.coarse_code_size(), index.nbits, index.dim,
            _pointer(doc_offsets), len(doc_offsets) - 1, _pointer(list_offsets), _pointer(list_docs), index.nlist,
            _pointer(allowed), _pointer(centroids), _pointer(vmin), _pointer(vdiff), len(padded), _pointer(padded),
            _pointer(lengths), padded.shape[1], nprobe, rerank, ndocs,
            _pointer(fixed) if fixed is not None else None, len(fixed) if fixed is not None else -1, max(width, 1),
            _pointer(out_docs), _pointer(out_scores), _pointer(counts), threads,
        )
        if status:
            raise RuntimeError(f"mv_search failed (status {status}): nbits {index.nbits} is not supported natively")
        for row, n in enumerate(counts):
            top = np.argsort(-out_scores[row, :n], kind="stable")[:k]
            ids.append(out_docs[row, top])
            scores.append(out_scores[row, top])
    return ids, scores
