"""Scale benchmark: cost curves of index builds from shards, and Ray encoding against the in-process path.

``python -m benchmarks.scale_bench single --work DIR``: single-vector cost curve on synthetic
384-d vectors (all-MiniLM-L6-v2's dimension; clustered, unit length) for N = 10k ... 10M:
``Flat`` (up to ``--flat-max``), ``HNSW32`` (up to ``--hnsw-max``) and IVF-PQ, each built from
shards by :mod:`indexes.from_shards` in its own subprocess. Per case: build seconds, peak RSS of
that process (``ru_maxrss``, memory-mapped pages it touched included; the parent kills a case
above ``--memory-limit-gb``), bytes on disk, single-query latency p50/p99 and batch queries/s
through :class:`indexes.FaissIndex` loaded from the folder (IVF lists memory-mapped), recall@10
against exact search over the same shards. Growth exponents are fitted per index type
(``log y = a log N + b``).

``multi``: the same for :class:`indexes.MultiVectorIndex` from token shards (synthetic 128-d,
100 tokens per document, fp16 shards), N documents up to ``--multi-max``.

``ray``: a BEIR corpus (default SciFact) encoded by ``python -m retrieval encode`` with 1 and 2
Ray workers against in-process :meth:`retrieval.Retriever.embed_documents`, same run: max |diff|,
nDCG@10 of each, throughput ratios and 1 -> 2 scaling efficiency. ``--reference`` takes the in-process
embeddings from the harness's cache instead (a full corpus then costs one Ray encode, not three), and
``--workers 2`` runs only that count; shards are deleted once measured unless ``--keep-shards``.

``code``: a folder of code (a package of site-packages), copied, through ``python -m retrieval index
--workers 2`` (a pool of Ray actors) against ``index`` in-process, same run: chunks/s ratio, peak RSS
of each process tree, index size, same ids and vectors; then one file touched and indexed again
(``--shards``: also ``encode`` + ``build-index``).

Every run is niced by the caller (``nice -n 15``) and prints one JSON line per case; ``--json``
collects them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

DIM, TOKEN_DIM, TOKENS = 384, 128, 100


def clustered(rng, n: int, dim: int, centers: np.ndarray, spread: float = 0.8, dtype=np.float32) -> np.ndarray:
    """Unit vectors around random centers: neighbours exist, as in real embeddings (uniform noise has none)."""
    x = centers[rng.integers(len(centers), size=n)] + rng.standard_normal((n, dim), dtype=np.float32) * (spread / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype, copy=False)


def make_shards(folder: Path, n: int, *, kind: str, shard_size: int, seed: int = 0):
    """Synthetic shards of ``n`` documents, stored as float16 (written once; a rerun keeps finished shards)."""
    from indexes.shards import ShardSet

    dim = DIM if kind == "single" else TOKEN_DIM
    centers = clustered(np.random.default_rng(seed), 4096, dim, np.zeros((1, dim), np.float32), spread=np.sqrt(dim))
    plan = [(s, min(shard_size, n - s)) for s in range(0, n, shard_size)]
    shards = ShardSet.create(folder, kind=kind, dim=dim, plan=plan, synthetic_seed=seed, stored_as="float16")
    for number in shards.missing():
        start, count = plan[number]
        rng = np.random.default_rng([seed, number])
        ids = [f"d{i}" for i in range(start, start + count)]
        if kind == "single":  # float16 on disk (the builders read float32): 10M x 384 is 7.7 GB instead of 15.4
            shards.write(number, ids, clustered(rng, count, dim, centers, dtype=np.float16))
        else:
            lens = np.full(count, TOKENS, dtype=np.int64)
            shards.write(number, ids, clustered(rng, int(lens.sum()), dim, centers, dtype=np.float16), lens)
    return shards


def prefix(big, n: int, folder: Path):
    """The first shards of ``big`` holding ``n`` documents, as a shard set of links (no copy)."""
    from indexes.shards import ShardSet, shard_name

    plan = [tuple(p) for p in big.plan if p[0] < n]
    if sum(c for _, c in plan) != n:
        raise ValueError(f"{n} is not a whole number of shards of {big.path}")
    extra = {k: v for k, v in big.meta.items() if k not in ("format", "version", "kind", "dim", "plan", "num_documents", "sha256", "checksum")}
    shards = ShardSet.create(folder, kind=big.kind, dim=big.dim, plan=plan, **extra)
    for i in range(len(plan)):
        link = folder / shard_name(i)
        if not link.exists():
            link.symlink_to((big.path / shard_name(i)).absolute())
    return shards


def queries_for(kind: str, count: int = 100, seed: int = 99) -> np.ndarray | list:
    rng = np.random.default_rng(seed)
    dim = DIM if kind == "single" else TOKEN_DIM
    centers = clustered(np.random.default_rng(0), 4096, dim, np.zeros((1, dim), np.float32), spread=np.sqrt(dim))
    if kind == "single":
        return clustered(rng, count, dim, centers)
    return [clustered(rng, 32, dim, centers) for _ in range(count)]


def exact_top(shards, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Exact top-``k`` positions by inner product, streaming over the shards (FAISS knn + a result heap)."""
    import faiss

    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for number in range(len(shards)):
        x = np.asarray(shards.read(number, verify=False).embeddings, dtype=np.float32)
        scores, labels = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(scores, labels + shards.plan[number][0])
    heap.finalize()
    return heap.I


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def latency(search, queries, repeat: int = 1) -> dict:
    """p50 / p99 of one query at a time, and queries/s of the whole batch."""
    times = []
    for q in queries:
        t = time.perf_counter()
        search([q] if isinstance(q, np.ndarray) and q.ndim == 2 else q[None])
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(repeat):
        search(queries)
    qps = repeat * len(queries) / (time.perf_counter() - t)
    return {"p50_ms": 1000 * float(np.percentile(times, 50)), "p99_ms": 1000 * float(np.percentile(times, 99)), "qps": qps}


