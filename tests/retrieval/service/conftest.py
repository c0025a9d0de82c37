"""A tiny saved retriever and real servers on 127.0.0.1 (free ports) that stop by themselves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = [
    {"id": "py", "text": "Python is a popular programming language.", "source": "a.md"},
    {"id": "fr", "text": "Paris is the capital and largest city of France.", "source": "b.md"},
    {"id": "cat", "text": "Cats are small domesticated felines that purr.", "source": "b.md"},
]
IDLE = 90  # a server the tests forget stops by itself after this many seconds


def save_tiny(path: Path, minilm) -> Path:
    from retrieval import Retriever

    retriever = Retriever(minilm, index="Flat")
    retriever.add(DOCS)
    return retriever.save(path)


def record_of(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.server.json"


class Server:
    """``python -m retrieval serve`` in a subprocess; ``url`` once it answers."""

    def __init__(self, folder: Path, *args: str):
        self.folder = folder
        record_of(folder).unlink(missing_ok=True)
        command = [sys.executable, "-m", "retrieval", "serve", str(folder), "--port", "0", "--idle-timeout", str(IDLE), "--quiet", *args]
        self.log = open(folder.parent / f"{folder.name}.test-server.log", "wb")
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(REPO)})
        self.url = self._wait()

    def _wait(self, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder.parent / f"{self.folder.name}.test-server.log").read_text()
            try:
                record = json.loads(record_of(self.folder).read_text())
            except (OSError, ValueError):
                time.sleep(0.1)
                continue
            if record["pid"] == self.process.pid:
                return record["url"]
            time.sleep(0.1)
        raise TimeoutError("server did not start")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def start_server():
    started = []

    def start(folder: Path, *args: str) -> Server:
        server = Server(folder, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill(signal.SIGTERM)
