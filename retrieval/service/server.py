"""Run the service: one process per folder, uvicorn on a socket bound first, stopped when idle.

The socket is bound (and listening) before uvicorn starts, so ``--port 0`` gets a free port
that is known at once and written into the server record (``.<name>.server.json``, mode 0600:
pid, host, port, a random instance token that ``/health`` repeats) for clients to find.
One server per folder: an exclusive ``flock`` on ``.<name>.serve.lock`` for the process's
lifetime (the kernel releases it on kill -9, so a crashed server never blocks the next).
``--idle-timeout`` stops a server no request reached for that long; shutdown (idle, SIGTERM,
Ctrl-C) checkpoints pending writes and removes the record.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
import time

from retrieval.service.app import Activity, create_app
from retrieval.service.folder import ServedFolder
from retrieval.service.resident import remove_record, write_record
from retrieval.service.store import ServedIndex

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class AlreadyServed(ValueError):
    """Another live server holds the folder."""


def hold_folder(folder: ServedFolder):
    """The open lock file that makes this process the folder's only server (kept open while serving)."""
    lock = open(folder.sidecar("serve.lock"), "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise AlreadyServed(f"another server is serving {folder.path} (lock {folder.sidecar('serve.lock')}); stop it or search through it") from None
    return lock


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, running ``on_stop`` once it has stopped accepting: uvicorn re-raises a caught
        SIGTERM after ``serve`` returns, which would end the process before any ``finally`` of ours."""

        on_stop = staticmethod(lambda: None)

        async def shutdown(self, sockets=None):
            await super().shutdown(sockets)
            self.on_stop()

    return Server


def _stop_when_idle(server, activity: Activity, idle_timeout: float) -> None:
    while not server.should_exit:
        if activity.idle_seconds() > idle_timeout:
            log.warning("no request for %.0f s: stopping", idle_timeout)
            server.should_exit = True
            return
        time.sleep(min(1.0, idle_timeout / 4))


def serve(folder: ServedFolder, *, host: str = "127.0.0.1", port: int = 8765, api_key: str | None = None,
          idle_timeout: float | None = None, device: str | None = None, trust_remote_code: bool = False,
          quiet: bool = False, on_ready=None, threads: int | None = None, batching: dict | None = None) -> int:
    """Load the folder, serve it until stopped; returns 0. ``on_ready(url)`` runs once the socket listens.

    ``threads``: torch intra-op threads per forward pass (set before any thread runs one).
    ``batching``: :class:`~retrieval.service.store.ServedIndex`'s ``batching``, ``batch_wait_ms``, ``max_batch``, ``batch_workers``.
    """
    import uvicorn

    if threads:
        import torch

        torch.set_num_threads(threads)

    lock = hold_folder(folder)
    try:
        index = ServedIndex(folder, device=device, trust_remote_code=trust_remote_code, **(batching or {}))
        sock = bind(host, port)
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}"
        token = secrets.token_hex(16)
        activity = Activity()
        app = create_app(index, api_key=api_key, instance=token, activity=activity)
        config = uvicorn.Config(app, log_level="warning" if quiet else "info", access_log=False, timeout_graceful_shutdown=10)
        server = _server_class()(config)
        stopped = []

        def stop() -> None:  # once: at shutdown, or in the finally below when uvicorn never started
            if not stopped:
                stopped.append(True)
                remove_record(folder, token)
                index.close()

        server.on_stop = stop
        write_record(folder, {"pid": os.getpid(), "host": host, "port": port, "url": url, "token": token,
                              "api_key": api_key is not None, "started": time.time()})
        if idle_timeout:
            threading.Thread(target=_stop_when_idle, args=(server, activity, idle_timeout), daemon=True).start()
        if on_ready is not None:
            on_ready(url)
        try:
            server.run(sockets=[sock])
        finally:
            stop()
            sock.close()
    finally:
        lock.close()
    return 0