def peak_rss_gb() -> float:
    """This process's peak resident size since its exec (``VmHWM``).

    Not ``ru_maxrss``: Linux carries the parent's peak at fork into it, so every case reported at
    least the driver's own peak (2.4 GB after generating 1M x 100 token shards).
    """
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 2**20


def case(args) -> dict:
    """One build + search, in this (sub)process: the numbers of one cell of the cost table."""
    from indexes import FaissIndex, MultiVectorIndex, from_shards
    from indexes.shards import ShardSet

    shards, out = ShardSet(args.shards), Path(args.out)
    queries = queries_for(shards.kind)
    t = time.perf_counter()
    if shards.kind == "single":
        from_shards.build_single(shards, out, args.factory)
        build = time.perf_counter() - t
        index = FaissIndex.load(out)
        stats = latency(lambda q: index.search(q, 10), queries)
        got = index.search(queries, 10).ids
        truth = exact_top(shards, queries) if args.truth else None
    else:
        from_shards.build_multi(shards, out, nlist=args.nlist)
        build = time.perf_counter() - t
        index = MultiVectorIndex.load(out)
        stats = latency(lambda q: index.search(q, 10), queries)
        got, truth = None, None
        try:  # which MaxSim path answered: the compiled kernels (where built) or the torch reference
            from indexes import maxsim_kernels
            search_path = "kernels" if getattr(index, "kernels", False) and maxsim_kernels.load() is not None else "torch"
        except ImportError:
            search_path = "torch"
    row = {"kind": shards.kind, "n": shards.num_documents, "factory": args.factory if shards.kind == "single" else f"multi nlist={index.nlist}",
           "build_s": build, "disk_bytes": disk_bytes(out), **stats, **({"maxsim": search_path} if shards.kind == "multi" else {}),
           "peak_rss_gb": peak_rss_gb(), "load_avg_1m": os.getloadavg()[0]}
    if truth is not None:
        position = {d: i for i, d in enumerate(index.ids)}
        row["recall@10"] = float(np.mean([len({position[d] for d in g} & set(t.tolist())) / 10 for g, t in zip(got, truth)]))
    return row


