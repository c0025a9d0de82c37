"""The Retriever API on real SciFact documents with the offline MiniLM."""

import json
from itertools import islice

import numpy as np
import pytest

from indexes import IndexFormatError
from retrieval import Hit, Retriever


@pytest.fixture(scope="module")
def scifact_docs(data_dir):
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, 300)]


@pytest.fixture(scope="module")
def queries(data_dir):
    with open(data_dir / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in islice(f, 20)]


def test_search_returns_ids_scores_texts_and_metadata(minilm):
    retriever = Retriever(minilm)
    ids = retriever.add([
        {"id": "py", "text": "Python is a programming language.", "source": "langs.md"},
        ("fr", "Paris is the capital of France."),
        "Bananas are a yellow fruit.",
    ])
    assert ids == ["py", "fr", "2"]
    hits = retriever.search("Which language should I code in?", k=2)
    assert [type(h) for h in hits] == [Hit, Hit]
    assert hits[0].id == "py" and hits[0].text == "Python is a programming language."
    assert hits[0].metadata == {"source": "langs.md"} and hits[0].score > hits[1].score
    assert [h[0].id for h in retriever.search(["fruit colour", "French city"], k=1)] == ["2", "fr"]
    assert len(retriever.search("anything", k=10)) == 3


def test_incremental_adds_equal_one_add(minilm, scifact_docs, queries):
    one, many = Retriever(minilm, chunk_size=128), Retriever(minilm, chunk_size=64)
    one.add(scifact_docs)
    for start in range(0, len(scifact_docs), 100):
        many.add(scifact_docs[start : start + 100])
    a, b = one.search(queries, k=10), many.search(queries, k=10)
    assert [[h.id for h in row] for row in a] == [[h.id for h in row] for row in b]
    np.testing.assert_allclose([[h.score for h in row] for row in a], [[h.score for h in row] for row in b], atol=1e-5)


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_save_load_round_trip_is_identical(tmp_path, minilm, scifact_docs, queries, factory):
    retriever = Retriever(minilm, index=factory)
    retriever.add(scifact_docs)
    before = retriever.search(queries, k=10)
    retriever.save(tmp_path / "r")
    loaded = Retriever.load(tmp_path / "r", model=minilm)
    assert loaded.search(queries, k=10) == before
    assert len(loaded) == len(scifact_docs) and loaded.index.factory == factory


def test_load_by_stored_model_reference(tmp_path, minilm):
    retriever = Retriever(minilm)
    retriever.add(["one document", "another one"])
    retriever.save(tmp_path / "r")
    config = json.loads((tmp_path / "r" / "retriever.json").read_text())
    assert config["model"].endswith("model")  # the path of the packaged MiniLM
    loaded = Retriever.load(tmp_path / "r", dtype="float32")
    assert [h.id for h in loaded.search("one document", k=2)] == [h.id for h in retriever.search("one document", k=2)]


def test_bad_documents_and_folders(tmp_path, minilm):
    retriever = Retriever(minilm)
    with pytest.raises(ValueError, match="no string 'text'"):
        retriever.add([{"id": "x", "body": "wrong field"}])
    with pytest.raises(ValueError, match="cannot read a document"):
        retriever.add([42])
    retriever.add([("a", "alpha")])
    with pytest.raises(ValueError, match="already in the retriever"):
        retriever.add([("a", "alpha again")])
    with pytest.raises(IndexFormatError, match="not a saved Retriever"):
        Retriever.load(tmp_path / "missing")
