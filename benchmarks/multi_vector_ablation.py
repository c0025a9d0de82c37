"""Ablation of MultiVectorIndex's search loop, variants interleaved in one process: ``python -m benchmarks.multi_vector_ablation``.

On the ColBERT token embeddings of :mod:`benchmarks.indexes_bench` (same cache, same
``--max-docs`` subset), one index is built and searched by:

* ``reference``: the torch/numpy path (``index.kernels = False``): numpy candidate generation
  (``np.unique`` + ``np.maximum.at``), exact MaxSim as two matmuls on the widened 4-bit codes;
* ``native``: :mod:`indexes.maxsim_kernels` (one C++ pass per query: centroid scores and probes,
  stamp-based centroid interaction, exact MaxSim with decompression fused into scoring);
* ``native`` at every ``--settings`` knob setting (the nDCG@10-vs-QPS curve);
* optionally ``warp`` (``--warp``): PyLate's WARP on the same embeddings, at its defaults and
  every ``--warp-settings`` setting.

Each variant runs ``--repeats`` times, round-robin, at every ``--threads`` count (QPS: all queries
in one call; p50: one query at a time over ``--latency-queries``); the median is reported, with
the ratio to ``reference`` and to WARP's defaults measured in the same run, and nDCG@10 / Recall@100
against exhaustive MaxSim on the raw float embeddings. The machine's load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.indexes_bench import (
    PeakRSS, build_parser as bench_parser, build_warp, drop_self, knob_settings, label, load_embeddings, measure, set_threads,
)
from benchmarks.search_memory import probe, save_queries
from indexes import MultiVectorIndex, maxsim, maxsim_kernels, storage
from retrieval.metrics import TOP_K, score


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser()
    p.prog, p.description = "python -m benchmarks.multi_vector_ablation", __doc__.split("\n\n")[0]
    p.set_defaults(threads="1", latency_queries=50)
    for action in p._actions:  # the defaults above, and the flags of indexes_bench that do not apply here
        if action.dest == "threads":
            action.help = "comma-separated search thread counts (default: 1)"
        elif action.dest == "latency_queries":
            action.help = "queries searched one at a time for the p50 latency, 0 to skip (default: 50)"
        elif action.dest in ("methods", "faiss_settings", "dtype", "document_length", "query_length"):
            action.help += " [as in indexes_bench; methods and faiss-settings are unused here]" if action.dest in ("methods", "faiss_settings") else ""
    p.add_argument("--settings", default="nprobe=4,rerank=128;nprobe=8,rerank=128;nprobe=16,rerank=256;nprobe=8,rerank=512",
                   help="extra nprobe/rerank settings of the native path, ';'-separated")
    p.add_argument("--repeats", type=int, default=3, help="round-robin passes over the variants (default: 3)")
    p.add_argument("--warp", action="store_true", help="also build PyLate's WARP on the same embeddings and interleave it")
    p.add_argument("--warp-nbits", type=int, default=None,
                   help="WARP's bits per dimension when they differ from ours (--nbits), e.g. --nbits 8 --warp-nbits 4")
    p.add_argument("--keep", type=Path, default=None,
                   help="save the indexes and queries in this folder (instead of a temporary one) and measure each "
                   "engine's search memory in a process of its own (benchmarks.search_memory)")
    return p


def separate_search_memory(index, queries, folder: Path, warp: bool) -> dict:
    """Peak resident set of a fresh process that loads each engine's saved index and searches every query."""
    index.save(folder / "ours")
    queries_path = save_queries(folder / "queries.npz", queries)
    engines = {"ours": folder / "ours"} | ({"warp": folder / "warp" / "bench"} if warp else {})
    return {name: probe(name, path, queries_path, threads=1, k=TOP_K + 1) for name, path in engines.items()}


def exhaustive(doc_ids, docs, queries):
    ranked_ids, ranked_scores = [], []
    for q in queries:
        s = maxsim(q, docs)
        top = np.argsort(-s, kind="stable")[: TOP_K + 1]
        ranked_ids.append([doc_ids[i] for i in top])
        ranked_scores.append(s[top].tolist())
    return ranked_ids, ranked_scores


