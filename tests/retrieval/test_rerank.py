"""Rerankers: ColBERT MaxSim over candidates' token embeddings (encoded once each), a CrossEncoder from a folder."""

import shutil

import numpy as np
import pytest
import torch

from encoder import ModelLoadError, default_model
from indexes import maxsim
from retrieval import Hit, Retriever
from retrieval.rerank import ColbertReranker, CrossEncoderReranker, load_colbert, load_reranker

TEXTS = [
    "Paris is the capital and largest city of France.",
    "Cats are small domesticated felines that purr.",
    "Python is a popular programming language.",
    "The Seine flows through the French capital.",
    "Bananas are yellow fruit rich in potassium.",
]
QUERY = "What is the capital of France?"


def hits():
    return [Hit(id=f"d{i}", score=0.0, text=t) for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def colbert():
    torch.manual_seed(0)  # MiniLM gets PyLate's fresh projection
    return load_colbert(None, device="cpu", dtype="float32", max_length=64)


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory):
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)  # MiniLM with a fresh one-label head: a real CrossEncoder folder, without a hub
    folder = tmp_path_factory.mktemp("ce") / "model"
    CrossEncoder(default_model(), num_labels=1, device="cpu").save(str(folder))
    return folder


def test_colbert_reranker_orders_by_exact_maxsim_and_encodes_each_text_once(colbert):
    reranker = ColbertReranker(colbert)
    encoded = []
    original = reranker._encode
    reranker._encode = lambda texts, is_query: encoded.append((len(texts), is_query)) or original(texts, is_query)
    out = reranker.rerank(QUERY, hits(), k=3)
    q = colbert.encode([QUERY], is_query=True)[0]
    d = colbert.encode(TEXTS, is_query=False)
    expected = maxsim(np.asarray(q), [np.asarray(x) for x in d])
    order = np.argsort(-expected, kind="stable")[:3]
    assert [h.id for h in out] == [f"d{i}" for i in order]
    np.testing.assert_allclose([h.score for h in out], expected[order], rtol=1e-4)
    assert encoded == [(1, True), (5, False)]
    reranker.rerank_many([QUERY, "fruit"], [hits(), hits()[3:]])
    assert encoded[2:] == [(2, True)]  # every candidate's tokens came from the cache
    changed = [Hit(id="d0", score=0.0, text="Berlin is the capital of Germany.")]
    reranker.rerank(QUERY, changed)
    assert encoded[-1] == (1, False)  # same id, new text: encoded again


def test_cross_encoder_reranker_from_a_folder_scores_pairs(cross_encoder_folder):
    from sentence_transformers import CrossEncoder

    reranker = load_reranker(str(cross_encoder_folder), device="cpu")
    assert isinstance(reranker, CrossEncoderReranker)
    reference = CrossEncoder(str(cross_encoder_folder), device="cpu").predict([(QUERY, t) for t in TEXTS])
    out = reranker.rerank(QUERY, hits())
    assert [h.id for h in out] == [f"d{i}" for i in np.argsort(-reference, kind="stable")]
    np.testing.assert_allclose([h.score for h in out], np.sort(reference)[::-1], rtol=1e-4)
    assert [h.text for h in out] == [TEXTS[int(h.id[1:])] for h in out]


def test_pickled_cross_encoder_weights_are_refused(tmp_path, cross_encoder_folder):
    folder = tmp_path / "pickled"
    shutil.copytree(cross_encoder_folder, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin: weights stored as pickle"):
        CrossEncoderReranker(str(folder))


def test_search_reranks_the_first_stage_top_depth(minilm, colbert, cross_encoder_folder):
    retriever = Retriever(minilm)
    retriever.add([(f"d{i}", t) for i, t in enumerate(TEXTS)])
    reranker = ColbertReranker(colbert)
    first = retriever.search(QUERY, k=3, mode="hybrid")
    assert retriever.search(QUERY, k=2, mode="hybrid", rerank=reranker, rerank_depth=3) == reranker.rerank(QUERY, first, k=2)
    by_name = retriever.search([QUERY, "purring pets"], k=2, rerank=str(cross_encoder_folder))
    assert isinstance(retriever.reranker(str(cross_encoder_folder)), CrossEncoderReranker)  # loaded once, kept
    assert [len(row) for row in by_name] == [2, 2]
    with pytest.raises(ValueError, match="rerank takes a reranker or a model id"):
        retriever.search(QUERY, rerank=3)
