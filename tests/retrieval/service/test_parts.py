"""Parts of the service that need no server: folder detection, the idle stop, the choice of server."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from retrieval.service.app import Activity
from retrieval.service.folder import FolderError, find_folder
from retrieval.service.resident import pick_server
from retrieval.service.server import _stop_when_idle


def test_folders_are_recognised_and_others_named(tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "retriever.json").write_text("{}")
    assert find_folder(saved).writable and find_folder(saved).sidecar("wal").name == ".saved.wal"
    wrapped = tmp_path / "code-index"
    (wrapped / "retriever").mkdir(parents=True)
    (wrapped / "retriever" / "retriever.json").write_text("{}")
    folder = find_folder(wrapped)
    assert not folder.writable and folder.retriever_path == wrapped / "retriever"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="holds no saved retriever"):
        find_folder(tmp_path / "empty")
    assert find_folder(tmp_path).retriever_path == saved  # one saved retriever one level down
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "retriever.json").write_text("{}")
    with pytest.raises(FolderError, match="holds 2 saved retrievers"):
        find_folder(tmp_path)

    with pytest.raises(FolderError, match="not a folder"):
        find_folder(tmp_path / "missing")


def test_a_stale_record_is_not_a_server(tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "retriever.json").write_text("{}")
    (tmp_path / ".saved.server.json").write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:9", "token": "t"}))
    assert pick_server(saved, start=False) is None  # a dead pid: the command searches in-process
    assert pick_server(tmp_path / "missing", start=False) is None  # the in-process load will say what is wrong
    assert pick_server(saved, server="http://127.0.0.1:1") == "http://127.0.0.1:1"


def test_an_idle_server_is_told_to_stop():
    server, activity = SimpleNamespace(should_exit=False), Activity()
    activity.last -= 10
    _stop_when_idle(server, activity, idle_timeout=5)
    assert server.should_exit
