"""Train a DPR-style bi-encoder: ``python -m retrieval.train_dpr --model M --data D --output OUT``.

One encoder embeds queries and documents; training pulls each query toward its judged
document and away from every other document in the batch (in-batch negatives), plus
optional hard negatives mined with the model itself. Everything heavy is
sentence-transformers: ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` (or ``CachedMultipleNegativesRankingLoss`` with
``--mini-batch-size``, GradCache for batches larger than memory), the ``NO_DUPLICATES``
batch sampler, linear warmup/decay, bf16, gradient accumulation, DDP under ``torchrun``.

What this module adds:

- data: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv``, optional
  ``qrels/dev.tsv``; read by :func:`retrieval.beir_data.load_beir`) or a ``datasets`` dataset
  with (anchor, positive[, negative ...]) text columns (``load_from_disk`` / ``load_dataset``);
- hard negatives (``--hard-negatives N``) mined by :mod:`retrieval.mining` with the toolkit's
  FAISS index, before training, with the false-negative margin of sentence-transformers;
- dev evaluation with the toolkit's BEIR harness (:func:`evaluation.beir.retrieve` /
  :func:`evaluation.beir.score`: nDCG@10, Recall@100, MRR@10, MAP@100) as a
  ``SentenceEvaluator``, so the trainer keeps the best checkpoint by dev nDCG@10. The dev
  set is the dataset's dev split, else a seeded held-out share of the training queries;
  never the test split;
- bad input (no positives, unknown ids, unknown model, bad options) stops with
  ``error: ...`` and exit code 2 before any training;
- the output folder is written atomically (built beside ``OUT``, renamed at the end) and is
  a plain sentence-transformers model (``SentenceTransformer(OUT)``, ``python -m
  evaluation.beir --model OUT``, ``Retriever(OUT)``) whose ``README.md`` model card lists
  the data, loss, hyperparameters and dev scores, with ``train_dpr.json`` beside it.

Examples
--------
Command line (``--help`` explains every flag)::

    python -m retrieval.train_dpr --model sentence-transformers/all-MiniLM-L6-v2 \\
        --data ../shared/data/scifact --output runs/minilm-scifact --hard-negatives 5
    torchrun --nproc_per_node 2 -m retrieval.train_dpr --model ... --data ... --output ... --batch-size 16

Library::

    >>> from retrieval.train_dpr import train_dpr                            # doctest: +SKIP
    >>> result = train_dpr("answerdotai/ModernBERT-base", "../shared/data/scifact", "runs/mb", hard_negatives=5)
    >>> result.output, result.scores["ndcg@10"]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shlex
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from retrieval.documents import document_text
from retrieval.mining import distributed_info, embed, mine_hard_negatives

logger = logging.getLogger("retrieval.train_dpr")

EXIT_BAD_INPUT = 2
SUMMARY_FILE = "train_dpr.json"
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = 3e-5
MODERNBERT_LR = {"base": 8e-5, "large": 1e-4}  # ModernBERT paper (arXiv 2412.13663), Table 9, DPR column
DEFAULT_MAX_LENGTH_CAP = 512
# --mini-batch-size auto: a step holding more tokens than this (rows x texts per row x max length) trains with
# CachedMultipleNegativesRankingLoss. Measured on CPU, MiniLM-L6 at 256 tokens: batch 32 with 5 hard negatives
# (224 texts) peaks at 21 GB with the plain loss (OOM-killed on a 23 GB machine), 4.3 GB cached.
AUTO_CACHE_TOKENS = 32768
METRIC_NAMES = ("ndcg@10", "recall@100", "mrr@10", "map@100")
PRECISIONS = ("auto", "bf16", "fp32")


class TrainInputError(ValueError):
    """Bad options or data, found before training starts (exit code 2 on the command line)."""


# --------------------------------------------------------------------------- data


@dataclass
class DevSet:
    """Queries, judgments and the corpus they are searched in."""

    corpus: dict[str, object]  # id -> {"title", "text"} or text
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    description: str


@dataclass
class TrainingData:
    """Training pairs before mining, plus what mining and dev evaluation need."""

    name: str
    kind: str  # "beir" or "datasets"
    description: str
    queries: dict[str, str] = field(default_factory=dict)  # training queries with positives
    corpus: dict[str, object] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # training positives only
    dataset: object = None  # a datasets.Dataset (kind "datasets") when not mining
    columns: list[str] = field(default_factory=list)
    dev: DevSet | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def num_pairs(self) -> int:
        if self.kind == "datasets" and self.dataset is not None:
            return len(self.dataset)
        return sum(len(d) for d in self.qrels.values())


def _held_out(keys: list[str], fraction: float, cap: int, seed: int) -> set[str]:
    """A seeded sample of ``round(fraction * len(keys))`` keys (at most ``cap``, at least 1 when fraction > 0)."""
    if fraction <= 0 or len(keys) < 2:
        return set()
    n = min(max(1, round(fraction * len(keys))), cap, len(keys) - 1)
    return set(random.Random(seed).sample(sorted(keys), n))


def _positives(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out = {}
    for qid, judged in qrels.items():
        pos = {did: s for did, s in judged.items() if s > 0}
        if pos:
            out[qid] = pos
    return out


def is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "qrels").is_dir()


def load_beir_training(path: Path, *, dev_fraction: float, max_dev_queries: int, seed: int) -> TrainingData:
    from retrieval.beir_data import DataError, load_beir

    try:
        train = load_beir(path, "train")
    except DataError as exc:
        raise TrainInputError(f"cannot train on {path}: {exc}") from None
    qrels_file = path / "qrels" / "train.tsv"
    positives = _positives(train.qrels)
    if not positives:
        raise TrainInputError(f"{qrels_file}: no judgment with a positive score (> 0): nothing to train on")
    warnings = list(train.warnings)
    dev = None
    if (path / "qrels" / "dev.tsv").is_file():
        try:
            dev_data = load_beir(path, "dev")
        except DataError as exc:
            raise TrainInputError(f"cannot use the dev split of {path}: {exc}") from None
        warnings += dev_data.warnings
        dev_qrels = _positives(dev_data.qrels)
        if not dev_qrels:
            raise TrainInputError(f"{path / 'qrels' / 'dev.tsv'}: no judgment with a positive score (> 0)")
        overlap = set(dev_qrels) & set(positives)
        if overlap:
            warnings.append(f"{len(overlap)} dev queries are also training queries; they were removed from training")
            positives = {q: d for q, d in positives.items() if q not in overlap}
            if not positives:
                raise TrainInputError(f"{qrels_file}: every training query is also a dev query: nothing to train on")
        dev = DevSet(train.corpus, {q: dev_data.queries[q] for q in dev_qrels}, dev_qrels,
                     f"dev split ({len(dev_qrels)} queries, qrels/dev.tsv)")
    else:
        held = _held_out(list(positives), dev_fraction, max_dev_queries, seed)
        if held:
            dev_qrels = {q: positives.pop(q) for q in sorted(held)}
            dev = DevSet(train.corpus, {q: train.queries[q] for q in dev_qrels}, dev_qrels,
                         f"{len(dev_qrels)} training queries held out (seed {seed}; no dev split)")
    for w in warnings:
        logger.warning(w)
    return TrainingData(
        name=path.name,
        kind="beir",
        description=f"BEIR folder {path} (train split, {len(positives)} queries, "
        f"{sum(len(d) for d in positives.values())} (query, document) pairs; corpus {len(train.corpus)} documents)",
        queries={q: train.queries[q] for q in positives},
        corpus=train.corpus,
        qrels=positives,
        dev=dev,
        warnings=warnings,
    )


def _load_dataset_object(data: str, config: str | None):
    """``load_from_disk`` for a saved dataset folder, ``load_dataset`` for data files or a hub name."""
    import datasets

    path = Path(data)
    try:
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return datasets.load_from_disk(str(path))
        if path.is_file():
            builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}.get(path.suffix)
            if builder is None:
                raise TrainInputError(f"{path}: unknown data file type (use .jsonl, .json, .csv or .parquet)")
            kwargs = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
            return datasets.load_dataset(builder, data_files=str(path), **kwargs)
        if path.is_dir():
            return datasets.load_dataset(str(path), config)
        if data.startswith((".", "/", "~")) or data.count("/") > 1:
            raise TrainInputError(f"{data}: no such file or folder")
        return datasets.load_dataset(data, config)
    except TrainInputError:
        raise
    except Exception as exc:  # offline hub, missing config, unreadable files
        raise TrainInputError(f"could not load dataset {data!r}: {type(exc).__name__}: {exc}") from None


def _check_text_columns(ds, where: str) -> list[str]:
    import datasets

    columns = list(ds.column_names)
    if len(columns) < 2:
        raise TrainInputError(f"{where}: needs (anchor, positive[, negative ...]) text columns, found {columns}")
    bad = [c for c in columns if not (isinstance(ds.features[c], datasets.Value) and ds.features[c].dtype in ("string", "large_string"))]
    if bad:
        raise TrainInputError(
            f"{where}: columns {bad} are not text; keep only (anchor, positive[, negative ...]) string columns "
            f"(found {columns})"
        )
    return columns


def _rows_to_dev(rows, columns: list[str], description: str) -> DevSet:
    """A retrieval task from text rows: anchors are the queries, every positive/negative text is a document."""
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for row in rows:
        for col in columns[1:]:
            text = row[col]
            if text:
                doc_ids.setdefault(text, f"d{len(doc_ids)}")
        if not row[columns[0]] or not row[columns[1]]:
            continue
        qid = query_ids.setdefault(row[columns[0]], f"q{len(query_ids)}")
        qrels.setdefault(qid, {})[doc_ids[row[columns[1]]]] = 1
    return DevSet({i: t for t, i in doc_ids.items()}, {i: t for t, i in query_ids.items()}, qrels, description)


def load_datasets_training(
    data, *, config: str | None, split: str, dev_fraction: float, max_dev_queries: int, seed: int
) -> TrainingData:
    """Training rows from a ``datasets`` dataset: an object, a saved folder, a data file or a hub name."""
    import datasets

    if isinstance(data, (datasets.Dataset, datasets.DatasetDict)):
        obj, label = data, "(in memory)"
    else:
        obj, label = _load_dataset_object(str(data), config), repr(str(data))
    dev_rows = None
    dev_description = ""
    if isinstance(obj, datasets.DatasetDict):
        if split not in obj:
            raise TrainInputError(f"dataset {label} has no split {split!r} (available splits: {', '.join(obj)})")
        ds = obj[split]
        for name in ("dev", "validation"):
            if name in obj and name != split:
                dev_rows = obj[name]
                dev_description = f"{name} split"
                break
    else:
        ds = obj
    where = f"dataset {label}"
    columns = _check_text_columns(ds, where)
    anchors = list(ds[columns[0]])
    positives = list(ds[columns[1]])
    keep = [i for i, (a, p) in enumerate(zip(anchors, positives)) if a and p and a.strip() and p.strip()]
    warnings = []
    if len(keep) < len(ds):
        warnings.append(f"{where}: skipped {len(ds) - len(keep)} rows with an empty anchor or positive")
    if not keep:
        raise TrainInputError(f"{where}: no row has both an anchor and a positive: nothing to train on")
    dev_anchors: set[str] = set()
    dev = None
    if dev_rows is not None:
        if _check_text_columns(dev_rows, f"{where} ({dev_description})")[:2] != columns[:2]:
            raise TrainInputError(f"{where}: the {dev_description} has other columns than the train split")
        dev = _rows_to_dev(dev_rows, columns, f"{dev_description} ({len(set(dev_rows[columns[0]]))} queries)")
    else:
        unique = list(dict.fromkeys(anchors[i] for i in keep))
        dev_anchors = _held_out(unique, dev_fraction, max_dev_queries, seed)
        if dev_anchors:
            dev_idx = [i for i in keep if anchors[i] in dev_anchors]
            dev = _rows_to_dev(ds.select(dev_idx), columns,
                               f"{len(dev_anchors)} training queries held out (seed {seed}; no dev split)")
    train_idx = [i for i in keep if anchors[i] not in dev_anchors]
    train = ds.select(train_idx) if len(train_idx) < len(ds) else ds
    for w in warnings:
        logger.warning(w)
    name = label if not isinstance(data, (str, Path)) else (Path(str(data)).name or str(data))
    return TrainingData(
        name=name,
        kind="datasets",
        description=f"datasets {label}{f' ({config})' if config else ''}, split {split}: {len(train)} rows, "
        f"columns {columns}",
        dataset=train,
        columns=columns,
        dev=dev,
        warnings=warnings,
    )


def load_training_data(
    data,
    *,
    dev_fraction: float = 0.1,
    max_dev_queries: int = 1000,
    seed: int = 42,
    dataset_config: str | None = None,
    dataset_split: str = "train",
) -> TrainingData:
    """Read ``data``: a BEIR folder, or a ``datasets`` dataset (object, saved folder, data file or hub name)."""
    if not isinstance(data, (str, Path)):
        return load_datasets_training(data, config=dataset_config, split=dataset_split, dev_fraction=dev_fraction,
                                      max_dev_queries=max_dev_queries, seed=seed)
    path = Path(data)
    if is_beir_folder(path):
        return load_beir_training(path, dev_fraction=dev_fraction, max_dev_queries=max_dev_queries, seed=seed)
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        raise TrainInputError(f"{path} looks like a BEIR folder but has no qrels/ folder (qrels/train.tsv is needed)")
    return load_datasets_training(
        data, config=dataset_config, split=dataset_split, dev_fraction=dev_fraction,
        max_dev_queries=max_dev_queries, seed=seed,
    )


def _text_training_view(data: TrainingData) -> TrainingData:
    """Give a ``datasets`` training set ids (queries, documents, qrels) so it can be mined like a BEIR one."""
    ds, cols = data.dataset, data.columns
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for col in cols[1:]:
        for text in list(ds[col]):
            if text:
                doc_ids.setdefault(text, f"d{len(doc_ids)}")
    for anchor, positive in zip(list(ds[cols[0]]), list(ds[cols[1]])):
        qid = query_ids.setdefault(anchor, f"q{len(query_ids)}")
        qrels.setdefault(qid, {})[doc_ids[positive]] = 1
    data.corpus = {i: t for t, i in doc_ids.items()}
    data.queries = {i: t for t, i in query_ids.items()}
    data.qrels = qrels
    return data


def build_train_dataset(data: TrainingData, negatives: dict[str, list[str]] | None, num_negatives: int):
    """Rows (anchor, positive[, negative_1 ... negative_N]); with negatives, queries short of N are left out."""
    from datasets import Dataset

    if negatives is None and data.kind == "datasets":
        return data.dataset, 0
    anchor_col, positive_col = (data.columns[:2] if data.kind == "datasets" else ["anchor", "positive"])
    rows: dict[str, list[str]] = {anchor_col: [], positive_col: []}
    neg_cols = [f"negative_{i}" for i in range(1, num_negatives + 1)] if negatives is not None else []
    for col in neg_cols:
        rows[col] = []
    dropped = 0
    for qid, judged in data.qrels.items():
        negs = negatives.get(qid, []) if negatives is not None else []
        if negatives is not None and len(negs) < num_negatives:
            dropped += len(judged)
            continue
        for did in judged:
            rows[anchor_col].append(data.queries[qid])
            rows[positive_col].append(document_text(data.corpus[did]))
            for col, neg in zip(neg_cols, negs):
                rows[col].append(document_text(data.corpus[neg]))
    if not rows[anchor_col]:
        raise TrainInputError(
            f"no training pair has {num_negatives} hard negatives; lower --hard-negatives, "
            "raise --range-max or loosen --margin"
        )
    return Dataset.from_dict(rows), dropped


# --------------------------------------------------------------------------- evaluation


@contextlib.contextmanager
def full_precision_forward(model):
    """Run ``model`` without the bf16 autocast wrapper that mixed-precision training puts on its ``forward``.

    Dev scores are then those of the saved fp32 weights, as ``python -m evaluation.beir`` measures them.
    """
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


def make_dev_evaluator(dev: DevSet, *, name: str = "dev", index: str = "Flat", show_progress: bool = True,
                       start_embeddings=None):
    """A ``SentenceEvaluator`` scoring ``dev`` with the toolkit's BEIR harness (nDCG@10 is the primary metric).

    ``start_embeddings``: the dev corpus embedded by the untrained model (mining computes them), reused by
    the evaluation at step 0 instead of embedding the corpus again.
    """
    from sentence_transformers.evaluation import SentenceEvaluator

    class BeirDevEvaluator(SentenceEvaluator):
        """nDCG@10, Recall@100, MRR@10, MAP@100 of a FAISS search over the whole dev corpus."""

        def __init__(self):
            super().__init__()
            self.dev = dev
            self.name = name
            self.index = index
            self.show_progress = show_progress
            self.primary_metric = "ndcg@10"
            self.greater_is_better = True
            self.start_embeddings = start_embeddings

        def __call__(self, model, output_path=None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
            from evaluation.beir import retrieve, score
            from retrieval.retriever import Retriever

            rank, _ = distributed_info()
            show = self.show_progress and rank == 0
            doc_ids = list(self.dev.corpus)
            query_ids = list(self.dev.queries)
            with full_precision_forward(model):
                if steps == 0 and self.start_embeddings is not None:
                    doc_emb = self.start_embeddings
                else:
                    doc_emb = embed(model, [document_text(self.dev.corpus[d]) for d in doc_ids], "document",
                                    show_progress=show)
                self.start_embeddings = None  # the model changes from here on
                query_emb = embed(model, [self.dev.queries[q] for q in query_ids], "query", show_progress=show)
            retriever = Retriever(model, index=self.index)
            retriever.add(({"id": d, "text": ""} for d in doc_ids), embeddings=doc_emb)
            metrics = score(self.dev.qrels, retrieve(retriever, query_ids, query_emb))
            if rank == 0:
                logger.info("dev set at step %s: %s", steps, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            metrics = self.prefix_name_to_metrics(metrics, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

        @property
        def description(self) -> str:
            return "Information Retrieval"

        def get_config_dict(self):
            return {"queries": len(self.dev.queries), "documents": len(self.dev.corpus), "index": self.index}

    BeirDevEvaluator.__module__ = __name__ if __name__ != "__main__" else "retrieval.train_dpr"
    return BeirDevEvaluator()


# --------------------------------------------------------------------------- model


def model_config(model):
    """The transformers config of the encoder inside a ``SentenceTransformer`` (or None)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "model_type", None):
            return config
    return None


