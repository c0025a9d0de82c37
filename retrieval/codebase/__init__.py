"""Search a codebase or a folder of documents: walk it, cut it by language structure, index it incrementally.

One job per module:

- :mod:`retrieval.codebase.files`: the text files of a folder worth indexing (``.gitignore``
  honoured; binary, huge, non-UTF-8, vendored, minified, generated and lock files skipped and counted);
- language structure (tree-sitter units, Markdown sections, chunks that fit a model) lives one
  layer down in :mod:`retrieval.chunking`, so that :class:`retrieval.Retriever` cuts code and
  Markdown documents the same way;
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