def run_case(argv: list[str], limit_gb: float, timeout_s: float) -> dict:
    """Run one case in a subprocess; kill it (and report so) above ``limit_gb`` resident or after ``timeout_s``."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.scale_bench", "case", *argv], stdout=subprocess.PIPE, text=True)
    watch, peak, started, why = psutil.Process(proc.pid), 0.0, time.time(), None
    while proc.poll() is None:
        try:
            peak = max(peak, watch.memory_info().rss / 2**30)
        except psutil.NoSuchProcess:
            break
        if peak > limit_gb or time.time() - started > timeout_s:
            why = f"over {limit_gb} GB" if peak > limit_gb else f"over {timeout_s:.0f} s"
            proc.kill()
        time.sleep(0.2)
    out = proc.communicate()[0]
    if why or proc.returncode:
        return {"case": argv, "failed": why or f"exit {proc.returncode}", "sampled_peak_rss_gb": peak}
    return json.loads(out.strip().splitlines()[-1])


def fit_exponents(rows: list[dict], keys=("build_s", "peak_rss_gb", "disk_bytes", "p50_ms")) -> dict:
    """Per index type, the slope of log(value) against log(N) over the sizes measured (two at least)."""
    out = {}
    for family in sorted({r["family"] for r in rows}):
        mine = sorted((r for r in rows if r["family"] == family), key=lambda r: r["n"])
        if len(mine) >= 2:
            n = np.log([r["n"] for r in mine])
            out[family] = {k: float(np.polyfit(n, np.log([max(r[k], 1e-9) for r in mine]), 1)[0]) for k in keys}
    return out


def shards_of_size(n: int, big, work: Path, kind: str, shard_size: int):
    """``n`` documents' shards: made whole below one shard, the largest set itself, else a prefix of it."""
    if n < shard_size:
        return make_shards(work / f"{kind}-{n}", n, kind=kind, shard_size=n)
    return big if n == big.num_documents else prefix(big, n, work / f"{kind}-{n}")


def run_single(args) -> list[dict]:
    from indexes import from_shards

    work = Path(args.work)
    sizes = [int(s) for s in args.sizes.split(",")]
    big = make_shards(work / f"single-{max(sizes)}", max(sizes), kind="single", shard_size=args.shard_size)
    rows = []
    for n in sizes:
        shards = shards_of_size(n, big, work, "single", args.shard_size)
        factories = [from_shards.ivf_pq_factory(n, DIM)] + (["Flat"] if n <= args.flat_max else []) + (["HNSW32"] if n <= args.hnsw_max else [])
        for factory in factories:
            out = work / f"index-{n}-{factory.replace(',', '_')}"
            row = run_case(["--shards", str(shards.path), "--out", str(out), "--factory", factory, *(["--truth"] if n <= args.truth_max else [])],
                           args.memory_limit_gb, args.case_timeout)
            row.setdefault("factory", factory)
            row["family"] = "IVF-PQ" if "PQ" in factory else factory
            print(json.dumps(row), flush=True)
            rows.append(row)
            shutil.rmtree(out, ignore_errors=True)
    return rows


def run_multi(args) -> list[dict]:
    work = Path(args.work)
    sizes = [int(s) for s in args.sizes.split(",")]
    big = make_shards(work / f"multi-{max(sizes)}", max(sizes), kind="multi", shard_size=args.shard_size)
    rows = []
    for n in sizes:
        shards = shards_of_size(n, big, work, "multi", args.shard_size)
        out = work / f"mindex-{n}"
        extra = ["--nlist", str(args.nlist)] if args.nlist else []
        row = run_case(["--shards", str(shards.path), "--out", str(out), *extra], args.memory_limit_gb, args.case_timeout)
        row["family"] = "multi-vector"
        print(json.dumps(row), flush=True)
        rows.append(row)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _shard_vectors(folder: Path) -> tuple[list[str], np.ndarray]:
    from indexes.shards import ShardSet

    shards = ShardSet(folder)
    return ([i for n in range(len(shards)) for i in shards.read(n).ids],
            np.concatenate([np.asarray(shards.read(n).embeddings) for n in range(len(shards))]))


