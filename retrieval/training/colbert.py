"""Train a ColBERT model on PyLate: ``python -m retrieval.training.colbert --model M --data D --output OUT``.

The model is a ``pylate.models.ColBERT`` (a plain encoder gets PyLate's 128-d projection,
[Q]/[D] prefixes, query expansion with [MASK] and the punctuation skiplist). What this module
adds to the shared path (:mod:`retrieval.training.common`: data, mining, dev evaluation,
trainer, atomic output, model card, ``train_result.json``) is the model, PyLate's
``ColBERTCollator`` and one of its losses:

- ``contrastive`` (``pylate.losses.Contrastive``): the query against its positive, the other
  documents of the batch and ``--hard-negatives`` mined by a dense ``--miner`` (the offline
  MiniLM by default; a ColBERT model cannot mine through the FAISS index) with the toolkit's
  miner (:func:`retrieval.mining.mine_hard_negatives`, false-negative margin);
- ``cached-contrastive`` (``CachedContrastive``, GradCache): the same with large batches
  computed ``--mini-batch-size`` at a time;
- ``distillation`` (``pylate.losses.Distillation``, KL divergence) on ``--teacher-scores``:
  JSONL lines ``{"query_id", "document_ids": [...], "scores": [...]}`` from any teacher.

The dev split is scored through the toolkit's multi-vector index (:class:`retrieval.ColbertRetriever`)
and the best checkpoint kept. The output loads with ``pylate.models.ColBERT(OUT)`` and
``ColbertRetriever(OUT)``.

Examples
--------
::

    python -m retrieval.training.colbert --data ../shared/data/scifact --output runs/colbert
    >>> from retrieval.training.colbert import train_colbert                   # doctest: +SKIP
    >>> train_colbert(None, "../shared/data/scifact", "runs/colbert", hard_negatives=2).scores["ndcg@10"]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from retrieval.colbert import load_colbert
from retrieval.documents import document_text
from retrieval.training.common import (
    HelpFormatter,
    RunInfo,
    TrainInputError,
    TrainOptions,
    TrainResult,
    add_training_arguments,
    fit as fit_model,
    run_cli,
    setup,
    training_arguments,
)
from retrieval.training.data import load_for_training, training_rows
from retrieval.training.dev import DevEvaluator

PROG = "python -m retrieval.training.colbert"
LOSSES = ("contrastive", "cached-contrastive", "distillation")
DEFAULT_HARD_NEGATIVES = 1
MINER = "all-MiniLM-L6-v2 (offline default)"


def read_teacher_scores(path: Path, queries: dict, corpus: dict) -> tuple[list[dict], list[str]]:
    """Rows of a teacher-scores JSONL file; a bad line stops with file:line, unknown ids are counted and skipped."""
    rows, unknown = [], 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                record = json.loads(raw.decode("utf-8"))
                qid, doc_ids, scores = str(record["query_id"]), [str(d) for d in record["document_ids"]], record["scores"]
                scores = [float(s) for s in scores]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise TrainInputError(f"{path}:{line_no}: expected {{'query_id', 'document_ids': [...], 'scores': [...]}}: {exc}") from None
            if len(doc_ids) != len(scores) or len(doc_ids) < 2:
                raise TrainInputError(f"{path}:{line_no}: needs at least 2 documents and one score per document")
            if qid not in queries or any(d not in corpus for d in doc_ids):
                unknown += 1
                continue
            rows.append({"query_id": qid, "document_ids": doc_ids, "scores": scores})
    warnings = [f"{path}: skipped {unknown} lines naming unknown query or document ids"] if unknown else []
    if not rows:
        raise TrainInputError(f"{path}: no line names a known query and known documents")
    return rows, warnings


def distillation_dataset(rows: list[dict], queries: dict, corpus: dict):
    """PyLate's KD layout: (query_id, document_ids, scores) rows resolved to texts by ``KDProcessing``."""
    from datasets import Dataset
    from pylate import utils

    n_ways = min(len(r["document_ids"]) for r in rows)
    train = Dataset.from_list([{**r, "document_ids": r["document_ids"][:n_ways], "scores": r["scores"][:n_ways]} for r in rows])
    query_ds = Dataset.from_dict({"query_id": list(queries), "text": list(queries.values())})
    doc_ds = Dataset.from_dict({"document_id": list(corpus), "text": [document_text(d) for d in corpus.values()]})
    train.set_transform(utils.KDProcessing(queries=query_ds, documents=doc_ds, n_ways=n_ways).transform)
    return train


def _check(loss: str, teacher_scores, mini_batch_size, query_length: int, document_length: int) -> None:
    if loss not in LOSSES:
        raise TrainInputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if loss == "distillation" and not teacher_scores:
        raise TrainInputError("the distillation loss needs --teacher-scores")
    if loss == "cached-contrastive" and not mini_batch_size:
        raise TrainInputError("the cached-contrastive loss needs --mini-batch-size")
    if document_length > 8192 or query_length < 1:
        raise TrainInputError("--document-length must be at most 8192 and --query-length positive")


