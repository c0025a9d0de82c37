"""The text files of a folder worth indexing: ``.gitignore`` honoured, the rest skipped and counted.

Walks a folder in sorted order without following symbolic links. Like git, it reads every
``.gitignore`` on the way (patterns relative to that file's folder, deeper files and later
lines win, ``!`` re-includes) and ``.git/info/exclude``, never descends into an ignored
folder and never into ``.git``, ``.hg`` or ``.svn``. ``exclude`` adds gitignore-style
patterns of its own, relative to the root, that win over everything.

A file is skipped, and counted under its reason, when it is ignored (``ignored``; an
ignored folder counts once), a symbolic link (``symlink``), over ``max_bytes``
(``too-large``), empty (``empty``), binary (a NUL byte in its first 8 KiB, git's test:
``binary``), not UTF-8 (``not-utf8``) or unreadable (``unreadable``). Unless
``skip_generated=False``, so are what nobody searches for and what would crowd out the
code people wrote, as GitHub's linguist and ripgrep users' ignore lists skip it: dependency
folders (``vendored``: ``node_modules/``, ``vendor/``, ``third_party/``, ``bower_components/``,
counted once a folder), lockfiles (``lockfile``: ``package-lock.json``, ``yarn.lock``,
``Cargo.lock``, ``poetry.lock``, ``go.sum``...), minified files (``minified``: ``*.min.js``,
``*.min.css``, or lines averaging over :data:`MINIFIED_LINE` characters) and generated files
(``generated``: ``@generated``, ``DO NOT EDIT`` or "auto-generated" in the first lines, as
Go's ``Code generated ... DO NOT EDIT.`` and protoc write). A file or folder whose
name is not UTF-8 (``undecodable-name``) and a folder that cannot be listed
(``unreadable-folder``) are skipped and counted too, with a warning naming them; nothing in
the tree stops the walk.

An ignore-file line that git reads but :mod:`pathspec` rejects is read as git reads it: in a
reversed range such as ``[z-a]`` only the first character matches (git's wildmatch), and a
line git can never match (a trailing ``\\``, a lone ``!``) is skipped. Each such line is
counted (``bad-ignore-line``) and logged as ``.gitignore:LINE: ...``; the rest of the file
applies. A bad ``exclude`` pattern, given by the caller, raises :class:`PatternError`.

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
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

MAX_BYTES = 1_000_000  # larger "source" files are nearly always generated or data
VCS_DIRS = frozenset({".git", ".hg", ".svn"})
BINARY_PROBE = 8000  # bytes git looks at for a NUL
BRACKET = re.compile(r"(\[[!^]?\]?)([^\]]*)(\])")  # a bracket expression: opening, members, closing
REVERSED_RANGE = re.compile(r"(?<!\\)([^\\])-([^\\])")
PATTERN_ERRORS = (ValueError, re.error)  # what pathspec raises for a line it cannot compile
VENDORED_DIRS = frozenset({"node_modules", "vendor", "third_party", "third-party", "bower_components", "jspm_packages"})
LOCKFILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "Cargo.lock", "poetry.lock",
    "Pipfile.lock", "uv.lock", "pdm.lock", "composer.lock", "Gemfile.lock", "go.sum", "flake.lock", "mix.lock",
    "pubspec.lock", "Podfile.lock", "packages.lock.json", "gradle.lockfile",
})
MINIFIED_NAME = re.compile(r"[.-]min\.(js|mjs|cjs|css)$")
MINIFIED_LINE = 300  # mean characters a line: minified or bundled code (hand-written code averages 30-40)
GENERATED = re.compile(r"@generated\b|\bDO NOT EDIT\b|\bauto-?generated\b", re.IGNORECASE)
GENERATED_LINES = 5  # where the marker must appear: a file's header, not a mention further down
log = logging.getLogger(__name__)


class PatternError(ValueError):
    """An ``exclude`` pattern that cannot be parsed; the message names it."""


@dataclass(frozen=True)
class SourceFile:
    """A readable text file: its path relative to the root (``/``-separated), text and content hash."""

    path: str
    text: str
    sha256: str


def git_ranges(line: str) -> str:
    """``line`` with its reversed ranges as git's wildmatch reads them: ``[z-a]`` matches ``z`` only.

    Wildmatch compares a bracket's first character on its own before it sees the ``-``; the
    range from ``z`` down to ``a`` then holds nothing. Python's regular expressions reject it.
    """

    def members(m: re.Match) -> str:
        return m[1] + REVERSED_RANGE.sub(lambda r: r[1] if r[1] > r[2] else r[0], m[2]) + m[3]

    return BRACKET.sub(members, line)


def compile_lines(lines: list[str], source: str, problems: list[tuple[str, str]]) -> pathspec.GitIgnoreSpec:
    """The gitignore spec of ``lines``; a line pathspec rejects is read as git reads it, or skipped.

    ``problems`` gets one ``(what, "source:LINE: ...")`` per line that needed either, ``what``