def _ndcg(data, doc_ids: list[str], vectors: np.ndarray, query_emb: np.ndarray) -> float:
    """nDCG@10 of exact search over ``vectors`` (the harness's Flat index), top 100 per query."""
    from indexes import FaissIndex
    from retrieval.metrics import score

    index = FaissIndex(vectors.shape[1], "Flat")
    index.add(doc_ids, vectors)
    found = index.search(query_emb, 100)
    results = {qid: dict(zip(ids, scores)) for qid, ids, scores in zip(data.queries, found.ids, found.scores)}
    return score(data.qrels, results, ["ndcg@10"])["ndcg@10"]


def _reference(args, retriever, docs: list[dict]) -> tuple[np.ndarray, dict]:
    """In-process embeddings of ``docs``: computed and timed here, or read from ``--reference`` (an .npz of the harness's cache)."""
    if args.reference:
        with np.load(args.reference, allow_pickle=False) as stored:
            vectors = stored["embeddings"]
        if len(vectors) != len(docs):
            raise SystemExit(f"{args.reference} holds {len(vectors)} embeddings for {len(docs)} documents")
        return vectors, {"path": f"in-process (stored: {args.reference})", "documents": len(docs)}
    reference, seconds = _timed(lambda: retriever.embed_documents(docs))
    return reference, {"path": "in-process", "documents": len(docs), "seconds": seconds, "docs_per_s": len(docs) / seconds}


