"""What an adapter searches: any object with the ``Retriever.search`` API, or a running server by URL.

Both frameworks call retrievers from async code. A server is then searched with ``httpx``'s
async client (no thread held while the server works); an in-process retriever, whose search
is CPU-bound and thread-safe, runs in a worker thread (``asyncio.to_thread``) so the event loop
is never blocked.
"""

from __future__ import annotations

import asyncio

from retrieval.documents import Hit
from retrieval.service.client import ServiceClient, ServiceError, as_hit, error_detail


def as_searcher(source):
    """``source`` as something with ``search(query, k, **options)``: a URL string becomes a :class:`ServiceClient`."""
    if isinstance(source, str):
        if not source.startswith(("http://", "https://")):
            raise ValueError(f"{source!r}: give a Retriever, a ServiceClient or a server URL (http://...)")
        return ServiceClient(source)
    if not callable(getattr(source, "search", None)):
        raise ValueError(f"{type(source).__name__} has no search method: give a Retriever, a ServiceClient or a server URL")
    return source


def search(source, query: str, k: int, options: dict) -> list[Hit]:
    return source.search(query, k, **options)


async def asearch(source, query: str, k: int, options: dict) -> list[Hit]:
    """The same as :func:`search`, without blocking the event loop."""
    if not isinstance(source, ServiceClient):
        return await asyncio.to_thread(source.search, query, k, **options)
    import httpx

    headers = {"X-API-Key": source.api_key} if source.api_key else {}
    async with httpx.AsyncClient(timeout=source.timeout) as client:
        try:
            response = await client.post(f"{source.url}/search", json={"queries": [query], "k": k, **options}, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceError(f"cannot reach the server at {source.url}: {exc}") from None
    if response.status_code >= 400:
        raise ServiceError(f"POST {source.url}/search: {response.status_code} {error_detail(response.content)}", response.status_code)
    return [as_hit(h) for h in response.json()["results"][0]]
