"""Storage for everything the toolkit saves: atomic writes and checksummed, versioned descriptions.

A reader sees the old file or folder or the new one, never half of one; a saved folder holds a
JSON description (``format``, ``version``, settings, the SHA-256 of its data files) that
:func:`read_description` checks before anything is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from indexes.base import IndexFormatError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def directory(path: str | Path):
    """Build a folder in a temporary sibling and swap it into ``path`` only on success.

    >>> with directory("my_index") as tmp:   # doctest: +SKIP
    ...     (tmp / "index.faiss").write_bytes(...)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual folder mode
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.rmdir(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_description(folder: str | Path, name: str, description: dict, files: Iterable[str] = ()) -> Path:
    """Write ``folder/name``: ``description`` plus the SHA-256 of each of ``files`` (paths relative to ``folder``).

    ``description`` must hold ``format`` and ``version``; :func:`read_description` checks both
    and every listed file.
    """
    folder = Path(folder)
    meta = dict(description)
    meta["sha256"] = {f: file_digest(folder / f) for f in files}
    return write_json(folder / name, meta)


def read_description(folder: str | Path, name: str, fmt: str, version: int, *, verify: bool = True, what: str = "") -> dict:
    """Read and check a description written by :func:`write_description`.

    Raises :class:`IndexFormatError` naming the file when it is missing, not JSON, of another
    format, of a newer version than ``version``, or when a listed file is missing or its
    checksum differs (``verify``). ``what`` names the saved thing in the messages.
    """
    folder = Path(folder)
    path = folder / name
    what = what or fmt
    if not path.is_file():
        raise IndexFormatError(f"{path} is missing: {folder} is not a saved {what}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexFormatError(f"{path} is corrupted: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise IndexFormatError(f"{path} is not a {what} description")
    if not isinstance(meta.get("version"), int) or meta["version"] > version:
        raise IndexFormatError(f"{path} has format version {meta.get('version')!r}; this toolkit reads <= {version}")
    digests = meta.get("sha256", {})
    if not isinstance(digests, dict):
        raise IndexFormatError(f"{path}: 'sha256' is not a mapping of file names to checksums")
    for file_name, digest in digests.items():
        file = folder / file_name
        if not file.is_file():
            raise IndexFormatError(f"{file} is missing")
        if verify and file_digest(file) != digest:
            raise IndexFormatError(f"{file} is truncated or corrupted (checksum differs from the one saved)")
    return meta
