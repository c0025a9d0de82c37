"""Top-1 / top-5 accuracy of codebase search on fixed natural-language questions with known answers.

``benchmarks/data/codebase_questions.jsonl`` holds questions about this repository, each with
the file and the qualified symbol that answers it (``path``, ``symbol``), plus questions the
code does not answer (``path: null``), used to set the "no good match" floor of
:mod:`retrieval.codebase.hits`. A hit answers a question when it lies in the answer's file and
its line span overlaps the symbol's definition (found with ``ast`` at run time, so answers
survive edits that move lines). The corpus is ``git archive HEAD`` of this repository (tests
included, as a user would index it), so uncommitted work in progress does not move the numbers.

``--corpus site-packages`` asks ``benchmarks/data/sitepackages_questions.jsonl`` of a copy of three
packages of this environment that ``pyproject.toml`` pins (:data:`SITE_PACKAGES`: httpx, pathspec,
bm25s; 74 files, about 22,000 lines), so the answers do not move; each answer also names the line
of its ``def``/``class`` in the pinned version, which the tests check. ``--chunking windows`` indexes
every file in line windows of the same token budget (the cut every language but Python and Markdown
got before tree-sitter) instead of by structure: the "before" of that corpus.

Every search mode the index offers is measured in the same run (``dense`` always; ``lexical``
and ``hybrid`` where the index keeps a lexical index), filters off, plus the score statistics
behind the floor: the top-1 score of answered and unanswerable questions, and how far below
the top-1 the correct hit scores when it is not first. The ``search`` row is what ``python -m
retrieval search`` prints (its default mode and fusion, hits under the relative floor dropped),
with the number of questions it flags "no good match".

    nice -n 10 python -m benchmarks.codebase_questions --json runs/codebase_questions.json
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import inspect
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from indexes import storage

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "benchmarks" / "data" / "codebase_questions.jsonl"
SITE_QUESTIONS = REPO / "benchmarks" / "data" / "sitepackages_questions.jsonl"
SITE_PACKAGES = {"httpx": "0.28.1", "pathspec": "1.1.1", "bm25s": "0.3.16"}  # pinned in pyproject.toml: the answers stay put


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    """The question records: ``id``, ``question``, ``path`` and ``symbol`` (both None when unanswerable)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def symbol_span(source: str, symbol: str) -> tuple[int, int] | None:
    """1-based ``(first, last)`` lines of the Python definition ``symbol`` (``Class.method``), decorators included."""
    body, node = ast.parse(source).body, None
    for part in symbol.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        body = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first, node.end_lineno


def answer_spans(root: Path, questions: list[dict]) -> dict[str, tuple[str, int, int]]:
    """``{question id: (path, first, last)}`` for the answerable questions; ValueError naming any answer not found."""
    spans, missing = {}, []
    for q in questions:
        if q["path"] is None:
            continue
        file = root / q["path"]
        span = symbol_span(file.read_text(encoding="utf-8"), q["symbol"]) if file.is_file() else None
        if span is None:
            missing.append(f"{q['id']}: {q['symbol']} in {q['path']}")
        else:
            spans[q["id"]] = (q["path"], *span)
    if missing:
        raise ValueError("answers not found: " + "; ".join(missing))
    return spans


def rank_of_answer(hits, span: tuple[str, int, int]) -> int | None:
    """1-based rank of the first hit inside the answer's definition, None when none of ``hits`` is."""
    path, first, last = span
    for rank, hit in enumerate(hits, 1):
        m = hit.metadata
        if m["path"] == path and m["start"] <= last and m["end"] >= first:
            return rank
    return None


def export_head(target: Path) -> Path:
    """This repository at HEAD (``git archive``) unpacked into ``target``."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    return target


def package_folder(name: str) -> Path:
    """The installed folder of the package ``name``."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package {name} is not installed (pip install {name}=={SITE_PACKAGES.get(name, '')})")
    return Path(list(spec.submodule_search_locations)[0])


def pinned_versions_differ() -> list[str]:
    """The packages of :data:`SITE_PACKAGES` whose installed version is not the pinned one, as ``name x != y``."""
    return [f"{name} {importlib.metadata.version(name)} != {pin}" for name, pin in SITE_PACKAGES.items()
            if importlib.metadata.version(name) != pin]


