"""Bad input for the codebase walker and index: nothing in a tree or a damaged index folder ends in a traceback.

Names that are not UTF-8, ignore-file lines that :mod:`pathspec` rejects (compared with real
``git check-ignore``), folders and files that cannot be read (simulated: the tests run as root,
whom ``chmod 000`` does not stop), and every file of a saved index deleted, truncated or changed.
"""

import errno
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from indexes import IndexFormatError, storage
from retrieval.__main__ import main
from retrieval.codebase.files import PatternError, SourceTree
from retrieval.codebase.index import MANIFEST, index_codebase, load_codebase

BAD_GITIGNORE = "*.log\n[z-a]\n\\\n!\nsecret/\n"  # lines 2-4: rejected by pathspec; git matches `z` with line 2
INDEX_FILES = [
    "codebase.json", "embeddings.npy", "retriever/retriever.json", "retriever/documents.jsonl",
    "retriever/index/index.faiss", "retriever/index/index.json",
]
DAMAGE = ["deleted", "truncated", "flipped"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_bad_name(folder: Path, name: bytes, text: str = "x = 1\n") -> None:
    """A file whose name is not UTF-8 (created through bytes paths, as a foreign tool would)."""
    with open(os.path.join(os.fsencode(folder), name), "wb") as f:
        f.write(text.encode("utf-8"))


def small_project(root: Path) -> Path:
    write(root / "clock.py", 'def elapsed(start, now):\n    """Seconds since start."""\n    return max(0, now - start)\n')
    write(root / "NOTES.md", "# Notes\n\nCopy the index folder before an upgrade.\n")
    write(root / "pkg" / "units.py", "SECONDS_PER_HOUR = 3600\n")
    return root


def test_undecodable_names_are_skipped_and_counted(tmp_path):
    root = small_project(tmp_path / "repo")
    write_bad_name(root, b"bad\xff.py")
    os.mkdir(os.path.join(os.fsencode(root), b"dir\xfe"))
    write_bad_name(root / os.fsdecode(b"dir\xfe"), b"inside.py")
    tree = SourceTree(root)
    assert sorted(s.path for s in tree) == ["NOTES.md", "clock.py", "pkg/units.py"]
    assert tree.skipped == {"undecodable-name": 2}  # the folder counts once
    assert any("bad\\udcff.py" in w for w in tree.warnings)


def git_ignored(root: Path, names: list[str]) -> set[str]:
    """What real git ignores among ``names`` under ``root``'s ignore files."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    done = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=root, input="\n".join(names) + "\n",
                          capture_output=True, text=True, check=False)
    shutil.rmtree(root / ".git")
    return set(done.stdout.split())


def test_gitignore_lines_pathspec_rejects_are_read_as_git_reads_them(tmp_path):
    root = small_project(tmp_path / "repo")
    write(root / ".gitignore", BAD_GITIGNORE)
    names = ["z", "a", "x.log", "secret/s.py", "sub/b", "sub/c"]
    for name in names:
        write(root / name, f"content of {name}\n")
    write(root / "sub" / ".gitignore", "b\nc\\\n")  # line 2: a trailing backslash, never matched
    tree = SourceTree(root)
    kept = {s.path for s in tree}
    assert kept == {".gitignore", "NOTES.md", "a", "clock.py", "pkg/units.py", "sub/.gitignore", "sub/c"}
    assert tree.skipped == {"ignored": 4, "bad-ignore-line": 4}  # z, x.log, secret/, sub/b
    assert [w.split(": ")[0] for w in tree.warnings] == [".gitignore:2", ".gitignore:3", ".gitignore:4", "sub/.gitignore:2"]
    if shutil.which("git"):
        assert git_ignored(root, names) == set(names) - kept


def test_cli_index_skips_bad_names_and_lines(tmp_path, capsys, caplog):
    root = small_project(tmp_path / "repo")
    write_bad_name(root, b"bad\xff.py")
    write(root / ".gitignore", BAD_GITIGNORE)
    assert main(["index", str(root), "--out", str(tmp_path / "index"), "--quiet"]) == 0
    assert "skipped: 3 bad-ignore-line, 1 undecodable-name" in capsys.readouterr().out
    assert ".gitignore:3: '\\\\' cannot be parsed" in caplog.text and "'bad\\udcff.py': the name is not UTF-8" in caplog.text


def test_bad_exclude_pattern_is_an_error(tmp_path, capsys):
    root = small_project(tmp_path / "repo")
    with pytest.raises(PatternError, match=r"--exclude:2: 'a\\\\' cannot be parsed"):
        SourceTree(root, exclude=["*.md", "a\\"])
    assert SourceTree(root, exclude=["[z-a]"]).exclude == ["[z-a]"]  # read as git reads it
    assert main(["index", str(root), "--out", str(tmp_path / "index"), "--exclude", "!", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: --exclude:1: '!' cannot be parsed")


def deny(monkeypatch, folders: set[Path] = frozenset(), files: set[Path] = frozenset()) -> None:
    """Act as a user without rights on ``folders`` (mode 000: no listing, nothing inside reachable) and ``files``."""
    denied_dirs = {os.path.realpath(p) for p in folders}
    denied_files = {os.path.realpath(p) for p in files}
    real_scandir, real_stat, real_open = os.scandir, os.stat, io.open

    def inside(path) -> bool:
        return any(Path(os.path.realpath(path)).is_relative_to(d) and os.path.realpath(path) != d for d in denied_dirs)

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    def scandir(path="."):
        return refuse(path) if os.path.realpath(path) in denied_dirs or inside(path) else real_scandir(path)

    def stat(path, *args, **kwargs):
        return refuse(path) if isinstance(path, (str, os.PathLike)) and inside(path) else real_stat(path, *args, **kwargs)

    def open_(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and (inside(file) or os.path.realpath(file) in denied_files):
            refuse(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(io, "open", open_)


def test_unreadable_folder_is_skipped_and_counted(tmp_path, monkeypatch):
    root = small_project(tmp_path / "repo")
    write(root / "locked" / ".gitignore", "*.tmp\n")
    write(root / "locked" / "inner.py", "x = 1\n")
    deny(monkeypatch, folders={root / "locked"})
    tree = SourceTree(root)
    assert sorted(s.path for s in tree) == ["NOTES.md", "clock.py", "pkg/units.py"]
    assert tree.skipped == {"unreadable-folder": 1}
    assert tree.warnings == ["locked/: cannot be listed (Permission denied); skipped"]


def test_unreadable_files_are_skipped_and_counted(tmp_path, monkeypatch):
    root = small_project(tmp_path / "repo")
    write(root / "pkg" / ".gitignore", "units.py\n")
    deny(monkeypatch, files={root / "clock.py", root / "pkg" / ".gitignore"})
    tree = SourceTree(root)
    assert sorted(s.path for s in tree) == ["NOTES.md", "pkg/units.py"]  # the unread .gitignore cannot ignore it
    assert tree.skipped == {"unreadable": 2}
    assert [w.split(":")[0] for w in tree.warnings] == ["clock.py", "pkg/.gitignore"]


def test_unreadable_root_is_an_error(tmp_path, monkeypatch, capsys):
    root = small_project(tmp_path / "repo")
    deny(monkeypatch, folders={root})
    assert main(["index", str(root), "--out", str(tmp_path / "index"), "--quiet"]) == 2
    assert "error: no text files to index" in capsys.readouterr().err


@pytest.fixture(scope="module")
def saved_index(tmp_path_factory, minilm):
    root = small_project(tmp_path_factory.mktemp("tiny"))
    out = tmp_path_factory.mktemp("tiny_index")  # empty: the index is written into it
    index_codebase(root, out, model=minilm, show_progress=False)
    return root, out


def test_manifest_covers_every_file_of_the_index(saved_index):
    _, out = saved_index
    files = storage.files_below(out)  # the damage tests' files, and the lexical index's beside them
    assert set(INDEX_FILES) <= set(files) and any(f.startswith("retriever/lexical/") for f in files)
    manifest = storage.read_description(out, MANIFEST, "codebase-index", 1)
    assert sorted(manifest["sha256"]) == sorted(set(files) - {MANIFEST})


def damage(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("name", INDEX_FILES)
def test_damaged_index_file_is_a_clear_error(saved_index, tmp_path, minilm, capsys, name, how):
    root, out = saved_index
    copy = tmp_path / "index"
    shutil.copytree(out, copy)
    damage(copy / name, how)
    named = str(copy / name)
    with pytest.raises(IndexFormatError, match=re.escape(named)):
        load_codebase(copy, model=minilm)
    assert main(["search", str(copy), "elapsed seconds"]) == 2
    assert main(["index", str(root), "--out", str(copy), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") and named in line for line in err)


def test_root_path_not_utf8_is_an_error(tmp_path, capsys):
    root = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"repo\xff")))
    small_project(root)
    assert main(["index", str(root), "--out", str(tmp_path / "index"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: '") and "repo\\udcff': the path is not UTF-8" in err
