"""The codebase index (:mod:`retrieval.codebase.index`) and ``python -m retrieval index|search`` on a copy of a few
files of this repository, with the offline MiniLM."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.__main__ import main
from indexes import IndexFormatError, storage
from retrieval.codebase.files import SourceTree
from retrieval.codebase.index import EMBEDDINGS_FILE, MANIFEST, index_codebase, load_codebase, search_codebase

REPO = Path(__file__).resolve().parents[3]
COPIED = ["indexes/storage.py", "indexes/base.py", "retrieval/codebase/files.py"]
NOTES = """# Notes

## Backups
Copy the index folder before an upgrade.

## Colours
The logo is dark blue.
"""
NEW_FUNCTION = '''

def parse_duration(text):
    """Turn a span such as "3h20m" into seconds."""
    hours, _, minutes = text.partition("h")
    return int(hours) * 3600 + int(minutes.rstrip("m") or 0) * 60
'''


def make_project(root: Path) -> Path:
    """A few real source files, a Markdown file, and files that must be skipped."""
    for name in COPIED:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    (root / "NOTES.md").write_text(NOTES, encoding="utf-8")
    (root / ".gitignore").write_text("*.log\nbuild/\n!keep.log\n", encoding="utf-8")
    (root / "run.log").write_text("ignored\n", encoding="utf-8")
    (root / "keep.log").write_text("re-included by a negated pattern\n", encoding="utf-8")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("x = 1\n", encoding="utf-8")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (root / "indexes" / ".gitignore").write_text("base.py\n", encoding="utf-8")  # nested: relative to indexes/
    (root / "indexes" / "base.py").rename(root / "indexes" / "kept_base.py")
    (root / "indexes" / "base.py").write_text("IGNORED = True\n", encoding="utf-8")
    return root


def rewrite_manifest(out: Path, manifest: dict) -> None:
    """Save a changed manifest as the index does: checksummed, covering every other file of the folder."""
    description = {k: v for k, v in manifest.items() if k not in ("sha256", "checksum")}
    storage.write_description(out, MANIFEST, description, files=[f for f in storage.files_below(out) if f != MANIFEST])


@pytest.fixture(scope="module")
def project(tmp_path_factory, minilm):
    """The project indexed once; tests that change it work on their own copy."""
    root = make_project(tmp_path_factory.mktemp("project"))
    out = root.parent / "index"
    report = index_codebase(root, out, model=minilm, show_progress=False)
    return root, out, report


def test_walk_honours_gitignore_and_counts_skips(tmp_path):
    root = make_project(tmp_path)
    tree = SourceTree(root)
    paths = sorted(s.path for s in tree)
    assert paths == [".gitignore", "NOTES.md", "indexes/.gitignore", "indexes/kept_base.py", "indexes/storage.py", "keep.log", "retrieval/codebase/files.py"]
    assert tree.skipped == {"ignored": 3, "binary": 1, "not-utf8": 1}  # run.log, build/, indexes/base.py


def test_first_run_indexes_every_chunk(project, minilm):
    root, out, report = project
    assert (report.files, report.new_files, report.changed_files, report.removed_files) == (7, 7, 0, 0)
    assert report.encoded == report.chunks > 20 and report.written
    assert report.skipped == {"ignored": 3, "binary": 1, "not-utf8": 1}
    manifest = json.loads((out / MANIFEST).read_text())
    assert sum(f["chunks"] for f in manifest["files"].values()) == report.chunks
    assert manifest["settings"]["max_length"] == 256 and manifest["settings"]["index"] == "Flat"
    retriever, _ = load_codebase(out, model=minilm)
    assert all(h.metadata["start"] >= 1 for h in retriever.search("anything", k=5))
    assert np.load(out / EMBEDDINGS_FILE).shape == (report.chunks, 384)


def test_second_run_encodes_only_changed_files(project, tmp_path, minilm):
    root, out = tmp_path / "project", tmp_path / "index"
    shutil.copytree(project[0], root)
    shutil.copytree(project[1], out)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["root"] = str(root.resolve())  # the copy indexes the copied folder
    rewrite_manifest(out, manifest)
    before = load_codebase(out, model=minilm)[0].documents
    rows_before = dict(zip(before, np.load(out / EMBEDDINGS_FILE)))

    with open(root / "indexes" / "storage.py", "a", encoding="utf-8") as f:
        f.write(NEW_FUNCTION)
    (root / "retrieval" / "codebase" / "files.py").unlink()
    (root / "extra.md").write_text("# Extra\nA new page.\n", encoding="utf-8")
    report = index_codebase(root, out, model=minilm, show_progress=False)

    files = json.loads((out / MANIFEST).read_text())["files"]
    assert (report.new_files, report.changed_files, report.removed_files) == (1, 1, 1)
    new_ids = set(files["indexes/storage.py"]["ids"]) - set(manifest["files"]["indexes/storage.py"]["ids"])
    assert 1 <= len(new_ids) <= 2  # the appended function (and a neighbour whose text it changed): not the whole file
    assert report.encoded == len(new_ids) + files["extra.md"]["chunks"]
    assert files["indexes/storage.py"]["chunks"] == manifest["files"]["indexes/storage.py"]["chunks"] + 1
    retriever = load_codebase(out, model=minilm)[0]
    paths = {d.metadata["path"] for d in retriever.documents.values()}
    assert "retrieval/codebase/files.py" not in paths and "extra.md" in paths
    assert report.chunks == len(retriever) == sum(f["chunks"] for f in files.values())
    rows_after = dict(zip(retriever.documents, np.load(out / EMBEDDINGS_FILE)))
    unchanged = [i for i, d in before.items() if d.metadata["path"] in ("NOTES.md", "indexes/kept_base.py")]
    assert unchanged and all(np.array_equal(rows_before[i], rows_after[i]) for i in unchanged)
    hit = retriever.search("convert a string like 3h20m to a number of seconds", k=1)[0]
    assert hit.metadata["name"] == "parse_duration"

    again = index_codebase(root, out, model=minilm, show_progress=False)
    assert (again.encoded, again.written, again.chunks) == (0, False, report.chunks)


def test_search_finds_a_function_by_a_paraphrase_of_its_docstring(project, capsys, minilm):
    root, out, _ = project
    assert main(["search", str(out), "compute the checksum of a file, a megabyte at a time", "-k", "3", "--all", "--mode", "dense"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    headers = [line for line in lines if not line.startswith("    ")]
    assert len(headers) == 3
    location, symbol, score = headers[0].split("  ")
    path, line = location.rsplit(":", 1)
    source = (root / "indexes" / "storage.py").read_text().split("\n")
    assert path.endswith("indexes/storage.py") and symbol == "file_digest" and 0 < float(score) <= 1
    assert source[int(line) - 1].startswith("def file_digest") and lines[1].strip() == source[int(line) - 1].strip()
    best = search_codebase(out, "compute the checksum of a file, a megabyte at a time", k=1, model=minilm)[0]
    assert best.metadata["name"] == "file_digest" and best.metadata["start"] <= int(line) <= best.metadata["end"]
    hits = search_codebase(out, "what colour is the logo", k=1, model=minilm)
    assert hits[0].metadata["path"] == "NOTES.md" and hits[0].metadata["name"] == "Notes > Colours"


def test_multi_vector_index_deletes_changed_chunks(tmp_path):
    from retrieval.colbert import load_colbert

    colbert = load_colbert(None, device="cpu", dtype="float32", max_length=64)
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text(NOTES, encoding="utf-8")
    (root / "b.py").write_text(NEW_FUNCTION, encoding="utf-8")
    first = index_codebase(root, tmp_path / "mv", model=colbert, multi_vector=True, show_progress=False)
    files = json.loads((tmp_path / "mv" / MANIFEST).read_text())["files"]
    assert first.encoded == first.chunks == files["a.md"]["chunks"] + files["b.py"]["chunks"] and files["a.md"]["chunks"] >= 3
    (root / "a.md").write_text(NOTES.replace("dark blue", "bright orange"), encoding="utf-8")
    second = index_codebase(root, tmp_path / "mv", model=colbert, show_progress=False)  # kind kept from the first run
    assert (second.encoded, second.chunks, second.changed_files) == (1, first.chunks, 1)  # only the edited section
    retriever = load_codebase(tmp_path / "mv", model=colbert)[0]
    assert len(retriever) == first.chunks and retriever.index.deleted.sum() == 1
    hits = retriever.search("The logo is bright orange.", k=10)  # an untrained projection: ask for the exact words
    assert hits[0].metadata["name"] == "Notes > Colours" and "bright orange" in hits[0].text
    assert len({h.id for h in hits}) == len(hits) <= first.chunks and not any("dark blue" in h.text for h in hits)


def test_rebuild_may_change_what_a_plain_run_refuses(tmp_path, minilm):
    root = tmp_path / "notes"
    root.mkdir()
    (root / "NOTES.md").write_text(NOTES * 3, encoding="utf-8")
    first = index_codebase(root, tmp_path / "ix", model=minilm, show_progress=False)
    with pytest.raises(ValueError, match="built with max_length 256, not 16"):
        index_codebase(root, tmp_path / "ix", model=minilm, max_length=16, show_progress=False)
    again = index_codebase(root, tmp_path / "ix", model=minilm, max_length=16, rebuild=True, show_progress=False)
    settings = json.loads((tmp_path / "ix" / MANIFEST).read_text())["settings"]
    assert settings["max_length"] == 16 and again.encoded == again.chunks > first.chunks


def test_bad_input_exits_2_with_a_message(project, tmp_path, capsys):
    root, out, _ = project
    cases = [
        (["index", str(tmp_path / "missing"), "--out", str(tmp_path / "o1")], "does not exist"),
        (["index", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")], "no text files to index"),
        (["index", str(root), "--out", str(root / "indexes")], "is not a codebase index"),
        (["index", str(root), "--out", str(out), "--model", "some/other-model"], "built with model"),
        (["index", str(root), "--out", str(out), "--multi-vector"], "built with kind 'dense'"),
        (["index", str(root), "--out", str(out), "--max-length", "0"], "positive"),
        (["index", str(tmp_path), "--out", str(out)], "indexes " + str(root.resolve())),
        (["search", str(tmp_path / "nothing"), "query"], "not an index folder"),
        (["search", str(root), "query"], "is not a codebase index"),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("  \n", encoding="utf-8")
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        last = err.strip().split("\n")[-1]  # after any progress bar
        assert last.startswith("error: ") and message in last and "Traceback" not in err, (argv, err)
    assert (root / "indexes" / "storage.py").is_file()  # a non-index --out is never overwritten
    assert main([]) == 2


def test_a_damaged_index_is_refused_naming_the_file(project, tmp_path, capsys, minilm):
    out = tmp_path / "index"
    shutil.copytree(project[1], out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["sha256"]) == set(storage.files_below(out)) - {MANIFEST}  # every file is covered by a checksum
    rows = (out / EMBEDDINGS_FILE).read_bytes()
    (out / EMBEDDINGS_FILE).write_bytes(rows[: len(rows) // 2])
    with pytest.raises(IndexFormatError, match=EMBEDDINGS_FILE):
        load_codebase(out, model=minilm)
    assert main(["search", str(out), "query"]) == 2
    assert EMBEDDINGS_FILE in capsys.readouterr().err
    (out / EMBEDDINGS_FILE).write_bytes(rows)
    manifest["settings"]["kind"] = "sparse"  # a kind no retriever class registers
    rewrite_manifest(out, manifest)
    with pytest.raises(ValueError, match="kind 'sparse', unknown here"):
        index_codebase(project[0], out, model=minilm, show_progress=False)


def test_help_explains_every_flag(capsys):
    for command, flags in (
        ("index", ["--out", "--model", "--multi-vector", "--index", "--dtype", "--device", "--max-length", "--batch-size",
                   "--exclude", "--max-file-size", "--rebuild", "--quiet"]),
        ("search", ["-k", "--device"]),
    ):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert all(flag in text for flag in flags)


def test_single_vector_retriever_deletes_in_place(minilm):
    from retrieval import Retriever

    retriever = Retriever(minilm)
    retriever.add([("a", "alpha"), ("b", "beta")])
    retriever.delete(["a"])
    assert len(retriever) == 1 and len(retriever.index) == 1
    assert [h.id for h in retriever.search("alpha", k=5)] == ["b"]
