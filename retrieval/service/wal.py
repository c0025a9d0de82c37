"""The write-ahead log: an acknowledged write is on disk before the client hears of it.

Saving the whole retriever after every write would cost a full save (FAISS file, documents,
checksums: ~0.3 s for 5k SciFact documents) per write; appending one JSON line and one
``fsync`` costs about a millisecond. So every write is logged, then applied, then acknowledged;
a checkpoint (``Retriever.save``, atomic) every ``checkpoint_every`` writes and at shutdown
folds the log into the saved folder and starts a new log.

Format: JSON lines in ``.<name>.wal`` beside the folder. The first line is the header,
``{"wal": 1, "snapshot": <checksum of the saved retriever's description>}``: the log applies
to that snapshot only. A crash after a checkpoint's save but before the new log replaces the
old one leaves a log whose snapshot is no longer the folder's, so it is known to be folded in
already and is dropped, never applied twice. Then one line per write,
``{"seq": n, "op": "add"|"upsert"|"delete", ...}``, and ``{"seq": n, "abort": true}`` for a
logged write that then failed (it is skipped at replay). A last line cut short by a crash was
never acknowledged and is ignored; a bad line anywhere else is an error naming the file and line.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

WAL_VERSION = 1


class WalError(ValueError):
    """A damaged log: the message names the file and line."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_log(path: Path, snapshot: str) -> tuple[list[dict], str]:
    """The writes to replay on ``snapshot`` (aborted ones left out), and why any were dropped ("" when none)."""
    if not path.exists():
        return [], ""
    lines = path.read_bytes().split(b"\n")
    torn = lines[-1] != b""  # a last line without its newline was cut by a crash: never acknowledged
    records = []
    for no, raw in enumerate(lines[:-1] if lines[-1] == b"" else lines, 1):
        try:
            records.append(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if torn and no == len(lines):
                break
            raise WalError(f"{path}:{no}: not a log record ({exc}); move the file away to start without it") from exc
    if not records:
        return [], ""
    header = records[0]
    if not isinstance(header, dict) or header.get("wal") != WAL_VERSION:
        raise WalError(f"{path}:1: not a version-{WAL_VERSION} write-ahead log header")
    writes = [r for r in records[1:] if isinstance(r, dict)]
    if header.get("snapshot") != snapshot:
        return [], f"{path}: {len(writes)} logged writes were already saved by a checkpoint (the folder is newer)"
    aborted = {r["seq"] for r in writes if r.get("abort")}
    return [r for r in writes if not r.get("abort") and r.get("seq") not in aborted], ""


class WriteAheadLog:
    """Append-only log of writes, ``fsync``-ed before each returns. One writer (the store's write lock)."""

    def __init__(self, path: Path, snapshot: str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file = None
        self.seq = 0
        self.records = 0
        self.reset(snapshot)

    def reset(self, snapshot: str) -> None:
        """Start a new, empty log for ``snapshot``: written beside, fsynced, renamed over the old one."""
        with self._lock:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"wal": WAL_VERSION, "snapshot": snapshot}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            if self._file is not None:
                self._file.close()
            self._file = open(self.path, "a", encoding="utf-8")
            self.records = 0

    def append(self, record: dict) -> int:
        """Log one write; returns its sequence number once it is on disk."""
        with self._lock:
            self.seq += 1
            self._write({"seq": self.seq, **record})
            self.records += 1
            return self.seq

    def abort(self, seq: int) -> None:
        """Mark a logged write as failed: replay skips it."""
        with self._lock:
            self._write({"seq": seq, "abort": True})

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
