"""Many models on many tasks in one command: ``python -m evaluation.report --models A,B --tasks T1,T2 --out DIR``.

Each (model, task, retrieval mode) goes through the harness of :mod:`evaluation.beir` (one
loaded model per model, corpus embeddings cached in ``DIR/cache``, so a hybrid run reuses the
dense one's), and leaves three files: the flat summary (``DIR/results/<model>/<mode>/<task>.json``),
each query's scores (``DIR/per_query/...``) and the MTEB-schema file (``DIR/mteb/...``). A pair
whose summary and per-query file exist for the same model, dtype, index and mode is read, not
run again: a second run of the same command only re-reads JSON, recomputes the statistics and
redraws (seconds; ``--force`` runs everything again).

Then ``DIR/report.md``: one row per model (and mode), one column per task, nDCG@10 with the best
of each column in bold and the mean over tasks; every other model's cell carries its difference to
the baseline (the first model, ``--baseline``) and the p-value of a paired test over the task's
queries (:mod:`evaluation.significance`: randomization by default, ``--test t``). Beside it
``report.json`` (the same numbers, the tests' details and the settings) and
``ndcg10_by_task.png`` (:func:`evaluation.plots.task_bars`, 95% bootstrap intervals over
queries); ``--encoder-bench`` and ``--index-curves`` add the encoder and quality/speed figures.

A task is a BEIR-layout folder: a name under ``--data-dir`` (``scifact``, ``csn_ruby``) or a path
(``runs/codesets/stdlib_email``, a set built by ``python -m evaluation.codeset``). Lexical and hybrid
rows tokenize code tasks (a ``codeset.json`` beside the corpus, or a ``csn_`` name) with the BM25
``code`` tokenizer and the rest with ``english`` (``--lexical-tokenizer auto``): on csn_ruby the code
tokenizer lifts BM25 from 0.619 to 0.677 nDCG@10 and hybrid from 0.785 to 0.813 (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from evaluation import mteb_results, plots, significance
from retrieval.beir_data import DATA_DIR_ENV, DataError, default_data_dir
from retrieval.fusion import settings as fusion_settings

logger = logging.getLogger("evaluation.report")

DEFAULT_ALIASES = ("minilm", "default")
METRIC = "ndcg@10"


@dataclass(frozen=True)
class Task:
    """A task: its name in the table and the BEIR folder it reads."""

    name: str
    folder: Path


def resolve_model(spec: str) -> str:
    """``minilm``/``default`` -> the offline default model's folder; a local folder -> its absolute path; else a hub id."""
    from encoder import default_model

    if spec.lower() in DEFAULT_ALIASES:
        return default_model()
    path = Path(spec)
    return str(path.resolve()) if path.exists() else spec


def resolve_task(spec: str, data_dir: str | Path | None) -> Task:
    """A name under ``data_dir`` or a path to a BEIR folder; a :class:`DataError` says where it looked."""
    path = Path(spec)
    candidates = [path] if ("/" in spec or path.is_dir()) else [Path(data_dir or default_data_dir()) / spec]
    for folder in candidates:
        if (folder / "corpus.jsonl").is_file():
            return Task(folder.name, folder)
    raise DataError(f"task {spec!r}: no BEIR-layout folder (corpus.jsonl) at {candidates[0].resolve()} "
                    f"(give a name under --data-dir, default ${DATA_DIR_ENV} else ./data, or a folder path)")


def model_slug(model: str) -> str:
    """The model's folder name in the report: MTEB's label plus a hash of where it came from (two ``model/`` folders differ)."""
    return f"{mteb_results.model_label(model)}-{hashlib.sha256(model.encode()).hexdigest()[:6]}"


def pair_paths(out: Path, model: str, task: Task, mode: str) -> tuple[Path, Path]:
    """``(summary, per-query)`` paths of one pair."""
    tail = Path(model_slug(model)) / mode / f"{task.name}.json"
    return out / "results" / tail, out / "per_query" / tail


def lexical_tokenizer(task: Task, choice: str) -> str:
    """``choice``, or for ``auto``: ``code`` for a code set (``codeset.json``) or a CodeSearchNet task, else ``english``."""
    if choice != "auto":
        return choice
    return "code" if (task.folder / "codeset.json").is_file() or task.name.startswith("csn_") else "english"