def run_ray(args) -> list[dict]:
    """In-process embed_documents against ``python -m retrieval encode`` on local Ray workers (1 and 2 by default), same run."""
    from retrieval import Retriever
    from retrieval.beir_data import join_judgments, read_corpus, read_qrels, read_queries
    from retrieval.scale.encode import encode_corpus

    root, work = Path(args.data_dir) / args.dataset, Path(args.work)
    corpus = read_corpus(root / "corpus.jsonl")
    ids = list(corpus)[: args.limit] if args.limit else list(corpus)
    work.mkdir(parents=True, exist_ok=True)
    subset = work / "corpus.jsonl"
    subset.write_text("".join(json.dumps({"_id": i, "title": corpus[i]["title"], "text": corpus[i]["text"]}) + "\n" for i in ids))
    data = join_judgments({i: corpus[i] for i in ids}, read_queries(root / "queries.jsonl"), read_qrels(root / "qrels" / "test.tsv")[0],
                          qrels_name="qrels/test.tsv", queries_name="queries.jsonl", corpus_name="corpus.jsonl")
    retriever = Retriever(dtype="float32", device="cpu")
    reference, first = _reference(args, retriever, [{"_id": i, **corpus[i]} for i in ids])
    query_emb = retriever.embed_queries(list(data.queries.values()))
    rows = [{**first, "ndcg@10": _ndcg(data, ids, reference, query_emb), "load_avg_1m": os.getloadavg()[0]}]
    for workers in [int(w) for w in args.workers.split(",")]:
        out = work / f"shards-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        report, seconds = _timed(lambda: encode_corpus(str(subset), out, workers=workers, dtype="float32", device="cpu",
                                                       shard_size=args.shard_size, quiet=True))
        got_ids, vectors = _shard_vectors(out)
        row = {"path": f"ray-{workers}", "workers": workers, "documents": report.documents, "seconds": seconds, "docs_per_s": len(ids) / seconds,
               "max_abs_diff": float(np.abs(vectors - reference).max()), "same_ids": got_ids == ids,
               "ndcg@10": _ndcg(data, got_ids, vectors, query_emb), "load_avg_1m": os.getloadavg()[0]}
        if "seconds" in rows[0]:
            row["vs_in_process"] = rows[0]["seconds"] / seconds
        rows.append(row)
        if not args.keep_shards:
            shutil.rmtree(out, ignore_errors=True)
    by_workers = {r["workers"]: r["seconds"] for r in rows if "workers" in r}
    if 1 in by_workers and 2 in by_workers:
        rows.append({"scaling_efficiency_1_to_2": by_workers[1] / by_workers[2] / 2})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def tree_peak(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; wall seconds, peak resident GB of it and all its descendants (sampled), its stdout."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    root, peak = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()) / 2**30)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = proc.communicate()[0]
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    return time.perf_counter() - t, peak, out


def _index_vectors(folder: Path):
    """Ids and stored vectors of a codebase index folder (its FAISS index reconstructed)."""
    from retrieval.codebase.index import load_codebase

    retriever, _ = load_codebase(folder)
    return list(retriever.index.ids), retriever.index.index.reconstruct_n(0, len(retriever.index.ids))


def run_code(args) -> list[dict]:
    """A code folder, copied: ``index`` in-process against ``index --workers N`` (Ray), same run; then one file touched.

    ``--shards`` adds the bounded-memory path (``encode`` on the Ray workers + ``build-index``).
    """
    import re

    root, work = Path(args.root), Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "tree"  # a copy: the incremental step edits a file, never the environment's own
    shutil.copytree(root, tree, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    py = [sys.executable, "-m", "retrieval"]
    index = [*py, "index", str(tree), "--dtype", "float32", "--device", "cpu", "--quiet"]
    rows = []
    for label, workers in (("index (in-process)", 1), (f"index --workers {args.workers} (Ray)", args.workers)):
        out = work / f"index-{workers}"
        seconds, peak, printed = tree_peak([*index, "--out", str(out), "--workers", str(workers)])
        chunks = int(re.search(r"(\d+) chunks", printed).group(1))
        rows.append({"path": label, "root": str(root), "files": int(re.match(r"(\d+) files", printed).group(1)), "chunks": chunks,
                     "seconds": seconds, "chunks_per_s": chunks / seconds, "peak_rss_gb": peak, "index_bytes": disk_bytes(out),
                     "load_avg_1m": os.getloadavg()[0]})
    rows[1]["vs_in_process"] = rows[1]["chunks_per_s"] / rows[0]["chunks_per_s"]
    (ids_a, vec_a), (ids_b, vec_b) = _index_vectors(work / "index-1"), _index_vectors(work / f"index-{args.workers}")
    rows[1]["same_ids"], rows[1]["max_abs_diff"] = ids_a == ids_b, float(np.abs(vec_a - vec_b).max())
    touched = max(tree.rglob("*.py"), key=lambda p: p.stat().st_size)  # the largest file: the most a one-file re-chunk costs
    with open(touched, "a", encoding="utf-8") as f:
        f.write("\n\ndef touched_by_the_benchmark(x):\n    return x\n")
    seconds, peak, printed = tree_peak([*index, "--out", str(work / f"index-{args.workers}")])
    rows.append({"path": "index again after touching one file (auto: in-process)", "file": str(touched.relative_to(tree)),
                 "encoded": int(re.search(r"(\d+) encoded", printed).group(1)), "seconds": seconds, "peak_rss_gb": peak,
                 "summary": printed.strip().splitlines()[0]})
    if args.shards:
        seconds, peak, printed = tree_peak([*py, "encode", str(tree), "--out", str(work / "shards"), "--workers", str(args.workers),
                                            "--shard-size", str(args.shard_size), "--dtype", "float32", "--device", "cpu", "--quiet"])
        chunks = int(re.search(r"(\d+) documents", printed).group(1))
        build_s, build_peak, _ = tree_peak([*py, "build-index", str(work / "shards"), "--out", str(work / "ray-index"), "--quiet"])
        rows.append({"path": f"encode ({args.workers} Ray workers) + build-index", "chunks": chunks, "seconds": seconds + build_s,
                     "chunks_per_s": chunks / (seconds + build_s), "encode_peak_rss_gb": peak, "build_peak_rss_gb": build_peak,
                     "index_bytes": disk_bytes(work / "ray-index"), "shards_bytes": disk_bytes(work / "shards")})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_bench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name, sizes, shard, limit in (("single", "10000,100000,1000000,10000000", 100_000, 8.0), ("multi", "10000,100000,1000000", 10_000, 12.0)):
        s = sub.add_parser(name, help=f"{name}-vector cost curve on synthetic shards")
        s.add_argument("--work", required=True, help="folder for the synthetic shards and the indexes (tens of GB at 10M)")
        s.add_argument("--sizes", default=sizes, help=f"document counts, comma-separated (default {sizes})")
        s.add_argument("--shard-size", type=int, default=shard, help=f"documents per synthetic shard (default {shard})")
        s.add_argument("--memory-limit-gb", type=float, default=limit, help=f"kill a case above this resident size (default {limit})")
        s.add_argument("--case-timeout", type=float, default=3600, help="kill a case after this many seconds (default 3600)")
        s.add_argument("--json", default=None, help="also write every row and the fitted exponents here")
        if name == "single":
            s.add_argument("--flat-max", type=int, default=1_000_000, help="largest N built as Flat (default 1M: 10M x 384 fp32 is 15 GB)")
            s.add_argument("--hnsw-max", type=int, default=1_000_000, help="largest N built as HNSW32 (default 1M)")
            s.add_argument("--truth-max", type=int, default=1_000_000, help="largest N with recall@10 against exact search (default 1M)")
        else:
            s.add_argument("--nlist", type=int, default=None, help="centroids (default: the index's own, about 4 sqrt(tokens))")
    r = sub.add_parser("ray", help="a BEIR corpus: in-process embed_documents vs encode on 1 and 2 local Ray workers")
    r.add_argument("--data-dir", default="../shared/data", help="folder of BEIR datasets (default ../shared/data)")
    r.add_argument("--dataset", default="scifact", help="dataset folder name (default scifact)")
    r.add_argument("--limit", type=int, default=None, help="first N documents only (default: all)")
    r.add_argument("--shard-size", type=int, default=500, help="documents per shard (default 500)")
    r.add_argument("--work", required=True, help="folder for the corpus subset and the shards")
    r.add_argument("--workers", default="1,2", help="Ray worker counts to run, comma-separated (default 1,2)")
    r.add_argument("--reference", default=None, metavar="NPZ", help="in-process embeddings stored by the harness's --cache-dir "
                   "(key 'embeddings', corpus order) instead of computing them here (then no in-process timing)")
    r.add_argument("--keep-shards", action="store_true", help="keep the shard folders (default: deleted after each is measured)")
    r.add_argument("--json", default=None, help="also write the rows here")
    k = sub.add_parser("code", help="a code folder (copied): 'index' in-process vs 'index --workers N' on Ray, then one file touched")
    k.add_argument("--root", required=True, help="the folder to index (e.g. a site-packages folder, or a package in it)")
    k.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    k.add_argument("--shards", action="store_true", help="also the bounded-memory path: 'encode' on the Ray workers + 'build-index'")
    k.add_argument("--shard-size", type=int, default=100, help="with --shards: files per shard (default 100: several shards per worker even on a package)")
    k.add_argument("--work", required=True, help="folder for the indexes and shards")
    k.add_argument("--json", default=None, help="also write the rows here")
    c = sub.add_parser("case", help="one build + search (run by the others in a subprocess)")
    c.add_argument("--shards", required=True, help="shard set folder")
    c.add_argument("--out", required=True, help="index folder to write")
    c.add_argument("--factory", default="Flat", help="FAISS factory string (single vector)")
    c.add_argument("--nlist", type=int, default=None, help="centroids (multi vector)")
    c.add_argument("--truth", action="store_true", help="measure recall@10 against exact search")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.what == "case":
        print(json.dumps(case(args)))
        return 0
    if args.what in ("ray", "code"):
        rows = run_ray(args) if args.what == "ray" else run_code(args)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows}, indent=2))
        return 0
    rows = run_single(args) if args.what == "single" else run_multi(args)
    print(json.dumps({"exponents": fit_exponents([r for r in rows if "failed" not in r])}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows, "exponents": fit_exponents([r for r in rows if "failed" not in r])}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
