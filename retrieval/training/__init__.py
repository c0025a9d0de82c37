"""Training retrieval models: a DPR bi-encoder (:mod:`retrieval.training.dpr`) or ColBERT (:mod:`retrieval.training.colbert`).

Both run one shared path: training data, dev split and mined hard negatives (:mod:`.data`),
dev evaluation by nDCG@10 through the Retriever family (:mod:`.dev`), options, precision,
trainer, atomic output and ``train_result.json`` (:mod:`.common`), model card (:mod:`.card`).
``python -m retrieval.training.dpr --help`` and ``python -m retrieval.training.colbert --help``
take the same shared flags.
"""
