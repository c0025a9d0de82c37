"""The native multi-vector search loop against the torch reference path it replaces."""

import numpy as np
import pytest
import torch

from indexes import MultiVectorIndex, maxsim, maxsim_kernels
from indexes.multi_vector import normalize

DIM = 32


@pytest.fixture(scope="module")
def corpus():
    if maxsim_kernels.load() is None:
        pytest.skip(f"native kernel unavailable: {maxsim_kernels.unavailable_reason()}")
    rng = np.random.default_rng(3)
    topics = rng.normal(size=(30, DIM)).astype(np.float32)
    docs = [normalize(topics[rng.integers(0, 30, size=n)] + 0.5 * rng.normal(size=(n, DIM)).astype(np.float32))
            for n in rng.integers(1, 60, size=300)]  # one-token documents too: an odd token count per document
    # queries of 5, 9 and 32 tokens: padded to 8, 16 and 32 query columns inside the kernel
    queries = [normalize(docs[i][:1].repeat(n, 0) + 0.4 * rng.normal(size=(n, DIM)).astype(np.float32))
               for i, n in zip(range(0, 60, 4), [5, 9, 32] * 5)]
    return [f"d{i}" for i in range(len(docs))], docs, queries


def both(index, queries, k, **kwargs):
    index.kernels = True
    native = index.search(queries, k, **kwargs)
    index.kernels = False
    reference = index.search(queries, k, **kwargs)
    index.kernels = True
    return native, reference


@pytest.mark.parametrize("nbits", [4, 8])
def test_exact_scores_equal_the_torch_path(corpus, nbits):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=nbits, nlist=32, nprobe=4, rerank=40)
    index.add(ids, docs)
    native, reference = both(index, queries, 20, exhaustive=True)
    assert native.ids == reference.ids
    np.testing.assert_allclose(native.scores, reference.scores, atol=1e-5)
    # every candidate re-ranked: the approximate stage cannot differ, so neither can the result
    native, reference = both(index, queries, 20, rerank=len(ids), nprobe=32)
    assert native.ids == reference.ids
    native, reference = both(index, queries, 10)  # same candidates: ties at the cut go to the lower position in both
    assert native.ids == reference.ids
    np.testing.assert_allclose(native.scores, reference.scores, atol=1e-5)


@pytest.mark.parametrize("nbits", [4, 8])
def test_centroid_interaction_stage_equals_the_torch_path(corpus, nbits):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=nbits, nlist=32, nprobe=4, rerank=20, ndocs=80)
    index.add(ids, docs)
    native, reference = both(index, queries, 10)
    assert native.ids == reference.ids
    np.testing.assert_allclose(native.scores, reference.scores, atol=1e-5)
    assert index.search_params == "nprobe=4,rerank=20,ndocs=80"


def test_centroid_interaction_spends_the_exact_budget_better(corpus):
    """With centroids fine enough to tell documents apart, 80 candidates cut to 20 by centroid interaction find
    more of the top 10 of those 80 (all scored exactly) than the approximate score's own best 20 do."""
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=8, nlist=512, nprobe=4, rerank=20)
    index.add(ids, docs)
    wide = index.search(queries, 10, rerank=80)

    def found(result):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(result.ids, wide.ids)])

    assert found(index.search(queries, 10, ndocs=80)) > found(index.search(queries, 10)) + 0.1


def test_filtered_search_scores_the_subset_exactly(corpus):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=8, nlist=32, nprobe=2, rerank=30)
    index.add(ids, docs)
    index.delete(["d41"])
    subset = [f"d{i}" for i in range(40, 60)]  # smaller than rerank: scored exactly
    native, reference = both(index, queries, 10, subset=subset)
    assert native.ids == reference.ids and all(set(row) <= set(subset) - {"d41"} for row in native.ids)
    positions = [i for i in range(40, 60) if i != 41]
    for q, row in zip(queries, native.ids):
        exact = maxsim(q, [docs[p] for p in positions])
        expected = [ids[positions[j]] for j in np.argsort(-exact, kind="stable")[:10]]
        assert len(set(row) & set(expected)) >= 9  # 8-bit codes against raw embeddings
    larger = ids[::2]  # larger than rerank: candidates, masked inside the kernel
    native = index.search(queries, 10, subset=larger)
    assert all(set(row) <= set(larger) for row in native.ids)
    assert index.search(queries, 5, subset=[]).ids == [[] for _ in queries]


def test_threads_give_the_same_results(corpus):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=4, nlist=32, rerank=50)
    index.add(ids, docs)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = index.search(queries, 10)
        torch.set_num_threads(2)
        two = index.search(queries, 10)  # a thread per query
        alone = [index.search([q], 10) for q in queries]  # one query's documents split between threads
    finally:
        torch.set_num_threads(before)
    assert one == two
    assert [r.ids[0] for r in alone] == one.ids and [r.scores[0] for r in alone] == one.scores
