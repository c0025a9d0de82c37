"""A corpus read as a stream of items, and its deterministic split into shards.

Three kinds of corpus, each read one item at a time so that no process ever holds all of it:

- a BEIR ``corpus.jsonl`` (or the folder holding one): items are documents, every line checked
  as :mod:`retrieval.beir_data` checks it (a bad line is a :class:`retrieval.beir_data.DataError`
  naming file and line, a repeated id names both lines' ids);
- a folder of files: items are files, walked by :class:`retrieval.codebase.files.SourceTree`
  (``.gitignore`` honoured, binary, huge and non-UTF-8 files skipped and counted); they are cut
  into chunks by the encoding workers, which hold the tokenizer;
- a ``datasets`` dataset (a folder written by ``save_to_disk``, or what ``load_dataset`` reads):
  rows with ``_id``/``id``, ``text`` and an optional ``title``, read a shard's rows at a time
  from the memory-mapped Arrow table.

The split is fixed by the corpus alone: shard ``i`` holds items ``i * size`` to
``(i + 1) * size``. The source's :meth:`Source.digest` (the file's SHA-256, the files' paths and
hashes, the dataset's fingerprint) is stored with the plan, so a rerun over a changed corpus
is refused instead of mixing shards of two versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from indexes import storage
from retrieval.beir_data import DataError, _record_id, _records, _string, load_split
from retrieval.codebase.files import SourceTree, describe_skipped

DOCUMENTS_PER_SHARD = 10_000  # 15 MB of 384-d float32: one shard in flight per worker stays small
FILES_PER_SHARD = 1_000  # site-packages: about 6 chunks a file


class Source:
    """A corpus: its size in items, a digest of its content, and its items shard by shard."""

    kind = "documents"  # or "files": items are (path, text), chunked by the workers

    def count(self) -> int:
        raise NotImplementedError

    def digest(self) -> str:
        raise NotImplementedError

    def items(self) -> Iterator:
        """Every item in order."""
        raise NotImplementedError

    def shards(self, plan: list[tuple[int, int]], wanted: set[int]) -> Iterator[tuple[int, list]]:
        """``(shard number, items)`` for each shard in ``wanted``, in order, reading the corpus once."""
        if not wanted:
            return
        items = self.items()
        for number, (start, count) in enumerate(plan):
            batch = [next(items) for _ in range(count)]
            if number in wanted:
                yield number, batch
            if number >= max(wanted):
                return

    def describe(self) -> str:
        return str(self.path)


def split(count: int, size: int) -> list[tuple[int, int]]:
    """``(first item, items)`` of each shard: ``size`` items each, the last one shorter."""
    if size < 1:
        raise ValueError(f"--shard-size must be a positive number, not {size}")
    return [(start, min(size, count - start)) for start in range(0, count, size)]


class BeirCorpus(Source):
    """The documents of a BEIR ``corpus.jsonl`` (``.gz`` too), checked line by line."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.path = path / "corpus.jsonl" if path.is_dir() else path
        self._count = None

    def items(self) -> Iterator[dict]:
        seen = set()
        for line_no, record in _records(self.path, ("_id", "text")):
            where = f"{self.path}:{line_no}"
            doc_id = _record_id(where, record)
            if doc_id in seen:
                raise DataError(f"{where}: document id {doc_id!r} already given on an earlier line")
            seen.add(doc_id)
            rest = {k: v for k, v in record.items() if k not in ("_id", "text", "title")}
            yield {"id": doc_id, "title": _string(where, record, "title", optional=True) or "", "text": _string(where, record, "text"), **rest}

    def count(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self.items())  # checks every line before any shard is planned
        return self._count

    def digest(self) -> str:
        return storage.file_digest(self.path)


class FileTree(Source):
    """The text files of a folder, walked as ``python -m retrieval index`` walks it."""

    kind = "files"

    def __init__(self, path: str | Path, exclude: list[str] | None = None, skip: list[Path] | None = None):
        self.path = Path(path)
        self.tree = SourceTree(self.path, exclude=exclude or [], skip=skip or [])
        self._listing = None

    def _list(self) -> list[tuple[str, str]]:
        if self._listing is None:
            self._listing = [(f.path, f.sha256) for f in self.tree]
            if not self._listing:
                raise ValueError(f"no text files under {self.path} (skipped: {describe_skipped(self.tree.skipped)})")
        return self._listing

    def count(self) -> int:
        return len(self._list())

    def digest(self) -> str:
        h = hashlib.sha256()
        for path, sha in self._list():
            h.update(f"{path}\0{sha}\n".encode())
        return h.hexdigest()

    def items(self) -> Iterator[tuple[str, str]]:
        expected = iter(self._list())
        for source in self.tree:
            if next(expected, None) != (source.path, source.sha256):
                raise ValueError(f"{self.path}: {source.path} changed while being encoded; run the command again")
            yield source.path, source.text

    def skipped(self) -> str:
        return describe_skipped(self.tree.skipped)


class HubDataset(Source):
    """The rows of a ``datasets`` dataset: a ``save_to_disk`` folder, or a name / files ``load_dataset`` reads."""

    def __init__(self, path: str, split_name: str = "train"):
        import datasets

        self.path = path
        if Path(path).is_dir() and (Path(path) / "state.json").is_file():
            try:
                self.rows = datasets.load_from_disk(path)
            except Exception as exc:
                raise DataError(f"{path}: cannot read it as a saved dataset: {type(exc).__name__}: {exc}") from None
            self.label = path
            if isinstance(self.rows, datasets.DatasetDict):
                if split_name not in self.rows:
                    raise DataError(f"split {split_name!r} not found in {path} (available splits: {', '.join(self.rows)})")
                self.rows = self.rows[split_name]
        else:
            loaded = load_split(path, None, split_name)
            self.rows, self.label = loaded.rows, loaded.label
        names = self.rows.column_names
        self.id_column = "_id" if "_id" in names else "id" if "id" in names else None
        if self.id_column is None or "text" not in names:
            raise DataError(f"{self.label}: expected columns _id (or id) and text, found {', '.join(names)}")

    def count(self) -> int:
        return self.rows.num_rows

    def digest(self) -> str:
        return str(getattr(self.rows, "_fingerprint", "")) or str(self.rows.num_rows)

    def items(self) -> Iterator[dict]:
        block = 1024
        for start in range(0, self.count(), block):
            part = self.rows[start : start + block]
            for i, doc_id in enumerate(part[self.id_column]):
                where = f"{self.label} row {start + i + 1}"
                record = {"_id": doc_id, "text": part["text"][i], "title": part["title"][i] if "title" in part else None}
                yield {"id": _record_id(where, record), "title": _string(where, record, "title", optional=True) or "",
                       "text": _string(where, record, "text")}


def open_source(corpus: str, *, split_name: str = "train", exclude: list[str] | None = None, skip: list[Path] | None = None) -> Source:
    """The source a ``CORPUS`` argument names: a JSON lines file or a BEIR folder, a saved dataset, a folder of files, a dataset name."""
    path = Path(corpus)
    if path.is_file() and path.name.endswith((".jsonl", ".jsonl.gz")):
        return BeirCorpus(path)
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        return BeirCorpus(path)
    if path.is_dir() and (path / "state.json").is_file():
        return HubDataset(corpus, split_name)
    if path.is_dir():
        return FileTree(path, exclude, skip)
    if path.exists():
        raise DataError(f"{path}: expected a corpus.jsonl, a BEIR folder, a folder of files or a saved dataset")
    return HubDataset(corpus, split_name)
