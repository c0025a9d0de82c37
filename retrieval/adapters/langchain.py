"""The toolkit's retrievers as a LangChain retriever (``langchain_core.retrievers.BaseRetriever``).

An app on LangChain switches with two lines::

    from retrieval.adapters.langchain import LangChainRetriever
    retriever = LangChainRetriever(retriever=Retriever.load("notes-index"), k=4)   # or a server URL

Each hit becomes ``Document(page_content=hit.text, metadata={...hit.metadata, "id", "score",
"title"}, id=hit.id)``. ``k`` and any search option (``mode``, ``where``, ``rerank`` ...) can be
given at construction or per call (``retriever.invoke(q, k=3)``), as LangChain's standard
retriever tests (``langchain_tests.RetrieversIntegrationTests``) require; ``ainvoke`` is truly
async for a server URL (see :mod:`retrieval.adapters.source`).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator

from retrieval.adapters import source as sources


def to_document(hit) -> Document:
    return Document(page_content=hit.text, metadata={**hit.metadata, "id": hit.id, "score": hit.score, "title": hit.title}, id=hit.id)


class LangChainRetriever(BaseRetriever):
    """A LangChain retriever over a ``Retriever`` (or ``ColbertRetriever``, ``ServiceClient``) or a server URL.

    Parameters
    ----------
    retriever
        The toolkit retriever to search, or the URL of ``python -m retrieval serve``.
    k
        Documents per query (overridable per call: ``invoke(query, k=...)``).
    search_kwargs
        Options passed to ``search``: ``mode``, ``where``, ``rerank``, ``rerank_depth`` ...
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = Field(4, ge=1)
    search_kwargs: dict = Field(default_factory=dict)

    @field_validator("retriever")
    @classmethod
    def _searchable(cls, value):
        return sources.as_searcher(value)

    def _options(self, kwargs: dict) -> tuple[int, dict]:
        options = {**self.search_kwargs, **kwargs}
        return int(options.pop("k", self.k)), options

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs) -> list[Document]:
        k, options = self._options(kwargs)
        return [to_document(h) for h in sources.search(self.retriever, query, k, options)]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs) -> list[Document]:
        k, options = self._options(kwargs)
        return [to_document(h) for h in await sources.asearch(self.retriever, query, k, options)]
