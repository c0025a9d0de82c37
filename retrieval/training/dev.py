"""Dev evaluation during training: nDCG@10 of the dev split, for a bi-encoder or a ColBERT model.

:class:`DevEvaluator` is a sentence-transformers ``SentenceEvaluator``, so the trainer keeps the
best checkpoint by dev nDCG@10 (Recall@100, MRR@10 and MAP@100 are logged too). It searches
the whole dev corpus the way the toolkit serves the model: a :class:`retrieval.Retriever` over
a FAISS index (``--index``) for a bi-encoder, a :class:`retrieval.ColbertRetriever` over the
multi-vector index for ColBERT; :func:`retrieval.metrics.retrieve` and
:func:`retrieval.metrics.score` (pytrec_eval, as beir computes them) turn the search into
scores. The dev set is the dataset's dev split or held-out training queries; never test.

Scores are those of the fp32 weights that are saved (the bf16 autocast wrapper of mixed-precision
training is taken off while evaluating), as ``python -m evaluation.beir`` measures them.
"""

from __future__ import annotations

import contextlib
import logging

from sentence_transformers.evaluation import SentenceEvaluator

from retrieval import ColbertRetriever, Retriever
from retrieval.documents import document_text
from retrieval.metrics import retrieve, score
from retrieval.mining import distributed_info, embed

logger = logging.getLogger("retrieval.training")


@contextlib.contextmanager
def full_precision_forward(model):
    """Run ``model`` without the bf16 autocast wrapper that mixed-precision training puts on its ``forward``."""
    patched = model.__dict__.get("forward")
    original = model.__dict__.get("_original_forward")  # kept by accelerate when it wraps forward in autocast
    if patched is None or original is None:
        yield model
        return
    model.forward = original
    try:
        yield model
    finally:
        model.forward = patched


class DevEvaluator(SentenceEvaluator):
    """nDCG@10 (primary), Recall@100, MRR@10, MAP@100 of a search over the whole dev corpus.

    Parameters
    ----------
    dev
        A :class:`retrieval.training.data.DevSet`.
    multi_vector
        ColBERT: search through :class:`retrieval.ColbertRetriever` (``nbits`` per stored dimension);
        otherwise a :class:`retrieval.Retriever` with the FAISS ``index`` factory string.
    start_embeddings
        Bi-encoder: the dev corpus embedded by the untrained model (mining computes them), reused by the
        evaluation at step 0 instead of embedding the corpus again.
    """

    def __init__(self, dev, *, multi_vector: bool = False, index: str = "Flat", nbits: int = 4, name: str = "dev",
                 show_progress: bool = True, start_embeddings=None):
        super().__init__()
        self.dev = dev
        self.multi_vector = multi_vector
        self.index = index
        self.nbits = nbits
        self.name = name
        self.show_progress = show_progress
        self.start_embeddings = start_embeddings
        self.primary_metric = "ndcg@10"
        self.greater_is_better = True

    def __call__(self, model, output_path=None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        rank, _ = distributed_info()
        show = self.show_progress and rank == 0
        query_ids = list(self.dev.queries)
        queries = [self.dev.queries[q] for q in query_ids]
        with full_precision_forward(model):
            if self.multi_vector:
                retriever = ColbertRetriever(model, nbits=self.nbits, show_progress=show)
                retriever.add({"id": d, "text": document_text(doc)} for d, doc in self.dev.corpus.items())
                query_emb = retriever.embed_queries(queries)
            else:
                retriever = self._bi_encoder_index(model, steps, show)
                query_emb = embed(model, queries, "query", show_progress=show)
        metrics = score(self.dev.qrels, retrieve(retriever, query_ids, query_emb))
        if rank == 0:
            logger.info("dev set at step %s: %s", steps, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def _bi_encoder_index(self, model, steps: int, show: bool) -> Retriever:
        doc_ids = list(self.dev.corpus)
        if steps == 0 and self.start_embeddings is not None:
            doc_emb = self.start_embeddings
        else:
            doc_emb = embed(model, [document_text(self.dev.corpus[d]) for d in doc_ids], "document", show_progress=show)
        self.start_embeddings = None  # the model changes from here on
        retriever = Retriever(model, index=self.index)
        retriever.add(({"id": d, "text": ""} for d in doc_ids), embeddings=doc_emb)
        return retriever

    @property
    def description(self) -> str:
        return "Information Retrieval"

    def get_config_dict(self):
        config = {"queries": len(self.dev.queries), "documents": len(self.dev.corpus)}
        return config | ({"nbits": self.nbits} if self.multi_vector else {"index": self.index})
