"""MultiVectorIndex: agreement with exhaustive MaxSim, persistence, damage, incremental adds, deletes, memory."""

import tracemalloc

import numpy as np
import pytest
import torch

from indexes import IndexFormatError, MultiVectorIndex, maxsim
from indexes.multi_vector import normalize

DIM = 32


@pytest.fixture(scope="module")
def corpus():
    """Documents whose tokens cluster around shared topics, as real token embeddings do."""
    rng = np.random.default_rng(0)
    topics = rng.normal(size=(40, DIM)).astype(np.float32)
    docs = []
    for n in rng.integers(8, 80, size=400):
        centers = topics[rng.integers(0, 40, size=3)][rng.integers(0, 3, size=n)]
        docs.append(normalize(centers + 0.4 * rng.normal(size=(n, DIM)).astype(np.float32)))
    queries = [normalize(d[rng.integers(0, len(d), size=6)] + 0.3 * rng.normal(size=(6, DIM)).astype(np.float32)) for d in docs[:30]]
    return [f"doc-{i}" for i in range(len(docs))], docs, queries


def reference(ids, docs, queries, k):
    return [[ids[j] for j in np.argsort(-maxsim(q, docs), kind="stable")[:k]] for q in queries]


def test_fp16_index_agrees_with_exhaustive_maxsim(corpus):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=16, nprobe=4, rerank=100)
    index.add(ids, docs)
    expected = reference(ids, docs, queries, 10)
    assert index.search(queries, 10, exhaustive=True).ids == expected
    approx = index.search(queries, 10).ids
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, expected)]) >= 0.95


@pytest.mark.parametrize("nbits", [4, 8])
def test_scores_on_codes_equal_faiss_decoding(corpus, nbits):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=nbits, nlist=64)
    index.add(ids, docs)
    index.train()
    q = torch.from_numpy(queries[0])
    rows = np.arange(index.num_tokens)
    ours = index._token_scores(q, q @ index._centroids.T, rows).numpy()
    faiss_decoded = index.codec.sa_decode(index.codes) @ queries[0].T
    np.testing.assert_allclose(ours, faiss_decoded, atol=1e-5)


def test_four_bit_index_keeps_the_top_hit(corpus):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=4)
    index.add(ids, docs)
    top1 = [row[0] for row in index.search(queries, 1).ids]
    assert np.mean([a == b[0] for a, b in zip(top1, reference(ids, docs, queries, 1))]) >= 0.9
    assert index.bytes_per_token() < 4 * DIM / 2  # far below float32 storage


def test_two_batches_equal_one(corpus):
    ids, docs, queries = corpus
    one, two = MultiVectorIndex(DIM), MultiVectorIndex(DIM)
    one.add(ids, docs)
    two.add(ids[:150], docs[:150])
    two.add(ids[150:], docs[150:])
    a, b = one.search(queries, 10), two.search(queries, 10)
    assert a.ids == b.ids and a.scores == b.scores


def test_adding_after_training_and_deleting(corpus):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=8)
    index.add(ids[30:], docs[30:])
    index.train()
    index.add(ids[:30], docs[:30])  # encoded with the trained centroids
    assert len(index) == 400
    assert index.search(queries[:5], 1).ids == reference(ids, docs, queries[:5], 1)  # found among the late adds
    target = reference(ids, docs, queries[:1], 1)[0][0]
    assert index.search(queries[:1], 1).ids[0][0] == target
    index.delete([target])
    assert target not in index.search(queries[:1], 50).ids[0]
    assert target not in index.search(queries[:1], 400, exhaustive=True).ids[0]
    assert len(index) == 399
    with pytest.raises(KeyError, match="not in the index"):
        index.delete(["nope", target])


def test_save_load_round_trip_and_damage(tmp_path, corpus):
    ids, docs, queries = corpus
    index = MultiVectorIndex(DIM, nbits=4)
    index.add(ids, docs)
    index.delete(["doc-3"])
    before = index.search(queries, 20)
    index.save(tmp_path / "mv")
    loaded = MultiVectorIndex.load(tmp_path / "mv")
    assert isinstance(loaded.codes, np.memmap)  # codes are mapped, not read
    after = loaded.search(queries, 20)
    assert before.ids == after.ids and before.scores == after.scores
    assert len(loaded) == 399

    codes = tmp_path / "mv" / "codes.npy"
    data = codes.read_bytes()
    codes.write_bytes(data[: len(data) - 100])
    with pytest.raises(IndexFormatError, match="codes.npy is truncated or corrupted"):
        MultiVectorIndex.load(tmp_path / "mv")
    with pytest.raises(IndexFormatError, match="truncated or corrupted"):
        MultiVectorIndex.load(tmp_path / "mv", verify=False)  # numpy itself refuses the short file
    codes.write_bytes(data)
    (tmp_path / "mv" / "list_docs.npy").unlink()
    with pytest.raises(IndexFormatError, match="list_docs.npy is missing"):
        MultiVectorIndex.load(tmp_path / "mv")
    with pytest.raises(IndexFormatError, match="not a saved MultiVectorIndex"):
        MultiVectorIndex.load(tmp_path / "elsewhere")


def test_bad_input(corpus):
    ids, docs, _ = corpus
    index = MultiVectorIndex(DIM)
    with pytest.raises(ValueError, match="shape"):
        index.add(["a"], [np.zeros((0, DIM), dtype=np.float32)])
    with pytest.raises(ValueError, match="shape"):
        index.add(["a"], [np.zeros((3, DIM + 1), dtype=np.float32)])
    index.add(ids[:2], docs[:2])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(["doc-1"], docs[:1])
    with pytest.raises(ValueError, match="nbits"):
        MultiVectorIndex(DIM, nbits=3)
    assert MultiVectorIndex(DIM).search([docs[0]], 5).ids == [[]]


def test_long_documents_are_never_padded_to_a_dense_tensor():
    rng = np.random.default_rng(1)
    dim = 128
    docs = [rng.normal(size=(n, dim)).astype(np.float16) for n in [8192] + [40] * 300]
    dense_bytes = len(docs) * 8192 * dim * 4  # documents x longest x dim, float32: ~1.2 GB
    tracemalloc.start()
    index = MultiVectorIndex(dim, nbits=4, nlist=64)
    index.add([str(i) for i in range(len(docs))], docs)
    index.search([docs[0][:32].astype(np.float32)], 10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < dense_bytes / 20
