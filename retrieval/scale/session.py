"""A Ray session for one command: a local Ray started in-process (the default) or a running cluster.

A local session is started with as many CPUs as workers asked for, no dashboard, its logs and
sockets in a fresh temporary folder (removed at the end), and shut down when the command ends,
so nothing outlives it. ``address`` joins a cluster started with ``ray start`` instead (only the
connection is closed at the end). Workers import this toolkit from the folder it is loaded
from (``PYTHONPATH`` in the job's runtime environment), so an uninstalled checkout works too.
Ray's own start-up costs ~5-10 s on this 2-core machine: worth it for corpora that take minutes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])


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
