"""What a harness run writes: the flat summary JSON, the MTEB-schema file and each query's scores, and their flags.

Kept apart from :mod:`evaluation.beir` (the run itself) so every harness (BEIR, MLDR, code search)
and :mod:`evaluation.report` write the same three files the same way. All three are scored from
the record's ranked lists (``run``) against :meth:`retrieval.beir_data.BeirData.evaluation_qrels`
(judgments naming missing documents included, as MTEB and BEIR score them), so ``--metrics`` can
ask for any pytrec_eval measure after the fact without encoding again. Every file is written
atomically through :mod:`indexes.storage`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluation import mteb_results
from indexes import storage
from retrieval.beir_data import BeirData
from retrieval.metrics import METRICS, check_metrics, per_query, score


def summary(result: dict) -> dict:
    """The flat JSON of a record: everything but the ranked lists."""
    return {k: v for k, v in result.items() if k != "run"}


def write_outputs(result: dict, data: BeirData, *, output=None, mteb_dir=None, per_query_file=None,
                  metrics=METRICS, settings: dict | None = None) -> list[Path]:
    """Score ``metrics`` (any :mod:`retrieval.metrics` name), then write what was asked, each file atomically.

    ``output``: the flat summary JSON; ``mteb_dir``: the MTEB-schema file (:mod:`evaluation.mteb_results`);
    ``per_query_file``: ``{"metrics", "queries": {qid: {metric: value}}}`` (nDCG@10 always among them), what
    significance tests and confidence intervals need. Returns the paths written.
    """
    qrels = data.evaluation_qrels()
    metrics = list(dict.fromkeys(metrics))
    if metrics != list(result["metrics"]):
        result["metrics"] = score(qrels, result["run"], metrics)
    written = []
    if output:
        written.append(storage.write_json(output, summary(result)))
    if mteb_dir:
        scores = mteb_results.mteb_scores(qrels, result["run"])
        written.append(mteb_results.write_task_result(mteb_dir, result, scores, mteb_results.dataset_revision(data),
                                                      settings))
    if per_query_file:
        names = list(dict.fromkeys(["ndcg@10", *metrics]))
        queries = per_query(qrels, result["run"], names)
        written.append(storage.write_json(per_query_file, {"dataset": result["dataset"], "split": result["split"],
                                                           "model": result["model"], "metrics": names, "queries": queries}))
    return written


def metric_list(text: str) -> list[str]:
    """``--metrics``: comma-separated names, each checked now (argparse prints the reason of a bad one)."""
    try:
        return check_metrics(text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--metrics``, ``--mteb-dir``, ``--per-query``: what is scored and written besides ``--output``'s summary."""
    p.add_argument("--metrics", default=",".join(METRICS), type=metric_list,
                   help="comma-separated metrics: ndcg, map, recall, precision, mrr, success at a cut-off (ndcg@20) or any "
                   f"pytrec_eval measure (P@5, bpref, Rprec) (default: {','.join(METRICS)})")
    p.add_argument("--mteb-dir", default=None, metavar="DIR", help="also write the result in MTEB's schema, "
                   "DIR/<model>/<revision>/<Task>.json (nDCG, MAP, Recall, P, MRR at 1, 3, 5, 10, 100, 1000; main_score "
                   "nDCG@10) with the run's settings; mteb.TaskResult.from_disk loads it")
    p.add_argument("--per-query", default=None, metavar="FILE", help="also write each query's scores (nDCG@10 and "
                   "--metrics) as JSON: what evaluation.report's significance tests read")
