"""The folder's resident server: found through its record, or started on demand and waited for.

``python -m retrieval search DIR q`` costs 6-9 s when it loads the model itself; through a
running server it costs a Python start-up and one request. So a search looks for the server
record beside the folder (``.<name>.server.json``): the pid must be alive and ``/health`` must
answer with the record's instance token (a port reused by another program, or a server of
another folder, does not). Otherwise it starts ``python -m retrieval serve DIR --port 0
--idle-timeout 600`` in its own session (it outlives the command, and stops after 10 idle
minutes), its output in ``.<name>.server.log``, and waits for it. Concurrent searches start one
server: they take ``.<name>.spawn.lock`` and look again before starting. Standard library only.

A server is started only when asked (``--resident``) or when the command runs in a terminal:
a process that outlives the command is what a person typing queries wants, not what a script
or a test expects (those get the in-process search, unless a server already runs).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from retrieval.service.client import ServiceClient, ServiceError
from retrieval.service.folder import ServedFolder, find_folder

# Seconds a started server waits for the next query ($RETRIEVAL_SERVER_IDLE_TIMEOUT: tests stop theirs sooner).
IDLE_TIMEOUT = 600.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the started server imports this same toolkit
START_TIMEOUT = 300  # a cold start loads the model (6-9 s idle, more under load)


def write_record(folder: ServedFolder, record: dict) -> None:
    """``.<name>.server.json``, readable by the owner only (it holds the instance token), replaced atomically."""
    path = folder.sidecar("server.json")
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def read_record(folder: ServedFolder) -> dict | None:
    try:
        record = json.loads(folder.sidecar("server.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def remove_record(folder: ServedFolder, token: str) -> None:
    """Remove the record if it is still this server's (a newer server may have replaced it)."""
    record = read_record(folder)
    if record and record.get("token") == token:
        folder.sidecar("server.json").unlink(missing_ok=True)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def live_server(folder: ServedFolder, timeout: float = 10) -> str | None:
    """The URL of the folder's running server, or None."""
    record = read_record(folder)
    if not record or not _alive(record.get("pid")):
        return None
    try:
        health = ServiceClient(record["url"]).health(timeout=timeout)
    except (ServiceError, KeyError):
        return None
    return record["url"] if health.get("instance") == record.get("token") else None


def _start(folder: ServedFolder, idle_timeout: float, device: str | None, trust_remote_code: bool) -> subprocess.Popen:
    command = [sys.executable, "-m", "retrieval", "serve", str(folder.path), "--port", "0",
               "--idle-timeout", str(idle_timeout), "--quiet"]
    command += ["--device", device] if device else []
    command += ["--trust-remote-code"] if trust_remote_code else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(folder.sidecar("server.log"), "wb") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env)


def _log_tail(folder: ServedFolder, lines: int = 15) -> str:
    try:
        return "\n".join(folder.sidecar("server.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_server(path: str | Path, *, idle_timeout: float | None = None, device: str | None = None,
                  trust_remote_code: bool = False, start_timeout: float = START_TIMEOUT) -> str:
    """The URL of the resident server of the folder at ``path``, started first when none runs."""
    folder = find_folder(path)
    url = live_server(folder)
    if url:
        return url
    idle_timeout = idle_timeout or float(os.environ.get("RETRIEVAL_SERVER_IDLE_TIMEOUT", IDLE_TIMEOUT))
    with open(folder.sidecar("spawn.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one search starts the server; the others find it
        url = live_server(folder)
        if url:
            return url
        process = _start(folder, idle_timeout, device, trust_remote_code)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:  # its own "error: ..." line says why (a damaged folder, a bad model)
                tail = _log_tail(folder)
                reason = next((line[len("error: "):] for line in tail.splitlines() if line.startswith("error: ")), None)
                raise ServiceError(reason or f"the server for {folder.path} stopped at start (exit {process.returncode}):\n{tail}")
            url = live_server(folder)
            if url:
                return url
            time.sleep(0.05)
        raise ServiceError(f"the server for {folder.path} did not answer within {start_timeout:.0f} s; see {folder.sidecar('server.log')}")


def outer_description(path: str | Path, name: str) -> dict:
    """The JSON description ``name`` of an index folder a server serves (e.g. a codebase index's manifest).

    Read as plain JSON: the server checked the folder's checksums when it loaded it.
    """
    file = Path(path) / name
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServiceError(f"{file} is missing: {path} is not the index folder expected") from None
    except ValueError as exc:
        raise ServiceError(f"{file} is corrupted: {exc}") from None


def pick_server(path: str | Path, *, server: str | None = None, start: bool | None = None, **options) -> str | None:
    """The server a command should ask about the folder at ``path``, or None to load it in-process.

    ``server``, when given, is the answer. Otherwise the folder's running server, if any; else,
    with ``start`` (default: when stdin and stdout are a terminal, where the next query is
    likely to follow), a newly started one. Without ``start``, a folder that cannot be served
    gives None, so the in-process load reports what is wrong with it.
    """
    if server:
        return server
    if start is None:
        start = sys.stdin.isatty() and sys.stdout.isatty()
    if start:
        return ensure_server(path, **options)
    try:
        return live_server(find_folder(path))
    except (ValueError, OSError):
        return None


def connect(path: str | Path, *, server: str | None = None, **start) -> ServiceClient:
    """A client of ``server`` when given, else of the folder's resident server (started on demand)."""
    return ServiceClient(server or ensure_server(path, **start))
