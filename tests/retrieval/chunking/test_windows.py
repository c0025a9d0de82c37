"""Chunking in ``Retriever.add``: token windows that fit, exact offsets, a chunker hook, and a 20,000-token document."""

import re

import pytest

from encoder import token_lengths
from retrieval import Retriever
from retrieval.chunking import Chunking, model_token_offsets, window_spans
from retrieval.documents import Document

LAST = ("Postscript. The old lighthouse keeper on Skerryvore island kept three cats. Every winter evening he fed "
        "them smoked herring from the harbour, and the cats slept by the lamp.")
DISTRACTORS = [
    ("ships", "Ships sail along rocky coasts at night, guided by radio beacons."),
    ("garden", "A garden needs water, sunlight and good soil to grow vegetables."),
    ("herring", "Herring is an oily fish, often salted or pickled in the Baltic."),
    ("winter", "Winter evenings are long and dark in the north of Scotland."),
    ("island", "Many small islands off the coast have no permanent residents."),
]


def long_report(sentences: int) -> str:
    body = " ".join(
        f"Item {i}: the regional committee reviewed budget line {i * 7 % 1000} and approved {i % 9} amendments "
        f"to the {['transport', 'housing', 'water', 'school'][i % 4]} plan."
        for i in range(sentences)
    )
    return body + "\n\n" + LAST


def test_window_spans_cover_everything_with_the_overlap_asked():
    offsets = [(i * 3, i * 3 + 2) for i in range(10)]
    spans = window_spans(offsets, size=4, overlap=1)
    assert spans == [(0, 11), (9, 20), (18, 29)]  # tokens 0-3, 3-6, 6-9
    assert window_spans(offsets, size=20, overlap=5) == [(0, 29)]
    assert window_spans([], size=4, overlap=1) == []
    with pytest.raises(ValueError, match="at least one token"):
        window_spans(offsets, size=0, overlap=0)


def test_token_windows_fit_the_model_and_point_into_the_parent(minilm):
    count = lambda texts: token_lengths(minilm, texts, "document")  # noqa: E731
    chunking = Chunking(64, count, model_token_offsets(minilm), overlap=8)
    doc = Document("r", long_report(40), title="Committee minutes")
    chunks = chunking.split([doc, Document("short", "fits easily")])
    assert chunks[-1].id == "short" and chunks[-1].parent_id is None
    pieces = chunks[:-1]
    assert [c.id for c in pieces] == [f"r#{i}" for i in range(len(pieces))] and len(pieces) > 5
    assert all(c.parent_id == "r" and c.title == "Committee minutes" and c.text == doc.text[c.start : c.end] for c in pieces)
    assert max(count([c.full_text for c in pieces])) <= 64
    assert pieces[0].start == 0 and pieces[-1].end == len(doc.text)
    assert all(b.start < a.end for a, b in zip(pieces, pieces[1:]))  # consecutive windows overlap


def test_a_chunker_hook_cuts_documents_its_own_way(minilm):
    retriever = Retriever(minilm, lexical=False)
    text = "First paragraph about cats.\n\nSecond paragraph about dogs.\n\nThird about birds."

    def paragraphs(doc):
        return [m.span() for m in re.finditer(r"[^\n]+", doc.text)]

    retriever.add([{"id": "p", "text": text, "source": "pets.md"}], chunk=paragraphs)
    assert sorted(retriever.documents) == ["p#0", "p#1", "p#2"] and len(retriever) == 1
    hit = retriever.search("puppies", k=1)[0]
    assert (hit.id, hit.parent_id, text[hit.start : hit.end], hit.metadata) == ("p#1", "p", "Second paragraph about dogs.", {"source": "pets.md"})
    named = Retriever(minilm, lexical=False, chunker=lambda doc: [{"text": doc.text[:5], "section": "head"}, {"text": doc.text[5:]}])
    named.add([("n", "Hello there, world")])
    assert named.documents["n#0"].metadata == {"section": "head"} and named.documents["n#0"].start is None
    with pytest.raises(ValueError, match="document 'x': chunk 0 is str"):
        named.add([("x", "text")], chunk=lambda doc: ["not a span"])
    assert "x" not in named.documents and len(named) == 1


def test_a_20000_token_document_is_found_by_its_last_paragraph(minilm):
    retriever = Retriever(minilm, lexical=False)
    report = long_report(1000)
    assert retriever.document_token_counts([report])[0] >= 20_000
    retriever.add([("report", report), *DISTRACTORS])
    query = "What did the lighthouse keeper on Skerryvore feed his cats?"
    top = retriever.search(query, k=1)[0]
    assert top.parent_id == "report" and top.end == len(report) and top.start > len(report) - 2000
    assert top.text == report[top.start : top.end] and "lighthouse keeper on Skerryvore" in top.text
    grouped = retriever.search(query, k=3, group_by_document=True)
    assert grouped[0].id == "report" and grouped[0].text == report and (grouped[0].start, grouped[0].end) == (top.start, top.end)
    assert len({h.id for h in grouped}) == 3
    # the same document truncated to the model's 256 tokens is not found: its end is never read
    truncated = Retriever(minilm, lexical=False)
    truncated.add([("report", report), *DISTRACTORS], chunk=False)
    assert "report" not in [h.id for h in truncated.search(query, k=3)]