def train_colbert(
    model: str | None,
    data,
    output: str | Path,
    *,
    loss: str = "contrastive",
    miner: str | None = None,
    teacher_scores: str | Path | None = None,
    query_length: int = 32,
    document_length: int = 300,
    **options,
) -> TrainResult:
    """Train a ColBERT model on ``data`` and write it to ``output`` (atomically).

    ``options`` are the shared :class:`retrieval.training.common.TrainOptions` (one per flag of
    ``python -m retrieval.training.colbert --help``; ``hard_negatives`` defaults to 1 here). Bad data,
    options or model raise before any training starts.
    """
    from pylate import losses

    from encoder import default_model, load_model

    _check(loss, teacher_scores, options.get("mini_batch_size"), query_length, document_length)
    opts, output, use_bf16 = setup({"hard_negatives": DEFAULT_HARD_NEGATIVES, **options}, output)
    training = load_for_training(data, opts)
    colbert = load_colbert(model, device=opts.device, dtype="float32", max_length=document_length,
                           query_length=query_length)
    mined, warnings = None, []
    if loss == "distillation":
        scored, warnings = read_teacher_scores(Path(teacher_scores), training.queries, training.corpus)
        rows, module = distillation_dataset(scored, training.queries, training.corpus), losses.Distillation(model=colbert)
    else:
        miner_model = load_model(miner or default_model(), device=opts.device, dtype="auto") if opts.hard_negatives else None
        rows, mined = training_rows(training, opts, miner_model)
        module = (losses.CachedContrastive(model=colbert, mini_batch_size=opts.mini_batch_size)
                  if loss == "cached-contrastive" else losses.Contrastive(model=colbert))
    evaluator = DevEvaluator(training.dev, multi_vector=True, show_progress=opts.show_progress) if training.dev else None
    info = RunInfo.describe(
        training, opts, miner=miner or MINER, mined=mined, trainer="retrieval.training.colbert",
        model=str(model or default_model()), loss=f"{loss} (pylate.losses.{type(module).__name__})",
        hyper={"query_length": query_length, "document_length": document_length},
        config={"loss": loss, "miner": miner, "teacher_scores": str(teacher_scores) if teacher_scores else None,
                "query_length": query_length, "document_length": document_length},
    )
    info.warnings += warnings
    return _fit(colbert, rows, module, output, opts, use_bf16, info, evaluator=evaluator,
                no_duplicates=loss != "distillation")


def _fit(colbert, rows, loss, output: Path, opts: TrainOptions, use_bf16: bool, info: RunInfo, *, evaluator=None,
         no_duplicates: bool = True) -> TrainResult:
    from pylate import utils

    args = training_arguments(opts, output, colbert, use_bf16=use_bf16, has_dev=evaluator is not None,
                              eval_on_start=False, no_duplicates=no_duplicates)  # a multi-vector dev run is costly
    info.hyper["batch_sampler"] = "NO_DUPLICATES" if no_duplicates else "BATCH_SAMPLER"
    return fit_model(colbert, rows, loss, output, opts, args, info, evaluator=evaluator,
                     data_collator=utils.ColBERTCollator(tokenize_fn=colbert.tokenize))


def fit(colbert, train_dataset, loss, output: str | Path, *, info: RunInfo | None = None, evaluator=None,
        no_duplicates: bool = True, **options) -> TrainResult:
    """Train a loaded ColBERT model on prepared rows (e.g. PyLate's KD layout) with the shared path; ``options``
    are :class:`retrieval.training.common.TrainOptions`. Saves the (best) model to ``output`` atomically."""
    opts, output, use_bf16 = setup(options, output)
    info = info or RunInfo("retrieval.training.colbert", model=str(getattr(colbert.model_card_data, "base_model", None) or "ColBERT"),
                           data=f"{len(train_dataset)} prepared rows", loss=type(loss).__name__)
    return _fit(colbert, train_dataset, loss, output, opts, use_bf16, info, evaluator=evaluator,
                no_duplicates=no_duplicates)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    groups = add_training_arguments(p)
    p.set_defaults(hard_negatives=DEFAULT_HARD_NEGATIVES)
    g = groups["model"]
    g.add_argument("--query-length", type=int, default=32, help="query tokens, [MASK]-expanded")
    g.add_argument("--document-length", type=int, default=300, help="document tokens, up to 8192")
    g = groups["negatives"]
    g.add_argument("--loss", default="contrastive", choices=LOSSES, help="training objective")
    g.add_argument("--miner", default=None, help="dense sentence-transformers model that mines the hard negatives "
                   "(default: the offline MiniLM)")
    g.add_argument("--teacher-scores", default=None, help='--loss distillation: JSONL of {"query_id", '
                   '"document_ids", "scores"} from any teacher')
    g.add_argument("--mini-batch-size", type=int, default=None, help="--loss cached-contrastive: rows per forward pass")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(train_colbert, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
