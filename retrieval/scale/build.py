"""A Retriever folder built from embedding shards in bounded memory, per-shard work on Ray tasks.

The index comes from :mod:`indexes.from_shards` (train on a sample, add shard by shard, IVF
lists merged on disk; token codes written shard by shard); with ``workers > 1`` the per-shard
adds run as Ray tasks (one CPU each), which FAISS's merge then joins, so the build's peak memory
stays that of one shard per task. Beside the index, the shards' documents are copied line by line
into ``documents.jsonl`` and ``retriever.json`` records the model the shards were encoded with:
the folder is exactly what :meth:`retrieval.Retriever.save` writes (``ColbertRetriever`` for
token vectors, its model copied in), so ``Retriever.load``, ``python -m retrieval search``-style
callers and services open it as any other.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from indexes import from_shards, storage
from indexes.shards import ShardSet
from retrieval.colbert import ColbertRetriever
from retrieval.retriever import CONFIG_FILE, DOCUMENTS_FILE, FORMAT, INDEX_DIR, MODEL_DIR, VERSION, Retriever
from retrieval.scale.encode import MODEL_DIR as SHARD_MODEL_DIR
from retrieval.parallel import ray_session


def ray_map(ray):
    """A ``map_fn`` for :mod:`indexes.from_shards`: each call a Ray task of one CPU, results in order."""

    def run(func, args: list[tuple]) -> list:
        remote = ray.remote(num_cpus=1)(func)
        return ray.get([remote.remote(*a) for a in args])

    return run


def _copy_documents(shards: ShardSet, path: Path) -> int:
    """Concatenate the shards' ``documents.jsonl`` into ``path`` (stream: one line at a time)."""
    lines = 0
    with open(path, "w", encoding="utf-8") as out:
        for number in range(len(shards)):
            source = shards.documents_file(number)
            if source is None:
                raise ValueError(f"{shards.path}: shard {number} holds no documents.jsonl (vectors only): "
                                 "a Retriever folder needs the texts; build an index-only folder with indexes.from_shards")
            with open(source, encoding="utf-8") as f:
                for line in f:
                    out.write(line)
                    lines += 1
    return lines


def build_index(shards_path: str | Path, out: str | Path, *, factory: str = "auto", metric: str = "cosine",
                train_size: int | None = None, nbits: int = 4, nlist: int | None = None, workers: int = 1,
                address: str | None = None, quiet: bool = False) -> tuple[Path, dict]:
    """Build the Retriever folder ``out`` from the complete shard set at ``shards_path``; returns it and a summary.

    ``factory``/``metric``/``train_size`` apply to single-vector shards, ``nbits``/``nlist`` to token
    vectors; ``workers > 1`` (or ``address``) runs the per-shard work as Ray tasks.
    """
    started = time.perf_counter()
    shards = ShardSet(shards_path)
    shards.check_complete()
    out = Path(out)
    use_ray = workers > 1 or address is not None
    with storage.directory(out) as tmp:
        if use_ray:
            with ray_session(workers, address, quiet=quiet) as ray:
                _build_index(shards, tmp, out, ray_map(ray), factory, metric, train_size, nbits, nlist)
        else:
            _build_index(shards, tmp, out, from_shards.serial_map, factory, metric, train_size, nbits, nlist)
        documents = _copy_documents(shards, tmp / DOCUMENTS_FILE)
        kind = ColbertRetriever.kind if shards.kind == "multi" else Retriever.kind
        config = {"format": FORMAT, "version": VERSION, "kind": kind, "model": shards.meta["model"], "dtype": shards.meta["dtype"],
                  "max_length": shards.meta["max_length"], "num_documents": documents}
        storage.write_description(tmp, CONFIG_FILE, config, storage.files_below(tmp))
    summary = {"documents": documents, "shards": len(shards), "seconds": time.perf_counter() - started,
               "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}
    return out, summary


def _build_index(shards: ShardSet, tmp: Path, out: Path, map_fn, factory, metric, train_size, nbits, nlist) -> None:
    if shards.kind == "single":
        from_shards.build_single(shards, tmp / INDEX_DIR, factory, metric=metric, train_size=train_size, map_fn=map_fn,
                                 final_path=out.absolute() / INDEX_DIR)
        return
    from_shards.build_multi(shards, tmp / INDEX_DIR, nbits=nbits, nlist=nlist, map_fn=map_fn)
    model = shards.path / SHARD_MODEL_DIR
    if model.is_dir():  # the ColBERT model the shards were encoded with (a plain encoder's projection exists only there)
        shutil.copytree(model, tmp / MODEL_DIR)
