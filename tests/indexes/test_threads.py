"""Indexes from many threads: the first search of an untrained index trains once; searches equal serial ones."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexes import FaissIndex, MultiVectorIndex

THREADS, RUNS, DIM = 8, 20, 16


def run_together(fn, n=THREADS):
    with ThreadPoolExecutor(n) as pool:
        return [f.result() for f in [pool.submit(fn) for _ in range(n)]]


def test_first_search_on_untrained_ivf_trains_once(tmp_path):
    rng = np.random.default_rng(0)
    vectors, query = rng.normal(size=(2000, DIM)).astype(np.float32), rng.normal(size=(4, DIM)).astype(np.float32)
    for run in range(RUNS):
        index = FaissIndex(DIM, "IVF16,Flat")
        index.add([str(i) for i in range(2000)], vectors)
        results = run_together(lambda: index.search(query, 10))
        assert index.index.ntotal == 2000 and len(index) == 2000
        assert all(r == results[0] for r in results)
        assert index.search(query, 10) == results[0]
    index.save(tmp_path / "ix")
    assert FaissIndex.load(tmp_path / "ix").search(query, 10) == results[0]


def test_first_search_on_untrained_multi_vector_trains_once(tmp_path):
    rng = np.random.default_rng(1)
    docs = [rng.normal(size=(rng.integers(3, 9), DIM)).astype(np.float32) for _ in range(300)]
    query = [rng.normal(size=(4, DIM)).astype(np.float32)]
    for run in range(RUNS):
        index = MultiVectorIndex(DIM, nlist=16)
        index.add([str(i) for i in range(300)], docs)
        results = run_together(lambda: index.search(query, 10))
        assert index.num_tokens == sum(len(d) for d in docs) and len(index.codes) == index.num_tokens
        assert all(r == results[0] for r in results) and len(results[0].ids[0]) == 10
    index.save(tmp_path / "mv")
    assert MultiVectorIndex.load(tmp_path / "mv").search(query, 10) == results[0]


def test_searches_beside_adds_see_whole_states():
    rng = np.random.default_rng(2)
    index = FaissIndex(DIM, "Flat")
    index.add(["seed"], rng.normal(size=(1, DIM)).astype(np.float32))
    query = rng.normal(size=(1, DIM)).astype(np.float32)

    def add_many():
        for i in range(50):
            index.add([f"{id(rng)}-{i}-{np.random.random()}"], rng.normal(size=(1, DIM)).astype(np.float32))

    def search_many():
        for _ in range(50):
            hits = index.search(query, 5)
            assert all(doc_id in index._position for doc_id in hits.ids[0])

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(add_many), pool.submit(search_many), pool.submit(search_many), pool.submit(add_many)]:
            f.result()
    assert len(index) == 101


@pytest.mark.parametrize("make", [lambda: FaissIndex(DIM, "Flat"), lambda: MultiVectorIndex(DIM, nlist=2)], ids=["faiss", "multi"])
def test_nan_vectors_and_bad_k_are_refused(make):
    index = make()
    multi = isinstance(index, MultiVectorIndex)
    good = np.ones((2, DIM), dtype=np.float32)
    bad = good.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.add(["a", "b"], [good, bad] if multi else bad)
    assert len(index) == 0
    index.add(["a", "b"], [good, good] if multi else good)
    query = [good] if multi else good[:1]
    for k in (0, -3, 1.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.search(query, k)
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.search([bad] if multi else bad, 1)
