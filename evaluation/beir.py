"""The evaluation harness: one loaded split through a retriever to a scored record: ``python -m evaluation.beir``.

Its job is the run, not the parts: data is read by :mod:`retrieval.beir_data`, what gets
embedded is :func:`retrieval.documents.document_text` (``title + " " + text``), the run and
its scores are :mod:`retrieval.metrics`' (top 100 per query, never the document sharing the
query's id, as in BEIR and MTEB; nDCG@10, Recall@100, MRR@10, MAP@100 by pytrec_eval through
beir), and the retriever is the toolkit's :class:`retrieval.Retriever` (FAISS) or, with
``--multi-vector``, :class:`retrieval.ColbertRetriever`.

``evaluation.mldr`` and ``evaluation.codesearch`` only supply a :class:`Source` (a loaded
split) and their own dataset flags, and reuse :func:`evaluate_source`, the shared flags
(:func:`add_data_dir_argument`, :func:`add_hub_arguments`, :func:`add_model_arguments`),
the embedding cache and :func:`run` (errors, table, atomic JSON). Every run reports how
many documents were truncated at the length used. What a run writes (the summary, the
MTEB-schema file, per-query scores) and ``--metrics`` are :mod:`evaluation.outputs`'; judgments
naming documents the corpus lacks are scored as relevant-but-unretrievable, as MTEB and BEIR do.

Examples
--------
>>> from evaluation.beir import evaluate                          # doctest: +SKIP
>>> evaluate("scifact", data_dir="../shared/data")["metrics"]["ndcg@10"]
0.64508
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from encoder import ModelLoadError, default_model, load_model
from evaluation.outputs import add_output_arguments, write_outputs
from indexes import IndexFormatError
from retrieval import ColbertRetriever, Retriever
from retrieval.beir_data import DATA_DIR_ENV, BeirData, DataError, find_dataset, load_beir
from retrieval.cli import add_workers_arguments
from retrieval.documents import document_text
from retrieval.fusion import settings as fusion_settings
from retrieval.metrics import METRICS, retrieve, score
from retrieval.parallel import choose_workers
from retrieval.rerank import load_reranker

logger = logging.getLogger("evaluation.beir")

COLBERT_SEED = 42


def model_fingerprint(name: str, model) -> str:
    """Changes when the model's files, its dtype or its maximum length change."""
    h = hashlib.sha256(name.encode())
    path = Path(name)
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(f"{next(model.parameters()).dtype}:{model.max_seq_length}".encode())
    for p in model.parameters():  # a freshly initialised projection differs on every load
        h.update(p.detach().float().flatten()[:1024].numpy().tobytes())
    return h.hexdigest()[:16]


def corpus_fingerprint(documents: list[dict]) -> str:
    """Hash of every document's id, title and text: the cache identity of a corpus that is not one file."""
    h = hashlib.sha256()
    for d in documents:
        h.update(f"{d['id']}\x00{d.get('title', '')}\x00{d['text']}\x00".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:20]


