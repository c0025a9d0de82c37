"""Scale past one process: encode a corpus into embedding shards on Ray, build indexes from the shards.

One job per module:

- :mod:`retrieval.scale.sources`: a corpus (BEIR ``corpus.jsonl``, a folder of files, a
  ``datasets`` dataset) read as a stream, and its deterministic split into shards;
- :mod:`retrieval.scale.encode`: the encoding job, an actor pool writing shards, resumable (its Ray
  session: :func:`retrieval.parallel.ray_session`);
- :mod:`retrieval.scale.build`: a Retriever folder built from shards in bounded memory;
- ``python -m retrieval encode|build-index`` (:mod:`retrieval.scale.cli`): the command line.

Nothing is imported here, so that ``python -m retrieval`` loads Ray only for these commands.
"""
