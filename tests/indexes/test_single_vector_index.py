"""FaissIndex: exactness, incremental adds, lazy training, persistence, damage detection."""

import json

import faiss
import numpy as np
import pytest

from indexes import FaissIndex, IndexFormatError


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3000, 32)).astype(np.float32), [f"doc-{i}" for i in range(3000)]


def brute_force(x, q, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qn @ xn.T), axis=1)[:, :k]


def test_flat_cosine_equals_brute_force(vectors):
    x, ids = vectors
    index = FaissIndex(32, "Flat")
    index.add(ids, x)
    q = x[:20] + 0.1
    result = index.search(q, 10)
    expected = brute_force(x, q, 10)
    assert result.ids == [[ids[j] for j in row] for row in expected]
    assert all(a >= b for row in result.scores for a, b in zip(row, row[1:]))  # best first


@pytest.mark.parametrize("factory", ["Flat", "IVF32,Flat"])
def test_two_batches_equal_one(vectors, factory):
    x, ids = vectors
    one, two = FaissIndex(32, factory), FaissIndex(32, factory)
    one.add(ids, x)
    two.add(ids[:1200], x[:1200])
    two.add(ids[1200:], x[1200:])
    assert len(one) == len(two) == 3000
    a, b = one.search(x[:50], 10), two.search(x[:50], 10)
    assert a.ids == b.ids
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_ivf_trains_lazily_and_explains_too_few_vectors(vectors):
    x, ids = vectors
    index = FaissIndex(32, "IVF256,Flat")
    index.add(ids[:100], x[:100])
    assert not index.index.is_trained and len(index) == 100
    with pytest.raises(ValueError, match="could not train on 100 vectors"):
        index.search(x[:1], 5)
    index.add(ids[100:], x[100:])
    assert index.search(x[:1], 5).ids[0][0] == ids[0]
    assert index.index.ntotal == 3000


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF32,PQ8"])
def test_save_load_round_trip_gives_identical_results(tmp_path, vectors, factory):
    x, ids = vectors
    index = FaissIndex(32, factory)
    index.add(ids, x)
    before = index.search(x[:30], 20)
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix")
    after = loaded.search(x[:30], 20)
    assert (loaded.factory, loaded.metric, loaded.search_params) == (index.factory, index.metric, index.search_params)
    assert before.ids == after.ids and before.scores == after.scores
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert meta["num_documents"] == 3000 and meta["ids"][:2] == ids[:2]


def test_mmap_load(tmp_path, vectors):
    x, ids = vectors
    index = FaissIndex(32, "Flat")
    index.add(ids, x)
    index.save(tmp_path / "ix")
    assert FaissIndex.load(tmp_path / "ix", mmap=True).search(x[:3], 3).ids == index.search(x[:3], 3).ids


def test_damaged_files_are_reported(tmp_path, vectors):
    x, ids = vectors
    index = FaissIndex(32, "Flat")
    index.add(ids[:100], x[:100])
    index.save(tmp_path / "ix")
    data = (tmp_path / "ix" / "index.faiss").read_bytes()

    (tmp_path / "ix" / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="truncated or corrupted"):
        FaissIndex.load(tmp_path / "ix")
    with pytest.raises(IndexFormatError, match="truncated or corrupted"):
        FaissIndex.load(tmp_path / "ix", verify=False)  # FAISS itself refuses a truncated file

    flipped = bytearray(data)
    flipped[-7] ^= 0xFF
    (tmp_path / "ix" / "index.faiss").write_bytes(bytes(flipped))
    with pytest.raises(IndexFormatError, match="checksum"):
        FaissIndex.load(tmp_path / "ix")

    (tmp_path / "ix" / "index.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="index.json is corrupted"):
        FaissIndex.load(tmp_path / "ix")
    with pytest.raises(IndexFormatError, match="is missing"):
        FaissIndex.load(tmp_path / "nothing-here")


def test_failed_save_keeps_the_previous_index(tmp_path, vectors, monkeypatch):
    x, ids = vectors
    index = FaissIndex(32, "Flat")
    index.add(ids[:10], x[:10])
    index.save(tmp_path / "ix")
    index.add(ids[10:20], x[10:20])

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(OSError):
        index.save(tmp_path / "ix")
    assert len(FaissIndex.load(tmp_path / "ix")) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ix.lock", "ix"]  # no temporary folder left behind; the writers' lock stays


def test_duplicate_ids_are_rejected_without_changing_the_index(vectors):
    x, ids = vectors
    index = FaissIndex(32, "Flat")
    index.add(ids[:10], x[:10])
    with pytest.raises(ValueError, match="doc-3"):
        index.add(["new-1", "doc-3"], x[10:12])
    with pytest.raises(ValueError, match="new-2"):
        index.add(["new-2", "new-2"], x[10:12])
    assert len(index) == 10 and index.index.ntotal == 10
    index.add(["new-1", "new-2"], x[10:12])
    assert index.search(x[11:12], 1).ids == [["new-2"]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="invalid FAISS factory"):
        FaissIndex(32, "Nope")
    with pytest.raises(ValueError, match="unknown metric"):
        FaissIndex(32, "Flat", metric="dot")
    with pytest.raises(ValueError, match="do not apply"):
        FaissIndex(32, "Flat", search_params="nprobe=4")
    index = FaissIndex(32, "Flat")
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.add(["a"], np.zeros((1, 16), dtype=np.float32))


def test_l2_metric_ranks_nearest_first_with_higher_scores(vectors):
    x, ids = vectors
    index = FaissIndex(32, "Flat", metric="l2")
    index.add(ids, x)
    result = index.search(x[:2], 3)
    assert [row[0] for row in result.ids] == ids[:2]
    assert result.scores[0][0] == pytest.approx(0.0, abs=1e-4) and result.scores[0][1] < 0


def test_search_params_and_small_indexes(vectors):
    x, ids = vectors
    index = FaissIndex(32, "IVF16,Flat", search_params="nprobe=16")
    index.add(ids, x)
    exact = FaissIndex(32, "Flat")
    exact.add(ids, x)
    assert index.search(x[:10], 10).ids == exact.search(x[:10], 10).ids  # nprobe = nlist is exhaustive
    tiny = FaissIndex(32, "Flat")
    tiny.add(ids[:3], x[:3])
    assert len(tiny.search(x[:1], 10).ids[0]) == 3
    assert FaissIndex(32, "Flat").search(x[:2], 5).ids == [[], []]