def variants(index, args, warp_searches) -> dict:
    """``{name: batch search function}``, the reference first."""
    def ours(kernels: bool, knobs: dict):
        def search(queries):
            index.kernels = kernels
            result = index.search(queries, TOP_K + 1, **knobs)
            return result.ids, result.scores

        return search

    found = {"reference": ours(False, {}), "native": ours(True, {})}
    found.update({label("native", knobs): ours(True, knobs) for knobs in knob_settings(args.settings)})
    found.update(warp_searches)
    return found


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    say = (lambda *a, **k: None) if args.quiet else print
    if maxsim_kernels.load() is None:
        raise SystemExit(f"the native kernel is unavailable: {maxsim_kernels.unavailable_reason()}")
    data, model_name, doc_ids, docs, query_ids, queries = load_embeddings(args)
    qrels = {q: data.qrels[q] for q in query_ids if q in data.qrels}
    threads = [int(t) for t in args.threads.split(",")]
    report = {"model": model_name, "num_docs": len(docs), "num_tokens": int(sum(len(d) for d in docs)),
              "num_queries": len(queries), "load_average": os.getloadavg(), "build": {}, "variants": {}}
    set_threads(max(threads))
    exact = score(qrels, drop_self(query_ids, *exhaustive(doc_ids, docs, queries)))
    report["exhaustive"] = {"ndcg@10": exact["ndcg@10"], "recall@100": exact["recall@100"]}
    say(f"exhaustive MaxSim: {report['exhaustive']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mv-ablation-") as scratch, PeakRSS() as mem:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        index = MultiVectorIndex(docs[0].shape[1], nbits=args.nbits, nprobe=args.nprobe, rerank=args.rerank)
        index.add(doc_ids, docs)
        index.train()
        report["build"]["ours"] = {"seconds": round(time.perf_counter() - start, 1), "nbits": args.nbits,
                                   "bytes_per_token": round(index.bytes_per_token(), 1)}
        warp_searches = {}
        if args.warp:
            start = time.perf_counter()
            warp_searches, warp_bytes = build_warp(doc_ids, docs, Path(tmp), args)
            report["build"]["warp"] = {"seconds": round(time.perf_counter() - start, 1), "nbits": args.warp_nbits or args.nbits,
                                       "bytes_per_token": round(warp_bytes, 1)}
        say(f"built: {report['build']}", flush=True)
        searches = variants(index, args, warp_searches)
        runs: dict[str, list] = {}
        for rep in range(args.repeats):
            for t in threads:
                for name, search in searches.items():
                    row = measure(search, queries, t, args.latency_queries)
                    qps, p50 = row["qps"], row["p50_ms"] if row["p50_ms"] is not None else float("nan")
                    runs.setdefault(f"{name}@{t}t", []).append((qps, p50, row["cpu_ms_per_query"]))
                    if rep == 0:
                        metrics = score(qrels, drop_self(query_ids, row["ids"], row["scores"]))
                        report["variants"][f"{name}@{t}t"] = {"ndcg@10": metrics["ndcg@10"], "recall@100": metrics["recall@100"]}
                    say(f"  pass {rep + 1} {name}@{t}t: {qps:.1f} QPS, p50 {p50:.2f} ms, load {os.getloadavg()[0]:.1f}", flush=True)
        report["peak_mb"] = mem.mb
        if args.keep:
            report["search_memory"] = separate_search_memory(index, queries, Path(tmp), args.warp)
            say(f"search memory, each engine alone: {report['search_memory']}", flush=True)
    summarise(report, runs, threads)
    report["load_average_end"] = os.getloadavg()
    print_report(report)
    if args.json:
        print(f"results written to {storage.write_json(args.json, report)}")
    return 0


def summarise(report: dict, runs: dict, threads: list[int]) -> None:
    """Median QPS and p50 per variant, and ratios to the reference and to WARP's defaults at the same threads."""
    for name, values in runs.items():
        row = report["variants"][name]
        row["qps"] = round(float(np.median([v[0] for v in values])), 1)
        row["p50_ms"] = round(float(np.median([v[1] for v in values])), 2)
        row["cpu_ms_per_query"] = round(float(np.median([v[2] for v in values])), 2)
    for name, row in report["variants"].items():
        t = name.rsplit("@", 1)[1]
        for anchor in ("reference", "warp"):
            if f"{anchor}@{t}" in report["variants"]:
                other = report["variants"][f"{anchor}@{t}"]
                row[f"qps_vs_{anchor}"] = round(row["qps"] / other["qps"], 2)
                row[f"cpu_vs_{anchor}"] = round(other["cpu_ms_per_query"] / row["cpu_ms_per_query"], 2)


def print_report(report: dict) -> None:
    print(f"\n{report['num_docs']} documents, {report['num_tokens']} tokens, {report['num_queries']} queries; "
          f"load average {report['load_average'][0]:.1f} -> {report['load_average_end'][0]:.1f}; build {json.dumps(report['build'])}")
    print(f"exhaustive MaxSim: nDCG@10 {report['exhaustive']['ndcg@10']:.4f}, Recall@100 {report['exhaustive']['recall@100']:.4f}")
    print("x ref / x warp: speed-up in wall QPS, then in CPU time per query (the loaded machine inflates only the first)")
    print(f"{'variant':<40}{'nDCG@10':>9}{'R@100':>9}{'QPS':>9}{'CPU ms/q':>9}{'p50 ms':>9}{'x ref':>13}{'x warp':>13}")
    nan = float("nan")
    for name, r in report["variants"].items():
        ref = f"{r.get('qps_vs_reference', nan):.2f}/{r.get('cpu_vs_reference', nan):.2f}"
        warp = f"{r.get('qps_vs_warp', nan):.2f}/{r.get('cpu_vs_warp', nan):.2f}"
        print(f"{name:<40}{r['ndcg@10']:>9.4f}{r['recall@100']:>9.4f}{r['qps']:>9.1f}{r['cpu_ms_per_query']:>9.2f}{r['p50_ms']:>9.2f}"
              f"{ref:>13}{warp:>13}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