def search_settings(mode: str, tokenizer: str) -> dict:
    """The harness's retrieval keywords of one mode: the BM25 tokenizer and, for hybrid, the fusion in effect."""
    if mode == "dense":
        return {"retrieval": mode}
    fused = dict(zip(("fusion", "weight"), fusion_settings())) if mode == "hybrid" else {}
    return {"retrieval": mode, "lexical_tokenizer": tokenizer, **fused}


def reusable(summary_path: Path, per_query_path: Path, model: str, settings: dict, search: dict) -> dict | None:
    """The stored summary when both files exist for the same model, dtype, index and search settings; else None."""
    if not (summary_path.is_file() and per_query_path.is_file()):
        return None
    try:
        stored = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = (stored.get("model") == model and stored.get("index") == settings["index"]
            and mteb_results.retrieval_mode(stored) == search["retrieval"]
            and (settings["dtype"] in ("auto", stored.get("dtype"))))
    if same and search["retrieval"] != "dense":
        done = stored.get("retrieval") if isinstance(stored.get("retrieval"), dict) else {}
        same = all(done.get(key) == value for key, value in search.items() if key != "retrieval")
    return stored if same else None


def run_pair(model_obj, model: str, task: Task, search: dict, split: str, out: Path, settings: dict) -> dict:
    """Evaluate one pair through the harness and write its three files; returns the summary."""
    from evaluation import beir, outputs

    mode = search["retrieval"]
    source = beir.beir_source(task.folder.name, task.folder.parent, split)
    try:
        result = beir.evaluate_source(source, model=model_obj, **settings, **search)
    except beir.IndexFormatError as exc:
        raise ValueError(str(exc)) from None
    result.setdefault("retrieval", mode)
    summary_path, per_query_path = pair_paths(out, model, task, mode)
    outputs.write_outputs(result, source.data, output=summary_path, mteb_dir=out / "mteb", per_query_file=per_query_path,
                       settings={**settings, "retrieval": mode})
    return outputs.summary(result)


def load(model: str, args: argparse.Namespace):
    """The model, loaded once for all its pairs; a model that cannot load is a :class:`ValueError` naming it."""
    from encoder import ModelLoadError, load_model

    try:
        return load_model(model, device=args.device, dtype=args.dtype)
    except ModelLoadError as exc:
        raise ValueError(f"model {model!r}: {exc}") from None


def collect(args: argparse.Namespace, out: Path) -> dict:
    """Every (model, mode, task) summary and per-query file: read where reusable, else run. Returns the cells."""
    settings = {"index": args.index, "dtype": args.dtype, "max_length": args.max_length, "batch_size": args.batch_size,
                "device": args.device, "cache_dir": str(Path(args.cache_dir or out / "cache")), "show_progress": not args.quiet}
    cells, ran, reused = {}, 0, 0
    for spec in args.models:
        model = resolve_model(spec)
        loaded = None
        for mode in args.retrieval:
            for task in args.tasks:
                summary_path, per_query_path = pair_paths(out, model, task, mode)
                search = search_settings(mode, lexical_tokenizer(task, args.lexical_tokenizer))
                summary = None if args.force else reusable(summary_path, per_query_path, model, settings, search)
                if summary is None:
                    if loaded is None:
                        loaded = load(model, args)
                    print(f"evaluating {spec} ({mode}) on {task.name} ...", flush=True)
                    summary = run_pair(loaded, model, task, search, args.split, out, settings)
                    ran += 1
                else:
                    reused += 1
                per_query = json.loads(per_query_path.read_text(encoding="utf-8"))["queries"]
                cells[(spec, mode, task.name)] = {"summary": summary, "per_query": {q: s[METRIC] for q, s in per_query.items()}}
    return {"cells": cells, "ran": ran, "reused": reused}


def row_name(spec: str, mode: str, modes: list[str]) -> str:
    return f"{spec} ({mode})" if len(modes) > 1 else spec


