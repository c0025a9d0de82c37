"""``python -m benchmarks.indexes_bench``: each method it compares (ours, PyLate's PLAID and Voyager) builds and searches."""

import argparse

import numpy as np
import pytest

from benchmarks.indexes_bench import build

DIM = 32


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def token_corpus():
    """400 documents of 8-80 token vectors around 3 of 40 shared topics each (real token embeddings cluster
    so); 30 queries of 6 noisy tokens taken from the first 30 documents."""
    rng = np.random.default_rng(0)
    topics = rng.normal(size=(40, DIM))
    docs = [unit_rows(topics[rng.choice(40, size=3)][rng.integers(0, 3, size=n)] + 0.4 * rng.normal(size=(n, DIM)))
            for n in rng.integers(8, 80, size=400)]
    queries = [unit_rows(doc[rng.integers(0, len(doc), size=6)] + 0.3 * rng.normal(size=(6, DIM))) for doc in docs[:30]]
    return [f"doc-{i}" for i in range(len(docs))], docs, queries


@pytest.mark.parametrize("method", ["faiss", "plaid", "voyager", "warp"])
def test_bench_baselines_build_and_find_the_source_document(tmp_path, token_corpus, method):
    """The bench's methods run with the pinned packages and find each query's source document."""
    if method == "warp":
        pytest.importorskip("xtr_warp", reason="WARP is a benchmark extra: pip install .[bench]")
    ids, docs, queries = token_corpus
    args = argparse.Namespace(nbits=4, nprobe=8, rerank=64, faiss_settings="", warp_settings="")
    searches, bytes_per_token = build(method, ids, docs, tmp_path, args)
    assert bytes_per_token > 0 and set(searches) == ({"plaid", "plaid_matched"} if method == "plaid" else {method})
    for name, search in searches.items():
        ranked_ids, ranked_scores = search(queries)
        assert len(ranked_ids) == len(queries)
        hits = sum(ids[i] in ranked[:10] for i, ranked in enumerate(ranked_ids))
        assert hits >= 0.9 * len(queries), f"{name}: source document in the top 10 for {hits}/{len(queries)} queries"
        assert all(list(s) == sorted(s, reverse=True) for s in ranked_scores)
