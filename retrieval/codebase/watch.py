"""``python -m retrieval index PATH --out DIR --watch``: keep a codebase index current as files change.

Polling, not inotify: a snapshot of ``(mtime, size)`` of every file under the root (``.git``
and the index folder left out) is taken every ``interval`` seconds; on this repository
(about 100 files) a snapshot takes ~3 ms, so polling each second costs nothing measurable,
works on every OS and file system (network mounts and containers included, where inotify
events go missing) and needs no extra package. A change starts a debounce: the update runs
once the tree has been still for ``debounce`` seconds, so an editor's save (write a temporary
file, rename) or a ``git checkout`` of many files is one update, not many.

An update is :func:`retrieval.codebase.index.index_codebase` on the index, with the model
loaded once for all updates: every file is hashed again (ignored files included in the
snapshot only trigger a hash pass that finds nothing), only new and changed files are
chunked, and only chunks whose text is new are embedded, so an edit of one function embeds
one chunk (``tests/retrieval/codebase/test_watch.py`` counts the texts embedded).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from retrieval.codebase.files import VCS_DIRS
from retrieval.codebase.index import IndexReport, index_codebase, load_codebase

INTERVAL = 1.0  # seconds between snapshots
DEBOUNCE = 0.5  # seconds the tree must stay still before an update runs


def snapshot(root: Path, skip: list[Path]) -> dict[str, tuple[int, int]]:
    """``{relative path: (mtime_ns, size)}`` of every file under ``root`` but those in ``skip`` and VCS folders."""
    skipped = {os.path.realpath(p) for p in skip}
    state = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in VCS_DIRS and os.path.realpath(os.path.join(folder, d)) not in skipped
                   and not d.startswith(tuple(f".{Path(p).name}." for p in skip))]
        for name in files:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:  # removed between listing and stat, or unreadable: the update counts it
                continue
            state[os.path.relpath(path, root)] = (st.st_mtime_ns, st.st_size)
    return state


def watch_codebase(
    root: str | Path,
    out: str | Path,
    *,
    interval: float = INTERVAL,
    debounce: float = DEBOUNCE,
    stop: threading.Event | None = None,
    max_updates: int | None = None,
    on_update: Callable[[IndexReport], None] | None = None,
    **options,
) -> int:
    """Bring the index ``out`` of ``root`` up to date, then again after every change, until ``stop`` is set.

    Parameters
    ----------
    root, out, options
        As for :func:`retrieval.codebase.index.index_codebase` (``options`` apply to every update).
    interval, debounce
        Seconds between snapshots, and of stillness after a change before an update runs.
    stop
        Set it to end the watch (Ctrl-C ends the command line's).
    max_updates
        End after this many updates following the first pass (tests).
    on_update
        Called with each update's report, the first pass's included.

    Returns
    -------
    The number of updates after the first pass.
    """
    root, out = Path(root), Path(out)
    stop = stop or threading.Event()
    report = index_codebase(root, out, **options)
    if on_update:
        on_update(report)
    retriever, _ = load_codebase(out, model=options.get("model") if not isinstance(options.get("model"), (str, Path)) else None,
                                 device=options.get("device"), trust_remote_code=options.get("trust_remote_code", False))
    options = {**options, "loaded_model": retriever.model, "model": None, "multi_vector": None, "rebuild": False}
    updates, seen = 0, snapshot(root, [out])
    while not stop.is_set() and (max_updates is None or updates < max_updates):
        if stop.wait(interval):
            break
        now = snapshot(root, [out])
        if now == seen:
            continue
        while not stop.wait(debounce) and (later := snapshot(root, [out])) != now:
            now = later  # still changing: wait until it is still
        if stop.is_set():
            break
        seen = now
        report = index_codebase(root, out, **options)
        updates += 1
        if on_update:
            on_update(report)
    return updates
