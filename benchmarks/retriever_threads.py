"""``Retriever.search`` latency from 1 thread and from N threads sharing one retriever.

Shows that no lock serializes whole searches: the same N threads run once freely and once
with a lock around each whole search (the anchor, measured in the same run); a lock would
make every search wait for the others, N threads' p50 about N times one thread's. Real
SciFact documents and queries, the offline MiniLM.

    python -m benchmarks.retriever_threads --data-dir ../shared/data --threads 8 --json runs/threads.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from indexes import storage
from retrieval import Retriever


def read_jsonl(path: Path, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, n)]


def timed_searches(retriever: Retriever, queries: list[str], threads: int, k: int, lock=None) -> tuple[np.ndarray, float]:
    """Per-search seconds and the wall time of all searches, ``threads`` at a time (each under ``lock`` if given)."""

    def one(query: str) -> float:
        start = time.perf_counter()
        with lock or contextlib.nullcontext():
            retriever.search(query, k=k)
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = np.array(list(pool.map(one, queries)))
    return latencies, time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="folder holding scifact/ in BEIR layout")
    p.add_argument("--documents", type=int, default=2000, help="SciFact documents indexed")
    p.add_argument("--queries", type=int, default=256, help="queries searched in each setting")
    p.add_argument("--threads", type=int, default=8, help="threads of the concurrent setting")
    p.add_argument("--index", default="HNSW32", help="FAISS factory string")
    p.add_argument("--k", type=int, default=10, help="hits per search")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads per search (default: torch's, all cores; 1 is what a threaded service sets)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here (atomically)")
    p.add_argument("--quiet", action="store_true", help="print nothing but the result lines")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    root = args.data_dir / "scifact"
    docs = read_jsonl(root / "corpus.jsonl", args.documents)
    queries = [q["text"] for q in read_jsonl(root / "queries.jsonl", args.queries)]
    retriever = Retriever(index=args.index, dtype="float32", show_progress=not args.quiet)
    retriever.add(docs)
    timed_searches(retriever, queries[:16], 1, args.k)  # warm-up
    results = {"torch_threads": torch.get_num_threads(), "documents": len(docs), "queries": len(queries), "index": args.index}
    settings = {"1 thread": (1, None), f"{args.threads} threads": (args.threads, None),
                f"{args.threads} threads, whole searches locked (anchor)": (args.threads, threading.Lock())}
    for name, (threads, lock) in settings.items():
        latencies, wall = timed_searches(retriever, queries, threads, args.k, lock)
        row = results[name] = {
            "p50_ms": float(np.percentile(latencies, 50) * 1e3),
            "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "qps": len(queries) / wall,
        }
        print(f"{name}: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, {row['qps']:.1f} queries/s")
    one, many, locked = (results[name] for name in settings)
    print(f"p50 {args.threads} threads / 1 thread: {many['p50_ms'] / one['p50_ms']:.2f} "
          f"(whole searches locked: {locked['p50_ms'] / one['p50_ms']:.2f}); "
          f"queries/s {many['qps'] / one['qps']:.2f}x one thread (locked: {locked['qps'] / one['qps']:.2f}x)")
    if args.json:
        storage.write_json(args.json, results)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
