"""Ray for the library API: a session, and a pool of encoder actors a retriever hands its document batches to.

``ray_session`` opens a local Ray in this process (as many CPUs as workers, no dashboard, its logs
and sockets in a fresh temporary folder removed at the end) or joins a cluster started with
``ray start`` (``address``); nothing outlives it. Workers import this toolkit from the folder it is
loaded from (``PYTHONPATH`` in the job's runtime environment), so an uninstalled checkout works too.

:class:`EncoderPool` is what :meth:`retrieval.Retriever.workers` opens: one copy of the retriever's
model per actor (a GPU each where the cluster has them), each given blocks of 256 texts,
at most two blocks per actor in flight, the rows put back in order. The actors build the same
class of retriever from the same settings, and a model that exists only in this process (a
ColBERT projection drawn from a plain encoder) is saved to a temporary folder they load, so
their vectors equal the in-process ones (tests: to 1e-6).

When it pays (measured, BENCHMARKS.md "Scale"): on this 2-core machine two one-thread actors
encode SciFact at 1.02x the in-process path's two torch threads; Ray's start-up and one model
load per actor cost seconds. :func:`auto_workers` therefore starts no pool on a machine with fewer
than 4 cores and one GPU at most, and the callers (``python -m retrieval index``,
``python -m evaluation.beir``) only from :data:`PARALLEL_ABOVE` texts. For corpora whose vectors
do not fit one process, ``python -m retrieval encode`` writes shards instead (:mod:`retrieval.scale`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO = str(Path(__file__).resolve().parents[1])
PARALLEL_ABOVE = 50_000  # texts to encode before a caller's automatic choice starts a pool
BLOCK = 256  # texts per actor call: seconds of work against Ray's ~1 ms a call; small, so that the blocks of
# one add() step (4,096 texts) spread evenly over any number of actors
IN_FLIGHT_PER_WORKER = 2  # one block encoding, one queued: no actor waits for the driver


@contextlib.contextmanager
def ray_session(workers: int, address: str | None = None, *, quiet: bool = False):
    """Yield the ``ray`` module with a session open: local with ``workers`` CPUs, or the cluster at ``address``."""
    import ray

    if ray.is_initialized():  # a caller (a test, a notebook) already holds one: use it, leave it open
        yield ray
        return
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)
    options = {"runtime_env": {"env_vars": {"PYTHONPATH": path}}, "log_to_driver": not quiet,
               "logging_level": logging.WARNING, "configure_logging": True}
    temp = None
    if address:
        ray.init(address=address, **options)
    else:
        temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
        ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=temp, **options)
    try:
        yield ray
    finally:
        ray.shutdown()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


def auto_workers(texts: int, *, above: int = PARALLEL_ABOVE, cpus: int | None = None, gpus: int | None = None) -> int:
    """Workers an automatic choice starts for ``texts`` texts: 1 (in-process) below ``above`` or where Ray gains nothing.

    One per GPU with two or more GPUs; else one per two cores from 4 cores up (each actor runs
    torch on its core pair); else 1: on 2 cores two actors measured 1.02x one process.
    """
    if texts < above:
        return 1
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        return gpus
    cpus = cpus or os.cpu_count() or 1
    return cpus // 2 if cpus >= 4 else 1


def use_assigned_cpus() -> None:
    """In a Ray actor, torch threads = the CPUs Ray gave it (not the driver's ``OMP_NUM_THREADS``, which local
    workers inherit: two actors of 2 threads each on 2 cores ran the site-packages sample at 0.74x one process)."""
    import ray
    import torch

    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU") if ray.is_initialized() else None
    except Exception:  # not in a Ray worker
        cpus = None
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def start_actors(ray, cls, workers: int, *args) -> list:
    """``workers`` actors of ``cls(*args)``, one CPU each; one GPU each (at most one per GPU) where the cluster has GPUs."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    remote = ray.remote(**({"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": 1}))(cls)
    return [remote.remote(*args) for _ in range(min(workers, gpus) if gpus else workers)]


