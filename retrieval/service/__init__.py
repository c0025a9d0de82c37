"""A resident retrieval service: one process keeps a saved index and its model loaded, and answers over HTTP.

Loading the model costs 6-9 s a process (measured on the offline MiniLM, 2 cores), so every
``python -m retrieval search`` paid it again; a resident server pays it once. One concept per
module:

- :mod:`retrieval.service.folder`: which folder is served (a saved ``Retriever``, or an index
  folder holding one, such as a codebase index) and its sidecar files;
- :mod:`retrieval.service.wal`: the write-ahead log that makes an acknowledged write survive kill -9;
- :mod:`retrieval.service.store`: the served index (searches, durable writes, checkpoints, reloads);
- :mod:`retrieval.service.schemas`: the request and response models (pydantic: 422 with a clear message);
- :mod:`retrieval.service.app`: the FastAPI application (``/search``, ``/documents``, ``/health``, ``/stats``);
- :mod:`retrieval.service.server`: uvicorn on a bound socket, the idle timeout, the server record;
- :mod:`retrieval.service.client`: a client with the ``Retriever`` search API (standard library only);
- :mod:`retrieval.service.resident`: find the folder's running server, or start one and wait for it;
- :mod:`retrieval.service.cli`: ``python -m retrieval serve DIR``.

Nothing is imported here: the client side (``client``, ``resident``) imports neither torch nor
FAISS, so a query through a running server costs a Python start-up, not a model load.
"""
