"""The LangChain adapter against LangChain's own retriever contract (``langchain_tests``), in-process and over HTTP."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from retrieval.adapters.langchain import LangChainRetriever
from tests.retrieval.adapters.conftest import QUERY


@pytest.mark.asyncio  # strict pytest-asyncio runs the suite's async test (ainvoke) only when marked
@pytest.mark.filterwarnings("ignore:.*is marked with '@pytest.mark.asyncio' but it is not an async function")
class TestStandardContract(RetrieversIntegrationTests):
    """LangChain's standard retriever tests: k at construction and per call, Documents, ainvoke."""

    @pytest.fixture(autouse=True)
    def _source(self, tiny):
        type(self).source = tiny

    @property
    def retriever_constructor(self):
        return LangChainRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retriever": self.source}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_documents_carry_text_metadata_and_scores_in_process_and_over_http(tiny, served_url):
    local = LangChainRetriever(retriever=tiny, k=2, search_kwargs={"where": {"source": "a.md"}})
    docs = local.invoke(QUERY)
    assert [d.id for d in docs] == ["py"] and docs[0].page_content.startswith("Python")
    assert docs[0].metadata["source"] == "a.md" and 0 < docs[0].metadata["score"] <= 1
    remote = LangChainRetriever(retriever=served_url, k=2)
    sync, concurrent = remote.invoke(QUERY), asyncio.run(_gather(remote))
    assert all(isinstance(d, Document) for d in sync) and [d.id for d in sync] == [d.id for d in LangChainRetriever(retriever=tiny, k=2).invoke(QUERY)]
    assert all([d.id for d in docs] == [d.id for d in sync] for docs in concurrent)
    with pytest.raises(ValueError, match="server URL"):
        LangChainRetriever(retriever="not-a-url")


async def _gather(retriever):
    return await asyncio.gather(*(retriever.ainvoke(QUERY) for _ in range(4)))
