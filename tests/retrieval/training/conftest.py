"""Fixtures of the trainer tests: a tiny BEIR training folder, made once per module."""

import pytest

from tests.conftest import write_beir


@pytest.fixture(scope="module")
def tiny_train(tmp_path_factory):
    """40 documents, 20 training queries with one positive each (no ../shared data)."""
    corpus = [{"_id": f"d{i}", "title": f"Note {i}", "text": f"document {i} about subject {i % 5} and number {i * 7}"} for i in range(40)]
    queries = [{"_id": f"q{i}", "text": f"subject {i % 5} number {i * 7}"} for i in range(20)]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(20))
    return write_beir(tmp_path_factory.mktemp("data") / "tiny", corpus, queries, qrels, split="train")
