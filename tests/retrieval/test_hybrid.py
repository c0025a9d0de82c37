"""Retriever-level BM25, hybrid fusion, filters, upserts and deletes, on real SciFact texts with the offline MiniLM.

The two must-shows of issue 16 at the Retriever level: a filtered search equals brute force over
the filtered subset (every mode, exact and graph indexes), and delete + upsert + compact leaves
a retriever that searches exactly like one rebuilt from scratch.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np
import pytest

from indexes import IndexFormatError, storage
from retrieval import Retriever
from retrieval.filters import matching_ids
from retrieval.fusion import fuse

QUERIES = ["cell proliferation in tumours", "vitamin D deficiency", "gene expression in mice", "blood pressure treatment"]
EMBEDDED: dict[tuple[str, str], np.ndarray] = {}
FILTERS = [{"source": "s1.md"}, {"year": {"$in": [2001, 2002]}}, {"parent_id": "long0"},
           {"text": {"$regex": "(?i)cell"}, "source": {"$prefix": "s"}}, {"source": "nowhere"}]


@pytest.fixture(scope="module")
def corpus(data_dir):
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in islice(f, 48)]
    docs = [{"id": r["_id"], "title": r["title"], "text": r["text"][:400], "source": f"s{i % 4}.md", "year": 2000 + i % 3}
            for i, r in enumerate(records[:40])]
    for j in range(2):  # two documents over MiniLM's 256 tokens: chunked
        text = " ".join(r["text"] for r in records[40 + 4 * j : 44 + 4 * j])
        docs.append({"id": f"long{j}", "title": f"Long {j}", "text": text, "source": "long.md", "year": 2002})
    return docs


@pytest.fixture(scope="module")
def retriever(minilm, corpus):
    r = Retriever(minilm)
    r.add(corpus)
    return r


def rows(hits):
    return [(h.id, round(h.score, 4)) for h in hits]


def brute_force(retriever, query, where, k, mode):
    """Score every stored piece without any index, keep what the filter keeps, rank."""
    keep = set(matching_ids(where, retriever.documents.values()))
    docs = list(retriever.documents.values())
    missing = [doc for doc in docs if (doc.id, doc.full_text) not in EMBEDDED]
    if missing:  # each text embedded once for the whole module
        EMBEDDED.update(zip([(doc.id, doc.full_text) for doc in missing], retriever.embed_documents(missing)))
    d = np.stack([EMBEDDED[(doc.id, doc.full_text)] for doc in docs])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q = retriever.embed_queries([query])[0]
    dense = sorted(((doc.id, float(s)) for doc, s in zip(docs, d @ (q / np.linalg.norm(q))) if doc.id in keep), key=lambda x: -x[1])
    everything = retriever.search(query, k=len(docs), mode="lexical") if mode != "dense" else []
    lexical = [(h.id, h.score) for h in everything if h.id in keep]
    ranked = {"dense": dense, "lexical": lexical, "hybrid": fuse(dense[:100], lexical[:100])}[mode]
    return [(i, round(s, 4)) for i, s in ranked[:k]]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_filtered_search_equals_brute_force_over_the_subset(retriever, mode):
    assert len(retriever.children["long0"]) >= 2 and len(retriever) == 42
    for where in FILTERS:
        for query in QUERIES[:2]:
            got = rows(retriever.search(query, k=5, mode=mode, where=where))
            assert got == brute_force(retriever, query, where, 5, mode), (where, query)
            kept = set(matching_ids(where, retriever.documents.values()))
            assert {i for i, _ in got} <= kept and len(got) == min(5, len(kept)) or mode == "lexical"


def test_filters_on_a_graph_index_are_exact_too(minilm, corpus):
    hnsw = Retriever(minilm, index="HNSW32", lexical=False)
    hnsw.add(corpus)
    for where in FILTERS[:3]:
        assert rows(hnsw.search(QUERIES[0], k=5, where=where)) == brute_force(hnsw, QUERIES[0], where, 5, "dense")


def test_delete_upsert_compact_equals_a_retriever_rebuilt_from_scratch(tmp_path, minilm, corpus):
    changed = Retriever(minilm)
    changed.add(corpus)
    changed.search(QUERIES[0], mode="lexical")  # BM25 built before the changes, so they go through its delete
    changed.delete([corpus[3]["id"], "long1"])  # a whole document, and a chunked one with its chunks
    assert not any(i.startswith("long1") for i in changed.documents) and "long1" not in changed.children
    edits = [dict(corpus[5], text="Vitamin D deficiency and bone density in older adults."),
             dict(corpus[40], text="Short now: blood pressure treatment trial."),  # long0 was chunked
             {"id": "new", "text": "Gene expression in mice changes with age.", "source": "s9.md", "year": 2003}]
    changed.upsert(edits)
    changed.compact()
    final = [d for d in corpus if d["id"] not in {corpus[3]["id"], "long1", corpus[5]["id"], "long0"}] + edits
    rebuilt = Retriever(minilm)
    rebuilt.add(final)
    assert list(changed.documents) == list(rebuilt.documents) and len(changed) == len(final)
    assert changed.children == rebuilt.children == {}
    for mode in ("dense", "lexical", "hybrid"):
        for where in (None, {"year": 2000}):
            assert [rows(h) for h in changed.search(QUERIES, k=10, mode=mode, where=where)] == \
                   [rows(h) for h in rebuilt.search(QUERIES, k=10, mode=mode, where=where)], (mode, where)
    changed.save(tmp_path / "r")
    loaded = Retriever.load(tmp_path / "r", model=minilm)
    assert [rows(h) for h in loaded.search(QUERIES, k=10, mode="hybrid")] == [rows(h) for h in rebuilt.search(QUERIES, k=10, mode="hybrid")]
    with pytest.raises(KeyError, match="'missing'"):
        changed.delete(["new", "missing"])
    assert "new" in changed.documents


def test_save_load_keeps_bm25_chunks_and_checksums(tmp_path, retriever, minilm):
    retriever.save(tmp_path / "r")
    config = json.loads((tmp_path / "r" / "retriever.json").read_text())
    assert config["lexical"] is True and any(f.startswith("lexical/") for f in config["sha256"]) and "parents.jsonl" in config["sha256"]
    loaded = Retriever.load(tmp_path / "r", model=minilm)
    for mode in ("dense", "lexical", "hybrid"):
        assert loaded.search(QUERIES, k=8, mode=mode, where={"year": 2002}) == retriever.search(QUERIES, k=8, mode=mode, where={"year": 2002})
    assert loaded.children == retriever.children and loaded.parents == retriever.parents
    lexical_file = next(p for p in sorted((tmp_path / "r" / "lexical").rglob("*")) if p.is_file() and not p.name.endswith(".lock"))
    data = bytearray(lexical_file.read_bytes())
    data[len(data) // 2] ^= 1
    lexical_file.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=lexical_file.name):
        Retriever.load(tmp_path / "r", model=minilm)


def test_a_folder_saved_before_bm25_loads_and_searches_lexically(tmp_path, minilm):
    old = Retriever(minilm, lexical=False)
    old.add([("py", "Python is a programming language."), ("fr", "Paris is the capital of France.")])
    old.save(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "retriever.json").read_text())
    described = {k: v for k, v in config.items() if k not in ("sha256", "checksum", "lexical", "chunk_overlap", "num_pieces")}
    storage.write_description(tmp_path / "old", "retriever.json", dict(described, version=1), list(config["sha256"]))
    loaded = Retriever.load(tmp_path / "old", model=minilm)
    assert loaded.search("capital of France", k=1, mode="lexical")[0].id == "fr"
    with pytest.raises(ValueError, match="lexical=False"):
        old.search("capital", mode="hybrid")
    with pytest.raises(ValueError, match="unknown mode 'sparse'"):
        old.search("capital", mode="sparse")


def test_group_by_document_ranks_documents_by_their_best_chunk(retriever):
    chunks = retriever.search(QUERIES[0], k=len(retriever.documents))
    best = {}
    for h in chunks:
        best.setdefault(h.parent_id or h.id, h.score)
    grouped = retriever.search(QUERIES[0], k=10, group_by_document=True)
    assert [(h.id, h.score) for h in grouped] == list(best.items())[:10]
    assert all(h.parent_id is None for h in grouped)
    long_hit = retriever.search(QUERIES[0], k=len(retriever), group_by_document=True, where={"parent_id": "long0"})
    assert [h.id for h in long_hit] == ["long0"] and long_hit[0].text == retriever.parents["long0"].text


def test_upserts_beside_searching_threads_never_break_a_search(minilm, corpus):
    r = Retriever(minilm)
    r.add(corpus[:20])
    def search(i):
        hits = r.search(QUERIES[i % 4], k=5, mode="hybrid", where={"source": "s1.md"})
        assert all(h.metadata["source"] == "s1.md" for h in hits)
        return len(hits)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(search, i) for i in range(24)]
        for j in range(6):
            r.upsert([dict(corpus[j], text=f"Revision {j}: " + corpus[j]["text"])])
        assert all(f.result() > 0 for f in futures)
    assert len(r) == 20 and r.documents[corpus[0]["id"]].text.startswith("Revision 0")
