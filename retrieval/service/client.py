"""A client of the service with the ``Retriever`` API: ``search``, ``add``, ``upsert``, ``delete``.

Standard library only (``urllib``) and :mod:`retrieval.documents`: importing it costs ~30 ms,
against 1-2 s for torch, so a command that answers through a running server starts fast.
Hits come back as :class:`retrieval.documents.Hit`, the same objects an in-process
``Retriever.search`` returns, so code written for one runs on the other.

Examples
--------
>>> from retrieval.service.client import ServiceClient              # doctest: +SKIP
>>> client = ServiceClient("http://127.0.0.1:8765")
>>> client.add([{"id": "py", "text": "Python is a programming language."}])
['py']
>>> client.search("Which language should I code in?", k=1)[0].id
'py'
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import fields

from retrieval.documents import Document, Hit, as_document

HIT_FIELDS = tuple(f.name for f in fields(Hit))


class ServiceError(ValueError):
    """The server refused a request (the message is its ``detail``) or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def error_detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail", body.decode(errors="replace"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:500]
    if isinstance(detail, list):  # FastAPI's 422: one entry per invalid field
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
    return str(detail)


def request_json(method: str, url: str, body=None, *, headers: dict | None = None, timeout: float = 300):
    """One HTTP request with a JSON body and answer; :class:`ServiceError` for an error status or no answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ServiceError(f"{method} {url}: {exc.code} {error_detail(exc.read())}", exc.code) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise ServiceError(f"cannot reach the server at {url}: {getattr(exc, 'reason', exc)}") from None


def as_hit(record: dict) -> Hit:
    return Hit(**{name: record[name] for name in HIT_FIELDS if name in record})


def document_record(item) -> dict:
    """A document (anything ``Retriever.add`` takes, with an id) as the service's JSON."""
    doc = as_document(item, auto_id="")
    if not doc.id:
        raise ValueError("documents sent to a server need an id: give (id, text) pairs or dicts with 'id'")
    return {"id": doc.id, "text": doc.text, "title": doc.title, "metadata": doc.metadata}


class ServiceClient:
    """A running service at ``url``, searched and updated like a :class:`retrieval.Retriever`.

    Parameters
    ----------
    url
        The server's address, e.g. ``http://127.0.0.1:8765``.
    api_key
        Sent as ``X-API-Key`` with writes (needed when the server has one).
    timeout
        Seconds to wait for an answer.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 300):
        self.url = url.rstrip("/")
        self.api_key, self.timeout = api_key, timeout
        self._lexical, self._documents = None, None

    def _call(self, method: str, route: str, body=None):
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        return request_json(method, self.url + route, body, headers=headers, timeout=self.timeout)

    def search(self, queries: str | list[str], k: int = 10, *, mode: str | None = None, where: dict | None = None,
               rerank: str | None = None, rerank_depth: int | None = None, group_by_document: bool | None = None,
               fusion: str | None = None, weight: float | None = None) -> list[Hit] | list[list[Hit]]:
        """Top-``k`` hits for one query (a list of :class:`Hit`) or for each of a list, as ``Retriever.search``.

        Options left at None are not sent: the server's retriever applies its own defaults.
        """
        single = isinstance(queries, str)
        options = {"mode": mode, "where": where, "rerank": rerank, "rerank_depth": rerank_depth,
                   "group_by_document": group_by_document, "fusion": fusion, "weight": weight}
        body = {"queries": [queries] if single else list(queries), "k": k, **{n: v for n, v in options.items() if v is not None}}
        results = [[as_hit(h) for h in hits] for hits in self._call("POST", "/search", body)["results"]]
        return results[0] if single else results

    @property
    def lexical(self) -> bool | None:
        """True where the server's retriever keeps a lexical (BM25) index, else None (as ``Retriever.lexical`` reads)."""
        if self._lexical is None:
            self._lexical = bool(self.stats().get("lexical"))
        return True if self._lexical else None

    @property
    def documents(self) -> dict[str, Document]:
        """The server's documents by id, with their titles and metadata but not their texts (fetched once)."""
        if self._documents is None:
            listed = self._call("GET", "/documents")["documents"]
            self._documents = {d["id"]: Document(id=d["id"], text="", title=d.get("title", ""), metadata=d.get("metadata", {})) for d in listed}
        return self._documents

    def add(self, documents) -> list[str]:
        """Add documents (ids new); they are durable once this returns."""
        return self._call("POST", "/documents", {"documents": [document_record(d) for d in documents]})["ids"]

    def upsert(self, documents) -> list[str]:
        """Add documents, replacing those whose id exists."""
        return self._call("POST", "/documents", {"documents": [document_record(d) for d in documents], "upsert": True})["ids"]

    def delete(self, ids) -> None:
        self._call("DELETE", "/documents", {"ids": [str(i) for i in ids]})

    def health(self, timeout: float | None = None) -> dict:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        return request_json("GET", self.url + "/health", headers=headers, timeout=timeout or self.timeout)

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def __len__(self) -> int:
        return int(self.health()["documents"])
