"""The service over real uvicorn servers: search/add/delete round trip, the API key, validation, kill -9."""

from __future__ import annotations

import threading

import pytest

from retrieval.__main__ import main
from retrieval.service.client import ServiceClient, ServiceError, request_json
from retrieval.service.folder import find_folder
from retrieval.service.store import ServedIndex
from retrieval.service.wal import read_log
from tests.retrieval.service.conftest import DOCS, save_tiny


@pytest.fixture
def folder(tmp_path, minilm):
    return save_tiny(tmp_path / "idx", minilm)


@pytest.fixture(scope="module")
def server(tmp_path_factory, minilm, start_server):
    """One server (with an API key) for the tests that leave its documents as they found them."""
    return start_server(save_tiny(tmp_path_factory.mktemp("served") / "idx", minilm), "--api-key", "s3cret")


def test_search_add_delete_round_trip_with_api_key(server, minilm):
    from retrieval import Retriever

    folder = server.folder
    anonymous, client = ServiceClient(server.url), ServiceClient(server.url, api_key="s3cret")
    # searches need no key and equal the in-process retriever's
    local = Retriever.load(folder, model=minilm)
    queries = ["which language should I code in?", "capital of France"]
    remote = anonymous.search(queries, k=2)
    assert [[h.id for h in hits] for hits in remote] == [[h.id for h in hits] for hits in local.search(queries, k=2)]
    assert remote[0][0].metadata == {"source": "a.md"}
    # writes do
    new = {"id": "de", "text": "Berlin is the capital of Germany.", "source": "c.md"}
    with pytest.raises(ServiceError, match="401"):
        anonymous.add([new])
    with pytest.raises(ServiceError, match="401"):
        ServiceClient(server.url, api_key="wrong").delete(["py"])
    assert client.add([new]) == ["de"]
    assert client.search("capital of Germany", k=1)[0].id == "de"
    with pytest.raises(ServiceError, match="already"):
        client.add([new])  # all or nothing: a repeated id is refused
    client.delete(["de"])
    assert "de" not in [h.id for h in client.search("capital of Germany", k=4)]
    with pytest.raises(ServiceError, match="404"):
        client.delete(["nope"])
    stats = client.stats()
    assert stats["documents"] == len(DOCS) and stats["writes"] >= 2
    assert request_json("GET", server.url + "/openapi.json")["paths"].keys() >= {"/search", "/documents", "/health", "/stats"}


def test_bad_requests_get_422_naming_the_field(server):
    for body, field in [({"queries": "x", "k": 0}, "k"), ({"queries": []}, "queries"), ({"queries": ["ok", " "]}, "queries"),
                        ({"queries": "x", "modee": "dense"}, "modee"), ({"queries": "x", "mode": "sparse"}, "mode")]:
        with pytest.raises(ServiceError) as err:
            request_json("POST", server.url + "/search", body)
        assert err.value.status == 422 and field in str(err.value), body
    with pytest.raises(ServiceError) as err:
        request_json("POST", server.url + "/documents", {"documents": [{"text": "no id"}]}, headers={"X-API-Key": "s3cret"})
    assert err.value.status == 422 and "documents.0.id" in str(err.value)


def test_writes_beyond_loopback_need_an_api_key(folder, capsys):
    assert main(["serve", str(folder), "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err
    assert not (folder.parent / f".{folder.name}.server.json").exists()


def test_kill_9_during_acknowledged_writes_loses_none(server, minilm):
    """Last in the file: it kills the module's server (one model load fewer than a server of its own)."""
    from retrieval import Retriever

    folder = server.folder
    client = ServiceClient(server.url, api_key="s3cret", timeout=30)
    acknowledged, stop = [], threading.Event()

    def write_stream():
        i = 0
        while not stop.is_set():
            try:
                client.add([{"id": f"w{i}", "text": f"note number {i} about the weather"}])
            except ServiceError:
                return  # the server is gone: this write was never acknowledged
            acknowledged.append(f"w{i}")
            i += 1

    writer = threading.Thread(target=write_stream)
    writer.start()
    while len(acknowledged) < 12 and writer.is_alive():
        threading.Event().wait(0.02)
    server.kill()  # SIGKILL while writes keep coming
    stop.set()
    writer.join(timeout=60)
    assert len(acknowledged) >= 12
    restarted = ServedIndex(find_folder(folder), model=minilm)  # the server's start: replay the log, checkpoint
    assert restarted.counts["replayed"] >= len(acknowledged) and set(acknowledged) <= set(restarted.retriever.documents)
    restarted.close()
    saved = Retriever.load(folder, model=minilm)  # the checkpoint holds them all, the log is empty
    assert set(acknowledged) <= set(saved.documents) and {d["id"] for d in DOCS} <= set(saved.documents)
    assert read_log(folder.parent / f".{folder.name}.wal", find_folder(folder).snapshot_id()) == ([], "")
