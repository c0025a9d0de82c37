"""BEIR evaluation of a dense retriever: ``python -m evaluation.beir --dataset scifact``.

Encodes the corpus (``title + " " + text``) and the queries of one split, indexes the
documents in FAISS through the toolkit's :class:`retrieval.Retriever`, retrieves the
top 100 per query (a document sharing the query's id is never returned, as in BEIR and
MTEB) and scores the run with pytrec_eval through beir: nDCG@10, Recall@100, MRR@10,
MAP@100.

Examples
--------
>>> from evaluation.beir import evaluate                          # doctest: +SKIP
>>> evaluate("scifact", data_dir="../shared/data")["metrics"]["ndcg@10"]
0.64508
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from encoder import ModelLoadError, default_model, load_model
from evaluation.data import DATA_DIR_ENV, DataError, find_dataset, load_beir
from indexes import IndexFormatError, atomic
from retrieval import ColbertRetriever, Retriever

logger = logging.getLogger("evaluation.beir")

TOP_K = 100
METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")


def retrieve(retriever: Retriever, query_ids: list[str], query_embeddings: np.ndarray, k: int = TOP_K) -> dict:
    """``{qid: {doc_id: score}}`` with the top ``k`` documents, never the one sharing the query's id."""
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


def corpus_embeddings(retriever: Retriever, data_path: Path, documents: list[dict], cache_dir: Path | None):
    """Embed the corpus, or read the embeddings a previous run stored in ``cache_dir``.

    Single vectors are one array; ColBERT token vectors are stored back to back with their counts.
    """
    if cache_dir is None:
        return retriever.embed_documents(documents)
    corpus_file = data_path / "corpus.jsonl"
    st = corpus_file.stat()
    key = hashlib.sha256(
        f"{corpus_file.resolve()}:{st.st_size}:{st.st_mtime_ns}:{model_fingerprint(retriever.model_name, retriever.model)}".encode()
    ).hexdigest()[:20]
    path = Path(cache_dir) / f"{data_path.name}-{retriever.kind}-{key}.npz"
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
    return emb


def evaluate(
    dataset: str = "scifact",
    *,
    data_dir: str | Path | None = None,
    split: str = "test",
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
) -> dict:
    """Run one BEIR evaluation and return the result record (see the module docstring).

    ``model`` is a hub id, a local path or a loaded ``SentenceTransformer`` (a PyLate
    ``ColBERT`` with ``multi_vector=True``, which indexes token vectors in
    :class:`indexes.MultiVectorIndex` with ``nbits`` per dimension; ``index`` is then ignored).
    """
    data_path = find_dataset(dataset, data_dir)
    data = load_beir(data_path, split)
    settings = dict(device=device, dtype=dtype, show_progress=show_progress)
    if multi_vector:
        retriever = ColbertRetriever(model, nbits=nbits, document_length=max_length, **settings,
                                     batch_size=batch_size or ColbertRetriever.batch_size_default)
        retriever.index.set_search_params(search_params)
        index = f"multi-vector nbits={nbits}"
    else:
        if model is None or isinstance(model, (str, Path)):
            model = load_model(model or default_model(), device=device, dtype=dtype, max_length=max_length)
        retriever = Retriever(model, index=index, search_params=search_params, show_progress=show_progress,
                              batch_size=batch_size or Retriever.batch_size_default)

    documents = [{"id": did, **doc} for did, doc in data.corpus.items()]
    query_ids = list(data.queries)
    start = time.perf_counter()
    doc_emb = corpus_embeddings(retriever, data_path, documents, cache_dir)
    query_emb = retriever.embed_queries([data.queries[q] for q in query_ids])
    encode_seconds = time.perf_counter() - start

    start = time.perf_counter()
    retriever.add(documents, embeddings=doc_emb)
    retriever.index.train()
    index_seconds = time.perf_counter() - start

    start = time.perf_counter()
    results = retrieve(retriever, query_ids, query_emb)
    search_seconds = time.perf_counter() - start

    return {
        "dataset": dataset,
        "split": split,
        "model": retriever.model_name,
        "index": index,
        "num_queries": len(query_ids),
        "num_docs": len(documents),
        "encode_seconds": round(encode_seconds, 3),
        "index_seconds": round(index_seconds, 3),
        "search_seconds": round(search_seconds, 3),
        "search_params": retriever.index.search_params,
        "dtype": str(next(retriever.model.parameters()).dtype).removeprefix("torch."),
        "warnings": data.warnings,
        "metrics": score(data.qrels, results),
    }


def format_table(result: dict) -> str:
    head = (
        f"{result['dataset']} ({result['split']}): {result['num_queries']} queries, {result['num_docs']} documents, "
        f"index {result['index']}, encode {result['encode_seconds']:.1f}s, search {result['search_seconds']:.2f}s"
    )
    return "\n".join([head] + [f"{name:<12}{result['metrics'][name]:.5f}" for name in METRICS])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.beir",
        description="Evaluate a dense retriever on a BEIR dataset: nDCG@10, Recall@100, MRR@10, MAP@100.",
    )
    p.add_argument("--dataset", default="scifact", help="dataset name, the folder under --data-dir (default: scifact)")
    p.add_argument(
        "--data-dir",
        default=None,
        help=f"folder holding dataset folders (default: ${DATA_DIR_ENV}, else ./data); "
        "a missing dataset is downloaded there with beir's downloader when the network works",
    )
    p.add_argument("--split", default="test", help="qrels split to evaluate: qrels/<split>.tsv (default: test)")
    p.add_argument("--model", default=None, help="sentence-transformers hub id or local folder (default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--index", default="Flat", help='FAISS factory string, e.g. Flat (exact, default), HNSW32, "IVF64,Flat"')
    p.add_argument("--search-params", default=None, help='FAISS search parameters, e.g. "nprobe=32" or "efSearch=256"; with --multi-vector "nprobe=8,rerank=256" (default: accurate presets)')
    p.add_argument("--batch-size", type=int, default=None, help="maximum texts per encoding batch (default: 256 dense, also capped by a token budget; 32 ColBERT)")
    p.add_argument("--multi-vector", action="store_true", help="ColBERT: --model is a PyLate ColBERT model (a plain encoder gets an untrained projection); token vectors go into the multi-vector FAISS index")
    p.add_argument("--nbits", type=int, default=4, choices=[4, 6, 8, 16], help="--multi-vector: bits per stored dimension (16 = fp16; default 4)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"], help="model weights dtype; auto = bf16 where the hardware runs it natively (default: float32, the published setting)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-length", type=int, default=None, help="maximum tokens per text (default: the model's own)")
    p.add_argument("--cache-dir", default=None, help="reuse corpus embeddings stored here by an earlier run with the same model and corpus")
    p.add_argument("--output", default=None, help="write the result as JSON to this file (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("evaluation").setLevel(logging.INFO)
    try:
        result = evaluate(
            args.dataset,
            data_dir=args.data_dir,
            split=args.split,
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
        )
    except (DataError, ModelLoadError, IndexFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.output:
        path = atomic.write_json(args.output, result)
        print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
