"""Filtered search and delete + compact on every vector index kind: exact against brute force and rebuilt indexes."""

from __future__ import annotations

import numpy as np
import pytest

from indexes import FaissIndex, MultiVectorIndex, maxsim
from indexes.multi_vector import normalize
from tests.indexes.writers_and_readers import assert_searches_never_see_deleted

DIM, N = 16, 600
# Settings where the kind is exact, so filtered results can be compared with numpy brute force.
EXACT = {"Flat": None, "HNSW32": "efSearch=1024", "IVF16,Flat": "nprobe=16"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, DIM)).astype(np.float32)
    return x, [f"d{i}" for i in range(N)], rng.normal(size=(6, DIM)).astype(np.float32)


def brute_force(x, q, positions, k):
    """Cosine top-k over ``positions`` (ids and scores)."""
    xn = x[positions] / np.linalg.norm(x[positions], axis=1, keepdims=True)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [[f"d{positions[j]}" for j in row] for row in order], np.take_along_axis(sims, order, axis=1)


def assert_same(result, ids, scores):
    assert result.ids == ids
    np.testing.assert_allclose(np.array(result.scores), scores, atol=1e-5)


@pytest.mark.parametrize("factory", list(EXACT))
def test_filtered_search_equals_brute_force_over_the_subset(data, factory):
    x, ids, q = data
    index = FaissIndex(DIM, factory, search_params=EXACT[factory])
    index.add(ids, x)
    for positions in (np.arange(0, N, 3), np.arange(500, 530), np.array([7])):
        assert_same(index.search(q, 10, subset=[ids[p] for p in positions] + ["not-an-id"]), *brute_force(x, q, positions, 10))
    assert index.search(q, 5, subset=[]).ids == [[]] * len(q)


@pytest.mark.parametrize("factory", ["HNSW32", "IVF16,Flat"])
def test_small_subsets_are_exact_even_with_approximate_default_settings(data, factory):
    x, ids, q = data
    index = FaissIndex(DIM, factory)  # default efSearch / nprobe: approximate unfiltered
    index.add(ids, x)
    positions = np.arange(100, 160)
    assert_same(index.search(q, 10, subset=[ids[p] for p in positions]), *brute_force(x, q, positions, 10))


@pytest.fixture(scope="module")
def ivf_pq(data):
    """A trained IVF-PQ index, searched exhaustively (nprobe = nlist); PQ training is the slow part, done once."""
    x, ids, _ = data
    index = FaissIndex(DIM, "IVF8,PQ4x4np", search_params="nprobe=8")
    index.add(ids, x)
    index.train()
    return index


def test_ivf_pq_filter_keeps_the_index_own_ranking(data, ivf_pq):
    x, ids, q = data
    index = ivf_pq
    everything = index.search(q, N)
    subset = set(ids[::4])
    filtered = index.search(q, 10, subset=subset)
    for row, full_row, full_scores, scores in zip(filtered.ids, everything.ids, everything.scores, filtered.scores):
        expected = [(i, s) for i, s in zip(full_row, full_scores) if i in subset][:10]
        assert [i for i, _ in expected] == row or sorted(scores) == sorted(s for _, s in expected)  # equal up to exact ties
        np.testing.assert_allclose(scores, [s for _, s in expected], atol=1e-5)


@pytest.mark.parametrize("factory", list(EXACT) + ["IVF8,PQ4x4np"])
def test_delete_then_compact_equals_an_index_rebuilt_without_them(data, ivf_pq, factory):
    x, ids, q = data
    index = FaissIndex(DIM, factory, search_params=EXACT[factory]) if factory in EXACT else FaissIndex.like(ivf_pq)
    index.add(ids, x)
    reference = FaissIndex.like(index)  # same trained quantizers, empty
    gone = set(ids[::5]) | {ids[1], ids[N - 1]}
    index.delete(sorted(gone))
    assert len(index) == N - len(gone) and not gone & set(index.live_ids())
    before = index.search(q, 20)
    assert not gone & {i for row in before.ids for i in row}
    index.compact()
    keep = [p for p in range(N) if ids[p] not in gone]
    reference.add([ids[p] for p in keep], x[keep])
    after, rebuilt = index.search(q, 20), reference.search(q, 20)
    assert after.ids == rebuilt.ids == before.ids
    np.testing.assert_allclose(after.scores, rebuilt.scores, atol=1e-5)
    assert index.index.ntotal == len(keep) and index.live_ids() == index.ids == reference.ids
    index.add([ids[1]], x[1:2])  # upsert: a deleted id comes back
    assert index.live_ids()[-1] == ids[1] and ids[1] in index.search(x[1:2], 10, subset=ids[:3]).ids[0]


