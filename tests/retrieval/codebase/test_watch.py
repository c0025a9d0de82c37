"""``--watch`` (:mod:`retrieval.codebase.watch`): after an edit of one function, that function's chunk and nothing else
is embedded again; chunks moved by the edit keep their embeddings and get their new line numbers."""

import json
import threading
import time

import pytest

from retrieval.codebase.index import MANIFEST, index_codebase, load_codebase
from retrieval.codebase.watch import snapshot, watch_codebase
from retrieval.retriever import Retriever

SOURCE = '''"""Small helpers."""


def area(radius):
    """Area of a circle."""
    return 3.14159 * radius * radius


def greet(name):
    """Say hello to someone."""
    return "hello " + name


def parse_duration(text):
    """Turn a span such as "3h20m" into seconds."""
    hours, _, minutes = text.partition("h")
    return int(hours) * 3600 + int(minutes.rstrip("m") or 0) * 60
'''
EDITED = SOURCE.replace('    return "hello " + name\n', '    greeting = "good morning, " + name\n    return greeting.title()\n')


@pytest.fixture
def embedded(monkeypatch):
    """The document texts the retriever embeds, in order."""
    texts = []
    encode = Retriever._encode

    def counting(self, batch, role):
        if role == "document":
            texts.extend(batch)
        return encode(self, batch, role)

    monkeypatch.setattr(Retriever, "_encode", counting)
    return texts


def test_an_edited_function_is_the_only_chunk_embedded_again(tmp_path, minilm, embedded):
    root, out = tmp_path / "project", tmp_path / "index"
    root.mkdir()
    (root / "helpers.py").write_text(SOURCE, encoding="utf-8")
    (root / "README.md").write_text("# Helpers\nSmall functions.\n", encoding="utf-8")
    reports, stop = [], threading.Event()
    watcher = threading.Thread(target=watch_codebase, args=(root, out), daemon=True, kwargs=dict(
        model=minilm, interval=0.05, debounce=0.2, stop=stop, max_updates=1, on_update=reports.append, show_progress=False))
    watcher.start()
    deadline = time.monotonic() + 60
    while not reports and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reports and reports[0].encoded == reports[0].chunks >= 4 and len(embedded) == reports[0].encoded
    before = {d.metadata["name"]: d for d in load_codebase(out, model=minilm)[0].documents.values()}
    embedded.clear()

    (root / "helpers.py").write_text(EDITED, encoding="utf-8")
    watcher.join(timeout=60)
    stop.set()
    assert not watcher.is_alive() and len(reports) == 2
    assert (reports[1].changed_files, reports[1].encoded, reports[1].chunks) == (1, 1, reports[0].chunks)
    assert len(embedded) == 1 and "good morning" in embedded[0]

    after = {d.metadata["name"]: d for d in load_codebase(out, model=minilm)[0].documents.values()}
    assert after["area"].id == before["area"].id and after["area"].metadata["start"] == before["area"].metadata["start"]
    moved = after["parse_duration"]
    assert moved.id == before["parse_duration"].id and moved.metadata["start"] == before["parse_duration"].metadata["start"] + 1
    assert EDITED.split("\n")[moved.metadata["start"] - 1].startswith("def parse_duration")
    assert after["greet"].id != before["greet"].id
    manifest = json.loads((out / MANIFEST).read_text())
    assert after["greet"].id in manifest["files"]["helpers.py"]["ids"] and before["greet"].id not in manifest["files"]["helpers.py"]["ids"]


def test_unchanged_text_after_a_move_is_not_embedded_again(tmp_path, minilm, embedded):
    """Swapping two functions changes the file but no chunk's text: nothing is embedded, only line numbers change."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "helpers.py").write_text(SOURCE, encoding="utf-8")
    index_codebase(root, tmp_path / "index", model=minilm, show_progress=False)
    embedded.clear()
    head, area, greet, parse = SOURCE.split("\n\n\n")
    (root / "helpers.py").write_text("\n\n\n".join([head, area, parse.rstrip("\n"), greet]) + "\n", encoding="utf-8")
    report = index_codebase(root, tmp_path / "index", model=minilm, show_progress=False)
    assert (report.changed_files, report.encoded, report.written) == (1, 0, True) and embedded == []
    docs = {d.metadata["name"]: d for d in load_codebase(tmp_path / "index", model=minilm)[0].documents.values()}
    assert docs["parse_duration"].metadata["start"] < docs["greet"].metadata["start"]


def test_a_look_sees_edits_new_and_removed_files_but_not_ignored_folders(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "runs").mkdir()
    indexed = ["src/a.py"]
    first = snapshot(tmp_path, indexed)
    assert set(first) == {"src/a.py", "src/", "./"}
    (tmp_path / "runs" / "out.json").write_text("{}\n")  # an ignored folder: not looked at
    assert snapshot(tmp_path, indexed) == first
    (tmp_path / "src" / "a.py").write_text("x = 22\n")
    second = snapshot(tmp_path, indexed)
    assert second["src/a.py"] != first["src/a.py"]
    time.sleep(0.05)  # past the file system's timestamp granularity
    (tmp_path / "src" / "b.py").write_text("y = 2\n")  # a new file: its folder's mtime moves
    third = snapshot(tmp_path, indexed)
    assert third["src/"] != second["src/"] and third["src/a.py"] == second["src/a.py"]
    (tmp_path / "src" / "a.py").unlink()
    assert snapshot(tmp_path, indexed)["src/a.py"] is None
