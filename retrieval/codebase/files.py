"""The text files of a folder worth indexing: ``.gitignore`` honoured, the rest skipped and counted.

Walks a folder in sorted order without following symbolic links. Like git, it reads every
``.gitignore`` on the way (patterns relative to that file's folder, deeper files and later
lines win, ``!`` re-includes) and ``.git/info/exclude``, never descends into an ignored
folder and never into ``.git``, ``.hg`` or ``.svn``. ``exclude`` adds gitignore-style
patterns of its own, relative to the root, that win over everything.

A file is skipped, and counted under its reason, when it is ignored (``ignored``; an
ignored folder counts once), a symbolic link (``symlink``), over ``max_bytes``
(``too-large``), empty (``empty``), binary (a NUL byte in its first 8 KiB, git's test:
``binary``), not UTF-8 (``not-utf8``) or unreadable (``unreadable``).

Examples
--------
>>> from retrieval.codebase.files import SourceTree
>>> tree = SourceTree("some/repo")                   # doctest: +SKIP
>>> for source in tree:                               # doctest: +SKIP
...     print(source.path, source.sha256[:8], len(source.text))
>>> tree.skipped                                      # doctest: +SKIP
Counter({'binary': 3, 'ignored': 2})
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

MAX_BYTES = 1_000_000  # larger "source" files are nearly always generated or data
VCS_DIRS = frozenset({".git", ".hg", ".svn"})
BINARY_PROBE = 8000  # bytes git looks at for a NUL


@dataclass(frozen=True)
class SourceFile:
    """A readable text file: its path relative to the root (``/``-separated), text and content hash."""

    path: str
    text: str
    sha256: str


def read_patterns(path: Path) -> list[str]:
    """The lines of an ignore file; an unreadable one counts as empty, as git treats it."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def decode(data: bytes) -> str | None:
    """UTF-8 text (a byte-order mark dropped) with ``\\n`` line ends, or None if it is not UTF-8."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


class SourceTree:
    """Iterate over the indexable text files of ``root``; :attr:`skipped` counts the others by reason.

    Parameters
    ----------
    root
        The folder to walk.
    exclude
        Extra gitignore-style patterns, relative to ``root`` (``"site-packages/"``, ``"*.min.js"``).
    max_bytes
        Larger files are skipped as ``too-large``.
    skip
        Paths never entered nor counted (the index folder itself when it lies inside ``root``).
    """

    def __init__(self, root: str | Path, *, exclude: Iterable[str] = (), max_bytes: int = MAX_BYTES, skip: Iterable[str | Path] = ()):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.exclude = list(exclude)
        self.skip = {os.path.realpath(p) for p in skip}
        self.skipped: Counter[str] = Counter()

    def __iter__(self) -> Iterator[SourceFile]:
        self.skipped = Counter()
        specs = [("", pathspec.GitIgnoreSpec.from_lines(read_patterns(self.root / ".git" / "info" / "exclude")))]
        overrides = [("", pathspec.GitIgnoreSpec.from_lines(self.exclude))] if self.exclude else []
        yield from self._walk(self.root, "", specs, overrides)

    def _ignored(self, rel: str, specs: list, overrides: list) -> bool:
        """Git's answer for ``rel`` (a folder ends with ``/``): the deepest, last matching pattern decides."""
        decision = None
        for base, spec in specs + overrides:
            result = spec.check_file(rel[len(base) + 1 :] if base else rel).include
            if result is not None:
                decision = result
        return bool(decision)

    def _walk(self, folder: Path, rel_folder: str, specs: list, overrides: list) -> Iterator[SourceFile]:
        gitignore = folder / ".gitignore"
        if gitignore.is_file():
            specs = specs + [(rel_folder, pathspec.GitIgnoreSpec.from_lines(read_patterns(gitignore)))]
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            self.skipped["unreadable"] += 1
            return
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            if self.skip and os.path.realpath(entry.path) in self.skip:
                continue
            if entry.is_symlink():
                self.skipped["symlink"] += 1
            elif entry.is_dir():
                if entry.name in VCS_DIRS:
                    continue
                if self._ignored(rel + "/", specs, overrides):
                    self.skipped["ignored"] += 1
                else:
                    yield from self._walk(Path(entry.path), rel, specs, overrides)
            elif entry.is_file():
                if self._ignored(rel, specs, overrides):
                    self.skipped["ignored"] += 1
                elif (source := self._read(Path(entry.path), rel)) is not None:
                    yield source

    def _read(self, path: Path, rel: str) -> SourceFile | None:
        try:
            if path.stat().st_size > self.max_bytes:
                self.skipped["too-large"] += 1
                return None
            data = path.read_bytes()
        except OSError:
            self.skipped["unreadable"] += 1
            return None
        if not data.strip():
            self.skipped["empty"] += 1
            return None
        if b"\0" in data[:BINARY_PROBE]:
            self.skipped["binary"] += 1
            return None
        text = decode(data)
        if text is None:
            self.skipped["not-utf8"] += 1
            return None
        return SourceFile(rel, text, hashlib.sha256(data).hexdigest())


def describe_skipped(skipped: Counter) -> str:
    """``"3 binary, 2 ignored"``, or ``"none"``."""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none"
