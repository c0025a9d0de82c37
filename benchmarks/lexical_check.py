"""``LexicalIndex`` (bm25s) nDCG@10 on a BEIR split against the published bm25s score, plus build and search times.

Documents are ``title + "\\n" + text`` (as MTEB's bm25s baseline joins them); every query is
searched for the top 100, the hit sharing the query's id dropped (as ``retrieval.metrics``
does); scored by pytrec_eval through beir. The reference is MTEB's bm25s baseline on SciFact
test, 0.68736 (``../shared/reference/scores.tsv``): lucene, k1=1.5, b=0.75, English stopwords,
Snowball stemmer. It also times the lazy rebuild that makes an add cost one build per batch.

    python -m benchmarks.lexical_check --data-dir ../shared/data --dataset scifact
    python -m benchmarks.lexical_check --data-dir ../shared/data --dataset csn_ruby --tokenizer code
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from indexes import LexicalIndex, storage
from retrieval.beir_data import load_beir
from retrieval.metrics import score


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="folder holding the dataset in BEIR layout")
    p.add_argument("--dataset", default="scifact", help="dataset folder name under --data-dir")
    p.add_argument("--split", default="test", help="qrels split scored")
    p.add_argument("--tokenizer", default="english", choices=["english", "code"], help="LexicalIndex tokenizer")
    p.add_argument("--method", default="lucene", help="bm25s scoring method")
    p.add_argument("--k1", type=float, default=1.5, help="BM25 k1")
    p.add_argument("--b", type=float, default=0.75, help="BM25 b")
    p.add_argument("--reference", type=float, default=None, help="published nDCG@10 to compare with (printed as a difference)")
    p.add_argument("--json", type=Path, default=None, help="also write the result record here (atomically)")
    p.add_argument("--quiet", action="store_true", help="print only the result line")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    data = load_beir(args.data_dir / args.dataset, args.split)
    doc_ids = list(data.corpus)
    texts = [f"{d.get('title') or ''}\n{d.get('text') or ''}" for d in data.corpus.values()]
    qids = [q for q in data.queries if q in data.qrels]
    index = LexicalIndex(args.tokenizer, k1=args.k1, b=args.b, method=args.method)
    start = time.perf_counter()
    index.add(doc_ids, texts)
    tokenize_s = time.perf_counter() - start
    start = time.perf_counter()
    index.compact()  # nothing deleted: a no-op; the build is lazy ...
    index.search(["warm"], 1)  # ... and happens in the first search
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    result = index.search([data.queries[q] for q in qids], 101)
    search_s = time.perf_counter() - start
    run = {q: {d: s for d, s in zip(ids, scores) if d != q} for q, ids, scores in zip(qids, result.ids, result.scores)}
    run = {q: dict(list(hits.items())[:100]) for q, hits in run.items()}
    metrics = score({q: data.qrels[q] for q in qids}, run)
    record = {"dataset": args.dataset, "split": args.split, "documents": len(doc_ids), "queries": len(qids),
              **index.settings, **metrics, "tokenize_s": tokenize_s, "build_s": build_s, "search_s": search_s,
              "tokens": int(sum(len(t) for t in index._doc_tokens))}
    line = f"{args.dataset} {args.split} {args.tokenizer} {args.method} k1={args.k1} b={args.b}: nDCG@10 {metrics['ndcg@10']:.5f}"
    if args.reference is not None:
        line += f" (reference {args.reference:.5f}, difference {metrics['ndcg@10'] - args.reference:+.5f})"
    if not args.quiet:
        print(f"{len(doc_ids)} documents, {record['tokens']} tokens: tokenize {tokenize_s:.2f} s, build {build_s:.2f} s, "
              f"{len(qids)} queries {search_s:.2f} s ({len(qids) / search_s:.0f} q/s)")
    print(line)
    if args.json:
        storage.write_json(args.json, record)
        if not args.quiet:
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
