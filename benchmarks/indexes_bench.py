"""Multi-vector index benchmark: ``python -m benchmarks.indexes_bench --dataset scifact --data-dir ../shared/data``.

On the same ColBERT document and query token embeddings, in one run: exhaustive MaxSim
(the reference), this toolkit's FAISS :class:`indexes.MultiVectorIndex`, PyLate's PLAID
(fast-plaid, CPU) and PyLate's Voyager (HNSW over tokens). PLAID is searched twice on
the same index: with PyLate's defaults (``plaid``: 8 probes, 8,192 documents fully
scored) and with this run's FAISS knobs (``plaid_matched``: ``--nprobe`` probes,
``--rerank`` documents fully scored), so speed compares at equal work too. For each: nDCG@10 and
Recall@100 (pytrec_eval through beir), build seconds, queries/s, bytes per token on disk
and peak memory above the process's resident size before the method started (RSS
sampled every 5 ms during build and search).

A benchmark script beside ``examples/``, outside the package layering: it reads data with
:mod:`retrieval.beir_data`, embeds :func:`retrieval.documents.document_text` and scores runs
with :func:`retrieval.metrics.score`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from evaluation.beir import add_dataset_arguments
from indexes import MultiVectorIndex, maxsim, storage
from retrieval.beir_data import find_dataset, load_beir
from retrieval.documents import document_text
from retrieval.metrics import TOP_K, score


class PeakRSS:
    """Highest resident set size above the starting one, sampled in a thread."""

    def __enter__(self):
        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def mb(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def load_colbert(name: str | None, document_length: int, query_length: int, dtype: str):
    import torch
    from pylate import models

    from encoder import default_model, resolve_dtype

    torch.manual_seed(42)  # the projection of an untrained ColBERT head is random: make it the same every run
    model = models.ColBERT(name or default_model(), device="cpu", document_length=document_length, query_length=query_length)
    return model.to(resolve_dtype(dtype)).eval()


def encode_cached(model, name: str, texts: list[str], is_query: bool, cache_dir: Path | None) -> list[np.ndarray]:
    """Token embeddings of ``texts`` (fp16 on disk in ``cache_dir``, keyed by model, lengths and texts)."""
    key = hashlib.sha256(json.dumps([name, str(model.dtype), model.document_length, model.query_length, is_query, texts]).encode()).hexdigest()[:20]
    path = cache_dir / f"colbert-{key}.npz" if cache_dir else None
    if path and path.is_file():
        data = np.load(path)
        return np.split(data["tokens"].astype(np.float32), np.cumsum(data["lengths"])[:-1])
    embeddings = model.encode(texts, is_query=is_query, batch_size=32, show_progress_bar=True, convert_to_numpy=True)
    embeddings = [np.asarray(e, dtype=np.float32) for e in embeddings]
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, tokens=np.concatenate(embeddings).astype(np.float16), lengths=np.array([len(e) for e in embeddings]))
        tmp.replace(path)
    return embeddings


def drop_self(query_ids, ranked_ids, ranked_scores) -> dict:
    """BEIR run ``{qid: {doc: score}}``, top ``TOP_K``, without the document that shares the query's id."""
    run = {}
    for qid, ids, scores in zip(query_ids, ranked_ids, ranked_scores):
        kept = [(d, float(s)) for d, s in zip(ids, scores) if d != qid][:TOP_K]
        run[qid] = dict(kept)
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.indexes_bench", description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p)
    p.add_argument("--model", default=None, help="PyLate ColBERT model (default: the offline MiniLM with an untrained, seeded 128-d projection)")
    p.add_argument("--document-length", type=int, default=300, help="document tokens (default: 300)")
    p.add_argument("--query-length", type=int, default=32, help="query tokens (default: 32)")
    p.add_argument("--dtype", default="auto", help="encoding dtype: auto (bf16 where native), float32, bfloat16 (default: auto)")
    p.add_argument("--methods", default="exhaustive,faiss,plaid,voyager", help="comma-separated subset of exhaustive,faiss,plaid,voyager")
    p.add_argument("--nbits", type=int, default=4, help="bits per dimension for faiss and PLAID residuals (default: 4)")
    p.add_argument("--nprobe", type=int, default=8, help="faiss: centroids probed per query token (default: 8)")
    p.add_argument("--rerank", type=int, default=256, help="faiss: candidates re-scored exactly (default: 256)")
    p.add_argument("--cache-dir", default=None, help="keep token embeddings here between runs")
    p.add_argument("--json", default=None, help="write the results to this JSON file (atomically)")
    args = p.parse_args(argv)

    data = load_beir(find_dataset(args.dataset, args.data_dir), args.split)
    model = load_colbert(args.model, args.document_length, args.query_length, args.dtype)
    model_name = args.model or "all-MiniLM-L6-v2 + untrained projection (seed 42)"
    cache = Path(args.cache_dir) if args.cache_dir else None
    doc_ids = list(data.corpus)
    texts = [document_text(d) for d in data.corpus.values()]
    query_ids = list(data.queries)
    docs = encode_cached(model, model_name, texts, False, cache)
    queries = encode_cached(model, model_name, [data.queries[q] for q in query_ids], True, cache)
    report = {"model": model_name, "num_docs": len(docs), "num_tokens": int(sum(len(d) for d in docs)), "methods": {}}

    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory(prefix="indexes-bench-") as tmp:
        tmp = Path(tmp)
        for method in methods:
            print(f"{method}: building and searching {len(queries)} queries ...", flush=True)
            with PeakRSS() as mem:
                start = time.perf_counter()
                searches, bytes_per_token = build(method, doc_ids, docs, tmp, args)
                build_seconds = time.perf_counter() - start
                for name, search in searches.items():  # PLAID: its defaults, then matched knobs
                    start = time.perf_counter()
                    ranked_ids, ranked_scores = search(queries)
                    search_seconds = time.perf_counter() - start
                    metrics = score(data.qrels, drop_self(query_ids, ranked_ids, ranked_scores))
                    report["methods"][name] = {
                        "ndcg@10": metrics["ndcg@10"],
                        "recall@100": metrics["recall@100"],
                        "build_seconds": round(build_seconds, 2),
                        "qps": round(len(queries) / search_seconds, 1),
                        "bytes_per_token": round(bytes_per_token, 1),
                        "peak_mb": mem.mb,  # build and every search so far
                    }
                    print(f"  {name}: {json.dumps(report['methods'][name])}", flush=True)

    print(f"\n{report['num_docs']} documents, {report['num_tokens']} tokens, {len(queries)} queries; model {model_name}")
    print_table(report["methods"])
    if args.json:
        print(f"results written to {storage.write_json(args.json, report)}")
    return 0


