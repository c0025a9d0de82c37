"""Training data for both trainers: read it, split off the dev set, build the training rows.

- data: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv``, optional
  ``qrels/dev.tsv``; read by :func:`retrieval.beir_data.load_beir`) or a ``datasets`` dataset
  with (anchor, positive[, negative ...]) text columns (``load_from_disk`` / ``load_dataset``);
- the dev set (:class:`DevSet`) is the dataset's dev split, else a seeded held-out share of
  the training queries; never the test split. Dev queries are never trained on;
- hard negatives (``--hard-negatives N``) are mined before training by :mod:`retrieval.mining`
  with the toolkit's FAISS index and the false-negative margin of sentence-transformers
  (candidates scoring within 5% of the positive skipped); a ``datasets`` dataset is given ids
  first so that it is mined like a BEIR one;
- the rows are (anchor, positive[, negative_1 ... negative_N]); with mined negatives, queries
  short of N are left out (and counted).

Bad data (no positives, unknown ids, non-text columns, missing splits) raises
:class:`~retrieval.training.common.TrainInputError` before any training; a bad line of a BEIR
folder reads ``<file>:<line>: <what is wrong> (cannot train on <folder>)``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.documents import document_text
from retrieval.mining import distributed_info, embed, mine_hard_negatives
from retrieval.training.common import TrainInputError, TrainOptions

logger = logging.getLogger("retrieval.training")


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
    """A folder with ``corpus.jsonl`` (whatever kind of file: :func:`~retrieval.beir_data.load_beir` names a FIFO or
    a folder there) and a ``qrels/`` folder."""
    return path.is_dir() and os.path.lexists(path / "corpus.jsonl") and (path / "qrels").is_dir()


def load_beir_training(path: Path, *, dev_fraction: float, max_dev_queries: int, seed: int) -> TrainingData:
    from retrieval.beir_data import DataError, load_beir

    try:
        train = load_beir(path, "train")
    except DataError as exc:
        raise TrainInputError(f"{exc} (cannot train on {path})") from None
    qrels_file = path / "qrels" / "train.tsv"
    positives = _positives(train.qrels)
    if not positives:
        raise TrainInputError(f"{qrels_file}: no judgment with a positive score (> 0): nothing to train on")
    warnings = list(train.warnings)
    dev = None
    if os.path.lexists(path / "qrels" / "dev.tsv"):  # a dev.tsv that is no regular file is an error, not ignored
        try:
            dev_data = load_beir(path, "dev")
        except DataError as exc:
            raise TrainInputError(f"{exc} (cannot use the dev split of {path})") from None
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
    if path.suffix == ".jsonl" and path.is_file():
        from retrieval.beir_data import DataError, check_text_jsonl

        try:  # a bad line is named (file:line) before pyarrow reads, or crashes on, the file
            check_text_jsonl(path)
        except DataError as exc:
            raise TrainInputError(str(exc)) from None
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


def _text_ids(columns: list[list[str]]) -> tuple[dict, dict, dict]:
    """(corpus, queries, qrels) with made-up ids from text columns: the first holds the queries (anchors), every
    other text is a document, and each anchor's positive (second column) is judged relevant."""
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for texts in columns[1:]:
        for text in texts:
            if text:
                doc_ids.setdefault(text, f"d{len(doc_ids)}")
    for anchor, positive in zip(columns[0], columns[1]):
        if anchor and positive:
            qid = query_ids.setdefault(anchor, f"q{len(query_ids)}")
            qrels.setdefault(qid, {})[doc_ids[positive]] = 1
    return {i: t for t, i in doc_ids.items()}, {i: t for t, i in query_ids.items()}, qrels


def _rows_to_dev(rows, columns: list[str], description: str) -> DevSet:
    """A retrieval task from text rows: anchors are the queries, every positive/negative text is a document."""
    return DevSet(*_text_ids([list(rows[c]) for c in columns]), description)


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
    if path.is_dir() and os.path.lexists(path / "corpus.jsonl"):
        raise TrainInputError(f"{path} looks like a BEIR folder but has no qrels/ folder (qrels/train.tsv is needed)")
    return load_datasets_training(
        data, config=dataset_config, split=dataset_split, dev_fraction=dev_fraction,
        max_dev_queries=max_dev_queries, seed=seed,
    )


def _text_training_view(data: TrainingData) -> TrainingData:
    """Give a ``datasets`` training set ids (queries, documents, qrels) so it can be mined like a BEIR one."""
    data.corpus, data.queries, data.qrels = _text_ids([list(data.dataset[c]) for c in data.columns])
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


@dataclass
class Mined:
    """Hard negatives mined before training, and what mining them took."""

    negatives: dict[str, list[str]]
    stats: object  # a retrieval.mining.MiningStats
    seconds: float
    corpus_embeddings: object  # the training corpus embedded by the miner (reused by a dev set on the same corpus)
    dropped: int = 0  # (query, positive) pairs left out: their query got fewer negatives than asked


def training_rows(data: TrainingData, opts: TrainOptions, miner=None):
    """``(rows, mined)``: the training rows, with ``opts.hard_negatives`` negatives per query mined first by
    ``miner`` (a sentence-transformers model) when asked; ``mined`` is None without mining."""
    rank, _ = distributed_info()
    show = opts.show_progress and rank == 0
    mined = None
    if opts.hard_negatives:
        if data.kind == "datasets":
            _text_training_view(data)
        start = time.perf_counter()
        corpus_embeddings = embed(miner, [document_text(data.corpus[d]) for d in data.corpus], "document",
                                  show_progress=show)
        try:
            negatives, stats = mine_hard_negatives(
                miner, data.queries, data.corpus, data.qrels, opts.hard_negatives, doc_embeddings=corpus_embeddings,
                range_min=opts.range_min, range_max=opts.range_max,
                absolute_margin=opts.margin if opts.margin_type == "absolute" else None,
                relative_margin=opts.margin if opts.margin_type == "relative" else None,
                max_score=opts.max_score, sampling=opts.sampling, fill=opts.fill, seed=opts.seed, index=opts.index,
                show_progress=show,
            )
        except ValueError as exc:
            raise TrainInputError(f"hard-negative mining: {exc}") from None
        mined = Mined(negatives, stats, time.perf_counter() - start, corpus_embeddings)
        if rank == 0:
            print(stats.summary(), flush=True)
    rows, dropped = build_train_dataset(data, mined.negatives if mined else None, opts.hard_negatives)
    if mined:
        mined.dropped = dropped
        if dropped and rank == 0:
            logger.warning("%d pairs left out: their query got fewer than %d hard negatives", dropped, opts.hard_negatives)
    return rows, mined


def load_for_training(data, opts: TrainOptions) -> TrainingData:
    """:func:`load_training_data` with ``opts``; with ``opts.evaluate`` off there is no dev set (a dev split's
    queries stay out of training all the same)."""
    training = load_training_data(data, dev_fraction=opts.dev_fraction if opts.evaluate else 0.0,
                                  max_dev_queries=opts.max_dev_queries, seed=opts.seed,
                                  dataset_config=opts.dataset_config, dataset_split=opts.dataset_split)
    if not opts.evaluate:
        training.dev = None
    return training
