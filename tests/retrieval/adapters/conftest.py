"""A tiny in-memory retriever, and a real uvicorn server over it on 127.0.0.1 in a thread (no second model load)."""

from __future__ import annotations

import threading
import time

import pytest

QUERY = "Which language should I write my program in?"


@pytest.fixture(scope="session")
def tiny(minilm):
    from retrieval import Retriever

    retriever = Retriever(minilm, index="Flat")
    retriever.add([
        {"id": "py", "text": "Python is a popular programming language.", "source": "a.md"},
        {"id": "fr", "text": "Paris is the capital and largest city of France.", "source": "b.md"},
        {"id": "cat", "text": "Cats are small domesticated felines that purr."},
        {"id": "rust", "text": "Rust is a systems programming language without a garbage collector."},
    ])
    return retriever


@pytest.fixture(scope="module")
def served_url(tmp_path_factory, minilm, tiny):
    """The URL of ``python -m retrieval serve``'s app on uvicorn, in this process; stopped after the module."""
    import uvicorn

    from retrieval.service.app import create_app
    from retrieval.service.folder import find_folder
    from retrieval.service.server import bind
    from retrieval.service.store import ServedIndex

    index = ServedIndex(find_folder(tiny.save(tmp_path_factory.mktemp("adapters") / "idx")), model=minilm)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(index), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)
    index.close()
