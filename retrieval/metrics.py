"""Retrieval metrics through pytrec_eval (as beir's ``EvaluateRetrieval`` and MTEB compute them), and the run they score.

A metric is ``name@k`` or a plain pytrec_eval measure. ``ndcg``, ``map``, ``recall``,
``precision`` (or ``p``), ``mrr`` and ``success`` (or ``hit_rate``) at ``k`` are BEIR's and
MTEB's names for pytrec_eval's ``ndcg_cut.k``, ``map_cut.k``, ``recall.k``, ``P.k``,
``recip_rank`` over each query's top ``k`` and ``success.k``; any other measure of
``pytrec_eval.supported_measures`` is taken as it is (``bpref``, ``Rprec``, ``P@20``,
``ndcg_cut@3``). Means are rounded to 5 decimals, as beir and MTEB round them, so the
published 0.64508 reads the same here.

Every judged query counts: one the run left empty, or whose only relevant document is not in
the corpus (the judgment kept, relevant but unretrievable: :class:`retrieval.beir_data.BeirData`),
scores 0 in the mean, as in MTEB and BEIR. MRR ranks ties as pytrec_eval does (score, then
document id, both descending), the order MTEB uses since it fixed beir's insertion-order ties.

Examples
--------
>>> from retrieval.metrics import score
>>> score({"q": {"d1": 1}}, {"q": {"d1": 0.9, "d2": 0.5}})["ndcg@10"]
1.0
>>> score({"q": {"d1": 1}}, {"q": {"d2": 0.9, "d1": 0.5}}, ["mrr@1", "mrr@10", "P@2"])
{'mrr@1': 0.0, 'mrr@10': 0.5, 'P@2': 0.5}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TOP_K = 100
METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
ALIASES = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P", "p": "P", "mrr": "recip_rank",
           "success": "success", "hit_rate": "success"}


def retrieve(retriever, query_ids: list[str], query_embeddings, k: int = TOP_K, *, queries: list[str] | None = None,
             mode: str = "dense", rerank=None, rerank_depth: int = 100, fusion: str | None = None,
             weight: float | None = None, batch: int = 64) -> dict:
    """``{qid: {doc_id: score}}`` with the top ``k`` documents of a retriever, never the one sharing the query's id.

    Dense without reranking searches the embeddings as they are; any other ``mode`` (``"lexical"``,
    ``"hybrid"``) or a ``rerank`` model goes through ``retriever.search`` with the query texts
    ``queries``, ``batch`` queries at a time.
    """
    if mode == "dense" and rerank is None:
        hits = retriever.search_by_vector(query_embeddings, k + 1)
    else:
        if queries is None or len(queries) != len(query_ids):
            raise ValueError(f"mode {mode!r} / reranking needs the query texts, one per query id")
        hits = []
        for i in range(0, len(queries), batch):
            embeddings = None if mode == "lexical" else query_embeddings[i : i + batch]
            hits.extend(retriever.search(queries[i : i + batch], k + 1, mode=mode, rerank=rerank, rerank_depth=rerank_depth,
                                         fusion=fusion, weight=weight, query_embeddings=embeddings))
    results = {}
    for qid, row in zip(query_ids, hits):
        kept = [h for h in row if h.id != qid][:k]
        results[qid] = {h.id: h.score for h in kept}
    return results


@dataclass(frozen=True)
class Measure:
    """One metric as asked (``name``) and how pytrec_eval computes it: ``measure`` (``ndcg_cut.10``), the key of
    its per-query value (``ndcg_cut_10``) and, for MRR, the depth the run is cut to first."""

    name: str
    measure: str
    key: str
    cut: int | None = None


def parse_metric(name: str) -> Measure:
    """The :class:`Measure` of ``name`` (``ndcg@10``, ``P@5``, ``bpref``); a :class:`ValueError` says what is accepted."""
    import pytrec_eval

    base, _, cutoff = name.strip().partition("@")
    plain = not cutoff and base in pytrec_eval.supported_measures  # map, ndcg, bpref: pytrec_eval's own, uncut
    family = base if plain else ALIASES.get(base.lower(), base)
    if family not in pytrec_eval.supported_measures:
        raise ValueError(f"unknown metric {name!r}: use ndcg, map, recall, precision, mrr, success at a cut-off "
                         f"(ndcg@10) or a pytrec_eval measure ({', '.join(sorted(pytrec_eval.supported_measures))})")
    if not cutoff:
        return Measure(name, family, family)
    if family == "recip_rank":
        return Measure(name, family, family, cut=_cutoff(name, cutoff))
    if family in ("ndcg_cut", "map_cut", "recall", "P", "success"):
        _cutoff(name, cutoff)
    return Measure(name, f"{family}.{cutoff}", f"{family}_{cutoff}")


def _cutoff(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"metric {name!r}: the cut-off must be a positive integer, not {text!r}")
    return int(text)


def parse_metrics(names: Iterable[str]) -> list[Measure]:
    """:func:`parse_metric` of each name, in order, repeats dropped."""
    return [parse_metric(n) for n in dict.fromkeys(names)]


def _top(ranked: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` best documents in pytrec_eval's order: score, then document id, both descending."""
    return dict(sorted(ranked.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k])


def per_query(qrels: Mapping, results: Mapping, metrics: Iterable[str] = METRICS) -> dict[str, dict[str, float]]:
    """``{qid: {metric: value}}`` for every judged query (one missing from ``results`` ranks nothing and scores 0)."""
    import pytrec_eval

    measures = parse_metrics(metrics)
    qrels = {q: dict(j) for q, j in qrels.items()}
    run = {q: {d: float(s) for d, s in results.get(q, {}).items()} for q in qrels}
    out: dict[str, dict[str, float]] = {q: {} for q in qrels}
    for cut in {m.cut for m in measures}:  # MRR@k: recip_rank over the run cut to k
        group = [m for m in measures if m.cut == cut]
        cut_run = run if cut is None else {q: _top(r, cut) for q, r in run.items()}
        values = pytrec_eval.RelevanceEvaluator(qrels, {m.measure for m in group}).evaluate(cut_run)
        for m in group:
            for q in qrels:
                got = values.get(q, {})
                if got and m.key not in got:
                    raise ValueError(f"metric {m.name!r} gives several values ({', '.join(sorted(got))}): "
                                     f"name one with a cut-off, e.g. {m.name}@10")
                out[q][m.name] = float(got.get(m.key, 0.0))
    return {q: {m.name: values[m.name] for m in measures} for q, values in out.items()}  # in the order asked


def mean_scores(scores: Mapping[str, Mapping[str, float]], metrics: Iterable[str]) -> dict[str, float]:
    """The mean of each metric over the queries of :func:`per_query`'s output, rounded to 5 decimals as beir rounds."""
    names = list(dict.fromkeys(metrics))
    n = max(len(scores), 1)
    return {m: round(sum(s[m] for s in scores.values()) / n, 5) for m in names}


def score(qrels: Mapping, results: Mapping, metrics: Iterable[str] = METRICS) -> dict[str, float]:
    """The mean of each metric (default nDCG@10, Recall@100, MRR@10, MAP@100) over every judged query."""
    metrics = list(dict.fromkeys(metrics))
    return mean_scores(per_query(qrels, results, metrics), metrics)


def check_metrics(names: Iterable[str]) -> list[str]:
    """``names`` once each, after scoring a one-query run with them: a bad name fails here, before any encoding."""
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not names:
        raise ValueError("no metric given")
    per_query({"q": {"d": 1}}, {"q": {"d": 1.0}}, names)
    return names
