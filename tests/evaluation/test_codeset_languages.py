"""``python -m evaluation.codeset`` beyond Python: doc comments of Go, JavaScript and Rust, and file corpora.

The ``chunks`` and ``windows`` corpora hold every file read, cut by structure or into line
windows, with the queried doc comments blanked; a query's relevant documents are the chunks
holding its function's lines.
"""

import json
import textwrap
from pathlib import Path

from evaluation.codeset import build_codeset, first_paragraph, is_test_path

GO = textwrap.dedent("""\
    package ring

    // Ring is a circular buffer of bytes with a fixed capacity.
    type Ring struct {
    \tbuf  []byte
    \thead int
    }

    // Push appends a byte to the ring, overwriting the oldest one when full.
    func (r *Ring) Push(b byte) {
    \tr.buf[r.head] = b
    \tr.head = (r.head + 1) % len(r.buf)
    }

    // Len is short.
    func (r *Ring) Len() int { return len(r.buf) }
    """)

JS = textwrap.dedent("""\
    /**
     * Split a camelCase identifier into its lower-case words.
     *
     * @param {string} name the identifier
     * @returns {string[]}
     */
    export function splitWords(name) {
      const parts = name.split(/(?=[A-Z])/);
      return parts.map((p) => p.toLowerCase());
    }

    class Parser {
      /** Build a parser for the given grammar rules. */
      constructor(rules) {
        this.rules = rules;
        this.cache = new Map();
      }
    }
    """)

RUST = textwrap.dedent("""\
    /// Count the vowels of a word, ignoring case.
    pub fn vowels(word: &str) -> usize {
        word.chars()
            .filter(|c| "aeiou".contains(c.to_ascii_lowercase()))
            .count()
    }
    """)


def make_repo(root: Path) -> Path:
    for rel, text in {"ring/ring.go": GO, "web/words.js": JS, "src/vowels.rs": RUST,
                      "ring/ring_test.go": GO.replace("Ring", "TestRing"), "web/words.min.js": JS}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_doc_comment_helpers():
    assert first_paragraph("Split a name.\n@param {string} name\n@returns x") == "Split a name."
    assert is_test_path("ring/ring_test.go") and is_test_path("web/words.test.js") and is_test_path("src/__tests__/a.ts")
    assert is_test_path("java/util/ArrayListTest.java") and not is_test_path("src/latest.rs") and not is_test_path("Contest.java")


def test_go_javascript_and_rust_pairs(tmp_path):
    stats = build_codeset(make_repo(tmp_path / "repo"), tmp_path / "sets" / "poly", show_progress=False)
    corpus = {d["_id"]: d for d in read_jsonl(tmp_path / "sets" / "poly" / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in read_jsonl(tmp_path / "sets" / "poly" / "queries.jsonl")}
    assert set(corpus) == {"ring/ring.go::Ring.Push", "web/words.js::splitWords", "src/vowels.rs::vowels"}
    assert queries["q:web/words.js::splitWords"] == "Split a camelCase identifier into its lower-case words."
    assert queries["q:ring/ring.go::Ring.Push"] == "Push appends a byte to the ring, overwriting the oldest one when full."
    assert corpus["ring/ring.go::Ring.Push"]["text"].startswith("func (r *Ring) Push(b byte) {")
    assert corpus["web/words.js::splitWords"]["metadata"] == {"path": "web/words.js", "start": 1, "end": 10, "kind": "function"}
    assert "/**" not in corpus["web/words.js::splitWords"]["text"]
    assert stats["dropped"] == {"constructor": 1, "short code": 1, "test code": 2}  # Parser.constructor, Ring.Len, ring_test.go
    assert stats["files"] == {"read go": 2, "read javascript": 1, "read rust": 1} and stats["files_skipped"] == {"minified": 1}


def words(texts):
    """A stand-in tokenizer (the real one is the CLI's default): a token per word, plus two."""
    return [len(t.split()) + 2 for t in texts]


def test_chunk_and_window_corpora_judge_the_chunks_holding_the_function(tmp_path):
    repo = make_repo(tmp_path / "repo")
    for corpus in ("chunks", "windows"):
        out = tmp_path / "sets" / corpus
        stats = build_codeset(repo, out, corpus=corpus, max_tokens=30, count_tokens=words, show_progress=False)
        docs = {d["_id"]: d for d in read_jsonl(out / "corpus.jsonl")}
        qrels = [line.split("\t") for line in (out / "qrels" / "test.tsv").read_text().splitlines()[1:]]
        assert all("Count the vowels" not in d["text"] and "Split a camelCase" not in d["text"] for d in docs.values())
        judged = {q: [d for q2, d, _ in qrels if q2 == q] for q, _, _ in qrels}
        assert set(judged) == {"q:ring/ring.go::Ring.Push", "q:web/words.js::splitWords", "q:src/vowels.rs::vowels"}
        vowels = [docs[d] for d in judged["q:src/vowels.rs::vowels"]]
        assert vowels and all(d["metadata"]["path"] == "src/vowels.rs" for d in vowels)
        assert any("fn vowels" in d["text"] for d in vowels)
        assert {d["metadata"]["path"] for d in docs.values()} == {"ring/ring.go", "ring/ring_test.go", "web/words.js", "src/vowels.rs"}
        assert stats["counts"]["documents"] == len(docs) and stats["corpus"] == corpus
        assert all(n <= 30 for n in words([f"{d['title']} {d['text']}" for d in docs.values()]))
    chunk_titles = {d["title"] for d in read_jsonl(tmp_path / "sets" / "chunks" / "corpus.jsonl")}
    assert "ring/ring.go Ring.Push" in chunk_titles  # structure names its chunks; windows carry the path only
    assert {d["metadata"]["kind"] for d in read_jsonl(tmp_path / "sets" / "windows" / "corpus.jsonl")} == {"text"}
