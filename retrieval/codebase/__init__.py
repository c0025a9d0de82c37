"""Search a codebase or a folder of documents: walk it, cut it by language structure, index it incrementally.

One job per module:

- :mod:`retrieval.codebase.files`: the text files of a folder worth indexing (``.gitignore``
  honoured; binary, huge, non-UTF-8, vendored, minified, generated and lock files skipped and counted);
- :mod:`retrieval.codebase.units`: the :class:`Unit` a language reads out of a file;
- :mod:`retrieval.codebase.grammars` and :mod:`retrieval.codebase.treesitter`: the tree-sitter
  table (one query per language) and the one engine that turns a parse into units;
- :mod:`retrieval.codebase.chunkers`: the language registry (tree-sitter, Markdown sections,
  plain text) and chunks that fit a model;
- :mod:`retrieval.codebase.index`: the index folder (manifest, retriever, stored rows), built
  and brought up to date re-embedding only the units whose text changed;
- :mod:`retrieval.codebase.search`: filters (path, language, kind, grep) as the Retriever's
  ``where``, the mode and the score floor; :mod:`retrieval.codebase.hits`: hits as text or JSON;
- :mod:`retrieval.codebase.watch`: ``index --watch``, polling with a debounce;
- ``python -m retrieval index|search`` (:mod:`retrieval.codebase.cli`): the command line;
- :mod:`retrieval.codebase.errors`: the one error type, light enough for the client path.

Nothing is imported here, so that reading files and chunks (as :mod:`evaluation.codeset` does)
does not load the index code.
"""
