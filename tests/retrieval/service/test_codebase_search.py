"""``python -m retrieval search`` through a server: the same output as in-process, a resident server reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from retrieval.__main__ import main
from retrieval.service.client import ServiceClient
from tests.conftest import REPO

FILES = {
    "storage.py": 'def file_digest(path):\n    """SHA-256 of a file, read a megabyte at a time."""\n    return path\n',
    "clock.py": 'def parse_duration(text):\n    """Seconds in a duration like 3h20m."""\n    return 0\n',
    "NOTES.md": "# Notes\n\nThe service keeps the model loaded between queries.\n",
}
QUERY = "checksum of a file"


@pytest.fixture
def codebase(tmp_path, minilm):
    from retrieval.codebase.index import index_codebase

    root = tmp_path / "repo"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    out = tmp_path / "index"
    index_codebase(root, out, model=minilm, show_progress=False)
    yield out
    record = tmp_path / ".index.server.json"
    if record.exists():  # the resident server outlives the command by design: stop it here
        os.kill(json.loads(record.read_text())["pid"], signal.SIGTERM)


def search_output(capsys, *argv) -> str:
    assert main(["search", *argv]) == 0
    return capsys.readouterr().out


def test_server_answers_equal_the_in_process_ones(codebase, capsys, monkeypatch):
    monkeypatch.setenv("RETRIEVAL_SERVER_IDLE_TIMEOUT", "90")  # stops by itself if the test cannot stop it
    expected = search_output(capsys, str(codebase), QUERY, "-k", "3", "--all", "--no-server")
    assert "storage.py" in expected.split("\n")[0]
    assert not (codebase.parent / ".index.server.json").exists()  # not a terminal: nothing was started
    assert search_output(capsys, str(codebase), QUERY, "-k", "3", "--all", "--resident") == expected  # starts one
    url = json.loads((codebase.parent / ".index.server.json").read_text())["url"]
    assert search_output(capsys, str(codebase), QUERY, "-k", "3", "--all", "--server", url) == expected
    assert search_output(capsys, str(codebase), QUERY, "-k", "3", "--all") == expected  # a running one is used
    stats = ServiceClient(url).stats()
    assert stats["searches"] == 3 and stats["writable"] is False  # read-only: the manifest owns the retriever
    first = search_output(capsys, str(codebase), "duration", "--kind", "function", "-k", "1", "--all", "--lines", "0")
    assert "clock.py:1  parse_duration" in first  # --kind checked against the server's document listing


def test_the_client_side_imports_neither_torch_nor_faiss():
    code = ("import sys, retrieval, retrieval.__main__, retrieval.service.resident, retrieval.service.client; "
            "print(sorted(m for m in ('torch', 'faiss', 'transformers', 'fastapi', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
