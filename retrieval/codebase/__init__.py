"""Search a codebase or a folder of documents: walk it, cut it by language structure, index it incrementally.

One job per module:

- :mod:`retrieval.codebase.files`: the text files of a folder worth indexing (``.gitignore``
  honoured, binary, huge and non-UTF-8 files skipped and counted);
- :mod:`retrieval.codebase.chunkers`: language structure (Python definitions, Markdown
  sections, plain text) and chunks of it that fit a model;
- :mod:`retrieval.codebase.index`: the index folder (manifest, retriever, stored rows), built
  and brought up to date re-embedding only what changed, and searched;
- ``python -m retrieval index|search`` (:mod:`retrieval.codebase.cli`): the command line.

Nothing is imported here, so that reading files and chunks (as :mod:`evaluation.codeset` does)
does not load the index code.
"""
