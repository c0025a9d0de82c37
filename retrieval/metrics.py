"""Retrieval metrics through pytrec_eval (as beir's ``EvaluateRetrieval`` computes them), and the run they score.

Examples
--------
>>> from retrieval.metrics import score
>>> score({"q": {"d1": 1}}, {"q": {"d1": 0.9, "d2": 0.5}})["ndcg@10"]
1.0
"""

from __future__ import annotations

TOP_K = 100
METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")


def retrieve(retriever, query_ids: list[str], query_embeddings, k: int = TOP_K) -> dict:
    """``{qid: {doc_id: score}}`` with the top ``k`` documents of a retriever, never the one sharing the query's id."""
    hits = retriever.search_by_vector(query_embeddings, k + 1)
    results = {}
    for qid, row in zip(query_ids, hits):
        kept = [h for h in row if h.id != qid][:k]
        results[qid] = {h.id: h.score for h in kept}
    return results


def score(qrels: dict, results: dict) -> dict[str, float]:
    """nDCG@10, Recall@100, MRR@10 and MAP@100 by pytrec_eval through beir."""
    from beir.retrieval.evaluation import EvaluateRetrieval

    ndcg, _map, recall, _ = EvaluateRetrieval.evaluate(qrels, results, [10, 100], ignore_identical_ids=False)
    mrr = EvaluateRetrieval.evaluate_custom(qrels, results, [10], metric="mrr")
    return {"ndcg@10": ndcg["NDCG@10"], "recall@100": recall["Recall@100"], "mrr@10": mrr["MRR@10"], "map@100": _map["MAP@100"]}
