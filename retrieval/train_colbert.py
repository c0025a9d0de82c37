"""ColBERT training on PyLate: ``python -m retrieval.train_colbert --model M --data D --output OUT``.

The model is a ``pylate.models.ColBERT`` (a plain encoder gets PyLate's 128-d projection,
[Q]/[D] prefixes, query expansion with [MASK] and the punctuation skiplist). Training runs
in the sentence-transformers trainer with PyLate's ``ColBERTCollator`` and one of its losses:

- ``contrastive`` (``pylate.losses.Contrastive``): the query against its positive, the other
  documents of the batch and ``--hard-negatives`` mined by the toolkit's dense miner
  (:func:`retrieval.mining.mine_hard_negatives`, FAISS search with a false-negative margin);
- ``cached-contrastive`` (``CachedContrastive``, GradCache): the same with large batches
  computed ``--mini-batch-size`` at a time;
- ``distillation`` (``pylate.losses.Distillation``, KL divergence) on ``--teacher-scores``:
  JSONL lines ``{"query_id", "document_ids": [...], "scores": [...]}`` from any teacher.

Evaluation during training scores a dev split (the dataset's dev qrels, or a seeded
held-out share of the train queries; never test) with the toolkit's multi-vector index,
and the best checkpoint is kept. The output loads with ``pylate.models.ColBERT(OUT)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from encoder import ModelLoadError, default_model, load_model
from retrieval.colbert import load_colbert
from retrieval.documents import document_text
from retrieval.mining import mine_hard_negatives
from retrieval.train_dpr import TrainInputError, build_train_dataset, default_bf16_on, load_training_data

logger = logging.getLogger("retrieval.train_colbert")
LOSSES = ("contrastive", "cached-contrastive", "distillation")


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


def make_dev_evaluator(dev, *, nbits: int = 4, show_progress: bool = True):
    """nDCG@10 (and Recall@100, MRR@10, MAP@100) of the dev split through the multi-vector index."""
    from sentence_transformers.evaluation import SentenceEvaluator

    from evaluation.beir import retrieve, score
    from retrieval.colbert import ColbertRetriever
    from retrieval.train_dpr import full_precision_forward

    class ColbertDevEvaluator(SentenceEvaluator):
        def __init__(self):
            super().__init__()
            self.name, self.primary_metric, self.greater_is_better = "dev", "ndcg@10", True

        def __call__(self, model, output_path=None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
            with full_precision_forward(model):
                retriever = ColbertRetriever(model, nbits=nbits, show_progress=show_progress)
                docs = [{"id": d, "text": document_text(t)} for d, t in dev.corpus.items()]
                retriever.add(docs)
                query_ids = list(dev.queries)
                query_emb = retriever.embed_queries([dev.queries[q] for q in query_ids])
            metrics = score(dev.qrels, retrieve(retriever, query_ids, query_emb))
            logger.info("dev at step %s: %s", steps, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            metrics = self.prefix_name_to_metrics(metrics, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return ColbertDevEvaluator()


def train_colbert(
    model: str | None,
    data,
    output: str | Path,
    *,
    loss: str = "contrastive",
    hard_negatives: int = 1,
    miner: str | None = None,
    relative_margin: float | None = 0.05,
    teacher_scores: str | Path | None = None,
    query_length: int = 32,
    document_length: int = 300,
    epochs: float = 3,
    batch_size: int = 32,
    mini_batch_size: int | None = None,
    learning_rate: float = 3e-5,
    warmup_ratio: float = 0.05,
    gradient_accumulation: int = 1,
    max_steps: int = -1,
    bf16: str = "auto",
    evaluate: bool = True,
    dev_fraction: float = 0.1,
    seed: int = 42,
    device: str | None = None,
    show_progress: bool = True,
) -> dict:
    """Train a ColBERT model and save it to ``output`` (atomically: a temporary folder renamed at the end).

    Returns the run's record: data, loss, hyperparameters, mining statistics, dev scores, seconds.
    Bad data, options or model raise before any training starts.
    """
    from pylate import losses

    if loss not in LOSSES:
        raise TrainInputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if loss == "distillation" and not teacher_scores:
        raise TrainInputError("the distillation loss needs --teacher-scores")
    if loss == "cached-contrastive" and not mini_batch_size:
        raise TrainInputError("the cached-contrastive loss needs --mini-batch-size")
    if document_length > 8192 or query_length < 1:
        raise TrainInputError("--document-length must be at most 8192 and --query-length positive")
    training = load_training_data(data, dev_fraction=dev_fraction if evaluate else 0.0, seed=seed)
    colbert = load_colbert(model, device=device, dtype="float32", max_length=document_length, query_length=query_length)
    run = {"data": training.description, "loss": loss, "warnings": list(training.warnings)}

    if loss == "distillation":
        rows, warnings = read_teacher_scores(Path(teacher_scores), training.queries, training.corpus)
        run["warnings"] += warnings
        train_dataset = distillation_dataset(rows, training.queries, training.corpus)
        loss_module = losses.Distillation(model=colbert)
        run["teacher_scores"] = str(teacher_scores)
    else:
        negatives = None
        if hard_negatives:
            miner_model = load_model(miner or default_model(), device=device, dtype="auto")
            negatives, stats = mine_hard_negatives(
                miner_model, training.queries, training.corpus, training.qrels, hard_negatives,
                relative_margin=relative_margin, seed=seed, show_progress=show_progress,
            )
            run["mining"] = {"miner": miner or "all-MiniLM-L6-v2 (offline default)", "relative_margin": relative_margin,
                             "stats": stats.summary() if hasattr(stats, "summary") else str(stats)}
            del miner_model
        train_dataset, dropped = build_train_dataset(training, negatives, hard_negatives if negatives else 0)
        run["dropped_pairs"] = dropped
        loss_module = (
            losses.CachedContrastive(model=colbert, mini_batch_size=mini_batch_size)
            if loss == "cached-contrastive"
            else losses.Contrastive(model=colbert)
        )

    evaluator = make_dev_evaluator(training.dev, show_progress=show_progress) if evaluate and training.dev else None
    run["hyperparameters"] = {"query_length": query_length, "document_length": document_length, "hard_negatives": hard_negatives}
    return fit(
        colbert, train_dataset, loss_module, output, run=run, evaluator=evaluator, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, warmup_ratio=warmup_ratio, gradient_accumulation=gradient_accumulation,
        max_steps=max_steps, bf16=bf16, seed=seed, no_duplicates=loss != "distillation", show_progress=show_progress,
    )


def fit(
    colbert,
    train_dataset,
    loss_module,
    output: str | Path,
    *,
    run: dict | None = None,
    evaluator=None,
    epochs: float = 3,
    batch_size: int = 32,
    learning_rate: float = 3e-5,
    warmup_ratio: float = 0.05,
    gradient_accumulation: int = 1,
    max_steps: int = -1,
    bf16: str = "auto",
    seed: int = 42,
    no_duplicates: bool = True,
    show_progress: bool = True,
) -> dict:
    """Run the sentence-transformers trainer with PyLate's collator; save the (best) model to ``output`` atomically."""
    from pylate import utils
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    run = dict(run or {})
    output = Path(output)
    use_bf16 = default_bf16_on(str(colbert.device)) if bf16 == "auto" else bf16 == "on"
    steps_per_epoch = math.ceil(len(train_dataset) / (batch_size * gradient_accumulation))
    run["hyperparameters"] = {
        **run.get("hyperparameters", {}),
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "warmup_ratio": warmup_ratio,
        "gradient_accumulation": gradient_accumulation, "max_steps": max_steps, "bf16": use_bf16, "seed": seed,
        "train_rows": len(train_dataset), "steps_per_epoch": steps_per_epoch,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(work / "checkpoints"),
            num_train_epochs=epochs,
            max_steps=max_steps,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=gradient_accumulation,
            learning_rate=learning_rate,
            warmup_steps=warmup_ratio,  # a float below 1 is a ratio in transformers 5
            bf16=use_bf16,
            seed=seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES if no_duplicates else BatchSamplers.BATCH_SAMPLER,
            eval_strategy="epoch" if evaluator else "no",
            save_strategy="epoch" if evaluator else "no",
            save_total_limit=1,
            load_best_model_at_end=evaluator is not None,
            metric_for_best_model="eval_dev_ndcg@10" if evaluator else None,
            logging_steps=max(1, steps_per_epoch // 10),
            disable_tqdm=not show_progress,
            report_to="none",
            use_cpu=str(colbert.device) == "cpu",
        )
        trainer = SentenceTransformerTrainer(
            model=colbert, args=args, train_dataset=train_dataset, loss=loss_module, evaluator=evaluator,
            data_collator=utils.ColBERTCollator(tokenize_fn=colbert.tokenize),
        )
        start = time.perf_counter()
        trainer.train()
        run["train_seconds"] = round(time.perf_counter() - start, 1)
        run["loss_history"] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        run["dev"] = [
            {k.removeprefix("eval_dev_"): v for k, v in h.items() if k.startswith("eval_dev_")} | {"epoch": h.get("epoch")}
            for h in trainer.state.log_history if "eval_dev_ndcg@10" in h
        ]
        colbert.save_pretrained(str(work / "model"))
        (work / "model" / "training_run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
        if output.exists():
            shutil.rmtree(output)
        (work / "model").replace(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m retrieval.train_colbert", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="PyLate ColBERT model or any encoder (hub id or folder; default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--data", required=True, help="BEIR folder with qrels/train.tsv (dev.tsv optional), or a datasets dataset of (anchor, positive[, negative...])")
    p.add_argument("--output", required=True, help="folder for the trained model (written at the end, atomically)")
    p.add_argument("--loss", default="contrastive", choices=LOSSES, help="training objective (default: contrastive)")
    p.add_argument("--hard-negatives", type=int, default=1, help="negatives per query mined with the dense miner (0: in-batch only; default 1)")
    p.add_argument("--miner", default=None, help="dense sentence-transformers model that mines hard negatives (default: the offline MiniLM)")
    p.add_argument("--margin", type=float, default=0.05, help="relative false-negative margin: a negative scores at most (1 - margin) x its positive (default 0.05)")
    p.add_argument("--teacher-scores", default=None, help='--loss distillation: JSONL of {"query_id", "document_ids", "scores"} from any teacher')
    p.add_argument("--query-length", type=int, default=32, help="query tokens, [MASK]-expanded (default 32)")
    p.add_argument("--document-length", type=int, default=300, help="document tokens, up to 8192 (default 300)")
    p.add_argument("--epochs", type=float, default=3, help="training epochs (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="queries per batch (default 32)")
    p.add_argument("--mini-batch-size", type=int, default=None, help="--loss cached-contrastive: rows per forward pass")
    p.add_argument("--lr", type=float, default=3e-5, help="peak learning rate (default 3e-5; the paper's Table 9 for ModernBERT: base 8e-5, large 1e-4)")
    p.add_argument("--warmup-ratio", type=float, default=0.05, help="share of steps of linear warmup (default 0.05)")
    p.add_argument("--gradient-accumulation", type=int, default=1, help="batches per optimizer step (default 1)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: run all epochs)")
    p.add_argument("--bf16", default="auto", choices=["auto", "on", "off"], help="bf16 mixed precision (auto: where the hardware runs it natively)")
    p.add_argument("--no-eval", action="store_true", help="skip the dev evaluation (and best-checkpoint selection)")
    p.add_argument("--dev-fraction", type=float, default=0.1, help="share of train queries held out as dev when the data has no dev split (default 0.1)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("retrieval").setLevel(logging.INFO)
    try:
        run = train_colbert(
            args.model, args.data, args.output, loss=args.loss, hard_negatives=args.hard_negatives, miner=args.miner,
            relative_margin=args.margin, teacher_scores=args.teacher_scores, query_length=args.query_length,
            document_length=args.document_length, epochs=args.epochs, batch_size=args.batch_size,
            mini_batch_size=args.mini_batch_size, learning_rate=args.lr, warmup_ratio=args.warmup_ratio,
            gradient_accumulation=args.gradient_accumulation, max_steps=args.max_steps, bf16=args.bf16,
            evaluate=not args.no_eval, dev_fraction=args.dev_fraction, seed=args.seed, device=args.device,
            show_progress=not args.quiet,
        )
    except (TrainInputError, ModelLoadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained in {run['train_seconds']}s; model written to {args.output}")
    for entry in run.get("dev", []):
        print(f"dev epoch {entry.get('epoch')}: nDCG@10 {entry['ndcg@10']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