def default_learning_rate(model) -> float:
    """ModernBERT paper Table 9 for ModernBERT (base 8e-5, large 1e-4), else 3e-5."""
    config = model_config(model)
    if config is not None and config.model_type == "modernbert":
        return MODERNBERT_LR["large" if getattr(config, "hidden_size", 768) >= 1024 else "base"]
    return DEFAULT_LR


def set_pooling(model, pooling: str) -> None:
    """Replace the model's Pooling module with ``mean`` or ``cls`` pooling."""
    from sentence_transformers.models import Pooling

    for key, module in model._modules.items():
        if isinstance(module, Pooling):
            if module.get_pooling_mode_str() != pooling:
                model._modules[key] = Pooling(module.get_sentence_embedding_dimension(), pooling_mode=pooling,
                                              include_prompt=module.include_prompt)
            return
    raise TrainInputError(f"the model has no Pooling module to set to {pooling!r}")


def auto_mini_batch_size(batch_size: int, texts_per_row: int, max_length: int) -> int:
    """``--mini-batch-size`` auto: 0 (plain loss) for steps up to ``AUTO_CACHE_TOKENS`` tokens, else the
    GradCache mini-batch (texts per forward pass) holding a quarter of that."""
    if batch_size * texts_per_row * max_length <= AUTO_CACHE_TOKENS:
        return 0
    return max(1, AUTO_CACHE_TOKENS // (4 * max_length))


def precision_flags(precision: str, device: str) -> bool:
    """Whether to train with bf16 autocast."""
    from encoder import bf16_supported

    if precision not in PRECISIONS:
        raise TrainInputError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return False
    supported = bf16_supported(device)
    if precision == "bf16":
        if not supported:
            raise TrainInputError(f"bf16 was asked for but {device} does not run bf16 natively")
        return True
    return supported and default_bf16_on(device)


def default_bf16_on(device: str) -> bool:
    """``--precision auto``: bf16 on CUDA and on CPUs with AMX / AVX512-BF16 (measured in the module docs)."""
    return True


# --------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :func:`train_dpr` returns."""

    output: Path | None  # the model folder (None on processes other than rank 0)
    scores: dict[str, float]  # dev metrics of the saved model ({} without a dev set)
    scores_before: dict[str, float]  # dev metrics of the starting model
    best_step: int | None
    steps: int  # optimiser steps taken
    train_seconds: float
    mining_seconds: float
    mining: dict | None
    config: dict
    log_history: list[dict] = field(default_factory=list)
    model: object = field(default=None, repr=False, compare=False)  # the trained SentenceTransformer

    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.log_history if "loss" in entry]


