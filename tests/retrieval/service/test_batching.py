"""Query micro-batching in the service: concurrent searches share forward passes and get one-by-one answers."""

import threading

import numpy as np
import pytest

from retrieval import Retriever
from retrieval.service.batching import QueryBatcher
from retrieval.service.folder import find_folder
from retrieval.service.store import ServedIndex, hit_dict

DOCS = [
    ("py", "Python is a popular programming language."), ("fr", "Paris is the capital and largest city of France."),
    ("cat", "Cats are small domesticated felines that purr."), ("rust", "Rust is a systems language without a garbage collector."),
    ("de", "Berlin is the capital of Germany."), ("dog", "Dogs are loyal animals that bark at strangers."),
    ("tea", "Green tea is brewed from unoxidised leaves."), ("sea", "The Baltic Sea has low salinity."),
]
QUERIES = ["capital", "Which language should I learn to write fast code without a garbage collector?", "pets that purr",
           "city", "what do loyal dogs do when a stranger comes to the door at night", "tea leaves", "sea salt", "France",
           "a language", "German capital city", "animals", "how is green tea made", "Python", "salinity of the Baltic", "bark",
           "memory management in systems programming languages"]


def run_together(calls):
    """Run every call in its own thread, released together; their results (or exceptions) in order."""
    out, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_batched_searches_equal_one_by_one_searches(tmp_path, minilm):
    retriever = Retriever(minilm)
    retriever.add(DOCS)
    index = ServedIndex(find_folder(retriever.save(tmp_path / "r")), model=minilm, batching=True, batch_wait_ms=200)
    try:
        options = [{"mode": ("dense", "hybrid", "lexical")[i % 3]} for i in range(len(QUERIES))]
        options[1]["where"] = {"id": {"$in": ["py", "rust", "fr"]}}
        requests = [([q], opts) for q, opts in zip(QUERIES, options)] + [(QUERIES[:3], {})]
        together = run_together([lambda q=q, o=o: index.search(q, 3, o) for q, o in requests])
        alone = [[[hit_dict(h) for h in index.retriever.search(query, 3, **o)] for query in q] for q, o in requests]
        assert [[[h["id"] for h in row] for row in r] for r in together] == [[[h["id"] for h in row] for row in r] for r in alone]
        for got, want in zip(together, alone):
            for got_row, want_row in zip(got, want):
                assert [h["score"] for h in got_row] == pytest.approx([h["score"] for h in want_row], abs=1e-5)
                assert [h["text"] for h in got_row] == [h["text"] for h in want_row]
        stats = index.stats()
        encoded = sum(len(q) for q, o in requests if o.get("mode") != "lexical")  # BM25 needs no encoding
        assert stats["batching"] and stats["encoded_queries"] == encoded and stats["encoder_passes"] < encoded
        assert isinstance(run_together([lambda: index.search(["  "], 3, {})])[0], ValueError)  # refused by search as before
    finally:
        index.close()


class Encoder:
    """Query lengths as embeddings; a batch holding "boom" fails as a whole."""

    def embed_queries(self, queries):
        if "boom" in queries:
            raise ValueError("cannot encode boom")
        return np.array([[len(q)] for q in queries], dtype=np.float32)


def test_one_bad_query_fails_its_own_search_only():
    batcher, encoder = QueryBatcher(wait_ms=200, workers=2), Encoder()
    try:
        got = run_together([lambda q=q: batcher.embed(encoder, q) for q in (["a"], ["boom"], ["ccc", "dd"], ["eeee"])])
        assert got[0].tolist() == [[1.0]] and got[2].tolist() == [[3.0], [2.0]] and got[3].tolist() == [[4.0]]
        assert isinstance(got[1], ValueError) and "boom" in str(got[1])
    finally:
        batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.embed(encoder, ["a"])
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(max_batch=0)
