"""Micro-batching: the queries of concurrent searches encoded together, one forward pass for all that wait.

A search's cost on a CPU is mostly the encoder's forward pass over its query, and a pass over
one short query is mostly fixed overhead: MiniLM (fp32, one torch thread, the 2-core machine at
load ~13) took 58-69 ms a SciFact query one by one and 35-36 ms a query in batches of 8. So the
service can hand every search's queries to a :class:`QueryBatcher`, whose workers each encode
whatever has queued while the previous pass ran (and, with ``wait_ms``, what arrives that much
later) in one call, and answer each search with its own rows; the index search, the fusion and
the reranking then run in the search's own thread as before (``Retriever.search(...,
query_embeddings=...)``). With ``wait_ms=0`` a lone query is encoded at once.

Several workers with one torch thread each, not one worker with torch's threads: under load a
pass on a 2-thread OpenMP team stalls at every operator's barrier while the other thread waits
for a core (746-799 ms a query one by one, against 58-69 ms single-threaded), and one such
worker serialised every search (0.15x the unbatched queries/s at 8 clients). ``serve
--batch-queries`` therefore runs a worker per core at one thread each; measured against the
unbatched server in the same run: BENCHMARKS.md, "Resident service".

The answers equal one-by-one searches' up to float rounding: a query padded beside longer ones
gets an embedding ~1e-7 away from its own (bitwise equal when no padding is added), as with
``Retriever.search`` over a list of queries; ids and ranks are the same unless two documents'
scores tie within that (tests/retrieval/service/test_batching.py).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future

MAX_BATCH = 64  # queries per forward pass: short queries, so the token budget of encode() is never the limit


class QueryBatcher:
    """Worker threads that encode the queries of concurrent searches in shared forward passes.

    Parameters
    ----------
    max_batch
        Most queries per pass (a search with more is encoded alone, in the encoder's own batches).
    wait_ms
        How long a pass waits for more queries after the first arrived (0: only those already waiting).
    workers
        Passes that may run at once, each taking what waits when it starts (one per core pairs with
        one intra-op thread per pass, ``serve --threads 1``).
    """

    def __init__(self, max_batch: int = MAX_BATCH, wait_ms: float = 0.0, workers: int = 1):
        if max_batch < 1 or wait_ms < 0 or workers < 1:
            raise ValueError(f"max_batch and workers must be >= 1 and wait_ms >= 0, not {max_batch}, {workers} and {wait_ms}")
        self.max_batch, self.wait, self.workers = max_batch, wait_ms / 1000, workers
        self._pending: deque[tuple[object, list[str], Future]] = deque()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.passes = self.queries = 0

    def embed(self, retriever, queries: list[str]):
        """``retriever.embed_queries(queries)``, computed in a pass shared with other searches' queries."""
        future: Future = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the query batcher is closed")
            self._pending.append((retriever, list(queries), future))
            if not self._threads:
                self._threads = [threading.Thread(target=self._run, name=f"query-batcher-{i}", daemon=True) for i in range(self.workers)]
                for thread in self._threads:
                    thread.start()
            self._ready.notify()
        return future.result()

    def stats(self) -> dict:
        return {"encoder_passes": self.passes, "encoded_queries": self.queries}

    def close(self) -> None:
        """Encode what is queued, then stop the workers."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _take(self) -> list[tuple[object, list[str], Future]] | None:
        """The next batch: the first waiting search and those after it for the same retriever, up to ``max_batch``."""
        with self._ready:
            while True:
                while not self._pending and not self._closed:
                    self._ready.wait()
                if not self._pending:
                    return None
                deadline = time.monotonic() + self.wait
                while not self._closed and sum(len(q) for _, q, _ in self._pending) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
                if self._pending:  # another worker may have taken them while this one waited
                    break
            first = self._pending.popleft()
            batch, size, rest = [first], len(first[1]), deque()
            while self._pending:
                item = self._pending.popleft()
                if item[0] is first[0] and size + len(item[1]) <= self.max_batch:
                    batch.append(item)
                    size += len(item[1])
                else:
                    rest.append(item)  # another retriever (a reload) or no room: the next pass
            self._pending = rest
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            retriever = batch[0][0]
            try:
                rows = retriever.embed_queries([q for _, queries, _ in batch for q in queries])
            except Exception:  # noqa: BLE001  one search's bad query must not fail the others: each alone
                for _, queries, future in batch:
                    self._answer(future, lambda queries=queries: retriever.embed_queries(queries))
                continue
            with self._ready:
                self.passes, self.queries = self.passes + 1, self.queries + len(rows)
            start = 0
            for _, queries, future in batch:
                future.set_result(rows[start : start + len(queries)])
                start += len(queries)

    def _answer(self, future: Future, compute) -> None:
        try:
            future.set_result(compute())
        except Exception as exc:  # noqa: BLE001  the search's own thread raises it
            future.set_exception(exc)
