"""``benchmarks.search_memory``: each engine's saved index searched in a process of its own."""

import argparse

import numpy as np
import pytest

from benchmarks.indexes_bench import build_warp
from benchmarks.search_memory import load_queries, probe, save_queries
from indexes import MultiVectorIndex


def unit_rows(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("engine", ["ours", "warp"])
def test_probe_reports_the_search_process_memory(tmp_path, engine):
    rng = np.random.default_rng(0)
    docs = [unit_rows(rng.normal(size=(int(n), 32))) for n in rng.integers(8, 60, 300)]
    ids = [f"d{i}" for i in range(len(docs))]
    queries = [unit_rows(d[:5] + 0.1 * rng.normal(size=(5, 32))) for d in docs[:20]]
    queries_path = save_queries(tmp_path / "queries.npz", queries)
    assert all(np.array_equal(a, b) for a, b in zip(load_queries(queries_path), queries))
    if engine == "ours":
        index = MultiVectorIndex(32, nbits=4)
        index.add(ids, docs)
        index.train()
        path = index.save(tmp_path / "ours")
    else:
        pytest.importorskip("xtr_warp", reason="WARP is a benchmark extra: pip install .[bench]")
        build_warp(ids, docs, tmp_path, argparse.Namespace(nbits=4, warp_settings=""))
        path = tmp_path / "warp" / "bench"
    report = probe(engine, path, queries_path, threads=1, k=10)
    assert 0 < report["after_import_mb"] <= report["after_load_mb"] <= report["peak_mb"]
