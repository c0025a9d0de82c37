"""The HTTP API: ``POST /search``, ``POST /documents``, ``DELETE /documents``, ``GET /health``, ``GET /stats``.

Endpoints are plain ``def`` functions: FastAPI runs them in its worker thread pool, so searches
(CPU-bound in torch and FAISS, which release the GIL) run concurrently while the event loop
keeps accepting. Writes require the ``X-API-Key`` header when the server was given a key,
compared in constant time. Errors a caller can fix come back as JSON ``{"detail": message}``:
400 (bad value, unsupported option), 403 (read-only folder), 401 (key), 404 (unknown id), 422
(a body that does not match the schema: FastAPI's validation, field by field).
"""

from __future__ import annotations

import hmac
import time

from fastapi import Depends, FastAPI, Header, HTTPException, Request

from retrieval.service.schemas import DeleteRequest, DocumentsRequest, SearchRequest, SearchResponse, WriteResponse
from retrieval.service.store import ReadOnlyError, ServedIndex


class Activity:
    """When the last request arrived (for the idle timeout)."""

    def __init__(self):
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def idle_seconds(self) -> float:
        return time.monotonic() - self.last


def _errors_as_http(call):
    """Run ``call``; errors a caller can fix become HTTP errors with the message."""
    try:
        return call()
    except ReadOnlyError as exc:
        raise HTTPException(403, str(exc)) from None
    except KeyError as exc:
        raise HTTPException(404, f"unknown id: {exc.args[0] if exc.args else exc}") from None
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, str(exc)) from None
    except NotImplementedError as exc:  # an index kind without this operation
        raise HTTPException(400, f"this retriever's index cannot do that: {exc or type(exc).__name__}") from None


def create_app(index: ServedIndex, *, api_key: str | None = None, instance: str = "", activity: Activity | None = None) -> FastAPI:
    """The FastAPI app over a :class:`ServedIndex`; ``instance`` is the id ``/health`` reports (the server record's token)."""
    activity = activity or Activity()
    app = FastAPI(
        title="retrieval service",
        description=f"Search and update the retriever saved at {index.folder.path}.",
        version="1",
    )

    @app.middleware("http")
    async def _touch(request: Request, call_next):
        activity.touch()
        return await call_next(request)

    def require_key(x_api_key: str | None = Header(None, description="the server's --api-key (writes only)")):
        if api_key is not None and not hmac.compare_digest((x_api_key or "").encode(), api_key.encode()):
            raise HTTPException(401, "writes need the X-API-Key header with the server's --api-key")

    @app.get("/health")
    def health() -> dict:
        """Liveness, and which folder this server serves (``instance`` matches its server record)."""
        return {"status": "ok", "instance": instance, "path": str(index.folder.path), "documents": len(index.retriever)}

    @app.get("/stats")
    def stats() -> dict:
        """Counts and settings: documents, model, index, searches, writes, checkpoints, reloads."""
        return index.stats()

    @app.get("/documents")
    def list_documents() -> dict:
        """Every document's id, title and metadata (texts left out), e.g. to list the values a filter can take."""
        return {"documents": index.listing()}

    @app.post("/search", response_model=SearchResponse)
    def search(request: SearchRequest) -> dict:
        """Top-``k`` hits of each query (``queries`` may be one string)."""
        started = time.perf_counter()
        queries = [request.queries] if isinstance(request.queries, str) else request.queries
        results = _errors_as_http(lambda: index.search(queries, request.k, request.options()))
        return {"results": results, "took_ms": (time.perf_counter() - started) * 1000}

    @app.post("/documents", response_model=WriteResponse, dependencies=[Depends(require_key)])
    def add_documents(request: DocumentsRequest) -> dict:
        """Add documents (all or nothing), or replace them by id with ``upsert``; durable once answered."""
        started = time.perf_counter()
        op = "upsert" if request.upsert else "add"
        ids = _errors_as_http(lambda: index.write(op, {"documents": [d.as_record() for d in request.documents]}))
        return {"ids": list(ids), "documents": len(index.retriever), "took_ms": (time.perf_counter() - started) * 1000}

    @app.delete("/documents", response_model=WriteResponse, dependencies=[Depends(require_key)])
    def delete_documents(request: DeleteRequest) -> dict:
        """Remove documents by id (an unknown id: 404, nothing removed); durable once answered."""
        started = time.perf_counter()
        ids = _errors_as_http(lambda: index.write("delete", {"ids": list(request.ids)}))
        return {"ids": list(ids), "documents": len(index.retriever), "took_ms": (time.perf_counter() - started) * 1000}

    return app
