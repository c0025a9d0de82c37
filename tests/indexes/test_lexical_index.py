"""LexicalIndex (real bm25s + PyStemmer): tokenizers, filtered search, delete + compact, storage, threads."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest
import Stemmer

from indexes import IndexFormatError, LexicalIndex
from indexes.lexical import code_tokens
from tests.indexes.writers_and_readers import assert_searches_never_see_deleted

WORDS = "cat dog purr bark fish swim bird fly tree leaf river stone cloud rain snow wind sun moon star sea".split()


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 25))) for _ in range(300)]
    queries = [" ".join(rng.choice(WORDS, size=3)) for _ in range(8)] + ["nothing matches zzz"]
    return [f"t{i}" for i in range(len(texts))], texts, queries


def test_code_tokenizer_splits_identifiers_and_keeps_them_whole():
    assert code_tokens("parseHTTPResponse2(user_name)") == ["parsehttpresponse2", "parse", "http", "response", "user_name", "user", "name"]
    assert code_tokens("x = self.itemCount") == ["self", "itemcount", "item", "count"]
    index = LexicalIndex("code")
    index.add(["a", "b"], ["def get_user_name(self): ...", "class HttpClient: pass"])
    assert index.search(["user name"], 2).ids == [["a"]]
    assert index.search(["httpclient"], 2).ids == [["b"]]


def test_english_scores_equal_bm25s_on_its_own(corpus):
    ids, texts, queries = corpus
    index = LexicalIndex()
    index.add(ids, texts)
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(queries[:3], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    docs, scores = reference.retrieve(tokens, k=5, show_progress=False)
    result = index.search(queries[:3], 5)
    assert result.ids == [[ids[j] for j in row] for row in docs]
    np.testing.assert_allclose(result.scores, scores, rtol=1e-6)


def test_filtered_search_equals_the_full_ranking_restricted_to_the_subset(corpus):
    ids, texts, queries = corpus
    index = LexicalIndex()
    index.add(ids, texts)
    full = index.search(queries, len(ids))
    assert full.ids[-1] == []  # no shared term, no hit
    for subset in (set(ids[::3]), set(ids[10:14]), set()):
        filtered = index.search(queries, 10, subset=list(subset) + ["unknown-id"])
        for row, scores, full_row, full_scores in zip(filtered.ids, filtered.scores, full.ids, full.scores):
            expected = [(i, s) for i, s in zip(full_row, full_scores) if i in subset][:10]
            assert list(zip(row, scores)) == expected


def test_delete_then_compact_equals_an_index_built_from_scratch(corpus):
    ids, texts, queries = corpus
    index = LexicalIndex()
    index.add(ids, texts)
    index.search(queries[:1], 1)  # built
    with pytest.raises(KeyError, match="nope"):
        index.delete([ids[0], "nope"])
    assert len(index) == 300 and ids[0] in index.live_ids()
    gone = set(ids[::4])
    index.delete(sorted(gone))
    assert not gone & {i for row in index.search(queries, 300).ids for i in row}
    index.compact()
    scratch = LexicalIndex()
    keep = [p for p in range(300) if ids[p] not in gone]
    scratch.add([ids[p] for p in keep], [texts[p] for p in keep])
    after, expected = index.search(queries, 20), scratch.search(queries, 20)
    assert after.ids == expected.ids
    np.testing.assert_allclose(np.concatenate(after.scores), np.concatenate(expected.scores), rtol=1e-6)
    assert index.ids == scratch.ids and len(index._vocab) == len(scratch._vocab)
    index.add([ids[0]], ["zebra"])  # upsert: a deleted id comes back with new text
    assert index.search(["zebra"], 3).ids == [[ids[0]]]


def test_save_load_round_trip_and_damage(tmp_path, corpus):
    ids, texts, queries = corpus
    index = LexicalIndex(k1=1.2, b=0.6)
    index.add(ids, texts)
    index.delete(ids[:5])
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert loaded.settings == index.settings and loaded.live_ids() == index.live_ids()
    assert loaded.search(queries, 10) == index.search(queries, 10)
    assert LexicalIndex.load(tmp_path / "lex", mmap=True).search(queries, 10, subset=ids[::2]) == index.search(queries, 10, subset=ids[::2])
    loaded.add(["new"], ["cat cat cat"])  # a loaded index keeps changing
    loaded.compact()
    assert loaded.search(["cat"], 1).ids == [["new"]] and len(loaded) == 296

    for name in ("tokens.npy", "bm25s/data.csc.index.npy", "vocab.json"):
        file = tmp_path / "lex" / name
        data = file.read_bytes()
        file.write_bytes(data[:-3] + bytes(b ^ 0xFF for b in data[-3:]))
        with pytest.raises(IndexFormatError, match=f"{name}.*checksum"):
            LexicalIndex.load(tmp_path / "lex")
        file.write_bytes(data[: len(data) // 2])
        with pytest.raises(IndexFormatError, match=name.split("/")[0]):
            LexicalIndex.load(tmp_path / "lex", verify=False)  # the readers themselves refuse a truncated file
        file.write_bytes(data)
    with pytest.raises(IndexFormatError, match="not a saved LexicalIndex"):
        LexicalIndex.load(tmp_path / "elsewhere")


def test_bad_input():
    with pytest.raises(ValueError, match="tokenizer"):
        LexicalIndex("french")
    index = LexicalIndex()
    assert index.search(["anything"], 3).ids == [[]]
    with pytest.raises(TypeError, match="one string"):
        index.search("a query", 3)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        index.add(["a", "b"], ["fine", None])
    index.add(["a"], ["the"])  # only a stopword: indexed, never found
    with pytest.raises(ValueError, match="already in the index"):
        index.add(["a"], ["again"])
    assert index.search(["the"], 3).ids == [[]] and len(index) == 1
    with pytest.raises(ValueError, match="k must be"):
        index.search(["x"], 0)


def test_searches_beside_adds_and_deletes_never_return_deleted_ids(corpus):
    ids, texts, queries = corpus
    index = LexicalIndex()
    index.add(ids, texts)
    def writer(deleted):
        for start in range(0, 100, 10):
            index.delete(ids[start : start + 10])
            deleted(ids[start : start + 10])
            index.add([f"new{start}"], ["cat dog"])
            if start == 50:
                index.compact()

    subset = ids[::2] + [f"new{i}" for i in range(0, 100, 10)]
    gone = assert_searches_never_see_deleted(writer, lambda: index.search(queries, 10, subset=subset).ids, rounds=10)
    assert len(index) == 210 and not gone & set(index.live_ids())