def _strip_prefix(metrics: Mapping, prefix: str = "eval_dev_") -> dict[str, float]:
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix) and k[len(prefix):] in METRIC_NAMES}


def card_section(result: TrainResult, info: dict) -> str:
    """The model card section written above sentence-transformers' own card."""
    cfg = result.config
    lines = [
        "## Training with `retrieval.train_dpr`",
        "",
        f"- **Base model:** `{cfg['model']}`",
        f"- **Training data:** {info['data']}",
        f"- **Dev set:** {info['dev']}",
        f"- **Loss:** {info['loss']}",
        f"- **Hard negatives:** {info['negatives']}",
        f"- **Command:** `{info['command']}`" if info.get("command") else "",
        "",
        "| hyperparameter | value |",
        "|---|---|",
    ]
    for key in ("epochs", "max_steps", "steps", "batch_size", "processes", "grad_accum", "effective_batch",
                "learning_rate", "warmup_ratio", "weight_decay", "lr_scheduler", "precision", "max_length",
                "pooling", "seed", "batch_sampler"):
        if key in info["hyper"]:
            lines.append(f"| {key} | {info['hyper'][key]} |")
    lines += ["", f"Training took {result.train_seconds:.0f} s (mining {result.mining_seconds:.0f} s)."]
    if result.scores:
        lines += ["", "| dev metric | before training | after (best checkpoint" +
                  (f", step {result.best_step}" if result.best_step else "") + ") |", "|---|---|---|"]
        for name in METRIC_NAMES:
            before = result.scores_before.get(name)
            lines.append(f"| {name} | {before:.4f} |" if before is not None else f"| {name} | - |")
            lines[-1] += f" {result.scores[name]:.4f} |" if name in result.scores else " - |"
    return "\n".join(l for l in lines if l is not None) + "\n"