def run_on_actors(ray, actors: list, jobs):
    """Run ``jobs`` (a stream of ``(key, args)``) as ``actor.encode.remote(*args)``; yield ``(key, result)`` as each returns.

    At most :data:`IN_FLIGHT_PER_WORKER` jobs per actor are in flight, and ``jobs`` is read only as
    actors free up, so a streamed corpus is never read ahead of the encoding.
    """
    pending, idle = {}, list(actors) * IN_FLIGHT_PER_WORKER

    def finished():
        done, _ = ray.wait(list(pending), num_returns=1)
        key, actor = pending.pop(done[0])
        idle.append(actor)
        return key, ray.get(done[0])

    for key, args in jobs:
        if not idle:
            yield finished()
        actor = idle.pop(0)
        pending[actor.encode.remote(*args)] = (key, actor)
    while pending:
        yield finished()


def choose_workers(workers: int | None, address: str | None, texts: int) -> int:
    """What a caller's ``workers`` setting means for ``texts`` texts: the count given, 2 on a cluster, else :func:`auto_workers`."""
    return workers or (2 if address else auto_workers(texts))


class EncoderActor:
    """One model in one actor: a retriever of the caller's class built from its settings, encoding blocks of texts."""

    def __init__(self, cls, settings: dict, max_length: int):
        use_assigned_cpus()
        self.retriever = cls(**settings)
        self.retriever.set_max_length(max_length)

    def encode(self, texts: list[str], role: str):
        return self.retriever._encode(texts, role)


class EncoderPool:
    """Actors encoding a retriever's texts (see the module docstring); :meth:`close` stops them and their session."""

    def __init__(self, retriever, workers: int, address: str | None = None, *, quiet: bool = False):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.retriever, self.workers, self.address, self.quiet = retriever, workers, address, quiet
        self._stack = contextlib.ExitStack()
        self.actors: list = []
        self._lock = threading.Lock()

    def _start(self) -> None:
        """Ray and the actors, at the first texts (a caller whose vectors are all cached starts nothing)."""
        retriever = self.retriever
        self.ray = self._stack.enter_context(ray_session(self.workers, self.address, quiet=self.quiet))
        settings = {"model": retriever.model_name, "device": retriever.device, "dtype": retriever.dtype,
                    "batch_size": retriever.batch_size, "trust_remote_code": retriever.trust_remote_code}
        folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="pool-model-")))
        retriever._save_model(folder)  # only a model that exists nowhere else is written (a drawn projection)
        if (folder / "model").is_dir():
            settings["model"] = str(folder / "model")
        self.actors = start_actors(self.ray, EncoderActor, self.workers, type(retriever), settings, retriever.max_length())

    def encode(self, texts: list[str], role: str):
        """The rows of ``texts`` in order: an array (one vector each) or a list of token arrays."""
        with self._lock:  # one batch at a time: the actors' queues are this call's
            if not self.actors:
                self._start()
            return self._encode(texts, role)

    def _encode(self, texts: list[str], role: str):
        blocks = [texts[i:i + BLOCK] for i in range(0, len(texts), BLOCK)]
        results: list = [None] * len(blocks)
        with tqdm(total=len(texts), desc="encode (Ray)", unit="text", disable=self.quiet or len(blocks) < 2) as bar:
            for number, rows in run_on_actors(self.ray, self.actors, ((n, (block, role)) for n, block in enumerate(blocks))):
                results[number] = rows
                bar.update(len(rows))
        if results and isinstance(results[0], list):
            return [row for block in results for row in block]
        return np.concatenate(results) if results else np.zeros((0, 0), np.float32)

    def close(self) -> None:
        with self._lock:
            for actor in self.actors:
                self.ray.kill(actor)
            self.actors = []
            self._stack.close()
