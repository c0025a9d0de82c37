"""The toolkit's retrievers as a LlamaIndex retriever (``llama_index.core.retrievers.BaseRetriever``).

An app on LlamaIndex switches with two lines::

    from retrieval.adapters.llama_index import LlamaIndexRetriever
    retriever = LlamaIndexRetriever(Retriever.load("notes-index"), similarity_top_k=4)   # or a server URL

Each hit becomes ``NodeWithScore(node=TextNode(id_=hit.id, text=hit.text, metadata=...),
score=hit.score)``, what ``retrieve`` / ``aretrieve`` and the query engines built on them expect;
``similarity_top_k`` is LlamaIndex's own name for k. ``aretrieve`` is truly async for a server
URL (see :mod:`retrieval.adapters.source`).
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from retrieval.adapters import source as sources


def to_node(hit) -> NodeWithScore:
    metadata = {**hit.metadata, "title": hit.title} if hit.title else dict(hit.metadata)
    return NodeWithScore(node=TextNode(id_=hit.id, text=hit.text, metadata=metadata), score=float(hit.score))


class LlamaIndexRetriever(BaseRetriever):
    """A LlamaIndex retriever over a ``Retriever`` (or ``ColbertRetriever``, ``ServiceClient``) or a server URL.

    Parameters
    ----------
    retriever
        The toolkit retriever to search, or the URL of ``python -m retrieval serve``.
    similarity_top_k
        Nodes per query.
    search_kwargs
        Options passed to ``search``: ``mode``, ``where``, ``rerank``, ``rerank_depth`` ...
    **kwargs
        LlamaIndex's own ``BaseRetriever`` arguments (``callback_manager``, ``verbose`` ...).
    """

    def __init__(self, retriever, similarity_top_k: int = 4, search_kwargs: dict | None = None, **kwargs):
        if similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be at least 1, not {similarity_top_k}")
        self.retriever = sources.as_searcher(retriever)
        self.similarity_top_k = similarity_top_k
        self.search_kwargs = dict(search_kwargs or {})
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = sources.search(self.retriever, query_bundle.query_str, self.similarity_top_k, self.search_kwargs)
        return [to_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await sources.asearch(self.retriever, query_bundle.query_str, self.similarity_top_k, self.search_kwargs)
        return [to_node(h) for h in hits]
