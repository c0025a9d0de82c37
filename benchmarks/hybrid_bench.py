"""Dense, BM25 and hybrid retrieval on one BEIR split, every fusion and weight from one encoding: ``python -m benchmarks.hybrid_bench``.

The measurement behind :mod:`retrieval.fusion`'s default: the corpus is embedded once (through
the harness's ``--cache-dir``), indexed in one :class:`retrieval.Retriever` with its BM25 index,
then every query is searched densely (the anchor, measured in the same run), lexically, and
hybrid with reciprocal rank fusion and with the convex combination at each weight. Each line
prints nDCG@10 and its difference from the dense anchor; ``--rerank MODEL`` adds the anchor's
top ``--rerank-depth`` reranked.

Examples
--------
``python -m benchmarks.hybrid_bench --data-dir ../shared/data --cache-dir runs/cache --json runs/hybrid_scifact.json``
"""

from __future__ import annotations

import argparse
import sys
import time

from evaluation.beir import add_dataset_arguments, beir_source, encode_split, make_retriever
from indexes import storage
from retrieval.metrics import retrieve, score
from retrieval.rerank import load_reranker

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hybrid_bench", description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p)
    p.add_argument("--code", action="store_true", help="also try the BM25 code tokenizer (identifiers split)")
    p.add_argument("--model", default=None, help="dense model (default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--cache-dir", default=None, help="corpus embeddings cache, shared with python -m evaluation.beir")
    p.add_argument("--weights", default=",".join(map(str, WEIGHTS)), help="dense shares tried for both fusions")
    p.add_argument("--rerank", default=None, metavar="MODEL", help="also rerank the dense top --rerank-depth with it")
    p.add_argument("--rerank-depth", type=int, default=100, help="candidates reranked (default: 100)")
    p.add_argument("--json", default=None, help="write the table as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = beir_source(args.dataset, args.data_dir, args.split)
    rows = []
    for tokenizer in ("english", "code") if args.code else ("english",):
        retriever, _ = make_retriever(args.model, index="Flat", search_params=None, device=None, dtype="float32",
                                      batch_size=None, multi_vector=False, nbits=4, show_progress=not args.quiet,
                                      lexical=tokenizer)
        run = encode_split(retriever, source, args.cache_dir, not args.quiet)
        retriever.add(run.documents, embeddings=run.doc_emb)
        queries = [source.data.queries[q] for q in run.query_ids]
        qrels = source.data.evaluation_qrels()

        def measure(name: str, **search) -> None:
            start = time.perf_counter()
            results = retrieve(retriever, run.query_ids, run.query_emb, queries=queries, **search)
            rows.append({"run": name, "tokenizer": tokenizer, "seconds": round(time.perf_counter() - start, 2),
                         **score(qrels, results)})
            print(f"{name:<24} {tokenizer:<8} ndcg@10 {rows[-1]['ndcg@10']:.5f}  ({rows[-1]['ndcg@10'] - rows[0]['ndcg@10']:+.5f} "
                  f"vs dense)  recall@100 {rows[-1]['recall@100']:.5f}  {rows[-1]['seconds']:.1f} s", flush=True)

        if tokenizer == "english":
            measure("dense")
        measure("lexical", mode="lexical")
        for weight in map(float, args.weights.split(",")):
            measure(f"hybrid convex w={weight}", mode="hybrid", fusion="convex", weight=weight)
            measure(f"hybrid rrf w={weight}", mode="hybrid", fusion="rrf", weight=weight)
        if args.rerank and tokenizer == "english":
            reranker = load_reranker(args.rerank, dtype="float32")
            measure(f"dense + rerank top {args.rerank_depth}", rerank=reranker, rerank_depth=args.rerank_depth)
    if args.json:
        print(f"results written to {storage.write_json(args.json, {'dataset': source.dataset, 'split': source.split, 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