def _insert_card_section(readme: Path, section: str) -> None:
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    marker = "\n# "
    start = text.find(marker, text.find("---", 3) + 3 if text.startswith("---") else 0)
    if start == -1:
        text = text + "\n" + section
    else:
        end = text.find("\n", start + 1)
        text = text[: end + 1] + "\n" + section + "\n" + text[end + 1 :]
    readme.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- training


def _validate(**opts) -> None:
    def need(cond, msg):
        if not cond:
            raise TrainInputError(msg)

    need(opts["epochs"] > 0, f"--epochs must be > 0, not {opts['epochs']}")
    need(opts["batch_size"] >= 1, f"--batch-size must be >= 1, not {opts['batch_size']}")
    need(opts["grad_accum"] >= 1, f"--grad-accum must be >= 1, not {opts['grad_accum']}")
    need(opts["hard_negatives"] >= 0, f"--hard-negatives must be >= 0, not {opts['hard_negatives']}")
    need(opts["mini_batch_size"] is None or opts["mini_batch_size"] >= 0,
         f"--mini-batch-size must be >= 0, not {opts['mini_batch_size']}")
    need(0 <= opts["dev_fraction"] < 1, f"--dev-fraction must be in [0, 1), not {opts['dev_fraction']}")
    need(opts["max_dev_queries"] >= 1, f"--max-dev-queries must be >= 1, not {opts['max_dev_queries']}")
    need(opts["lr"] is None or opts["lr"] > 0, f"--lr must be > 0, not {opts['lr']}")
    need(0 <= opts["warmup_ratio"] < 1, f"--warmup-ratio must be in [0, 1), not {opts['warmup_ratio']}")
    need(opts["margin_type"] in ("relative", "absolute", "none"),
         f"--margin-type must be relative, absolute or none, not {opts['margin_type']!r}")
    need(opts["margin"] >= 0, f"--margin must be >= 0, not {opts['margin']}")
    need(opts["margin_type"] != "relative" or opts["margin"] < 1, f"a relative --margin must be < 1, not {opts['margin']}")
    need(opts["sampling"] in ("top", "random"), f"--sampling must be top or random, not {opts['sampling']!r}")
    need(opts["pooling"] in (None, "mean", "cls"), f"--pooling must be mean or cls, not {opts['pooling']!r}")
    need(opts["max_length"] is None or opts["max_length"] >= 8, f"--max-length must be >= 8, not {opts['max_length']}")
    need(opts["eval_steps"] is None or opts["eval_steps"] >= 1, f"--eval-steps must be >= 1, not {opts['eval_steps']}")
    need(opts["precision"] in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}")


