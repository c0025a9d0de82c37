"""Embedding shards: a corpus's vectors as numbered folders on disk, each complete or absent.

A shard set is a folder holding ``shards.json`` (the plan: every shard expected, its first
item and number of items, the kind, dimension, model) and one folder per finished shard::

    SHARDS/shards.json
    SHARDS/shard-00000/embeddings.npy   float32 (documents, dim), or (tokens, dim) for token vectors
    SHARDS/shard-00000/doclens.npy      int64 tokens per document (token vectors only)
    SHARDS/shard-00000/ids.json         the documents' ids, in row order
    SHARDS/shard-00000/documents.jsonl  optional: the documents (id, title, text, metadata) for a Retriever folder
    SHARDS/shard-00000/shard.json       checksummed description (indexes.storage)

Each shard folder is built beside its name and swapped in whole (:func:`indexes.storage.directory`),
so a process killed mid-write leaves no shard, never half of one: a rerun finds the missing ones
with :meth:`ShardSet.missing` and writes only those. A shard is small (by default 10,000
documents: 15 MB at 384-d), so readers and index builders hold one at a time whatever the corpus
size: the sentence-transformers encode memory growth to OOM around 1M documents
(sentence-transformers#3138) comes from holding every embedding in one array.

Examples
--------
>>> import numpy as np, tempfile
>>> folder = tempfile.mkdtemp()
>>> shards = ShardSet.create(folder, kind="single", dim=4, plan=[(0, 2)])
>>> _ = shards.write(0, ["a", "b"], np.eye(2, 4, dtype="float32"))
>>> shards.missing(), shards.read(0).ids
([], ['a', 'b'])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes import storage
from indexes.base import IndexFormatError

FORMAT = "embedding-shards"
SHARD_FORMAT = "embedding-shard"
VERSION = 1
PLAN_FILE = "shards.json"
SHARD_FILE = "shard.json"
KINDS = ("single", "multi")


@dataclass
class Shard:
    """One shard read back: ids, vectors (memory-mapped), token counts for token vectors."""

    number: int
    ids: list[str]
    embeddings: np.ndarray
    doclens: np.ndarray | None
    path: Path

    def documents(self) -> list[np.ndarray]:
        """Token vectors per document (``kind="multi"``), views into :attr:`embeddings`."""
        bounds = np.concatenate([[0], np.cumsum(self.doclens)])
        return [self.embeddings[bounds[i] : bounds[i + 1]] for i in range(len(self.ids))]


def shard_name(number: int) -> str:
    return f"shard-{number:05d}"


class ShardSet:
    """A folder of embedding shards and the plan of the shards it should hold."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = storage.read_description(self.path, PLAN_FILE, FORMAT, VERSION, what="shard set")
        self.kind, self.dim = self.meta["kind"], int(self.meta["dim"])
        self.plan = [tuple(p) for p in self.meta["plan"]]

    @classmethod
    def create(cls, path: str | Path, *, kind: str, dim: int, plan: list[tuple[int, int]], **settings) -> "ShardSet":
        """Write the plan (``(first document, documents)`` per shard) and return the set.

        An existing plan is kept when it is the same (a resumed run); a different one is a
        ``ValueError``: its shards would not line up with the new split.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        path = Path(path)
        meta = {"format": FORMAT, "version": VERSION, "kind": kind, "dim": int(dim), "plan": [list(map(int, p)) for p in plan],
                "num_documents": int(sum(n for _, n in plan)), **settings}
        if (path / PLAN_FILE).exists():
            old = cls(path)
            mine = {k: v for k, v in meta.items() if k not in ("format", "version")}
            theirs = {k: old.meta.get(k) for k in mine}
            if mine != theirs:
                changed = ", ".join(k for k in mine if mine[k] != theirs[k])
                raise ValueError(f"{path} holds shards of another corpus split or settings ({changed} differ): choose another --out or delete it")
            return old
        path.mkdir(parents=True, exist_ok=True)
        storage.write_description(path, PLAN_FILE, meta)
        return cls(path)

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def num_documents(self) -> int:
        return int(self.meta["num_documents"])

    def done(self, number: int) -> bool:
        return (self.path / shard_name(number) / SHARD_FILE).is_file()

    def missing(self) -> list[int]:
        """Numbers of the planned shards not written yet."""
        return [i for i in range(len(self.plan)) if not self.done(i)]

    def write(self, number: int, ids: list[str], embeddings: np.ndarray, doclens: np.ndarray | None = None,
              documents: list[dict] | None = None) -> Path:
        """Write shard ``number`` atomically: the documents of the plan's items (a file's items may be several chunks)."""
        start, count = self.plan[number]
        embeddings = np.ascontiguousarray(embeddings)
        rows = int(np.sum(doclens)) if doclens is not None else len(ids)
        if embeddings.shape != (rows, self.dim) or (doclens is not None and len(doclens) != len(ids)):
            raise ValueError(f"shard {number}: {len(ids)} ids, {'no' if doclens is None else len(doclens)} token counts and "
                             f"vectors of shape {embeddings.shape}; expected dim {self.dim}")
        if (doclens is None) != (self.kind == "single"):
            raise ValueError(f"shard {number}: token counts are {'required' if self.kind == 'multi' else 'only for token vectors'}")
        with storage.directory(self.path / shard_name(number)) as tmp:
            np.save(tmp / "embeddings.npy", embeddings, allow_pickle=False)
            files = ["embeddings.npy"]
            if doclens is not None:
                np.save(tmp / "doclens.npy", np.asarray(doclens, dtype=np.int64), allow_pickle=False)
                files.append("doclens.npy")
            if documents is not None:
                storage.write_text(tmp / "documents.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents))
                files.append("documents.jsonl")
            meta = {"format": SHARD_FORMAT, "version": VERSION, "number": number, "start": start, "count": count, "ids": list(ids)}
            storage.write_description(tmp, SHARD_FILE, meta, files)
        return self.path / shard_name(number)

    def read(self, number: int, *, verify: bool = True) -> Shard:
        """Shard ``number``, its vectors memory-mapped; a damaged or missing one is an :class:`IndexFormatError`."""
        folder = self.path / shard_name(number)
        meta = storage.read_description(folder, SHARD_FILE, SHARD_FORMAT, VERSION, verify=verify, what="embedding shard")
        try:
            emb = np.load(folder / "embeddings.npy", mmap_mode="r", allow_pickle=False)
            doclens = np.load(folder / "doclens.npy", allow_pickle=False) if self.kind == "multi" else None
        except (ValueError, OSError) as exc:
            raise IndexFormatError(f"{folder} is truncated or corrupted: {exc}") from exc
        rows = len(meta["ids"]) if doclens is None else int(doclens.sum())
        if (meta["start"], meta["count"]) != tuple(self.plan[number]) or len(emb) != rows:
            raise IndexFormatError(f"{folder} does not match the plan in {self.path / PLAN_FILE}")
        return Shard(number, meta["ids"], emb, doclens, folder)

    def documents_file(self, number: int) -> Path | None:
        """The shard's ``documents.jsonl``, if it was written with documents."""
        path = self.path / shard_name(number) / "documents.jsonl"
        return path if path.is_file() else None

    def check_complete(self) -> None:
        missing = self.missing()
        if missing:
            raise ValueError(f"{self.path}: {len(missing)} of {len(self)} shards are missing (first: {shard_name(missing[0])}); "
                             "run the encode command again to write them")
