"""``Retriever.add`` cuts a long code or Markdown file at its structure, everything else into token windows."""

import subprocess
import sys

import pytest

from retrieval import Retriever
from tests.conftest import REPO


def section(name: str, topic: str, steps: int = 12) -> str:
    return f"## {name}\n\n" + " ".join(f"Step {i}: {topic} needs care at stage {i}." for i in range(steps)) + "\n\n"


GUIDE = ("# Guide\n\nThis guide covers the tool.\n\n" + section("Install", "installing the package with pip")
         + section("Configure", "the configuration file in YAML") + section("Troubleshooting", "a crash with a segmentation fault"))
SOURCE = '''import os


def parse_config(path):
    """Read the configuration file and return its text."""
    with open(path) as f:
        return f.read()


class Cache:
    """Values kept in memory."""

    def get(self, key):
        return self.data.get(key)


def long_function(values):
''' + "".join(f"    total_{i} = sum(v * {i} for v in values if v > {i})\n" for i in range(40)) + "    return total_0\n"
DISTRACTORS = [("ships", "Ships sail along rocky coasts at night."), ("garden", "A garden needs water and soil.")]


@pytest.fixture(scope="module")
def retriever(minilm):
    retriever = Retriever(minilm, lexical=False)
    retriever.add([{"id": "guide", "text": GUIDE, "path": "docs/guide.md"}, {"id": "util", "text": SOURCE, "source": "pkg/util.py"},
                   *DISTRACTORS])
    return retriever


def chunks_of(retriever, parent):
    return [retriever.documents[i] for i in retriever.children[parent]]


def test_a_long_markdown_page_is_cut_at_its_headings(retriever):
    assert retriever.document_token_counts([GUIDE])[0] > retriever.max_length()
    chunks = chunks_of(retriever, "guide")
    assert [c.title for c in chunks] == ["Guide", "Guide > Install", "Guide > Configure", "Guide > Troubleshooting"]
    assert all(c.text.startswith("#") and c.text == GUIDE[c.start : c.end] and c.parent_id == "guide" for c in chunks)
    assert chunks[-1].end == len(GUIDE.rstrip())
    hit = retriever.search("how do I fix a segmentation fault crash", k=1)[0]
    assert (hit.id, hit.title) == ("guide#3", "Guide > Troubleshooting")
    grouped = retriever.search("how do I fix a segmentation fault crash", k=3, group_by_document=True)
    assert grouped[0].id == "guide" and grouped[0].text == GUIDE and (grouped[0].start, grouped[0].end) == (hit.start, hit.end)
    assert len({h.id for h in grouped}) == 3


def test_a_long_python_file_is_cut_at_its_functions_and_a_long_function_into_windows(retriever):
    chunks = chunks_of(retriever, "util")
    assert all(c.text == SOURCE[c.start : c.end] for c in chunks)
    titles = [c.title for c in chunks]
    assert titles[:2] == ["parse_config", "Cache.get"] and set(titles[2:]) == {"long_function"} and len(titles) > 3
    assert chunks[0].text.startswith("import os") and chunks[0].text.rstrip().endswith("return f.read()")
    assert chunks[2].text.startswith("def long_function(values):") and chunks[-1].end == len(SOURCE.rstrip())
    assert max(retriever.document_token_counts([c.full_text for c in chunks])) <= retriever.max_length()
    top = retriever.search("read the configuration file", k=1, group_by_document=True)[0]
    assert top.id == "util" and SOURCE[top.start : top.end].startswith("import os")


def test_the_chunker_option_chooses_windows_and_is_saved(minilm, tmp_path):
    windows = Retriever(minilm, lexical=False, chunker="windows")
    windows.add([{"id": "guide", "text": GUIDE, "path": "docs/guide.md"}])
    chunks = chunks_of(windows, "guide")
    assert all(c.title == "" and c.text == GUIDE[c.start : c.end] for c in chunks)
    assert not all(c.text.startswith("#") for c in chunks)  # windows cut wherever the tokens run out
    windows.add([{"id": "again", "text": GUIDE, "path": "docs/again.md"}], chunk="auto")  # per call
    assert chunks_of(windows, "again")[1].title == "Guide > Install"
    assert Retriever.load(windows.save(tmp_path / "w")).chunker == "windows"
    with pytest.raises(ValueError, match="chunker must be 'auto', 'windows' or a callable"):
        Retriever(minilm, lexical=False, chunker="sentences")


def test_plain_documents_are_cut_as_before_without_loading_tree_sitter():
    # no model: a word counter stands in for the tokenizer, so the check costs an interpreter, not a model load
    code = (
        "import re, sys\n"
        "from retrieval.chunking import Chunking\nfrom retrieval.documents import Document\n"
        "words = lambda texts: [len(t.split()) for t in texts]\n"
        "offsets = lambda texts: [[m.span() for m in re.finditer(r'\\S+', t)] for t in texts]\n"
        "text = '# Title\\n\\n' + ' '.join(f'word{i}' for i in range(100))\n"
        "docs = [Document('2019.03', text), Document('n', text, metadata={'source': 'wikipedia'})]\n"
        "chunks = Chunking(40, words, offsets, overlap=5).split(docs)\n"
        "assert [c.id for c in chunks[:3]] == ['2019.03#0', '2019.03#1', '2019.03#2'], chunks\n"
        "assert chunks[1].start == text.index('word32 ') and all(c.text == text[c.start:c.end] for c in chunks)\n"
        "assert 'tree_sitter' not in sys.modules and 'retrieval.chunking.structural' not in sys.modules\n"
        "Chunking(40, words, offsets).split([Document('a.md', text)])\n"
        "assert 'retrieval.chunking.structural' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