def train_dpr(
    model: str | Path | None,
    data: str | Path,
    output: str | Path,
    *,
    pooling: str | None = None,
    max_length: int | None = None,
    hard_negatives: int = 0,
    margin: float = 0.05,
    margin_type: str = "relative",
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    sampling: str = "top",
    fill: bool = True,
    mini_batch_size: int | None = None,
    scale: float = 20.0,
    gather: bool | None = None,
    epochs: float = DEFAULT_EPOCHS,
    max_steps: int = -1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float | None = None,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.01,
    grad_accum: int = 1,
    seed: int = 42,
    precision: str = "auto",
    dev_fraction: float = 0.1,
    max_dev_queries: int = 1000,
    eval_steps: int | None = None,
    index: str = "Flat",
    dataset_config: str | None = None,
    dataset_split: str = "train",
    device: str | None = None,
    logging_steps: int = 10,
    show_progress: bool = True,
    command: str | None = None,
) -> TrainResult:
    """Train a bi-encoder on ``data`` starting from ``model`` and write it to ``output``.

    Every argument matches a command-line flag (``python -m retrieval.train_dpr --help``).
    Raises :class:`TrainInputError` (or ``retrieval.beir_data.DataError`` / ``encoder.ModelLoadError``)
    before training when the options, the data or the model are unusable.
    """
    opts = dict(locals())
    _validate(**opts)
    import torch
    from transformers import set_seed

    from encoder import default_model, load_model
    from encoder.sentence import default_device
    from indexes import storage

    output = Path(output)
    if output.exists() and not output.is_dir():
        raise TrainInputError(f"--output {output} exists and is not a folder")
    model_name = str(model or default_model())
    device = device or default_device()
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # torchrun: one GPU per process
    use_bf16 = precision_flags(precision, device)
    set_seed(seed)

    # 1. data and model: every check that can fail happens here, before any training
    data_ = load_training_data(data, dev_fraction=dev_fraction, max_dev_queries=max_dev_queries, seed=seed,
                               dataset_config=dataset_config, dataset_split=dataset_split)
    st_model = load_model(model_name, device=device, dtype="float32")
    if pooling:
        set_pooling(st_model, pooling)
    own_limit = st_model.max_seq_length or DEFAULT_MAX_LENGTH_CAP
    st_model.max_seq_length = max_length or min(own_limit, DEFAULT_MAX_LENGTH_CAP)
    learning_rate = lr or default_learning_rate(st_model)
    st_model.model_card_data.local_files_only = True  # never reach for the hub while writing the card

    # 2. training arguments (under torchrun this joins the process group)
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses
    from sentence_transformers.training_args import BatchSamplers

    checkpoints = output.parent / f".{output.name}.checkpoints"
    has_dev = data_.dev is not None
    strategy = ("steps" if eval_steps else "epoch") if has_dev else "no"
    cuda = str(device).startswith("cuda")
    launched_world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=learning_rate,
        warmup_steps=warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        weight_decay=weight_decay,
        lr_scheduler_type="linear",
        seed=seed,
        data_seed=seed,
        bf16=use_bf16,
        use_cpu=not cuda,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy=strategy,
        eval_steps=eval_steps,
        save_strategy=strategy if has_dev else "no",
        save_steps=eval_steps,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=has_dev,
        metric_for_best_model="eval_dev_ndcg@10" if has_dev else None,
        greater_is_better=True,
        eval_on_start=has_dev,
        logging_steps=logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not show_progress,
        ddp_backend=("nccl" if cuda else "gloo") if launched_world > 1 else None,
        dataloader_drop_last=launched_world > 1,
    )
    rank, world = args.process_index, args.world_size
    gather = world > 1 if gather is None else gather
    if rank == 0 and checkpoints.exists():
        shutil.rmtree(checkpoints, ignore_errors=True)

    # 3. hard negatives, mined by the model about to be trained
    negatives, stats, mining_seconds, corpus_embeddings = None, None, 0.0, None
    if hard_negatives:
        if data_.kind == "datasets":
            _text_training_view(data_)
        start = time.perf_counter()
        corpus_embeddings = embed(st_model, [document_text(data_.corpus[d]) for d in data_.corpus], "document",
                                  show_progress=show_progress and rank == 0)
        try:
            negatives, stats = mine_hard_negatives(
                st_model, data_.queries, data_.corpus, data_.qrels, hard_negatives, doc_embeddings=corpus_embeddings,
                range_min=range_min, range_max=range_max,
                absolute_margin=margin if margin_type == "absolute" else None,
                relative_margin=margin if margin_type == "relative" else None,
                max_score=max_score, sampling=sampling, fill=fill, seed=seed, index=index,
                show_progress=show_progress and rank == 0,
            )
        except ValueError as exc:
            raise TrainInputError(f"hard-negative mining: {exc}") from None
        mining_seconds = time.perf_counter() - start
        if rank == 0:
            print(stats.summary(), flush=True)
    train_dataset, dropped = build_train_dataset(data_, negatives, hard_negatives)
    if dropped and rank == 0:
        logger.warning("%d pairs left out: their query got fewer than %d hard negatives", dropped, hard_negatives)
    global_batch = batch_size * world
    # Under DDP every process needs equal, full batches (gradient all-reduce, cross-process gathering),
    # so incomplete batches are dropped there; a single process trains on every batch NO_DUPLICATES makes.
    args.dataloader_drop_last = world > 1
    if world > 1 and len(train_dataset) < global_batch:
        raise TrainInputError(f"{len(train_dataset)} training rows cannot fill one batch of {batch_size} on {world} processes")

    # 4. loss, evaluator, trainer
    if mini_batch_size is None:  # auto: GradCache once a step's activations would not fit comfortably
        mini_batch_size = auto_mini_batch_size(batch_size, len(train_dataset.column_names), st_model.max_seq_length)
    if mini_batch_size:
        loss = losses.CachedMultipleNegativesRankingLoss(st_model, scale=scale, mini_batch_size=mini_batch_size,
                                                         gather_across_devices=gather)
        loss_text = f"CachedMultipleNegativesRankingLoss (scale {scale}, mini-batch {mini_batch_size}"
    else:
        loss = losses.MultipleNegativesRankingLoss(st_model, scale=scale, gather_across_devices=gather)
        loss_text = f"MultipleNegativesRankingLoss (scale {scale}"
    loss_text += f", in-batch negatives{' gathered across processes' if gather and world > 1 else ''})"
    reuse = corpus_embeddings if has_dev and data_.dev.corpus is data_.corpus else None  # same corpus, same model
    evaluator = (make_dev_evaluator(data_.dev, index=index, show_progress=show_progress, start_embeddings=reuse)
                 if has_dev else None)
    st_model.model_card_data.train_datasets = [{"name": f"{data_.name} (train)"}]
    trainer = SentenceTransformerTrainer(
        model=st_model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
    )
    if rank == 0:
        print(
            f"training {model_name} on {data_.description}: {len(train_dataset)} rows, "
            f"{world} process(es) x batch {batch_size} x accumulation {grad_accum}, lr {learning_rate:g}, "
            f"{'bf16' if use_bf16 else 'fp32'}, max length {st_model.max_seq_length}",
            flush=True,
        )

    # 5. train
    start = time.perf_counter()
    try:
        trainer.train()
        train_seconds = time.perf_counter() - start
        trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # no autocast wrapper
        if world > 1:  # every process has loaded the best checkpoint before rank 0 removes it
            torch.distributed.barrier()
        history = list(trainer.state.log_history)
        evals = [h for h in history if "eval_dev_ndcg@10" in h]
        before = _strip_prefix(evals[0]) if evals and evals[0].get("step", 0) == 0 else {}
        best_step, scores = None, {}
        if evals:
            best = max((h for h in evals if h.get("step", 0) > 0), key=lambda h: h["eval_dev_ndcg@10"], default=evals[0])
            best_step, scores = best.get("step"), _strip_prefix(best)
            if evaluator is not None:  # the card shows the saved (best) model's dev scores
                st_model.model_card_data.eval_results_dict[evaluator] = {f"dev_{k}": v for k, v in scores.items()}
                st_model.model_card_data.set_best_model_step(best_step)
        config = {k: (v if v is None or isinstance(v, (bool, int, float, str)) else str(v)) for k, v in opts.items()}
        config.update(model=model_name, data=str(data), output=str(output), learning_rate=learning_rate,
                      precision_used="bf16" if use_bf16 else "fp32", max_length=st_model.max_seq_length,
                      processes=world, gather=gather, effective_batch=global_batch * grad_accum,
                      loss=loss_text, mini_batch_size_used=mini_batch_size)
        result = TrainResult(
            output=output if rank == 0 else None, scores=scores, scores_before=before, best_step=best_step,
            steps=trainer.state.global_step,
            train_seconds=round(train_seconds, 1), mining_seconds=round(mining_seconds, 1),
            mining=stats.as_dict() if stats else None, config=config, log_history=history, model=trained,
        )
        if rank == 0:
            info = {
                "data": data_.description,
                "dev": data_.dev.description if has_dev else "none (no dev split, --dev-fraction 0)",
                "loss": loss_text,
                "negatives": (
                    f"{hard_negatives} per query, mined before training by the base model with a FAISS {index} index "
                    f"over {len(data_.corpus)} documents; "
                    + (f"{margin_type} margin {margin}" if margin_type != "none" else "no margin")
                    + f", range {range_min}..{stats.range_max}, sampling {sampling}; {stats.mined} mined "
                    f"({stats.filled} from below rank {stats.range_max} for queries short of negatives), "
                    f"{stats.skipped_margin} candidates skipped by the margin, {dropped} pairs left out"
                    if stats else "none (in-batch negatives only)"
                ),
                "command": command,
                "hyper": {
                    "epochs": epochs, "max_steps": max_steps if max_steps > 0 else "-",
                    "steps": trainer.state.global_step, "batch_size": f"{batch_size} per process",
                    "processes": world, "grad_accum": grad_accum, "effective_batch": global_batch * grad_accum,
                    "learning_rate": f"{learning_rate:g}", "warmup_ratio": warmup_ratio, "weight_decay": weight_decay,
                    "lr_scheduler": "linear", "precision": "bf16 autocast" if use_bf16 else "fp32",
                    "max_length": st_model.max_seq_length, "pooling": pooling or "the model's own",
                    "seed": seed, "batch_sampler": "NO_DUPLICATES",
                },
            }
            with storage.directory(output) as tmp:
                trained.save_pretrained(str(tmp))
                _insert_card_section(tmp / "README.md", card_section(result, info))
                summary = {f.name: getattr(result, f.name) for f in fields(result) if f.name != "model"}
                summary["output"] = str(output)
                summary["card"] = info
                storage.write_json(tmp / SUMMARY_FILE, summary)
    finally:
        if rank == 0:
            shutil.rmtree(checkpoints, ignore_errors=True)
    if world > 1:
        torch.distributed.barrier()
    return result


