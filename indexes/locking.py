"""A readers-writer lock: searches run side by side, adds, deletes and training run alone.

FAISS searches are safe to run concurrently on one index, but not beside an ``add`` or a
``train``, and the multi-vector index replaces several arrays per add: a search between two
of those assignments would read codes that disagree with their offsets. Python's standard
library has no readers-writer lock; this one is writer-preferring (a waiting writer stops new
readers from entering), so a stream of searches cannot starve an add.

Examples
--------
>>> lock = ReadWriteLock()
>>> with lock.read():
...     pass
>>> with lock.write():
...     pass
"""

from __future__ import annotations

import contextlib
import threading


class ReadWriteLock:
    """Many readers or one writer. Not reentrant: a writer must not take the read side inside its write."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self):
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self):
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
