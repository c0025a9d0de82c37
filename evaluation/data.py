"""BEIR-layout datasets: find or download them, check them, load them with beir's loader.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id corpus-id score``, header line).
beir's ``GenericDataLoader`` reads them but stops at the first bad line with a bare
``JSONDecodeError`` and a ``KeyError`` on qrels naming unknown queries; this module checks
every line first (file and line number in the message) and drops qrels with unknown ids
with a counted warning.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
DATA_DIR_ENV = "RETRIEVAL_DATA_DIR"


class DataError(ValueError):
    """The dataset is missing or malformed; the message names the file (and line)."""


@dataclass
class BeirData:
    """A loaded split: ``corpus[id] = {"title", "text"}``, ``queries[id] = text``, ``qrels[qid][did] = score``."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    warnings: list[str] = field(default_factory=list)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def _online(host: str, timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def find_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Folder of dataset ``name`` under ``data_dir``; downloaded with beir's downloader when absent and online."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    path = data_dir / name
    if path.is_dir():
        return path
    url = BEIR_URL.format(name=name)
    host = url.split("/")[2]
    if download and _online(host):
        from beir import util

        logger.warning("%s not found: downloading %s", path, url)
        try:
            util.download_and_unzip(url, str(data_dir))
        except Exception as exc:
            raise DataError(f"dataset {name!r} is not at {path} and downloading {url} failed: {exc}") from exc
        if path.is_dir():
            return path
    raise DataError(
        f"dataset {name!r} not found: looked for the folder {path.resolve()} "
        f"(set --data-dir or ${DATA_DIR_ENV}) and could not download it ({'no network' if download else 'download off'}). "
        f"Provide a BEIR-layout folder there: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."
    )


def check_jsonl(path: Path, required: tuple[str, ...]) -> int:
    """Raise :class:`DataError` at the first line that is not a JSON object with ``required`` fields; return the count."""
    if not path.is_file():
        raise DataError(f"{path} is missing")
    count = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                raise DataError(f"{path}:{line_no}: empty line (each line must be one JSON object)")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: malformed JSON: {exc.msg} at column {exc.colno}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            missing = [k for k in required if k not in record]
            if missing:
                raise DataError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}")
            count += 1
    if count == 0:
        raise DataError(f"{path} is empty")
    return count


def check_qrels(path: Path) -> None:
    """Raise :class:`DataError` at the first qrels row that is not ``query-id<TAB>corpus-id<TAB>integer``."""
    with open(path, encoding="utf-8", errors="strict", newline="") as f:
        try:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 ({exc.reason})") from None
    if len(rows) < 2:
        raise DataError(f"{path} has no judgments (a header line, then query-id, corpus-id, score rows)")
    for line_no, row in enumerate(rows[1:], 2):
        if len(row) < 3:
            raise DataError(f"{path}:{line_no}: expected 3 tab-separated columns, got {len(row)}")
        try:
            int(row[2])
        except ValueError:
            raise DataError(f"{path}:{line_no}: score {row[2]!r} is not an integer") from None


def available_splits(path: Path) -> list[str]:
    return sorted(p.stem for p in (path / "qrels").glob("*.tsv"))


def load_beir(path: str | Path, split: str = "test") -> BeirData:
    """Check and load one split of a BEIR folder.

    Raises
    ------
    DataError
        Missing file or split, malformed line (file:line), empty corpus or query set.
    """
    from beir.datasets.data_loader import GenericDataLoader

    path = Path(path)
    corpus_file, query_file, qrels_file = path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        splits = available_splits(path)
        raise DataError(f"split {split!r} not found: {qrels_file} is missing (available splits: {', '.join(splits) or 'none'})")
    check_jsonl(corpus_file, ("_id", "text"))
    check_jsonl(query_file, ("_id", "text"))
    check_qrels(qrels_file)

    # beir's own readers, one file at a time, so unknown ids become a counted warning, not a KeyError.
    loader = GenericDataLoader(str(path))
    loader.qrels_file = str(qrels_file)
    loader._load_corpus()
    loader._load_queries()
    loader._load_qrels()
    corpus = {str(k): v for k, v in loader.corpus.items()}
    queries = {str(k): v for k, v in loader.queries.items()}

    warnings = []
    qrels: dict[str, dict[str, int]] = {}
    unknown_queries, unknown_docs = set(), 0
    for qid, judged in loader.qrels.items():
        if qid not in queries:
            unknown_queries.add(qid)
            continue
        known = {did: score for did, score in judged.items() if did in corpus}
        unknown_docs += len(judged) - len(known)
        if known:
            qrels[qid] = known
    if unknown_queries:
        warnings.append(f"{qrels_file}: skipped judgments of {len(unknown_queries)} query ids not in {query_file.name}")
    if unknown_docs:
        warnings.append(f"{qrels_file}: skipped {unknown_docs} judgments naming corpus ids not in {corpus_file.name}")
    for w in warnings:
        logger.warning(w)
    if not qrels:
        raise DataError(f"{qrels_file}: no judgment names a known query and document: nothing to evaluate")
    return BeirData(corpus=corpus, queries={qid: queries[qid] for qid in qrels}, qrels=qrels, warnings=warnings)
