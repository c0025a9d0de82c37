"""The LlamaIndex adapter as LlamaIndex calls retrievers: ``retrieve`` / ``aretrieve`` -> ``NodeWithScore``."""

from __future__ import annotations

import asyncio

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from retrieval.adapters.llama_index import LlamaIndexRetriever
from tests.retrieval.adapters.conftest import QUERY


def check(nodes, k):
    assert len(nodes) == k and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)


def test_retrieve_and_aretrieve_in_process_and_over_http(tiny, served_url):
    local = LlamaIndexRetriever(tiny, similarity_top_k=3)
    assert isinstance(local, BaseRetriever)
    nodes = local.retrieve(QUERY)
    check(nodes, 3)
    assert nodes[0].node.node_id in ("py", "rust") and "programming language" in nodes[0].node.get_content()
    assert local.retrieve(QueryBundle(QUERY)) == nodes  # a QueryBundle, as query engines pass it
    check(asyncio.run(local.aretrieve(QUERY)), 3)
    remote = LlamaIndexRetriever(served_url, similarity_top_k=2, search_kwargs={"where": {"source": "a.md"}})
    remote_nodes = remote.retrieve(QUERY)
    assert [n.node.node_id for n in remote_nodes] == ["py"] and remote_nodes[0].node.metadata["source"] == "a.md"
    assert [n.node.node_id for n in asyncio.run(remote.aretrieve(QUERY))] == ["py"]