being ``"reread"`` or ``"skipped"``.
    """
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except PATTERN_ERRORS:
        pass
    kept = []
    for number, line in enumerate(lines, 1):
        for candidate in dict.fromkeys((line, git_ranges(line))):
            try:
                pathspec.GitIgnoreSpec.from_lines([candidate])
            except PATTERN_ERRORS:
                continue
            kept.append(candidate)
            if candidate != line:
                problems.append(("reread", f"{source}:{number}: {line!r} read as git reads it, as {candidate!r} (a reversed range matches its first character only)"))
            break
        else:
            problems.append(("skipped", f"{source}:{number}: {line!r} cannot be parsed (git matches nothing with it)"))
    return pathspec.GitIgnoreSpec.from_lines(kept)


def utf8_name(name: str) -> bool:
    """Whether a name from :func:`os.scandir` was valid UTF-8 (undecodable bytes come back as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    skip_generated
        Skip and count dependency folders, lockfiles, minified and generated files (the default).
    """

    def __init__(self, root: str | Path, *, exclude: Iterable[str] = (), max_bytes: int = MAX_BYTES, skip: Iterable[str | Path] = (),
                 skip_generated: bool = True):
        self.root = Path(root)
        self.skip_generated = skip_generated
        self.max_bytes = max_bytes
        self.exclude = list(exclude)
        self.skip = {os.path.realpath(p) for p in skip}
        self.skipped: Counter[str] = Counter()
        self.warnings: list[str] = []
        self._unread: set[str] = set()
        problems: list[tuple[str, str]] = []
        self._overrides = [("", compile_lines(self.exclude, "--exclude", problems))] if self.exclude else []
        if unparsable := [message for what, message in problems if what == "skipped"]:
            raise PatternError("; ".join(unparsable))

    def __iter__(self) -> Iterator[SourceFile]:
        self.skipped, self.warnings = Counter(), []
        self._unread: set[str] = set()  # ignore files already counted as unreadable (they are walked as files too)
        lines = self._ignore_lines(self.root / ".git" / "info" / "exclude", ".git/info/exclude")
        specs = [("", self._spec(lines, ".git/info/exclude"))] if lines else []
        yield from self._walk(self.root, "", specs, self._overrides)

    def _note(self, reason: str, message: str) -> None:
        """Count a skip under ``reason`` and log ``message``; :attr:`warnings` keeps them all."""
        self.skipped[reason] += 1
        self.warnings.append(message)
        log.warning("%s", message)

    def _spec(self, lines: list[str], source: str) -> pathspec.GitIgnoreSpec:
        problems: list[tuple[str, str]] = []
        spec = compile_lines(lines, source, problems)
        for what, message in problems:
            self._note("bad-ignore-line", f"{message}; skipped" if what == "skipped" else message)
        return spec

    def _ignore_lines(self, path: Path, rel: str) -> list[str]:
        """The lines of an ignore file, none when it is absent; an unreadable one is counted and read as empty."""
        try:
            return path.read_text(encoding="utf-8", errors="replace").splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return []
        except OSError as exc:
            self._unread.add(rel)
            self._note("unreadable", f"{rel}: cannot be read ({exc.strerror or exc}); its patterns do not apply")
            return []

    def _entries(self, folder: Path, rel_folder: str) -> list[os.DirEntry] | None:
        """The entries of ``folder`` by name; None, counted, when it cannot be listed."""
        try:
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._note("unreadable-folder", f"{rel_folder or '.'}/: cannot be listed ({exc.strerror or exc}); skipped")
            return None

    def _ignored(self, rel: str, specs: list, overrides: list) -> bool:
        """Git's answer for ``rel`` (a folder ends with ``/``): the deepest, last matching pattern decides."""
        decision = None
        for base, spec in specs + overrides:
            result = spec.check_file(rel[len(base) + 1 :] if base else rel).include
            if result is not None:
                decision = result
        return bool(decision)

    def _walk(self, folder: Path, rel_folder: str, specs: list, overrides: list) -> Iterator[SourceFile]:
        entries = self._entries(folder, rel_folder)
        if entries is None:
            return
        gitignore = f"{rel_folder}/.gitignore" if rel_folder else ".gitignore"
        if lines := self._ignore_lines(folder / ".gitignore", gitignore):
            specs = specs + [(rel_folder, self._spec(lines, gitignore))]
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            if self.skip and os.path.realpath(entry.path) in self.skip:
                continue
            if not utf8_name(entry.name):
                self._note("undecodable-name", f"{ascii(rel)}: the name is not UTF-8; skipped")
                continue
            try:
                kind = "symlink" if entry.is_symlink() else "dir" if entry.is_dir() else "file" if entry.is_file() else None
            except OSError as exc:
                self._note("unreadable", f"{rel}: cannot be read ({exc.strerror or exc}); skipped")
                continue
            if kind == "symlink":
                self.skipped["symlink"] += 1
            elif kind == "dir" and entry.name not in VCS_DIRS:
                if self._ignored(rel + "/", specs, overrides):
                    self.skipped["ignored"] += 1
                elif self.skip_generated and entry.name in VENDORED_DIRS:
                    self.skipped["vendored"] += 1
                else:
                    yield from self._walk(Path(entry.path), rel, specs, overrides)
            elif kind == "file":
                if self._ignored(rel, specs, overrides):
                    self.skipped["ignored"] += 1
                elif self.skip_generated and (entry.name in LOCKFILES or MINIFIED_NAME.search(entry.name)):
                    self.skipped["lockfile" if entry.name in LOCKFILES else "minified"] += 1
                elif (source := self._read(Path(entry.path), rel)) is not None:
                    yield source

    def _read(self, path: Path, rel: str) -> SourceFile | None:
        try:
            if path.stat().st_size > self.max_bytes:
                self.skipped["too-large"] += 1
                return None
            data = path.read_bytes()
        except OSError as exc:
            if rel not in self._unread:
                self._note("unreadable", f"{rel}: cannot be read ({exc.strerror or exc}); skipped")
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
        if self.skip_generated and (reason := generated_reason(text)):
            self.skipped[reason] += 1
            return None
        return SourceFile(rel, text, hashlib.sha256(data).hexdigest())


def generated_reason(text: str) -> str | None:
    """``"minified"`` or ``"generated"`` when a text is one (by its line lengths or its header), else None."""
    lines = text.count("\n") + 1
    if len(text) > 2000 and len(text) / lines > MINIFIED_LINE:
        return "minified"
    head = "\n".join(text.split("\n", GENERATED_LINES)[:GENERATED_LINES])
    return "generated" if GENERATED.search(head) else None


def describe_skipped(skipped: Counter) -> str:
    """``"3 binary, 2 ignored"``, or ``"none"``."""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none"