def copy_site_packages(target: Path) -> Path:
    """The packages of :data:`SITE_PACKAGES` copied from this environment into ``target`` (no ``__pycache__``)."""
    for name in SITE_PACKAGES:
        shutil.copytree(package_folder(name), target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def window_chunk_files(files, count_tokens, max_tokens):
    """Every file in line windows of at most ``max_tokens``, as every language but Python and Markdown was cut before."""
    from retrieval.chunking.structural import PLAIN_TEXT, Chunk, fit_chunks

    chunks = [Chunk(path, u.start, u.end, "text", "", u.code, "text") for path, text in files for u in PLAIN_TEXT.units(text)]
    return fit_chunks(chunks, count_tokens, max_tokens)


def measure_search(retriever, questions: list[dict], spans: dict, k: int) -> dict:
    """Accuracy of what ``python -m retrieval search`` prints: its default mode and fusion, the floor applied."""
    from retrieval.codebase.search import run_query

    ranks, flagged, flagged_answered, mode = [], 0, 0, ""
    started = time.perf_counter()
    for q in questions:
        hits, warning, mode = run_query(retriever, q["question"], k)
        if q["path"] is None:
            flagged += warning is not None
            continue
        flagged_answered += warning is not None
        ranks.append(rank_of_answer(hits, spans[q["id"]]))
    n = len(ranks)
    return {"mode": f"search ({mode}+floor)", "questions": n, "unanswerable": len(questions) - n,
            "seconds": round(time.perf_counter() - started, 2),
            "top1": sum(r == 1 for r in ranks) / n, "top5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
            "flagged_unanswerable": flagged, "flagged_answered": flagged_answered}


HYBRIDS = ["hybrid", "hybrid@convex:0.5", "hybrid@convex:0.7", "hybrid@rrf"]  # "hybrid": the Retriever's default fusion; then variants


def modes_of(retriever) -> list[str]:
    """The search settings to measure: ``dense``, plus ``lexical`` and the hybrids where the index keeps a lexical index.

    ``hybrid@convex:0.5``: convex fusion with dense share 0.5; ``hybrid@rrf``: reciprocal rank fusion.
    """
    if "mode" not in inspect.signature(retriever.search).parameters or getattr(retriever, "lexical", None) is None:
        return ["dense"]
    return ["dense", "lexical", *HYBRIDS]


def search_options(spec: str, retriever) -> dict:
    """``Retriever.search`` keywords of a setting of :func:`modes_of`."""
    if modes_of(retriever) == ["dense"]:
        return {}
    mode, _, fusion = spec.partition("@")
    options = {"mode": mode}
    if fusion:
        name, _, weight = fusion.partition(":")
        options.update(fusion=name, **({"weight": float(weight)} if weight else {}))
    return options


def measure(retriever, questions: list[dict], spans: dict, spec: str, k: int, embeddings, dense_top: list[float]) -> dict:
    """Accuracy and score statistics of one setting over every question (``dense_top``: each question's best dense score)."""
    options = search_options(spec, retriever)
    if options.get("mode") != "lexical" and "query_embeddings" in inspect.signature(retriever.search).parameters:
        options["query_embeddings"] = embeddings  # every setting reads the same query vectors
    started = time.perf_counter()
    results = retriever.search([q["question"] for q in questions], k=k, **options)
    seconds = time.perf_counter() - started
    ranks, answered_top, unanswerable_top, ratios, misses = [], [], [], [], []
    for q, hits, dense in zip(questions, results, dense_top):
        if q["path"] is None:
            unanswerable_top.append(dense)
            continue
        rank = rank_of_answer(hits, spans[q["id"]])
        ranks.append(rank)
        answered_top.append(dense)
        if rank is not None and hits[0].score > 0:
            ratios.append(hits[rank - 1].score / hits[0].score)
        if rank != 1:
            first = hits[0].metadata if hits else {}
            misses.append(f"{q['id']} rank {rank}: top-1 {first.get('path')}:{first.get('start')} {first.get('name')}")
    n = len(ranks)
    return {
        "mode": spec, "questions": n, "unanswerable": len(unanswerable_top), "seconds": round(seconds, 2),
        "top1": sum(r == 1 for r in ranks) / n, "top5": sum(r is not None and r <= 5 for r in ranks) / n,
        "mrr10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
        "answered_top_score": [round(s, 4) for s in answered_top], "unanswerable_top_score": [round(s, 4) for s in unanswerable_top],
        "correct_to_top_ratio": [round(r, 4) for r in ratios], "misses": misses,
    }


def floor_advice(row: dict) -> dict:
    """The thresholds these scores suggest: the floor on the best *dense* score that best separates answered from
    unanswerable questions (balanced accuracy), and the lowest correct-hit / top-1 score ratio of this setting."""
    answered, unanswerable = np.array(row["answered_top_score"]), np.array(row["unanswerable_top_score"])
    best = (0.0, 0.0)
    for t in np.unique(np.concatenate([answered, unanswerable])):
        balanced = ((answered >= t).mean() + (unanswerable < t).mean()) / 2
        best = max(best, (float(balanced), float(t)))
    ratios = row["correct_to_top_ratio"]
    return {"weak_top": round(best[1], 4), "balanced_accuracy": round(best[0], 3),
            "min_ratio": round(min(ratios), 4) if ratios else None,
            "ratio_p5": round(float(np.percentile(ratios, 5)), 4) if ratios else None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root", type=Path, default=None, help="folder to index (default: per --corpus)")
    p.add_argument("--corpus", choices=["repo", "site-packages"], default="repo",
                   help="repo: git archive HEAD of this repository and its question list; site-packages: a copy of the "
                   f"installed {', '.join(SITE_PACKAGES)} and their question list")
    p.add_argument("--questions", type=Path, default=None, help=f"question list (JSON lines; default: {QUESTIONS.name} "
                   f"or, for --corpus site-packages, {SITE_QUESTIONS.name})")
    p.add_argument("--chunking", choices=["structure", "windows"], default="structure",
                   help="how a new index cuts files: by language structure (the tool's), or line windows (the old cut)")
    p.add_argument("--index-dir", type=Path, default=None, help="index folder (default: a temporary one)")
    p.add_argument("--k", type=int, default=10, help="hits per question")
    p.add_argument("--dtype", default="float32", help="model dtype (float32: the same numbers on every machine)")
    p.add_argument("--label", default="", help="a name for this run in the table (e.g. before / after)")
    p.add_argument("--json", type=Path, default=None, help="also write every number here (atomically)")
    p.add_argument("--verbose", action="store_true", help="list the questions not answered first")
    return p


def main(argv: list[str] | None = None) -> int:
    from retrieval.codebase.index import MANIFEST, index_codebase, load_codebase

    args = build_parser().parse_args(argv)
    site = args.corpus == "site-packages"
    questions = load_questions(args.questions or (SITE_QUESTIONS if site else QUESTIONS))
    if site and (differ := pinned_versions_differ()):
        print(f"# warning: not the pinned versions ({'; '.join(differ)}): answers may have moved")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or (copy_site_packages(Path(tmp) / "site") if site else export_head(Path(tmp) / "repo"))
        spans = answer_spans(root, questions)
        out = args.index_dir or Path(tmp) / "index"
        if not (out / MANIFEST).is_file():
            if args.chunking == "windows":
                import retrieval.codebase.index as codebase_index

                codebase_index.chunk_files = window_chunk_files  # this process only: the "before" cut
            report = index_codebase(root, out, dtype=args.dtype, show_progress=False)
            print(f"# {root}: {report.files} files, {report.chunks} chunks, indexed in {report.seconds:.1f} s")
        retriever, _ = load_codebase(out)
        print(f"# index {out}: {len(retriever)} chunks (an existing --index-dir is searched as it is)")
        embeddings = retriever.embed_queries([q["question"] for q in questions])
        dense_top = [hits[0].score if hits else 0.0 for hits in retriever.search_by_vector(embeddings, 1)]
        rows = [measure(retriever, questions, spans, spec, args.k, embeddings, dense_top) for spec in modes_of(retriever)]
        search_row = measure_search(retriever, questions, spans, args.k)
    print(f"{'setting':22s} {'label':10s} {'top-1':>6s} {'top-5':>6s} {'MRR@10':>7s}  floor advice")
    for row in rows:
        row["label"], row["advice"] = args.label, floor_advice(row)
        print(f"{row['mode']:22s} {args.label:10s} {row['top1']:6.3f} {row['top5']:6.3f} {row['mrr10']:7.3f}  {row['advice']}")
        if args.verbose:
            print("\n".join("    " + m for m in row["misses"]))
    search_row["label"] = args.label
    rows.append(search_row)
    print(f"{search_row['mode']:22s} {args.label:10s} {search_row['top1']:6.3f} {search_row['top5']:6.3f} {search_row['mrr10']:7.3f}  "
          f"'no good match' on {search_row['flagged_unanswerable']} of {search_row['unanswerable']} unanswerable, "
          f"{search_row['flagged_answered']} of {search_row['questions']} answered")
    if args.json:
        storage.write_json(args.json, {"chunks": len(retriever), "rows": rows})
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
