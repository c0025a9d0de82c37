"""One writer thread beside searcher threads: no search may return an id deleted before it began."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


def assert_searches_never_see_deleted(write: Callable[[Callable[[Iterable[str]], None]], None],
                                      search: Callable[[], list[list[str]]], *, searchers: int = 3,
                                      rounds: int = 15) -> set[str]:
    """Run ``write(deleted)`` (which calls ``deleted(ids)`` after deleting them) beside ``searchers`` threads.

    Each searcher snapshots the ids deleted so far, searches, and fails if any of them comes back.
    Returns every id the writer deleted; an error in any thread fails the caller.
    """
    gone: set[str] = set()
    errors: list[BaseException] = []

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported in the main thread
                errors.append(exc)
        return run

    def searcher():
        for _ in range(rounds):
            before = set(gone)
            returned = {i for row in search() for i in row}
            assert not before & returned, f"deleted ids returned: {sorted(before & returned)[:5]}"

    threads = [threading.Thread(target=guarded(lambda: write(gone.update)))]
    threads += [threading.Thread(target=guarded(searcher)) for _ in range(searchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return gone
