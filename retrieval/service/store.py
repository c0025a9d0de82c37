"""The served index: concurrent searches, durable writes, checkpoints, and reloads of replaced folders.

Searches call the loaded :class:`retrieval.Retriever` directly from uvicorn's worker threads: it is
thread-safe (tokenization under a lock, the index under a readers-writer lock), so searches
overlap and never wait for the service. With batching on (``serve --batch-queries``; off by default,
see :mod:`retrieval.service.batching`), their queries' embeddings come from a
:class:`~retrieval.service.batching.QueryBatcher` that encodes concurrent searches' queries in shared
forward passes (a lexical search needs none and skips it). Writes go one at a time through :meth:`ServedIndex.write`:
logged (:mod:`retrieval.service.wal`, fsync), applied, then acknowledged; an apply that fails is
marked aborted in the log. Search options are passed through only when the caller gave them,
so the service runs any ``Retriever.search`` signature (a retriever that lacks an option answers
with a clear 400).

A read-only folder (an index folder holding a retriever, e.g. a codebase index) takes no
writes; when its owner replaces it, the next request reloads it, reusing the loaded model
when the saved model reference is unchanged (a reload then costs the index load, not 6-9 s).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict

from retrieval.colbert import ColbertRetriever  # noqa: F401  registers the "colbert" kind for Retriever.load
from retrieval.retriever import Retriever
from retrieval.service.batching import MAX_BATCH, QueryBatcher
from retrieval.service.folder import ServedFolder
from retrieval.service.wal import WriteAheadLog, read_log

log = logging.getLogger(__name__)
CHECKPOINT_EVERY = 1000  # writes between checkpoints: bounds replay time and log size


class ReadOnlyError(PermissionError):
    """A write to a folder the server may not change."""


def hit_dict(hit) -> dict:
    """A hit as JSON: every field of :class:`retrieval.documents.Hit` as it stands."""
    return asdict(hit)


class ServedIndex:
    """A saved retriever, loaded once and kept current.

    Parameters
    ----------
    folder
        What is served (:func:`retrieval.service.folder.find_folder`).
    model
        A loaded model to use instead of the saved reference (an app embedding the service).
    device, trust_remote_code
        Passed to :meth:`retrieval.Retriever.load`.
    checkpoint_every
        Writes between two checkpoints.
    batching, batch_wait_ms, max_batch, batch_workers
        Encode concurrent searches' queries together (:mod:`retrieval.service.batching`): on or off,
        how long a pass waits for more queries, most queries per pass, passes at once.
    """

    def __init__(self, folder: ServedFolder, *, model=None, device: str | None = None, trust_remote_code: bool = False,
                 checkpoint_every: int = CHECKPOINT_EVERY, batching: bool = False, batch_wait_ms: float = 0.0,
                 max_batch: int = MAX_BATCH, batch_workers: int = 1):
        self.batcher = QueryBatcher(max_batch, batch_wait_ms, batch_workers) if batching else None
        self.folder = folder
        self.device, self.trust_remote_code = device, trust_remote_code
        self.checkpoint_every = checkpoint_every
        self.started = time.time()
        self.counts = {"searches": 0, "queries": 0, "writes": 0, "checkpoints": 0, "reloads": 0, "replayed": 0}
        self._write_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.retriever = self._load(model)
        self.wal = None
        if folder.writable:
            self._recover()

    def _load(self, model=None) -> Retriever:
        self._identity = self.folder.identity()
        return Retriever.load(self.folder.retriever_path, model=model, device=self.device, trust_remote_code=self.trust_remote_code)

    def _recover(self) -> None:
        """Replay the log left by the previous server, then checkpoint so the next start replays nothing."""
        path = self.folder.sidecar("wal")
        writes, dropped = read_log(path, self.folder.snapshot_id())
        if dropped:
            log.warning("%s", dropped)
        for record in writes:
            try:
                self._apply(record)
                self.counts["replayed"] += 1
            except (ValueError, KeyError, TypeError, NotImplementedError) as exc:  # it failed the same way when it was first applied
                log.warning("%s: write %s skipped at replay: %s", path, record.get("seq"), exc)
        if writes:  # saved before the new log replaces the old: a crash in between finds the old log outdated
            self.retriever.save(self.folder.retriever_path)
            self.counts["checkpoints"] += 1
        self._identity = self.folder.identity()
        self.wal = WriteAheadLog(path, self.folder.snapshot_id())

    # -- reads ---------------------------------------------------------------------------------

    def current(self) -> Retriever:
        """The retriever to search: reloaded first when a read-only folder was replaced."""
        if not self.folder.writable and self.folder.identity() != self._identity:
            with self._reload_lock:
                if self.folder.identity() != self._identity:
                    same = self.folder.model_name() == self.retriever.model_name
                    self.retriever = self._load(model=self.retriever.model if same else None)
                    self.counts["reloads"] += 1
        return self.retriever

    def search(self, queries: list[str], k: int, options: dict) -> list[list[dict]]:
        """Hits of each query, as dicts; ``options`` go to ``Retriever.search`` only as given."""
        retriever, queries, given = self.current(), list(queries), options
        if self.batcher is not None and options.get("mode", "dense") != "lexical" and all(isinstance(q, str) and q.strip() for q in queries):
            options = {**options, "query_embeddings": self.batcher.embed(retriever, queries)}  # bad queries: search says why
        try:
            results = retriever.search(queries, k, **options)
        except TypeError as exc:
            if given and "argument" in str(exc):
                raise ValueError(f"this retriever does not take {', '.join(sorted(given))}: {exc}") from None
            raise
        self.counts["searches"] += 1
        self.counts["queries"] += len(queries)
        return [[hit_dict(h) for h in hits] for hits in results]

    def listing(self) -> list[dict]:
        """Every document's id, title and metadata (not its text): what filters can match on."""
        documents = list(self.current().documents.values())
        return [{"id": d.id, "title": d.title, "metadata": d.metadata} for d in documents]

    def stats(self) -> dict:
        retriever = self.retriever
        return {
            "path": str(self.folder.path), "retriever_path": str(self.folder.retriever_path),
            "writable": self.folder.writable, "kind": retriever.kind, "model": retriever.model_name,
            "index": type(retriever.index).__name__, "documents": len(retriever),
            "lexical": getattr(retriever, "lexical", None) not in (None, False),
            "logged_writes": self.wal.records if self.wal else 0, "uptime_s": round(time.time() - self.started, 1),
            "batching": self.batcher is not None, **(self.batcher.stats() if self.batcher else {}), **self.counts,
        }

    # -- writes --------------------------------------------------------------------------------

    def write(self, op: str, payload: dict):
        """Log, apply, and (every ``checkpoint_every`` writes) checkpoint one write; what the retriever returned."""
        if not self.folder.writable:
            raise ReadOnlyError(
                f"{self.folder.path} is served read-only: its retriever belongs to the index folder around it "
                "(update it with its own command, e.g. python -m retrieval index)"
            )
        record = {"op": op, **payload}
        with self._write_lock:
            seq = self.wal.append(record)
            try:
                result = self._apply(record)
            except BaseException:
                self.wal.abort(seq)
                raise
            self.counts["writes"] += 1
            if self.wal.records >= self.checkpoint_every:
                self._checkpoint_locked()
            return result

    def _apply(self, record: dict):
        op = record["op"]
        if op == "add":
            return self.retriever.add(record["documents"])
        if op == "upsert":
            if not hasattr(self.retriever, "upsert"):
                raise TypeError(f"{type(self.retriever).__name__} has no upsert in this version")
            result = self.retriever.upsert(record["documents"])
            return result if result is not None else [d["id"] for d in record["documents"]]
        if op == "delete":
            self.retriever.delete(record["ids"])
            return record["ids"]
        raise ValueError(f"unknown write {op!r}")

    def checkpoint(self) -> None:
        """Save the retriever (atomically) and start a new log for the saved snapshot."""
        if self.folder.writable:
            with self._write_lock:
                self._checkpoint_locked()

    def _checkpoint_locked(self) -> None:
        self.retriever.save(self.folder.retriever_path)
        self._identity = self.folder.identity()
        self.wal.reset(self.folder.snapshot_id())
        self.counts["checkpoints"] += 1

    def close(self) -> None:
        """Stop the query batcher, checkpoint pending writes and close the log."""
        if self.batcher is not None:
            self.batcher.close()
        if self.wal is not None:
            with self._write_lock:
                if self.wal.records:
                    self._checkpoint_locked()
                self.wal.close()
