"""Request and response bodies of the service, as pydantic models.

FastAPI validates every request against them before any handler runs: a bad body is a 422
whose ``detail`` names the field (``["body", "k"]: Input should be greater than or equal to 1``),
never a traceback, and the models are the OpenAPI schema shown at ``/docs``. Unknown fields
are refused (``extra="forbid"``) so a misspelt option (``modee``) is an error, not silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_K = 10_000
MAX_QUERIES = 1_000


class SearchRequest(BaseModel):
    """``POST /search``: options left out are not passed, so the retriever's own defaults apply."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str] | str = Field(description="one query, or a list of queries answered together")
    k: int = Field(10, ge=1, le=MAX_K, description="hits per query")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(None, description="which index ranks (default: the retriever's)")
    where: dict[str, Any] | None = Field(None, description='metadata filter, e.g. {"source": "a.md"} or {"path": {"$glob": "src/**"}}')
    rerank: str | None = Field(None, description="reranker model (hub id or folder) applied to the first stage's top hits")
    rerank_depth: int | None = Field(None, ge=1, le=MAX_K, description="first-stage hits the reranker reads")
    group_by_document: bool | None = Field(None, description="rank parent documents by their best chunk")
    fusion: Literal["rrf", "convex"] | None = Field(None, description="how hybrid mode combines dense and lexical")
    weight: float | None = Field(None, ge=0.0, le=1.0, description="dense weight of the convex combination")

    @field_validator("queries")
    @classmethod
    def _queries_not_empty(cls, value):
        queries = [value] if isinstance(value, str) else value
        if not queries:
            raise ValueError("give at least one query")
        if len(queries) > MAX_QUERIES:
            raise ValueError(f"at most {MAX_QUERIES} queries per request, not {len(queries)}")
        for i, query in enumerate(queries):
            if not query.strip():
                raise ValueError(f"query {i} is empty: give non-empty text")
        return value

    def options(self) -> dict:
        """The search options the caller gave (not ``queries`` or ``k``)."""
        return self.model_dump(exclude_unset=True, exclude_none=True, exclude={"queries", "k"})


class HitOut(BaseModel):
    """One hit: the document's id, score, text, title and metadata (and any field a newer ``Hit`` has)."""

    model_config = ConfigDict(extra="allow")

    id: str
    score: float
    text: str
    title: str = ""
    metadata: dict[str, Any] = {}


class SearchResponse(BaseModel):
    results: list[list[HitOut]] = Field(description="per query, its hits best first")
    took_ms: float


class DocumentIn(BaseModel):
    """A document to add: an id (required, so a replayed write is the same write), its text, an optional title."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str
    title: str = ""
    metadata: dict[str, Any] = Field({}, description="any fields; filters (where=) match on them")

    def as_record(self) -> dict:
        return {**self.metadata, "id": self.id, "title": self.title, "text": self.text}


class DocumentsRequest(BaseModel):
    """``POST /documents``: add new documents, or with ``upsert`` replace those whose id exists."""

    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)
    upsert: bool = False


class DeleteRequest(BaseModel):
    """``DELETE /documents``: remove documents by id (a parent id removes its chunks)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(min_length=1)


class WriteResponse(BaseModel):
    ids: list[str]
    documents: int = Field(description="documents in the retriever after the write")
    took_ms: float