def statistics(args: argparse.Namespace, cells: dict) -> dict:
    """Bootstrap intervals of every cell and the paired test of each model against the baseline, per mode and task."""
    stats = {"intervals": {}, "tests": []}
    for (spec, mode, task), cell in cells.items():
        low, high = significance.bootstrap_ci(cell["per_query"], seed=args.seed)
        stats["intervals"][(spec, mode, task)] = (cell["summary"]["metrics"][METRIC], low, high)
    for mode in args.retrieval:
        for spec in args.models:
            if spec == args.baseline:
                continue
            for task in args.tasks:
                a, b = cells[(args.baseline, mode, task.name)], cells[(spec, mode, task.name)]
                test = significance.paired_test(a["per_query"], b["per_query"], method=args.test,
                                                resamples=args.resamples, seed=args.seed)
                stats["tests"].append({"model": spec, "baseline": args.baseline, "mode": mode, "task": task.name, **test})
    return stats


def markdown(args: argparse.Namespace, cells: dict, stats: dict) -> str:
    """The table: rows model (mode), columns tasks and mean; best per column bold; delta and p against the baseline."""
    tasks = [t.name for t in args.tasks]
    rows = [(spec, mode) for mode in args.retrieval for spec in args.models]
    value = {(s, m, t): cells[(s, m, t)]["summary"]["metrics"][METRIC] for s, m in rows for t in tasks}
    means = {(s, m): sum(value[(s, m, t)] for t in tasks) / len(tasks) for s, m in rows}
    best = {t: max(value[(s, m, t)] for s, m in rows) for t in tasks}
    best_mean = max(means.values())
    tests = {(x["model"], x["mode"], x["task"]): x for x in stats["tests"]}
    lines = [f"nDCG@10 ({args.split} split). Cells of models other than the baseline `{args.baseline}` add the "
             f"difference to it in the same mode and the p-value of a paired {args.test} test over the task's queries.", "",
             "| model | " + " | ".join(tasks) + " | mean |", "|---|" + "---:|" * (len(tasks) + 1)]
    for s, m in rows:
        parts = []
        for t in tasks:
            text = f"{value[(s, m, t)]:.4f}"
            text = f"**{text}**" if value[(s, m, t)] == best[t] else text
            if (s, m, t) in tests:
                x = tests[(s, m, t)]
                text += f" ({x['delta']:+.4f}, {significance.format_p(x['p_value'])})"
            parts.append(text)
        mean = f"{means[(s, m)]:.4f}"
        parts.append(f"**{mean}**" if means[(s, m)] == best_mean else mean)
        lines.append(f"| {row_name(s, m, args.retrieval)} | " + " | ".join(parts) + " |")
    lines += ["", "| model | path |", "|---|---|"] + [f"| {spec} | `{resolve_model(spec)}` |" for spec in args.models]
    return "\n".join(lines) + "\n"


def draw(args: argparse.Namespace, out: Path, stats: dict) -> dict:
    """The PNGs next to the table; returns what each drew."""
    series = {}
    for (spec, mode, task), interval in stats["intervals"].items():
        series.setdefault(row_name(spec, mode, args.retrieval), {})[task] = interval
    figures = {"ndcg10_by_task": plots.task_bars(series, [t.name for t in args.tasks], out / "ndcg10_by_task.png")}
    if args.encoder_bench:
        bench = json.loads(Path(args.encoder_bench).read_text(encoding="utf-8"))
        figures["encoder_throughput"] = plots.encoder_throughput(bench, out / "encoder_throughput.png")
    if args.index_curves:
        figures["quality_speed"] = plots.quality_speed(plots.read_curves(args.index_curves), out / "quality_speed.png")
    return figures