def test_unknown_id_raises_and_changes_nothing(data, tmp_path):
    x, ids, q = data
    index = FaissIndex(DIM, "Flat")
    index.add(ids[:50], x[:50])
    with pytest.raises(KeyError, match="nope"):
        index.delete(["d3", "nope"])
    assert len(index) == 50 and "d3" in index.live_ids()
    index.delete(["d3", "d3"])  # repeated ids in one call are one delete
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix")  # tombstones survive the round trip
    assert loaded.live_ids() == index.live_ids() and loaded.search(q, 50).ids == index.search(q, 50).ids
    with pytest.raises(KeyError):
        loaded.delete(["d3"])


@pytest.fixture(scope="module")
def multi():
    rng = np.random.default_rng(1)
    topics = rng.normal(size=(20, DIM)).astype(np.float32)
    docs = [normalize(topics[rng.integers(0, 20, size=n)] + 0.5 * rng.normal(size=(n, DIM)).astype(np.float32))
            for n in rng.integers(4, 30, size=300)]
    queries = [normalize(d[:5] + 0.3 * rng.normal(size=(len(d[:5]), DIM)).astype(np.float32)) for d in docs[:5]]
    return [f"m{i}" for i in range(len(docs))], docs, queries


def test_multi_vector_filtered_search_equals_exhaustive_maxsim_over_the_subset(multi):
    ids, docs, queries = multi
    index = MultiVectorIndex(DIM, nbits=16, nlist=32, nprobe=4, rerank=64)
    index.add(ids, docs)
    for positions in (np.arange(0, 300, 2), np.arange(40, 80)):  # larger, then smaller than rerank
        subset = [ids[p] for p in positions]
        result = index.search(queries, 10, subset=subset)
        exhaustive = index.search(queries, 10, subset=subset, exhaustive=True)
        assert all(set(row) <= set(subset) for row in result.ids)
        if len(positions) <= index.rerank:  # scored exactly: equal to the reference on raw embeddings
            for q, row in zip(queries, result.ids):
                exact = maxsim(q, [docs[p] for p in positions])
                assert row == [subset[j] for j in np.argsort(-exact, kind="stable")[:10]]
            assert result == exhaustive
        else:
            assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(result.ids, exhaustive.ids)]) >= 0.8


def test_multi_vector_delete_then_compact_equals_a_rebuilt_index(multi, tmp_path):
    ids, docs, queries = multi
    index = MultiVectorIndex(DIM, nbits=8, nlist=32, rerank=64)
    index.add(ids, docs)
    index.train()
    reference = MultiVectorIndex.like(index)
    gone = set(ids[::3]) | {ids[299]}
    with pytest.raises(KeyError, match="nope"):
        index.delete([ids[0], "nope"])
    assert len(index) == 300
    index.delete(sorted(gone))
    before = index.search(queries, 10)
    index.compact()
    keep = [p for p in range(300) if ids[p] not in gone]
    # Tokens added before training wait as normalised fp16; the reference gets those same values.
    reference.add([ids[p] for p in keep], [normalize(docs[p]).astype(np.float16) for p in keep])
    after = index.search(queries, 10)
    assert after == reference.search(queries, 10) == before
    assert index.search(queries, 10, exhaustive=True) == reference.search(queries, 10, exhaustive=True)
    for name in ("codes", "doc_offsets", "list_offsets", "list_docs", "deleted"):
        np.testing.assert_array_equal(getattr(index, name), getattr(reference, name))
    index.save(tmp_path / "mv")
    assert MultiVectorIndex.load(tmp_path / "mv").search(queries, 10) == after


def test_multi_vector_compact_before_training_drops_pending_documents(multi):
    ids, docs, queries = multi
    index = MultiVectorIndex(DIM, nlist=16)
    index.add(ids, docs)
    index.delete(ids[:100])
    index.compact()
    scratch = MultiVectorIndex(DIM, nlist=16)
    scratch.add(ids[100:], docs[100:])
    assert index.search(queries, 10) == scratch.search(queries, 10)


@pytest.mark.parametrize("kind", ["HNSW32", "IVF16,Flat", "multi"])
def test_searches_beside_deletes_and_compaction_never_return_deleted_ids(data, multi, kind):
    if kind == "multi":
        ids, docs, queries = multi
        index = MultiVectorIndex(DIM, nlist=16, rerank=32)
        index.add(ids, docs)
    else:
        x, ids, queries = data
        index = FaissIndex(DIM, kind)
        index.add(ids, x)
    def deleter(deleted):
        for start in range(0, 120, 10):
            index.delete(ids[start : start + 10])
            deleted(ids[start : start + 10])
            if start % 40 == 30:
                index.compact()

    subset = ids[::2] if kind != "multi" else None
    gone = assert_searches_never_see_deleted(deleter, lambda: index.search(queries, 10, subset=subset).ids)
    assert len(index) == len(ids) - 120 and not gone & set(index.live_ids())