def corpus_embeddings(retriever: Retriever, documents: list[dict], cache_dir, *, name: str, corpus_key: str | None = None):
    """Embed the corpus, or read the embeddings a previous run stored in ``cache_dir``.

    ``corpus_key`` identifies the corpus cheaply (a file's path, size and time); without it the
    texts are hashed. Single vectors are one array; ColBERT token vectors are stored back to back
    with their counts.
    """
    if cache_dir is None:
        return retriever.embed_documents(documents)
    corpus_key = corpus_key or corpus_fingerprint(documents)
    # the document length joins the key: ColBERT's is not the model's max_seq_length
    fingerprint = f"{model_fingerprint(retriever.model_name, retriever.model)}:{retriever.max_length()}"
    key = hashlib.sha256(f"{corpus_key}:{fingerprint}".encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"{name}-{retriever.kind}-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if "lengths" in stored:
                emb = np.split(stored["tokens"], np.cumsum(stored["lengths"])[:-1])
            else:
                emb = stored["embeddings"]
        if len(emb) == len(documents):
            logger.info("corpus embeddings read from %s", path)
            return emb
    emb = retriever.embed_documents(documents)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    if isinstance(emb, list):
        np.savez(tmp, tokens=np.concatenate(emb), lengths=np.array([len(e) for e in emb]))
    else:
        np.savez(tmp, embeddings=emb)
    tmp.replace(path)
    logger.info("corpus embeddings cached in %s", path)
    return emb


@dataclass
class Source:
    """One loaded split for :func:`evaluate_source`, whatever harness loaded it.

    ``corpus_key`` identifies the corpus for the embedding cache (``None``: a hash of the
    texts); ``cache_name`` starts the cached file's name; ``info`` adds fields to the result
    (where the data came from, its language ...).
    """

    dataset: str
    split: str
    data: BeirData
    corpus_key: str | None = None
    cache_name: str | None = None
    info: dict = field(default_factory=dict)


def beir_source(dataset: str = "scifact", data_dir: str | Path | None = None, split: str = "test") -> Source:
    """The BEIR-layout folder ``data_dir/dataset`` (downloaded when absent and online), one split loaded."""
    data_path = find_dataset(dataset, data_dir)
    data = load_beir(data_path, split)
    corpus_file = data_path / "corpus.jsonl"
    st = corpus_file.stat()
    return Source(dataset, split, data, corpus_key=f"{corpus_file.resolve()}:{st.st_size}:{st.st_mtime_ns}",
                  cache_name=data_path.name, info={"source": str(data_path)})


def model_limits(retriever: Retriever) -> tuple[int, int]:
    """``(own, positions)``: the model's own maximum document length and the most its positions take.

    Own: a dense model's ``max_seq_length`` (all-MiniLM-L6-v2: 256), a ColBERT model's
    ``document_length``. Positions: the encoder's position embeddings (BERT 512, ModernBERT
    8,192; RoBERTa-like models lose the padding offset). The tokenizer's ``model_max_length``
    is no guide: sentence-transformers sets it to ``max_seq_length``.
    """
    own = int(retriever.max_length())
    config = getattr(getattr(retriever.model[0], "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        return own, own
    if "roberta" in str(getattr(config, "model_type", "")):  # position ids start after the padding index
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return min(own, positions), int(positions)


def choose_max_length(requested: int | None, own: int, positions: int) -> tuple[int, str]:
    """The document length to encode at, and a note when it is not simply the one asked for.

    A request the positions allow is honoured, even beyond the model's own limit (ModernBERT
    fine-tuned at 512 and run at 8,192, as in its paper); a longer one falls back to the
    model's own limit, said loudly, never silently to some other cap.
    """
    if requested is None:
        return own, ""
    if requested < 1:
        raise ValueError(f"--max-length must be positive, not {requested}")
    if requested <= positions:
        return requested, "" if requested <= own else f"beyond the model's own {own}"
    return own, f"--max-length {requested} is more than the model's {positions} positions: its own limit {own} used"


def document_token_lengths(retriever: Retriever, texts: list[str], show_progress: bool = True, chunk: int = 2048) -> np.ndarray:
    """Tokens of each document as the model sees it before truncation (special tokens and prompt or ColBERT prefix included)."""
    out = np.empty(len(texts), dtype=np.int64)
    with tqdm(total=len(texts), desc="count document tokens", unit="doc", disable=not show_progress) as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            out[start : start + len(part)] = retriever.document_token_counts(part)
            bar.update(len(part))
    return out


def evaluate(
    dataset: str = "scifact",
    *,
    data_dir: str | Path | None = None,
    split: str = "test",
    **settings,
) -> dict:
    """Run one BEIR evaluation and return the result record (see the module docstring).

    ``settings`` are those of :func:`evaluate_source`.
    """
    return evaluate_source(beir_source(dataset, data_dir, split), **settings)


def evaluate_source(
    source: Source,
    *,
    model=None,
    index: str = "Flat",
    search_params: str | None = None,
    device: str | None = None,
    dtype: str = "float32",
    max_length: int | None = None,
    batch_size: int | None = None,
    multi_vector: bool = False,
    nbits: int = 4,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    trust_remote_code: bool = False,
    retrieval: str = "dense",
    fusion: str | None = None,
    weight: float | None = None,
    lexical_tokenizer: str = "english",
    rerank: str | None = None,
    rerank_depth: int = 100,
    workers: int | None = None,
    ray_address: str | None = None,
) -> dict:
    """Evaluate one loaded split and return the result record.

    ``retrieval`` is the search mode (``"dense"``, ``"lexical"`` BM25 with ``lexical_tokenizer``,
    ``"hybrid"`` fused by ``fusion`` at ``weight``); ``rerank`` a reranker model
    (:func:`retrieval.rerank.load_reranker`) re-scoring the top ``rerank_depth``. The record's
    ``retrieval`` field holds these settings.

    ``model`` is a hub id, a local path or a loaded ``SentenceTransformer`` (a PyLate
    ``ColBERT`` with ``multi_vector=True``, which indexes token vectors in
    :class:`indexes.MultiVectorIndex` with ``nbits`` per dimension; ``index`` is then ignored).
    ``max_length`` caps the tokens per document (see :func:`choose_max_length`); a loaded model
    gets its own length back afterwards. The record's ``truncation`` says how many documents
    were longer than the length used. ``workers``/``ray_address``: Ray actors encoding the corpus
    (:meth:`retrieval.Retriever.workers`; None: :func:`retrieval.parallel.choose_workers` for its size).
    """
    retriever, index = make_retriever(model, index=index, search_params=search_params, device=device, dtype=dtype,
                                      batch_size=batch_size, multi_vector=multi_vector, nbits=nbits,
                                      show_progress=show_progress, trust_remote_code=trust_remote_code,
                                      lexical=lexical_tokenizer if retrieval != "dense" else False)
    search = dict(mode=retrieval, fusion=fusion, weight=weight, rerank=rerank, rerank_depth=rerank_depth)
    if rerank is not None:
        search["rerank"] = load_reranker(rerank, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    own, positions = model_limits(retriever)
    used, note = choose_max_length(max_length, own, positions)
    count = choose_workers(workers, ray_address, len(source.data.corpus))
    with document_length(retriever, used), retriever.workers(count, ray_address, quiet=not show_progress):
        split_run = encode_split(retriever, source, cache_dir, show_progress)
    index_and_search(retriever, split_run, [source.data.queries[q] for q in split_run.query_ids], **search)
    truncation = {
        "max_length": used,
        "requested_max_length": max_length,
        "model_max_length": own,
        "position_limit": positions,
        "documents_truncated": int((split_run.lengths > used).sum()),
        "longest_document_tokens": int(split_run.lengths.max()) if len(split_run.lengths) else 0,
        "note": note,
    }
    record = result_record(source, retriever, index, split_run, truncation)
    if retrieval == "hybrid":  # the settings in effect, so a stored result says which default produced it
        fusion, weight = fusion_settings(fusion, weight)
    record["retrieval"] = {"mode": retrieval, "fusion": fusion, "weight": weight, "lexical_tokenizer": lexical_tokenizer,
                           "rerank": rerank, "rerank_depth": rerank_depth if rerank else None}
    return record


def make_retriever(model, *, index: str, search_params: str | None, device: str | None, dtype: str,
                   batch_size: int | None, multi_vector: bool, nbits: int, show_progress: bool,
                   trust_remote_code: bool = False, lexical=False) -> tuple[Retriever, str]:
    """The retriever :func:`evaluate_source` runs (ColBERT with ``multi_vector``), and the index name its record gives.

    ``lexical``: the BM25 index beside it (``False``, ``True`` or a tokenizer name, as :class:`retrieval.Retriever` takes).
    """
    if multi_vector:
        # a plain encoder gets PyLate's random projection: seeded as benchmarks.indexes_bench seeds it, so runs repeat
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(COLBERT_SEED)
            retriever = ColbertRetriever(model, nbits=nbits, device=device, dtype=dtype, show_progress=show_progress,
                                         batch_size=batch_size or ColbertRetriever.batch_size_default,
                                         trust_remote_code=trust_remote_code, lexical=lexical)
        retriever.index.set_search_params(search_params)
        return retriever, f"multi-vector nbits={nbits}"
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model or default_model(), device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    retriever = Retriever(model, index=index, search_params=search_params, show_progress=show_progress,
                          batch_size=batch_size or Retriever.batch_size_default, lexical=lexical)
    return retriever, index


@contextmanager
def document_length(retriever: Retriever, length: int):
    """Encode documents at ``length`` tokens inside the block; the retriever's own length is back after it."""
    original = retriever.max_length()
    retriever.set_max_length(length)
    try:
        yield
    finally:
        retriever.set_max_length(original)  # a caller's loaded model keeps its own length


@dataclass
class SplitRun:
    """One split through a retriever: what was embedded, the embeddings, the results and the time each step took."""

    documents: list[dict]
    query_ids: list[str]
    lengths: np.ndarray  # tokens of each document before truncation
    doc_emb: object
    query_emb: object
    encode_seconds: float
    index_seconds: float = 0.0
    search_seconds: float = 0.0
    results: dict = field(default_factory=dict)


def encode_split(retriever: Retriever, source: Source, cache_dir, show_progress: bool) -> SplitRun:
    """Count each document's tokens, then embed the corpus (through the cache) and the queries, timed."""
    data = source.data
    documents = [{"id": did, **doc} for did, doc in data.corpus.items()]
    lengths = document_token_lengths(retriever, [document_text(d) for d in documents], show_progress)
    query_ids = list(data.queries)
    start = time.perf_counter()
    doc_emb = corpus_embeddings(retriever, documents, cache_dir, name=source.cache_name or source.dataset,
                                corpus_key=source.corpus_key)
    query_emb = retriever.embed_queries([data.queries[q] for q in query_ids])
    return SplitRun(documents, query_ids, lengths, doc_emb, query_emb, time.perf_counter() - start)


def index_and_search(retriever: Retriever, split_run: SplitRun, queries: list[str] | None = None, **search) -> None:
    """Index the run's corpus embeddings (training the index if it needs it), then retrieve every query; both timed.

    ``search``: :func:`retrieval.metrics.retrieve`'s ``mode``, ``fusion``, ``weight``, ``rerank``, ``rerank_depth``
    (the query texts ``queries`` needed by all but plain dense search). Documents are indexed whole (as BEIR and
    MTEB do: the model reads each up to its length), never chunked.
    """
    start = time.perf_counter()
    retriever.add(split_run.documents, embeddings=split_run.doc_emb)
    retriever.index.train()
    if search.get("mode", "dense") != "dense":
        retriever.search(queries[:1], 1, mode="lexical")  # builds BM25 now: its time is indexing, not search
    split_run.index_seconds = time.perf_counter() - start
    start = time.perf_counter()
    split_run.results = retrieve(retriever, split_run.query_ids, split_run.query_emb, queries=queries, **search)
    split_run.search_seconds = time.perf_counter() - start


def result_record(source: Source, retriever: Retriever, index: str, split_run: SplitRun, truncation: dict) -> dict:
    """The JSON record of one evaluation (fields in the module docstring), metrics scored here.

    Judgments naming documents the corpus lacks count as relevant-but-unretrievable (MTEB/BEIR;
    ``unretrievable_judgments``). ``run`` holds the ranked lists, for other metrics and the MTEB
    file (:func:`write_outputs`); :func:`summary` leaves it out of the JSON.
    """
    qrels = source.data.evaluation_qrels()
    return {
        "dataset": source.dataset,
        "split": source.split,
        **source.info,
        "model": retriever.model_name,
        "index": index,
        "num_queries": len(split_run.query_ids),
        "num_docs": len(split_run.documents),
        "encode_seconds": round(split_run.encode_seconds, 3),
        "index_seconds": round(split_run.index_seconds, 3),
        "search_seconds": round(split_run.search_seconds, 3),
        "search_params": retriever.index.search_params,
        "dtype": str(next(retriever.model.parameters()).dtype).removeprefix("torch."),
        "truncation": truncation,
        "warnings": source.data.warnings,
        "unretrievable_judgments": sum(len(j) for j in source.data.unretrievable.values()),
        "metrics": score(qrels, split_run.results),
        "run": split_run.results,
    }


def format_truncation(result: dict) -> str:
    t = result["truncation"]
    note = f" ({t['note']})" if t["note"] else ""
    return (
        f"documents encoded at up to {t['max_length']} tokens{note}: {t['documents_truncated']:,} of "
        f"{result['num_docs']:,} truncated (longest {t['longest_document_tokens']:,} tokens)"
    )


def format_table(result: dict) -> str:
    head = (
        f"{result['dataset']} ({result['split']}): {result['num_queries']} queries, {result['num_docs']} documents, "
        f"index {result['index']}, encode {result['encode_seconds']:.1f}s, search {result['search_seconds']:.2f}s"
    )
    lines = [head] + ([format_truncation(result)] if "truncation" in result else [])
    return "\n".join(lines + [f"{name:<12}{value:.5f}" for name, value in result["metrics"].items()])


def add_model_arguments(p: argparse.ArgumentParser, *, max_length_default: int | None = None) -> None:
    """The flags every harness shares: model, index, encoding, cache and output."""
    p.add_argument("--model", default=None, help="sentence-transformers hub id or local folder (default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--index", default="Flat", help='FAISS factory string, e.g. Flat (exact, default), HNSW32, "IVF64,Flat"')
    p.add_argument("--search-params", default=None, help='FAISS search parameters, e.g. "nprobe=32" or "efSearch=256"; with --multi-vector "nprobe=8,rerank=256" (default: accurate presets)')
    p.add_argument("--batch-size", type=int, default=None, help="maximum texts per encoding batch (default: 256 dense, also capped by a token budget; 32 ColBERT)")
    add_workers_arguments(p, "documents")
    p.add_argument("--multi-vector", action="store_true", help="ColBERT: --model is a PyLate ColBERT model (a plain encoder gets an untrained projection); token vectors go into the multi-vector FAISS index")
    p.add_argument("--nbits", type=int, default=4, choices=[4, 6, 8, 16], help="--multi-vector: bits per stored dimension (16 = fp16; default 4)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"], help="model weights dtype; auto = bf16 where the hardware runs it natively (default: float32, the published setting)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    default_text = max_length_default or "the model's own"
    p.add_argument(
        "--max-length",
        type=int,
        default=max_length_default,
        help=f"maximum tokens per document, dense models: per query too (default: {default_text}); "
        "honoured up to the model's position embeddings, even beyond its own limit; a longer request falls back to "
        "the model's own limit (all-MiniLM-L6-v2: 256) and the output says so. The output and the JSON count the "
        "documents truncated at the length used",
    )
    p.add_argument("--cache-dir", default=None, help="reuse corpus embeddings stored here by an earlier run with the same model, length and corpus")
    p.add_argument("--output", default=None, help="write the result as JSON to this file (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let the model folder name module code outside the toolkit's allow-list (off: such a folder is refused)")
    add_search_arguments(p)


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """``--retrieval``, ``--fusion``, ``--weight``, ``--lexical-tokenizer``, ``--rerank``, ``--rerank-depth``."""
    p.add_argument("--retrieval", default="dense", choices=["dense", "lexical", "hybrid"],
                   help="dense: the model (default); lexical: BM25 (bm25s); hybrid: both, fused (see --fusion)")
    p.add_argument("--fusion", default=None, choices=["convex", "rrf"], help="--retrieval hybrid: convex combination of "
                   "min-max normalised scores (default) or reciprocal rank fusion")
    p.add_argument("--weight", type=float, default=None, help="--retrieval hybrid: the dense part's share, 0 to 1 "
                   "(default: 0.5)")
    p.add_argument("--lexical-tokenizer", default="english", choices=["english", "code"], help="BM25 tokens: english "
                   "(stemmed words, default) or code (identifiers split at camelCase, snake_case and digits, kept whole too)")
    p.add_argument("--rerank", default=None, metavar="MODEL", help="rerank the first stage's top --rerank-depth with this "
                   "model: a PyLate ColBERT folder or hub id (MaxSim), or a sentence-transformers CrossEncoder; "
                   "colbert:NAME / cross-encoder:NAME force the kind")
    p.add_argument("--rerank-depth", type=int, default=100, metavar="N", help="--rerank: candidates re-scored per query "
                   "(default: 100)")


def add_data_dir_argument(p: argparse.ArgumentParser, what: str, where: str) -> None:
    """``--data-dir``: ``what`` the folder is, its default, then ``where`` (what the harness looks for in it)."""
    p.add_argument("--data-dir", default=None, help=f"{what} (default: ${DATA_DIR_ENV}, else ./data){where}")


def hub_options(args: argparse.Namespace) -> dict:
    """The keyword arguments a hub harness's source takes from the flags of :func:`add_hub_arguments`."""
    return dict(data_dir=args.data_dir, repo=args.repo, datasets_cache=args.datasets_cache, show_progress=not args.quiet)


def add_hub_arguments(p: argparse.ArgumentParser, default_repo: str, where: str, *, max_length_default: int | None = None) -> None:
    """The flags of a harness over a hub dataset read through ``datasets``: ``--data-dir`` (searched first; ``where``
    says for what), ``--repo``, ``--datasets-cache``, then the model and output flags (:func:`add_model_arguments`,
    :func:`add_output_arguments`)."""
    add_data_dir_argument(p, "folder searched first", where)
    p.add_argument("--repo", default=None, help="a local copy of the hub repository, or a hub id read when the network "
                   f"works (default: {default_repo})")
    p.add_argument("--datasets-cache", default=None, help="where `datasets` keeps its Arrow copies of hub files "
                   "(default: its own, ~/.cache/huggingface/datasets)")
    add_model_arguments(p, max_length_default=max_length_default)
    add_output_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.beir",
        description="Evaluate a dense retriever on a BEIR dataset: nDCG@10, Recall@100, MRR@10, MAP@100.",
    )
    add_dataset_arguments(p)
    add_model_arguments(p)
    add_output_arguments(p)
    return p


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-dir``, ``--split``: one split of a BEIR-layout folder (:func:`beir_source`); the benchmarks' too."""
    p.add_argument("--dataset", default="scifact", help="dataset name, the folder under --data-dir (default: scifact)")
    add_data_dir_argument(p, "folder holding dataset folders",
                          "; a missing dataset is downloaded there with beir's downloader when the network works")
    p.add_argument("--split", default="test", help="qrels split to evaluate: qrels/<split>.tsv (default: test)")


def settings_from(args: argparse.Namespace) -> dict:
    """:func:`evaluate_source` keyword arguments from the flags of :func:`add_model_arguments`."""
    return dict(
        model=args.model,
        index=args.index,
        search_params=args.search_params,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
        multi_vector=args.multi_vector,
        nbits=args.nbits,
        cache_dir=args.cache_dir,
        show_progress=not args.quiet,
        trust_remote_code=args.trust_remote_code,
        retrieval=args.retrieval,
        fusion=args.fusion,
        weight=args.weight,
        lexical_tokenizer=args.lexical_tokenizer,
        rerank=args.rerank,
        rerank_depth=args.rerank_depth,
        workers=args.workers,
        ray_address=args.ray_address,
    )


def run(args: argparse.Namespace, load: Callable[[], Source]) -> int:
    """A harness's command: load, evaluate, print the table, write the JSON; bad input is ``error: ...`` and exit 2.

    The JSON is written atomically and only after a complete run, so a failure never leaves one.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("evaluation").setLevel(logging.INFO)
    settings = settings_from(args)
    try:
        source = load()
        result = evaluate_source(source, **settings)
        written = write_outputs(result, source.data, output=args.output, mteb_dir=getattr(args, "mteb_dir", None),
                                per_query_file=getattr(args, "per_query", None),
                                metrics=getattr(args, "metrics", METRICS), settings=settings)
    except (DataError, ModelLoadError, IndexFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    for path in written:
        print(f"results written to {path}")
    return 0


def command(build_parser: Callable[[], argparse.ArgumentParser], load: Callable[[argparse.Namespace], Source]):
    """A harness's ``main(argv)``: parse the flags of ``build_parser``, then :func:`run` the source ``load(args)`` gives."""

    def main(argv: list[str] | None = None) -> int:
        args = build_parser().parse_args(argv)
        return run(args, lambda: load(args))

    return main


main = command(build_parser, lambda args: beir_source(args.dataset, args.data_dir, args.split))


if __name__ == "__main__":
    sys.exit(main())
