"""Ecosystem adapters: the toolkit's retrievers as LangChain and LlamaIndex retrievers.

- :mod:`retrieval.adapters.langchain`: ``LangChainRetriever``, a ``langchain_core`` ``BaseRetriever``
  returning ``Document(page_content, metadata)`` (``pip install -e ".[langchain]"``);
- :mod:`retrieval.adapters.llama_index`: ``LlamaIndexRetriever``, a ``llama_index.core`` ``BaseRetriever``
  returning ``NodeWithScore`` (``pip install -e ".[llama-index]"``);
- :mod:`retrieval.adapters.source`: what both search: a ``Retriever`` in this process, or a server URL.

Nothing is imported here, so neither framework is needed unless its adapter is used.
"""
