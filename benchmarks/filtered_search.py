"""Filtered ``FaissIndex.search`` against the bare FAISS selector search it is built on, at several subset sizes.

For each approximate index kind and subset fraction, on random vectors: recall@10 against brute force over
the subset and ms per query, for (a) the anchor, FAISS's own search with an ``IDSelectorBitmap`` at the
index's usual settings (efSearch / nprobe), measured in the same run, and (b) ``FaissIndex.search(subset=...)``,
which turns exhaustive over the subset where the selector would starve the approximate search.

    python -m benchmarks.filtered_search --documents 20000 --dim 32
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from indexes import FaissIndex


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--documents", type=int, default=20000, help="random vectors indexed")
    p.add_argument("--dim", type=int, default=32, help="vector dimension")
    p.add_argument("--queries", type=int, default=50, help="random queries")
    p.add_argument("--factories", default="HNSW32;IVF128,Flat", help="FAISS factory strings, separated by ';'")
    p.add_argument("--fractions", default="0.005,0.05,0.5", help="subset sizes as fractions of the documents")
    p.add_argument("--quiet", action="store_true", help="print only the result lines")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.documents, args.dim)).astype(np.float32)
    q = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    xn, qn = x / np.linalg.norm(x, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)
    ids = [str(i) for i in range(len(x))]
    for factory in args.factories.split(";"):
        index = FaissIndex(args.dim, factory)
        index.add(ids, x)
        index.train()
        core, _ = index._core()
        for fraction in map(float, args.fractions.split(",")):
            positions = np.sort(rng.choice(len(x), max(1, int(len(x) * fraction)), replace=False))
            truth = [set(positions[row]) for row in np.argsort(-(qn @ xn[positions].T), axis=1)[:, :10]]
            allowed = np.zeros(len(x), dtype=bool)
            allowed[positions] = True
            bits = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(x), faiss.swig_ptr(bits))
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=core.hnsw.efSearch) if isinstance(core, faiss.IndexHNSW)
                      else faiss.SearchParametersIVF(sel=selector, nprobe=core.nprobe))
            start = time.perf_counter()
            _, labels = index.index.search(qn, 10, params=params)
            anchor_ms = (time.perf_counter() - start) * 1e3 / len(q)
            anchor = np.mean([len(set(row[row >= 0]) & t) / 10 for row, t in zip(labels, truth)])
            start = time.perf_counter()
            result = index.search(q, 10, subset=[ids[p] for p in positions])
            ours_ms = (time.perf_counter() - start) * 1e3 / len(q)
            ours = np.mean([len({int(i) for i in row} & t) / 10 for row, t in zip(result.ids, truth)])
            print(f"{factory} subset {fraction:.3f}: selector alone recall@10 {anchor:.3f} {anchor_ms:.2f} ms/q; "
                  f"FaissIndex.search recall@10 {ours:.3f} {ours_ms:.2f} ms/q ({ours_ms / anchor_ms:.1f}x the anchor's time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
