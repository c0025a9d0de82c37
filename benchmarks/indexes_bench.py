"""Multi-vector index benchmark: ``python -m benchmarks.indexes_bench --dataset scifact --data-dir ../shared/data``.

On the same ColBERT document and query token embeddings, in one run: exhaustive MaxSim
(the reference), this toolkit's FAISS :class:`indexes.MultiVectorIndex`, PyLate's PLAID
(fast-plaid, CPU), PyLate's WARP (``xtr-warp-rs``, CPU; ``pip install .[bench]``) and PyLate's
Voyager (HNSW over tokens). PLAID is searched twice on
the same index: with PyLate's defaults (``plaid``: 8 probes, 8,192 documents fully
scored) and with this run's FAISS knobs (``plaid_matched``: ``--nprobe`` probes,
``--rerank`` documents fully scored), so speed compares at equal work too. For each: nDCG@10 and
Recall@100 (pytrec_eval through beir), build seconds, queries/s, bytes per token on disk
and peak memory above the process's resident size before the method started (RSS
sampled every 5 ms during build and search).

Each search runs at every ``--threads`` count (``torch``, FAISS's OpenMP and WARP's own
``num_threads``), batched (all queries in one call: ``qps``) and one query at a time
(``p50_ms``, the median latency over ``--latency-queries`` queries). WARP is searched through
``pylate.indexes.WARP``'s engine (``index.warp.search`` with the wrapper's knobs): the wrapper's
``__call__`` re-reads two pickled id maps on every call, which would charge WARP's latency for
PyLate's bookkeeping. ``--faiss-settings`` and ``--warp-settings`` add knob settings (an
nDCG@10-vs-QPS curve) on the same built index; ``--max-docs`` keeps a subset (every document
a test query judges, then the first others) for quick checks.

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


def encode_cached(model, name: str, texts: list[str], is_query: bool, cache_dir: Path | None,
                  cached_only: bool = False) -> list[np.ndarray] | None:
    """Token embeddings of ``texts`` (fp16 on disk in ``cache_dir``, keyed by model, lengths and texts).

    ``cached_only``: None instead of encoding when the cache has no entry.
    """
    key = hashlib.sha256(json.dumps([name, str(model.dtype), model.document_length, model.query_length, is_query, texts]).encode()).hexdigest()[:20]
    path = cache_dir / f"colbert-{key}.npz" if cache_dir else None
    if path and path.is_file():
        data = np.load(path)
        return np.split(data["tokens"].astype(np.float32), np.cumsum(data["lengths"])[:-1])
    if cached_only:
        return None
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.indexes_bench", description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p)
    p.add_argument("--model", default=None, help="PyLate ColBERT model (default: the offline MiniLM with an untrained, seeded 128-d projection)")
    p.add_argument("--document-length", type=int, default=300, help="document tokens (default: 300)")
    p.add_argument("--query-length", type=int, default=32, help="query tokens (default: 32)")
    p.add_argument("--dtype", default="auto", help="encoding dtype: auto (bf16 where native), float32, bfloat16 (default: auto)")
    p.add_argument("--methods", default="exhaustive,faiss,warp,plaid,voyager",
                   help="comma-separated subset of exhaustive,faiss,warp,plaid,voyager (default: all)")
    p.add_argument("--nbits", type=int, default=4, help="bits per dimension for faiss, WARP and PLAID residuals (default: 4)")
    p.add_argument("--nprobe", type=int, default=8, help="faiss: centroids probed per query token (default: 8)")
    p.add_argument("--rerank", type=int, default=256, help="faiss: candidates re-scored exactly (default: 256)")
    p.add_argument("--faiss-settings", default="",
                   help="extra faiss knob settings on the same index, ';'-separated, e.g. 'nprobe=4,rerank=128;nprobe=8,rerank=64'")
    p.add_argument("--warp-settings", default="",
                   help="extra WARP knob settings (n_ivf_probe, t_prime, bound, max_candidates), ';'-separated, "
                        "e.g. 'n_ivf_probe=16;n_ivf_probe=8,t_prime=50000' (default: PyLate's defaults only)")
    p.add_argument("--threads", default="1,2", help="comma-separated search thread counts (default: 1,2)")
    p.add_argument("--latency-queries", type=int, default=100,
                   help="queries searched one at a time for the p50 latency, 0 to skip (default: 100; never for exhaustive)")
    p.add_argument("--max-docs", type=int, default=None, help="keep at most this many documents (judged ones first), for quick checks")
    p.add_argument("--max-queries", type=int, default=None, help="keep at most this many queries, for quick checks")
    p.add_argument("--cache-dir", default=None, help="keep token embeddings here between runs")
    p.add_argument("--json", default=None, help="write the results to this JSON file (atomically)")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    return p


def subsample(data, max_docs: int | None, max_queries: int | None):
    """Document ids (every judged document first, then corpus order) and query ids to keep."""
    query_ids = list(data.queries)[:max_queries] if max_queries else list(data.queries)
    doc_ids = list(data.corpus)
    if max_docs and max_docs < len(doc_ids):
        judged = {d for q in query_ids for d in data.qrels.get(q, {}) if d in data.corpus}
        doc_ids = [d for d in doc_ids if d in judged] + [d for d in doc_ids if d not in judged]
        doc_ids = doc_ids[:max_docs]
    return doc_ids, query_ids


def set_threads(threads: int) -> None:
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def load_embeddings(args):
    """The dataset, the kept document ids and query ids, and their token embeddings (cached)."""
    data = load_beir(find_dataset(args.dataset, args.data_dir), args.split)
    model = load_colbert(args.model, args.document_length, args.query_length, args.dtype)
    model_name = args.model or "all-MiniLM-L6-v2 + untrained projection (seed 42)"
    cache = Path(args.cache_dir) if args.cache_dir else None
    doc_ids, query_ids = subsample(data, args.max_docs, args.max_queries)
    # A subset is cut from the whole corpus's cached embeddings where they exist, else encoded alone.
    everything = encode_cached(model, model_name, [document_text(d) for d in data.corpus.values()], False, cache,
                               cached_only=len(doc_ids) < len(data.corpus))
    if everything is not None:
        position = {d: i for i, d in enumerate(data.corpus)}
        docs = [everything[position[d]] for d in doc_ids]
    else:
        docs = encode_cached(model, model_name, [document_text(data.corpus[d]) for d in doc_ids], False, cache)
    queries = encode_cached(model, model_name, [data.queries[q] for q in query_ids], True, cache)
    return data, model_name, doc_ids, docs, query_ids, queries


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    say = (lambda *a, **k: None) if args.quiet else print
    data, model_name, doc_ids, docs, query_ids, queries = load_embeddings(args)
    qrels = {q: data.qrels[q] for q in query_ids if q in data.qrels}
    threads = [int(t) for t in args.threads.split(",")]
    report = {"model": model_name, "num_docs": len(docs), "num_tokens": int(sum(len(d) for d in docs)),
              "num_queries": len(queries), "load_average": os.getloadavg(), "methods": {}}
    with tempfile.TemporaryDirectory(prefix="indexes-bench-") as tmp:
        for method in args.methods.split(","):
            say(f"{method}: building and searching {len(queries)} queries ...", flush=True)
            with PeakRSS() as mem:
                set_threads(max(threads))
                start = time.perf_counter()
                searches, bytes_per_token = build(method, doc_ids, docs, Path(tmp), args)
                build_seconds = time.perf_counter() - start
                for name, search in searches.items():
                    for t in threads if method != "exhaustive" else threads[:1]:
                        row = measure(search, queries, t, 0 if method == "exhaustive" else args.latency_queries)
                        metrics = score(qrels, drop_self(query_ids, row.pop("ids"), row.pop("scores")))
                        report["methods"][f"{name}@{t}t"] = {
                            "ndcg@10": metrics["ndcg@10"], "recall@100": metrics["recall@100"],
                            "build_seconds": round(build_seconds, 2), **row,
                            "bytes_per_token": round(bytes_per_token, 1),
                            "peak_mb": mem.mb,  # build and every search so far
                        }
                        say(f"  {name}@{t}t: {json.dumps(report['methods'][f'{name}@{t}t'])}", flush=True)
    report["load_average_end"] = os.getloadavg()
    print(f"\n{report['num_docs']} documents, {report['num_tokens']} tokens, {len(queries)} queries; model {model_name}; "
          f"load average {report['load_average'][0]:.1f} -> {report['load_average_end'][0]:.1f}")
    print_table(report["methods"])
    if args.json:
        print(f"results written to {storage.write_json(args.json, report)}")
    return 0


def measure(search, queries, threads: int, latency_queries: int) -> dict:
    """Batched queries/s and CPU ms per query, then the median latency of one query at a time, at ``threads`` threads."""
    set_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    ranked_ids, ranked_scores = search(queries)
    qps = len(queries) / (time.perf_counter() - start)
    cpu_ms = 1000 * (time.process_time() - cpu) / len(queries)  # every thread's CPU: what a loaded machine cannot inflate
    latencies = []
    for q in queries[:latency_queries]:
        start = time.perf_counter()
        search([q])
        latencies.append(time.perf_counter() - start)
    p50 = round(1000 * float(np.median(latencies)), 2) if latencies else None
    return {"ids": ranked_ids, "scores": ranked_scores, "qps": round(qps, 1), "cpu_ms_per_query": round(cpu_ms, 2), "p50_ms": p50}


def print_table(methods: dict) -> None:
    """One row a method and thread count: quality, build time, speed, latency, size and memory."""
    print(f"{'method':<40}{'nDCG@10':>9}{'R@100':>9}{'build s':>9}{'QPS':>9}{'CPU ms/q':>9}{'p50 ms':>9}{'B/token':>9}{'peak MB':>9}")
    for method, r in methods.items():
        p50 = f"{r['p50_ms']:>9.2f}" if r.get("p50_ms") is not None else f"{'-':>9}"
        print(f"{method:<40}{r['ndcg@10']:>9.4f}{r['recall@100']:>9.4f}{r['build_seconds']:>9.1f}{r['qps']:>9.1f}{r['cpu_ms_per_query']:>9.2f}{p50}"
              f"{r['bytes_per_token']:>9.1f}{r['peak_mb']:>9.0f}")


def knob_settings(text: str) -> list[dict]:
    """``"a=1,b=2;a=3"`` -> ``[{"a": 1, "b": 2}, {"a": 3}]``."""
    settings = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        pairs = [kv.split("=") for kv in item.split(",")]
        if any(len(kv) != 2 or not kv[1].strip().isdigit() for kv in pairs):
            raise SystemExit(f"bad knob setting {item!r}: expected name=integer pairs separated by ','")
        settings.append({k.strip(): int(v) for k, v in pairs})
    return settings


def label(name: str, knobs: dict) -> str:
    return name + ("[" + ",".join(f"{k}={v}" for k, v in knobs.items()) + "]" if knobs else "")


def build_warp(doc_ids, docs, tmp: Path, args):
    """PyLate's WARP at its defaults, then every ``--warp-settings`` knob setting, on one built index."""
    import torch
    from pylate import indexes

    nbits = getattr(args, "warp_nbits", None) or args.nbits
    warp = indexes.WARP(index_folder=str(tmp / "warp"), index_name="bench", override=True, nbits=nbits,
                        device="cpu", show_progress=False)
    warp.add_documents(documents_ids=doc_ids, documents_embeddings=docs)
    names = dict(enumerate(doc_ids))  # WARP numbers a first build's passages 0..n-1

    def searcher(knobs):
        def search(queries):
            settings = {"nprobe": warp.n_ivf_probe, "bound": warp.bound, "t_prime": warp.t_prime,
                        "max_candidates": warp.max_candidates, "centroid_score_threshold": warp.centroid_score_threshold}
            settings.update({"nprobe" if k == "n_ivf_probe" else k: v for k, v in knobs.items()})
            results = warp.warp.search(queries_embeddings=[torch.from_numpy(q) for q in queries], top_k=TOP_K + 1,
                                       num_threads=torch.get_num_threads(), batch_size=warp.batch_size,
                                       show_progress=False, **settings)
            return [[names[p] for p, _ in row] for row in results], [[s for _, s in row] for row in results]

        return search

    searches = {label("warp", knobs): searcher(knobs) for knobs in [{}] + knob_settings(args.warp_settings)}
    return searches, folder_bytes(tmp / "warp") / sum(len(d) for d in docs)


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

        def searcher(knobs):
            def search(queries):
                result = index.search(queries, TOP_K + 1, **knobs)
                return result.ids, result.scores

            return search

        searches = {label("faiss", knobs): searcher(knobs) for knobs in [{}] + knob_settings(args.faiss_settings)}
        return searches, folder_bytes(path) / num_tokens
    if method == "warp":
        return build_warp(doc_ids, docs, tmp, args)
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