def write_report(args: argparse.Namespace, out: Path, collected: dict) -> dict:
    """Statistics, table, JSON and figures from the collected cells; returns the report's JSON."""
    from indexes import storage

    cells = collected["cells"]
    stats = statistics(args, cells)
    table = markdown(args, cells, stats)
    figures = draw(args, out, stats)
    report = {
        "metric": METRIC, "split": args.split, "baseline": args.baseline, "test": args.test, "resamples": args.resamples,
        "models": {spec: resolve_model(spec) for spec in args.models}, "tasks": {t.name: str(t.folder) for t in args.tasks},
        "retrieval": args.retrieval,
        "cells": [{"model": s, "mode": m, "task": t, METRIC: c["summary"]["metrics"][METRIC],
                   "ci95": list(stats["intervals"][(s, m, t)][1:]), "num_queries": c["summary"]["num_queries"]}
                  for (s, m, t), c in cells.items()],
        "tests": stats["tests"], "figures": figures, "ran": collected["ran"], "reused": collected["reused"],
    }
    figure_links = "".join(f"\n![{name}]({Path(f['path']).name})\n" for name, f in figures.items())
    storage.write_text(out / "report.md", f"# Retrieval report\n\n{table}{figure_links}")
    storage.write_json(out / "report.json", report)
    return report


def parse_list(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return list(dict.fromkeys(items))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluation.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", required=True, type=parse_list, help="comma-separated models: hub ids, local folders, or "
                   "minilm (the offline all-MiniLM-L6-v2); the first is the baseline of the significance tests")
    p.add_argument("--tasks", required=True, type=parse_list, help="comma-separated BEIR-layout folders: names under "
                   "--data-dir (scifact, csn_ruby) or paths (a set built by python -m evaluation.codeset)")
    p.add_argument("--retrieval", default=["dense"], type=parse_list,
                   help="comma-separated retrieval modes, each a row per model: dense, lexical, hybrid (default: dense)")
    p.add_argument("--lexical-tokenizer", default="auto", choices=["auto", "english", "code"],
                   help="BM25 tokens of lexical and hybrid rows: auto = code for code sets (codeset.json) and csn_* "
                   "tasks, english otherwise (default: auto)")
    p.add_argument("--data-dir", default=None, help=f"folder holding the task folders (default: ${DATA_DIR_ENV}, else ./data)")
    p.add_argument("--split", default="test", help="qrels split to evaluate (default: test)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder: results/, per_query/, mteb/, cache/, "
                   "report.md, report.json and the PNGs")
    p.add_argument("--baseline", default=None, help="model the others are tested against (default: the first of --models)")
    p.add_argument("--test", default="randomization", choices=significance.METHODS,
                   help="paired test on per-query nDCG@10: randomization (sign flips, default) or t (paired t-test)")
    p.add_argument("--resamples", type=int, default=significance.RESAMPLES, help="randomization test resamples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=significance.SEED, help="seed of the randomization test and the bootstrap")
    p.add_argument("--index", default="Flat", help="FAISS factory string of the dense index (default: Flat, exact)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"],
                   help="model weights dtype (default: float32, the published setting)")
    p.add_argument("--max-length", type=int, default=None, help="maximum tokens per document (default: each model's own)")
    p.add_argument("--batch-size", type=int, default=None, help="maximum texts per encoding batch (default: the harness's)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--cache-dir", default=None, help="corpus embeddings kept between runs (default: DIR/cache)")
    p.add_argument("--encoder-bench", default=None, metavar="JSON", help="also plot a benchmarks.encoder_bench --json file")
    p.add_argument("--index-curves", default=None, type=parse_list, metavar="JSON[,JSON]",
                   help="also plot nDCG@10 against QPS from benchmarks.indexes_bench --json runs or sweep files")
    p.add_argument("--force", action="store_true", help="evaluate every pair again, even where results exist")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    try:
        args.tasks = [resolve_task(t, args.data_dir) for t in args.tasks]
        if len({t.name for t in args.tasks}) < len(args.tasks):
            raise ValueError("two tasks share a folder name; rename one")
        args.baseline = args.baseline or args.models[0]
        if args.baseline not in args.models:
            raise ValueError(f"--baseline {args.baseline!r} is not one of --models")
        unknown = [m for m in args.retrieval if m not in ("dense", "lexical", "hybrid")]
        if unknown:
            raise ValueError(f"unknown retrieval mode {unknown[0]!r}: choose dense, lexical or hybrid")
        collected = collect(args, out)
        report = write_report(args, out, collected)
    except (DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"{report['ran']} pairs evaluated, {report['reused']} reused; report written to {out / 'report.md'} "
          f"(+ report.json, {', '.join(Path(f['path']).name for f in report['figures'].values())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
