"""Peak memory of searching a saved multi-vector index, each engine in a process of its own.

``python -m benchmarks.multi_vector_ablation --keep DIR`` saves both engines' indexes and the
queries, then runs this module once per engine; by hand::

    python -m benchmarks.search_memory --engine ours --index DIR/ours --queries DIR/queries.npz
    python -m benchmarks.search_memory --engine warp --index DIR/warp/bench --queries DIR/queries.npz

The process imports its engine, loads the index (both memory-mapped: ours
``MultiVectorIndex.load(mmap=True)``, WARP through PyLate with its default ``mmap=True``), searches
every query in one call and then one at a time, and prints one JSON line with the resident set
(Linux ``/proc/self/status``): ``after_import_mb`` (Python, torch and the engine's libraries),
``after_load_mb``, and ``peak_mb`` (``VmHWM``: the whole process at its highest, what the
machine must hold to serve these queries). Pages of a memory-mapped index count once read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.encoder_bench import status_kb


def save_queries(path: Path, queries: list[np.ndarray]) -> Path:
    """Queries as one float32 array and their offsets (no pickle)."""
    offsets = np.cumsum([0] + [len(q) for q in queries])
    np.savez(path, tokens=np.concatenate(queries).astype(np.float32), offsets=offsets)
    return path


def load_queries(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        tokens, offsets = data["tokens"], data["offsets"]
    return [tokens[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _status_mb(field: str) -> float:
    kb = status_kb(field)
    if kb is None:
        raise RuntimeError(f"{field} not in /proc/self/status")
    return round(kb / 1024, 1)


def search_in_this_process(engine: str, index_path: Path, queries_path: Path, threads: int, k: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    queries = load_queries(queries_path)
    if engine == "ours":
        from indexes import MultiVectorIndex

        report = {"after_import_mb": _status_mb("VmRSS")}
        index = MultiVectorIndex.load(index_path, mmap=True)

        def search(batch):
            index.search(batch, k)
    else:
        from pylate import indexes

        report = {"after_import_mb": _status_mb("VmRSS")}
        index = indexes.WARP(index_folder=str(index_path.parent), index_name=index_path.name, override=False,
                             device="cpu", show_progress=False, num_threads=threads)

        def search(batch):
            index(queries_embeddings=[torch.from_numpy(q) for q in batch], k=k)

    report["after_load_mb"] = _status_mb("VmRSS")
    search(queries)
    for q in queries:
        search([q])
    report["peak_mb"] = _status_mb("VmHWM")
    return report


def probe(engine: str, index_path: Path, queries_path: Path, threads: int, k: int) -> dict:
    """Run :func:`search_in_this_process` in a fresh Python process; its JSON report."""
    cmd = [sys.executable, "-m", "benchmarks.search_memory", "--engine", engine, "--index", str(index_path),
           "--queries", str(queries_path), "--threads", str(threads), "--k", str(k)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[1]))
    if proc.returncode != 0:
        raise RuntimeError(f"search_memory {engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=["ours", "warp"], required=True, help="which engine saved the index")
    p.add_argument("--index", type=Path, required=True, help="the saved index: our folder, or WARP's <folder>/<name>")
    p.add_argument("--queries", type=Path, required=True, help="queries saved by save_queries (.npz)")
    p.add_argument("--threads", type=int, default=1, help="search threads (default: 1)")
    p.add_argument("--k", type=int, default=100, help="results per query (default: 100)")
    args = p.parse_args(argv)
    for path, what in ((args.index, "index folder"), (args.queries, "queries file")):
        if not path.exists():
            raise SystemExit(f"no {what} at {path}")
    print(json.dumps(search_in_this_process(args.engine, args.index, args.queries, args.threads, args.k)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