def print_table(methods: dict) -> None:
    """One row a method: quality, build time, speed, size and memory."""
    print(f"{'method':<12}{'nDCG@10':>9}{'R@100':>9}{'build s':>9}{'QPS':>9}{'B/token':>9}{'peak MB':>9}")
    for method, r in methods.items():
        print(f"{method:<12}{r['ndcg@10']:>9.4f}{r['recall@100']:>9.4f}{r['build_seconds']:>9.1f}{r['qps']:>9.1f}{r['bytes_per_token']:>9.1f}{r['peak_mb']:>9.0f}")


def build(method: str, doc_ids, docs, tmp: Path, args):
    """Build one method's index; return ``{name: batch search function}`` and its bytes per token."""
    num_tokens = sum(len(d) for d in docs)
    if method == "exhaustive":
        def search(queries):
            ranked_ids, ranked_scores = [], []
            for q in queries:
                scores = maxsim(q, docs)
                top = np.argsort(-scores)[: TOP_K + 1]
                ranked_ids.append([doc_ids[i] for i in top])
                ranked_scores.append(scores[top])
            return ranked_ids, ranked_scores

        return {"exhaustive": search}, 4.0 * docs[0].shape[1]  # float32 tokens in memory
    if method == "faiss":
        index = MultiVectorIndex(docs[0].shape[1], nbits=args.nbits, nprobe=args.nprobe, rerank=args.rerank)
        index.add(doc_ids, docs)
        path = index.save(tmp / "faiss")

        def search(queries):
            result = index.search(queries, TOP_K + 1)
            return result.ids, result.scores

        return {"faiss": search}, folder_bytes(path) / num_tokens
    if method == "plaid":
        from pylate import indexes

        plaid = indexes.PLAID(index_folder=str(tmp / "plaid"), index_name="bench", override=True, nbits=args.nbits, show_progress=False, device="cpu")
        plaid.add_documents(documents_ids=doc_ids, documents_embeddings=docs)

        def searcher(n_ivf_probe, n_full_scores):
            def search(queries):
                plaid._index.n_ivf_probe, plaid._index.n_full_scores = n_ivf_probe, n_full_scores
                results = plaid(queries, k=TOP_K + 1)
                return [[r["id"] for r in row] for row in results], [[r["score"] for r in row] for row in results]

            return search

        defaults = (plaid._index.n_ivf_probe, plaid._index.n_full_scores)
        searches = {"plaid": searcher(*defaults), "plaid_matched": searcher(args.nprobe, args.rerank)}
        return searches, folder_bytes(tmp / "plaid") / num_tokens
    if method == "voyager":
        from pylate import indexes, retrieve

        voyager = indexes.Voyager(index_folder=str(tmp / "voyager"), index_name="bench", override=True, embedding_size=docs[0].shape[1])
        voyager.add_documents(documents_ids=doc_ids, documents_embeddings=docs)
        retriever = retrieve.ColBERT(index=voyager)

        def search(queries):
            results = retriever.retrieve(queries_embeddings=queries, k=TOP_K + 1)
            return [[r["id"] for r in row] for row in results], [[r["score"] for r in row] for row in results]

        return {"voyager": search}, folder_bytes(tmp / "voyager") / num_tokens
    raise ValueError(f"unknown method {method!r}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
