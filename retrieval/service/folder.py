"""The folder a server serves, and the files it keeps beside it.

A served folder is either a saved :class:`retrieval.Retriever` (``retriever.json`` inside:
writable) or an index folder that holds one saved retriever one level down, such as a codebase
index (``python -m retrieval index``: the retriever in ``retriever/``). The latter is served
read-only: its own description checksums the retriever's files, so only its owner
(``python -m retrieval index``) may change it, and it is replaced as a whole when it does; the
server notices (the folder's inode changes, one ``stat`` per request, ~2 us) and reloads.

Files that must outlive a save live *beside* the folder, not in it: :func:`indexes.storage.directory`
swaps the whole folder on every save and re-index, which would drop anything kept inside.
``.<name>.wal`` (the write-ahead log), ``.<name>.server.json`` (the running server's record),
``.<name>.serve.lock`` (one server per folder) and ``.<name>.server.log`` (a started server's
output) do not match the storage layer's leftover pattern (``.<name>.<8 chars>.tmp|old``), so no
save removes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

RETRIEVER_CONFIG = "retriever.json"  # what Retriever.save writes (retrieval.retriever.CONFIG_FILE)


class FolderError(ValueError):
    """The path given is not something a server can serve; the message says what it is instead."""


@dataclass(frozen=True)
class ServedFolder:
    """Where the served retriever lies, and whether the server may write to it."""

    path: Path
    retriever_path: Path
    writable: bool

    def sidecar(self, suffix: str) -> Path:
        """``.<name>.<suffix>`` beside the folder."""
        return self.path.parent / f".{self.path.name}.{suffix}"

    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the folder: a save or re-index swaps in a new folder, so this changes."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def snapshot_id(self) -> str:
        """The checksum of the saved retriever's description: which snapshot a write-ahead log applies to."""
        try:
            return str(json.loads((self.retriever_path / RETRIEVER_CONFIG).read_text(encoding="utf-8")).get("checksum", ""))
        except (OSError, ValueError):
            return ""

    def model_name(self) -> str | None:
        """The model reference saved with the retriever (to reuse a loaded model when the folder is replaced)."""
        try:
            return json.loads((self.retriever_path / RETRIEVER_CONFIG).read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError):
            return None


def find_folder(path: str | Path) -> ServedFolder:
    """The :class:`ServedFolder` at ``path``; :class:`FolderError` when it holds no saved retriever."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise FolderError(f"{path} is not a folder: give a folder saved by Retriever.save or written by 'python -m retrieval index'")
    if (path / RETRIEVER_CONFIG).is_file():
        return ServedFolder(path, path, writable=True)
    inner = sorted(p for p in path.iterdir() if p.is_dir() and (p / RETRIEVER_CONFIG).is_file())
    if len(inner) == 1:
        return ServedFolder(path, inner[0], writable=False)
    if inner:
        raise FolderError(f"{path} holds {len(inner)} saved retrievers ({', '.join(p.name for p in inner)}): serve one of them")
    raise FolderError(f"{path} holds no saved retriever ({RETRIEVER_CONFIG} missing, in it and in its subfolders)")
