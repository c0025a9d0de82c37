"""Storage for everything the toolkit saves: atomic writes and checksummed, versioned descriptions.

A reader sees the old file or folder or the new one, never half of one; a saved folder holds a
JSON description (``format``, ``version``, settings, the SHA-256 of its data files) that
:func:`read_description` checks before anything is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock, Timeout

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


#: Seconds a save waits for another writer of the same folder before giving up with a message.
LOCK_TIMEOUT = float(os.environ.get("RETRIEVAL_LOCK_TIMEOUT", 600))
_building: set[Path] = set()  # folders being built by directory(); what is saved inside them needs no swap
_fault_hook = None  # tests: called with the name of each step of a swap, to inject crashes between them


def _step(name: str) -> None:
    if _fault_hook is not None:
        _fault_hook(name)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    fn = getattr(_libc(), "renameat2", None) if os.name == "posix" else None
    if fn is None:
        return False
    if fn(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _leftovers(path: Path) -> list[Path]:
    """Temporary folders of killed saves of ``path`` (``.<name>.<8 random chars>.tmp`` / ``.old``)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.(tmp|old)$")
    return [p for p in path.parent.iterdir() if pattern.match(p.name)]


@contextlib.contextmanager
def writer_lock(path: Path, timeout: float | None = None):
    """Hold ``.<name>.lock`` beside ``path``: one writer at a time, across threads and processes."""
    lock = FileLock(path.parent / f".{path.name}.lock", timeout=LOCK_TIMEOUT if timeout is None else timeout)
    try:
        lock.acquire()
    except Timeout:
        raise TimeoutError(
            f"another writer has been saving {path} for over {lock.timeout:.0f} s (lock {lock.lock_file}); "
            "wait for it, or raise RETRIEVAL_LOCK_TIMEOUT"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _swap_in(tmp: Path, path: Path) -> None:
    """Put the finished ``tmp`` at ``path``: one atomic exchange, so ``path`` is never missing."""
    _step("built")
    if not path.exists():
        os.rename(tmp, path)
        _step("renamed")
        return
    if _exchange(tmp, path):
        _step("exchanged")
        shutil.rmtree(tmp, ignore_errors=True)  # the old version, now at tmp's name
        _step("removed-old")
        return
    # No exchange on this system: two renames, with a moment where path is missing.
    old = tmp.with_name(tmp.name[:-4] + ".old")
    os.rename(path, old)
    _step("moved-old")
    os.rename(tmp, path)
    _step("moved-new")
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def directory(path: str | Path):
    """Build a folder in a temporary sibling and swap it into ``path`` only on success.

    The swap is one ``renameat2(RENAME_EXCHANGE)`` where Linux offers it: at every moment
    ``path`` holds a complete old or new version, even after a crash. Writers of one path are
    serialized by a lock file beside it (:func:`writer_lock`); the temporary folders of killed
    writers are removed by the next save. A folder saved inside one being built is written in
    place: the outer swap makes it appear whole.

    >>> with directory("my_index") as tmp:   # doctest: +SKIP
    ...     (tmp / "index.faiss").write_bytes(...)
    """
    path = Path(path).absolute()
    if any(parent in _building for parent in path.parents):
        path.mkdir()
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(path):
        for leftover in _leftovers(path):
            if leftover.suffix == ".old" and not path.exists():
                os.rename(leftover, path)  # a two-rename swap died between its renames: the old version returns
            else:
                shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual folder mode
        _building.add(tmp)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _building.discard(tmp)
        _swap_in(tmp, path)


def _identity(path: Path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns  # ctime too: a swapped-in folder may reuse a removed one's inode


def read_consistently(path: str | Path, load, attempts: int = 10):
    """``load()`` a saved folder, again if a writer swapped ``path`` while it was being read.

    A reader never mixes two versions: it retries when the folder's identity changed during the
    read, whether the read failed (a file of the new version against the old description) or not.
    """
    path = Path(path)
    for _ in range(attempts):
        before = _identity(path)
        try:
            result = load()
        except (IndexFormatError, OSError):
            if _identity(path) != before:
                continue
            raise
        if _identity(path) == before:
            return result
    raise IndexFormatError(f"{path} changed {attempts} times while being read: another process keeps saving it")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _self_digest(meta: dict) -> str:
    """SHA-256 of a description without its own ``checksum`` field (canonical JSON)."""
    rest = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def write_description(folder: str | Path, name: str, description: dict, files: Iterable[str] = ()) -> Path:
    """Write ``folder/name``: ``description`` plus the SHA-256 of each of ``files`` (paths relative to ``folder``).

    ``description`` must hold ``format`` and ``version``; its own content (ids included) is
    covered by a ``checksum`` field. :func:`read_description` checks all of it.
    """
    folder = Path(folder)
    meta = dict(description)
    meta["sha256"] = {f: file_digest(folder / f) for f in files}
    meta["checksum"] = _self_digest(meta)
    return write_json(folder / name, meta)


def files_below(folder: str | Path) -> list[str]:
    """Every file under ``folder``, as sorted paths relative to it (for :func:`write_description`)."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


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
    if "checksum" in meta and meta["checksum"] != _self_digest(meta):
        raise IndexFormatError(f"{path} is corrupted (its checksum differs from its content)")
    if not isinstance(meta.get("version"), int) or meta["version"] > version:
        raise IndexFormatError(f"{path} has format version {meta.get('version')!r}; this toolkit reads <= {version}")
    digests = meta.get("sha256", {})
    if not isinstance(digests, dict):
        raise IndexFormatError(f"{path}: 'sha256' is not a mapping of file names to checksums")
    for file_name, digest in digests.items():
        file = folder / file_name
        if not isinstance(file_name, str) or ".." in Path(file_name).parts or Path(file_name).is_absolute():
            raise IndexFormatError(f"{path}: {file_name!r} is not a file inside {folder}")
        if not file.is_file():
            raise IndexFormatError(f"{file} is missing")
        if verify and file_digest(file) != digest:
            raise IndexFormatError(f"{file} is truncated or corrupted (checksum differs from the one saved)")
    return meta