# --------------------------------------------------------------------------- command line


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` unless the help already says what the default is, or there is none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.required:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m retrieval.train_dpr",
        description="Train a DPR-style bi-encoder (sentence-transformers) with in-batch and optional mined hard "
        "negatives, keep the best checkpoint by dev nDCG@10, write a plain sentence-transformers model. "
        "Multi-process: torchrun --nproc_per_node N -m retrieval.train_dpr ...",
        formatter_class=_HelpFormatter,
    )
    g = p.add_argument_group("model, data, output")
    g.add_argument("--model", default=None, help="hub id or local folder of the starting model; a plain HF encoder "
                   "folder gets mean pooling (default: the offline all-MiniLM-L6-v2)")
    g.add_argument("--data", required=True, help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, "
                   "optional qrels/dev.tsv) or a datasets dataset (saved folder, .jsonl/.csv/.parquet file or hub "
                   "name) with (anchor, positive[, negative ...]) text columns")
    g.add_argument("--output", required=True, help="folder for the trained model (written atomically; an existing "
                   "one is replaced only when training succeeds)")
    g.add_argument("--dataset-config", default=None, help="config name of a hub dataset (e.g. triplet-hard)")
    g.add_argument("--dataset-split", default="train", help="split of a datasets dataset to train on")
    g.add_argument("--pooling", choices=["mean", "cls"], default=None, help="set the pooling (default: keep the model's own)")
    g.add_argument("--max-length", type=int, default=None,
                   help=f"maximum tokens per text while training (default: the model's own, at most {DEFAULT_MAX_LENGTH_CAP})")
    g = p.add_argument_group("loss and negatives")
    g.add_argument("--mini-batch-size", type=int, default=None, help="use CachedMultipleNegativesRankingLoss "
                   "(GradCache) with this many texts per forward pass: batches larger than memory, same loss; 0: "
                   "plain MultipleNegativesRankingLoss (default: auto, cached with "
                   f"{AUTO_CACHE_TOKENS // 4:,} tokens per forward pass once a step holds more than "
                   f"{AUTO_CACHE_TOKENS:,} tokens, rows x texts per row x max length)")
    g.add_argument("--scale", type=float, default=20.0, help="similarity scale (1 / temperature) of the loss")
    g.add_argument("--no-gather", dest="gather", action="store_false", default=None,
                   help="under torchrun, do not gather embeddings across processes (default: gather, so every "
                   "query sees the whole global batch as negatives)")
    g.add_argument("--hard-negatives", type=int, default=0, help="mine this many hard negatives per query with "
                   "the starting model and a FAISS index over the corpus, before training (0: in-batch only)")
    g.add_argument("--margin", type=float, default=0.05, help="false-negative guard: skip candidates scoring "
                   "within this margin of the query's (lowest) positive")
    g.add_argument("--margin-type", choices=["relative", "absolute", "none"], default="relative",
                   help="relative: skip if score > positive * (1 - margin); absolute: skip if score + margin > positive")
    g.add_argument("--range-min", type=int, default=0, help="skip this many of the best remaining candidates")
    g.add_argument("--range-max", type=int, default=None, help="consider candidates up to this rank "
                   "(default: range-min + 10 x hard-negatives + most positives of a query)")
    g.add_argument("--max-score", type=float, default=None, help="skip candidates with a higher cosine similarity")
    g.add_argument("--sampling", choices=["top", "random"], default="top", help="take the best candidates or a "
                   "seeded random sample of the kept range")
    g.add_argument("--no-fill", dest="fill", action="store_false", help="leave out queries with fewer than "
                   "--hard-negatives candidates within --range-max (as sentence-transformers does) instead of "
                   "searching deeper for negatives that pass the same filters")
    g.add_argument("--index", default="Flat", help="FAISS factory string of the index used for mining and dev evaluation")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS, help="training epochs")
    g.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimiser steps (overrides --epochs)")
    g.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="(anchor, positive, ...) rows per "
                   "process and step; the in-batch negatives")
    g.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (more rows per optimiser "
                   "step; does not add in-batch negatives)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default: ModernBERT paper Table 9 for "
                   f"ModernBERT: base {MODERNBERT_LR['base']:g}, large {MODERNBERT_LR['large']:g}; {DEFAULT_LR:g} otherwise)")
    g.add_argument("--warmup-ratio", type=float, default=0.05, help="share of the steps with linear warmup")
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    g.add_argument("--seed", type=int, default=42, help="seed of initialisation, shuffling, held-out dev and sampling")
    g.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 autocast where the hardware "
                   "runs bf16 natively (CUDA Ampere+, CPUs with AMX/AVX512-BF16), else fp32")
    g.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g = p.add_argument_group("dev evaluation")
    g.add_argument("--dev-fraction", type=float, default=0.1, help="without a dev split, hold out this share of the "
                   "training queries (seeded) as the dev set; 0: no dev evaluation, keep the last model")
    g.add_argument("--max-dev-queries", type=int, default=1000, help="at most this many held-out dev queries")
    g.add_argument("--eval-steps", type=int, default=None, help="evaluate (and checkpoint) every N steps "
                   "(default: every epoch); the best dev nDCG@10 checkpoint is kept")
    g = p.add_argument_group("output")
    g.add_argument("--logging-steps", type=int, default=10, help="log the training loss every N steps")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    from encoder import ModelLoadError
    from retrieval.beir_data import DataError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    logging.getLogger("retrieval").setLevel(logging.INFO)
    command = "python -m retrieval.train_dpr " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    options = {k: v for k, v in vars(args).items() if k not in ("model", "data", "output", "quiet")}
    try:
        result = train_dpr(args.model, args.data, args.output, show_progress=not args.quiet, command=command, **options)
    except (TrainInputError, DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.output is not None:
        print(f"trained in {result.train_seconds:.0f} s (mining {result.mining_seconds:.0f} s)")
        if result.scores:
            before = result.scores_before.get("ndcg@10")
            print(f"dev nDCG@10 {result.scores['ndcg@10']:.4f}" + (f" (before training {before:.4f})" if before is not None else "")
                  + f", best step {result.best_step}")
        print(f"model written to {result.output} (model card {result.output / 'README.md'}, summary {result.output / SUMMARY_FILE})")
        print(f"evaluate it: python -m evaluation.beir --model {result.output} --data-dir <folder holding the dataset>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
