"""Benchmark of the single-vector BEIR path: ``python -m benchmarks.beir_bench --data-dir ../shared/data``.

In one run, on one dataset (default SciFact test):

1. Corpus encoding throughput (documents/s) of the toolkit's path (:func:`encoder.encode`,
   token-budget batches) against plain ``SentenceTransformer.encode`` (its defaults),
   in fp32 and, where the CPU runs it natively, bf16. The corpus is cut into slices
   and the two are timed alternately on each slice, so background load hits both alike.
2. nDCG@10 of fp32 against bf16 embeddings.
3. FAISS indexes (exact ``Flat`` and approximate factory strings) over the fp32
   embeddings: nDCG@10, Recall@100, build time and search queries/s, with the ratio to exact.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from encoder import bf16_supported, encode, load_model
from evaluation.beir import add_dataset_arguments
from indexes import storage
from retrieval import Retriever
from retrieval.beir_data import find_dataset, load_beir
from retrieval.documents import document_text
from retrieval.metrics import retrieve, score


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def encode_throughput(model, texts: list[str], slices: int) -> dict:
    """Docs/s of ours vs plain sentence-transformers, alternating on each slice; also our embeddings."""
    model.encode(texts[:64])  # warm-up: first-call allocations and kernel selection
    bounds = np.linspace(0, len(texts), slices + 1).astype(int)
    ours_parts, ours_s, st_s = [], 0.0, 0.0
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        part = texts[a:b]
        run_ours = lambda: encode(model, part, show_progress=False)  # noqa: E731
        run_st = lambda: model.encode_document(part, convert_to_numpy=True)  # noqa: E731
        if i % 2:
            _, t_st = timed(run_st)
            emb, t_ours = timed(run_ours)
        else:
            emb, t_ours = timed(run_ours)
            _, t_st = timed(run_st)
        ours_parts.append(emb)
        ours_s += t_ours
        st_s += t_st
    return {
        "ours_docs_s": round(len(texts) / ours_s, 2),
        "sentence_transformers_docs_s": round(len(texts) / st_s, 2),
        "ratio": round(st_s / ours_s, 3),
        "embeddings": np.concatenate(ours_parts),
    }


def index_run(factory: str, model, doc_ids, doc_emb, query_ids, query_emb, qrels, repeats: int) -> dict:
    retriever = Retriever(model, index=factory)
    _, build_s = timed(lambda: (retriever.add([(i, "") for i in doc_ids], embeddings=doc_emb), retriever.index.train()))
    results = retrieve(retriever, query_ids, query_emb)
    _, search_s = timed(lambda: [retriever.index.search(query_emb, 101) for _ in range(repeats)])
    return {
        "search_params": retriever.index.search_params,
        **score(qrels, results),
        "build_seconds": round(build_s, 3),
        "qps": round(repeats * len(query_ids) / search_s, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.beir_bench", description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p)
    p.add_argument("--model", default=None, help="sentence-transformers model (default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--indexes", default="Flat;HNSW32;IVF64,Flat;IVF64,PQ32", help="';'-separated FAISS factory strings, the first the reference (empty: skip); indexes use the first dtype's embeddings")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to encode in (bfloat16 only where the CPU runs it natively)")
    p.add_argument("--slices", type=int, default=4, help="corpus slices on which ours and plain sentence-transformers alternate (default: 4)")
    p.add_argument("--repeats", type=int, default=20, help="passes over the queries when timing search (default: 20)")
    p.add_argument("--json", default=None, help="write the results to this JSON file (atomically)")
    args = p.parse_args(argv)

    data = load_beir(find_dataset(args.dataset, args.data_dir), args.split)
    doc_ids = list(data.corpus)
    texts = [document_text(d) for d in data.corpus.values()]
    query_ids = list(data.queries)
    report = {"dataset": args.dataset, "split": args.split, "num_docs": len(texts), "num_queries": len(query_ids)}

    dtypes = [d for d in args.dtypes.split(",") if d != "bfloat16" or bf16_supported("cpu")]
    embeddings, encoding = {}, {}
    for dtype in dtypes:
        model = load_model(args.model, device="cpu", dtype=dtype)
        print(f"encoding {len(texts)} documents in {dtype}: ours vs plain SentenceTransformer.encode ...", flush=True)
        run = encode_throughput(model, texts, args.slices)
        doc_emb = run.pop("embeddings")
        query_emb = encode(model, [data.queries[q] for q in query_ids], role="query", show_progress=False)
        retriever = Retriever(model)
        retriever.add([(i, "") for i in doc_ids], embeddings=doc_emb)
        run["ndcg@10"] = score(data.qrels, retrieve(retriever, query_ids, query_emb))["ndcg@10"]
        encoding[dtype], embeddings[dtype] = run, (model, doc_emb, query_emb)
        print(f"  {json.dumps(run)}", flush=True)
    report["model"] = retriever.model_name
    report["encoding"] = encoding
    if {"bfloat16", "float32"} <= set(encoding):
        report["bf16_ndcg_delta"] = round(encoding["bfloat16"]["ndcg@10"] - encoding["float32"]["ndcg@10"], 5)

    model, doc_emb, query_emb = embeddings[dtypes[0]]
    report["indexes"] = {}
    factories = [f for f in args.indexes.split(";") if f]
    for factory in factories:
        run = index_run(factory, model, doc_ids, doc_emb, query_ids, query_emb, data.qrels, args.repeats)
        report["indexes"][factory] = run
    exact = report["indexes"].get(factories[0]) if factories else None
    for run in report["indexes"].values() if exact else []:
        run["ndcg_delta"] = round(run["ndcg@10"] - exact["ndcg@10"], 5)
        run["qps_ratio"] = round(run["qps"] / exact["qps"], 2)

    print_tables(report)
    if args.json:
        print(f"results written to {storage.write_json(args.json, report)}")
    return 0


def print_tables(report: dict) -> None:
    """The encoding table (one row a dtype) and the index table (one row a factory string)."""
    print(f"\nencoding ({report['num_docs']} docs)        ours docs/s  plain ST docs/s  ratio  nDCG@10")
    for dtype, run in report["encoding"].items():
        print(f"  {dtype:<28}{run['ours_docs_s']:>11.1f}{run['sentence_transformers_docs_s']:>17.1f}{run['ratio']:>7.2f}{run['ndcg@10']:>9.5f}")
    print(f"\nindex ({report['num_queries']} queries)     nDCG@10   delta  Recall@100  build s      QPS  vs exact")
    for factory, run in report["indexes"].items():
        print(f"  {factory:<20}{run['ndcg@10']:>9.5f}{run['ndcg_delta']:>+8.4f}{run['recall@100']:>12.5f}{run['build_seconds']:>9.2f}{run['qps']:>9.0f}{run['qps_ratio']:>9.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
