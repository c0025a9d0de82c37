"""Shared fixtures: the real data in ../shared, one loaded model, one embedding cache per run.

Tests that read ``../shared`` carry the ``shared_data`` marker (``-m "not shared_data"`` runs
the rest): a test that takes the ``data_dir`` or ``shared_dir`` fixture gets it automatically;
a module that reads ``SHARED`` directly sets ``pytestmark = pytest.mark.shared_data``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR") or REPO.parent / "shared")
DATA = SHARED / "data"


def published_ndcg(dataset: str, split: str, model: str) -> float:
    """nDCG@10 from ../shared/reference/scores.tsv."""
    with open(SHARED / "reference" / "scores.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if (row["dataset"], row["split"], row["model"]) == (dataset, split, model):
                return float(row["ndcg@10"])
    raise KeyError((dataset, split, model))


SHARED_FIXTURES = {"data_dir", "shared_dir"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert (SHARED / "README.md").is_file(), f"../shared expected at {SHARED} (set SHARED_DIR)"
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert (DATA / "scifact" / "corpus.jsonl").is_file(), f"real datasets expected in {DATA} (see ../shared/README.md)"
    return DATA


@pytest.fixture(scope="session")
def minilm():
    """The offline all-MiniLM-L6-v2, fp32, loaded once."""
    from encoder import load_model

    return load_model(device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    """Corpus embeddings computed once per test run, shared by every test that evaluates SciFact."""
    return tmp_path_factory.mktemp("embeddings")


def write_beir(root: Path, corpus=None, queries=None, qrels=None, split="test") -> Path:
    """A small BEIR folder; each argument is a list of records (dicts), raw lines (str) or a whole text."""
    corpus = corpus if corpus is not None else [
        {"_id": "d1", "title": "Cats", "text": "Cats are small domesticated felines that purr."},
        {"_id": "d2", "title": "Paris", "text": "Paris is the capital and largest city of France."},
        {"_id": "d3", "title": "Python", "text": "Python is a popular programming language."},
    ]
    queries = queries if queries is not None else [
        {"_id": "q1", "text": "What animal purrs?"},
        {"_id": "q2", "text": "capital of France"},
    ]
    qrels = qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"

    def lines(items):
        if isinstance(items, (str, bytes)):
            return items
        return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items)

    root.mkdir(parents=True, exist_ok=True)
    for name, content in (("corpus.jsonl", lines(corpus)), ("queries.jsonl", lines(queries))):
        (root / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return root
