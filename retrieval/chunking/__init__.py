"""Documents cut into chunks the model reads whole: token windows, or the text's own structure.

- :mod:`retrieval.chunking.windows`: the cut :meth:`retrieval.Retriever.add` applies
  (:class:`Chunking`): token windows with overlap, or a long code or Markdown file's own structure
  (``chunker="auto"``), the chunks' ids and offsets, MaxP grouping;
- :mod:`retrieval.chunking.units`: the :class:`~retrieval.chunking.units.Unit` a language reads out of a text;
- :mod:`retrieval.chunking.grammars` and :mod:`retrieval.chunking.treesitter`: the tree-sitter
  table (one query per language) and the one engine that turns a parse into units;
- :mod:`retrieval.chunking.structural`: the language registry (tree-sitter, Markdown sections,
  plain text) and structural chunks that fit a model.

Structure lives here, below the :class:`~retrieval.Retriever`, rather than in
:mod:`retrieval.codebase`, so that the Retriever and the codebase index cut a source file or a
Markdown page the same way. Only the window names are imported here: tree-sitter loads with
:mod:`~retrieval.chunking.structural`, on first use (the first long document that names a file).
"""

from retrieval.chunking.windows import (
    AUTO,
    DEFAULT_OVERLAP,
    WINDOWS,
    Chunker,
    Chunking,
    Piece,
    TokenOffsets,
    as_pieces,
    best_chunk_per_document,
    chunk_id,
    chunker_setting,
    document_path,
    model_token_offsets,
    window_spans,
)

__all__ = ["AUTO", "DEFAULT_OVERLAP", "WINDOWS", "Chunker", "Chunking", "Piece", "TokenOffsets", "as_pieces",
           "best_chunk_per_document", "chunk_id", "chunker_setting", "document_path", "model_token_offsets", "window_spans"]
