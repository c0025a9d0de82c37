"""Retrieval data sets read as one :class:`BeirData`: BEIR-layout folders and hub datasets, every bad line named by file:line.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id corpus-id score``, header line).
beir's ``GenericDataLoader`` reads them but stops at the first bad line with a bare
``JSONDecodeError``, keeps non-string texts and integer ids as they are, lets a repeated id
overwrite the first and raises a ``KeyError`` on qrels naming unknown queries. This module
reads them itself (:func:`read_corpus`, :func:`read_queries`, :func:`read_qrels`), checking
every line and field: each bad one is a :class:`DataError` naming file and line (a repeated
id names both lines; a file that is not a regular file, a FIFO say, is named, never opened).
Judgments of unknown query ids are dropped, those naming unknown documents kept apart as
relevant-but-unretrievable (``BeirData.unretrievable``, scored by an evaluation as MTEB and
BEIR score them), both counted in a warning (:func:`join_judgments`, shared by every loader).

Hub datasets (MLDR, CoIR) are found by :func:`find_hub_dataset` (a BEIR-layout folder first,
then a local copy of the repository, then the hub) and read through ``datasets`` by
:func:`load_split`; :func:`columns` reads their rows and names the file and row of a bad one.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
DATA_DIR_ENV = "RETRIEVAL_DATA_DIR"
HUB_HOST = "huggingface.co"


class DataError(ValueError):
    """The dataset is missing or malformed; the message names the file (and line)."""


@dataclass
class BeirData:
    """A loaded split: ``corpus[id] = {"title", "text"}``, ``queries[id] = text``, ``qrels[qid][did] = score``."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    warnings: list[str] = field(default_factory=list)
    # judgments naming documents the corpus lacks: relevant but unretrievable, scored as misses (MTEB/BEIR protocol)
    unretrievable: dict[str, dict[str, int]] = field(default_factory=dict)

    def evaluation_qrels(self) -> dict[str, dict[str, int]]:
        """Every judgment of a known query, ``unretrievable`` ones included: what an evaluation scores against.

        A query whose only judged documents are missing is kept and scores 0, as in MTEB and BEIR
        (dropping it raised SciFact-like scores by ~0.002); ``qrels`` (known documents only) is what
        training and mining take as positives.
        """
        merged = {q: dict(j) for q, j in self.qrels.items()}
        for q, judged in self.unretrievable.items():
            merged.setdefault(q, {}).update(judged)
        return merged


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


def find_hub_dataset(beir_path: Path, copy: Path, marker: str, default_repo: str, repo: str | None = None, *,
                     hub_prefix: str = "") -> tuple[str, str] | None:
    """Where a dataset published as a hub repository is, first found first; ``None`` when nowhere.

    ``("beir", beir_path)`` when that folder holds ``corpus.jsonl``; ``("hub", repo)`` for an
    explicit local copy ``repo`` (refused with a :class:`DataError` when ``repo/marker`` is missing,
    never silently replaced by the hub); ``("hub", copy)`` for a copy of ``default_repo`` holding
    ``marker``; ``("hub", hub_prefix + hub id)`` when the hub answers. The caller says where it looked.
    """
    if (beir_path / "corpus.jsonl").is_file():
        return "beir", str(beir_path)
    if repo and Path(repo).is_dir():
        if (Path(repo) / marker).exists():
            return "hub", str(repo)
        raise DataError(f"{repo} is not a copy of the {default_repo} repository: {Path(repo) / marker} is missing")
    if (not repo or repo == default_repo) and (copy / marker).exists():
        return "hub", str(copy)
    if _online(HUB_HOST):
        return "hub", hub_prefix + (repo or default_repo)
    return None


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a data file (``"... is missing"``, ``"... is not a regular file (a FIFO)"``), or None.

    Only ``stat`` is called: a FIFO is never opened, so a reader never blocks on one.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{path} is a broken symbolic link" if path.is_symlink() else f"{path} is missing"
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror}"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "something else")
    return f"{path} is not a regular file ({kind})"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (``.gz`` read through gzip); a bad byte is a :class:`DataError`."""
    problem = file_problem(path)
    if problem:
        raise DataError(problem)
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        for line_no, raw in enumerate(f, 1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` of a JSON lines file; the first line that is not a JSON object with ``required``
    fields is a :class:`DataError`, and so is a file without lines."""
    count = 0
    for line_no, line in _lines(path):
        if not line.strip():
            raise DataError(f"{path}:{line_no}: empty line (each line must be one JSON object)")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: malformed JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise DataError(f"{path}:{line_no}: JSON nested too deeply to read") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
        missing = [k for k in required if k not in record]
        if missing:
            raise DataError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}")
        count += 1
        yield line_no, record
    if count == 0:
        raise DataError(f"{path} is empty")


def check_jsonl(path: Path, required: tuple[str, ...]) -> int:
    """Raise :class:`DataError` at the first line that is not a JSON object with ``required`` fields; return the count.

    ``.gz`` files are read through gzip.
    """
    return sum(1 for _ in _records(path, required))


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _unicode(where: str, name: str, value: str) -> str:
    """``value``, unless it holds a lone surrogate (``"\\ud800"`` in JSON): no encoder or tokenizer takes it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{where}: field {name} holds a lone surrogate {value[exc.start]!r} at character "
                        f"{exc.start + 1} (not valid Unicode text)") from None
    return value


def _string(where: str, record: dict, name: str, *, optional: bool = False) -> str | None:
    """Field ``name`` of a record: a string (null or absent only when ``optional``)."""
    value = record.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name} must be a string, got {_json_type(value)}")
    return _unicode(where, name, value)


def check_text_jsonl(path: Path) -> int:
    """Raise :class:`DataError` at the first line of a JSON lines file of text rows (a training file of anchor,
    positive ... columns) that is not an object of strings (or nulls); return the count. ``datasets`` reads such files
    through pyarrow, which names no line and crashes the interpreter on JSON nested thousands deep."""
    count = 0
    for line_no, record in _records(path, ()):
        for name in record:
            _string(f"{path}:{line_no}", record, name, optional=True)  # null: an empty cell, skipped by the trainers
        count += 1
    return count


def _record_id(where: str, record: dict) -> str:
    """The ``_id`` of a record as a string: JSON integers are taken as their digits (beir keeps them as int keys,
    then every lookup by the qrels' string ids misses); anything else but a non-empty string is refused."""
    value = record["_id"]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: field _id must be a string (or an integer), got {_json_type(value)}")
    if not value.strip():
        raise DataError(f"{where}: field _id is empty")
    return _unicode(where, "_id", value)


def _read_records(path: Path, kind: str, make: Callable[[str, dict], object]) -> dict[str, object]:
    """``{_id: make(where, record)}`` of a corpus or queries file; a repeated id names both lines."""
    out: dict[str, object] = {}
    for line_no, record in _records(path, ("_id", "text")):
        where = f"{path}:{line_no}"
        rid = _record_id(where, record)
        if rid in out:
            first = next(n for n, r in _records(path, ("_id",)) if _record_id("", r) == rid)
            raise DataError(f"{where}: {kind} id {rid!r} already given at line {first}")
        out[rid] = make(where, record)
    return out


def read_corpus(path: Path) -> dict[str, dict[str, str | None]]:
    """``{id: {"text", "title"}}`` of a ``corpus.jsonl`` (title None when absent or null), every line checked."""
    return _read_records(path, "document", lambda where, r: {"text": _string(where, r, "text"),
                                                             "title": _string(where, r, "title", optional=True)})


def read_queries(path: Path) -> dict[str, str]:
    """``{id: text}`` of a ``queries.jsonl``, every line checked."""
    return _read_records(path, "query", lambda where, r: _string(where, r, "text"))


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], list[str]]:
    """``(qrels, warnings)`` of ``query-id<TAB>corpus-id<TAB>integer`` rows after a header line, every row checked.

    A (query, document) pair given twice with the same score is kept once and counted in a warning; with
    two different scores it is a :class:`DataError` naming both lines (beir would keep the last silently).
    """
    qrels: dict[str, dict[str, int]] = {}
    repeated = 0
    reader = csv.reader((line for _, line in _lines(path)), delimiter="\t", quoting=csv.QUOTE_MINIMAL)
    try:
        next(reader, None)  # the header
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if len(row) < 3:
                raise DataError(f"{where}: expected 3 tab-separated columns, got {len(row)}")
            qid, did, score = row[0], row[1], _score(where, row[2])
            if not qid.strip() or not did.strip():
                raise DataError(f"{where}: empty {'query' if not qid.strip() else 'corpus'} id")
            judged = qrels.setdefault(qid, {})
            if did in judged and judged[did] != score:
                raise DataError(f"{where}: query {qid!r} and document {did!r} already judged {judged[did]} at line "
                                f"{_qrels_line(path, qid, did)}; this line says {score}")
            repeated += did in judged
            judged[did] = score
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from None
    if not qrels:
        raise DataError(f"{path} has no judgments (a header line, then query-id, corpus-id, score rows)")
    warnings = [f"{path}: {repeated} repeated judgments (same query, document and score) counted once"] if repeated else []
    return qrels, warnings


def _score(where: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{where}: score {text!r} is not an integer") from None


def _qrels_line(path: Path, qid: str, did: str) -> int:
    reader = csv.reader((line for _, line in _lines(path)), delimiter="\t", quoting=csv.QUOTE_MINIMAL)
    next(reader)
    return next(reader.line_num for row in reader if row[:2] == [qid, did])


def check_qrels(path: Path) -> None:
    """Raise :class:`DataError` at the first qrels row that is not ``query-id<TAB>corpus-id<TAB>integer``."""
    read_qrels(path)


def available_splits(path: Path) -> list[str]:
    return sorted(p.stem for p in (path / "qrels").glob("*.tsv") if file_problem(p) is None)


def load_beir(path: str | Path, split: str = "test") -> BeirData:
    """Check and load one split of a BEIR folder: every line of the three files, read once.

    Raises
    ------
    DataError
        Missing file or split, a split file that is not a regular file, malformed line or field, repeated id
        (file:line), empty corpus or query set.
    """
    path = Path(path)
    corpus_file, query_file, qrels_file = path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"
    problem = file_problem(qrels_file)
    if problem and not os.path.lexists(qrels_file):
        splits = available_splits(path)
        raise DataError(f"split {split!r} not found: {problem} (available splits: {', '.join(splits) or 'none'})")
    if problem:
        raise DataError(f"split {split!r}: {problem}")
    corpus = read_corpus(corpus_file)
    queries = read_queries(query_file)
    judgments, repeated = read_qrels(qrels_file)
    data = join_judgments(corpus, queries, judgments, qrels_name=str(qrels_file), queries_name=query_file.name,
                          corpus_name=corpus_file.name)
    for w in repeated:
        logger.warning(w)
    data.warnings[:0] = repeated
    return data


def join_judgments(corpus: dict, queries: dict, judgments: dict, *, qrels_name: str, queries_name: str,
                   corpus_name: str) -> BeirData:
    """A :class:`BeirData` of the judgments of known queries, each unknown id counted in a warning.

    Every loader ends here (BEIR files, hub datasets), so unknown ids read the same whatever the source;
    the ``*_name`` arguments say where each part came from in the messages. Judgments of unknown query ids
    are dropped. Judgments naming unknown documents are kept apart in ``unretrievable``: the evaluation
    scores them as relevant documents no retriever can return (MTEB/BEIR), training never sees them.

    Raises
    ------
    DataError
        No judgment names a known query and document.
    """
    warnings = []
    qrels: dict[str, dict[str, int]] = {}
    unretrievable: dict[str, dict[str, int]] = {}
    unknown_queries, unknown_docs = set(), 0
    for qid, judged in judgments.items():
        if qid not in queries:
            unknown_queries.add(qid)
            continue
        known = {did: score for did, score in judged.items() if did in corpus}
        missing = {did: score for did, score in judged.items() if did not in corpus}
        unknown_docs += len(missing)
        if known:
            qrels[qid] = known
        if missing:
            unretrievable[qid] = missing
    if unknown_queries:
        warnings.append(f"{qrels_name}: skipped judgments of {len(unknown_queries)} query ids not in {queries_name}")
    if unknown_docs:
        warnings.append(f"{qrels_name}: {unknown_docs} judgments naming corpus ids not in {corpus_name} kept as relevant "
                        f"but unretrievable ({len(unretrievable)} queries; scored as misses, as MTEB and BEIR do)")
    for w in warnings:
        logger.warning(w)
    if not qrels:
        raise DataError(f"{qrels_name}: no judgment names a known query and document: nothing to evaluate")
    kept = [qid for qid in judgments if qid in qrels or qid in unretrievable]
    return BeirData(corpus=corpus, queries={qid: queries[qid] for qid in kept}, qrels=qrels, warnings=warnings,
                    unretrievable=unretrievable)


@dataclass
class Split:
    """One split read through ``datasets``: its rows and the files they came from."""

    rows: object  # datasets.Dataset
    files: list[str]
    label: str
    jsonl: bool = False

    def where(self, row: int | None = None) -> str:
        """``file:line`` (JSON lines) or ``file row N`` for a row of a one-file split; the label and row otherwise."""
        if row is None:
            return self.files[0] if len(self.files) == 1 else self.label
        if len(self.files) == 1:
            return f"{self.files[0]}:{row + 1}" if self.jsonl else f"{self.files[0]} row {row + 1}"
        return f"{self.label} row {row + 1}"


def load_split(path: str, name: str | None, split: str, *, data_files=None, cache_dir: str | Path | None = None,
               label: str | None = None, show_progress: bool = True) -> Split:
    """One split through ``datasets``: a hub id, a local copy of a hub repository, or data files.

    ``path`` and ``name`` are what ``datasets.load_dataset`` takes (``"json"`` with ``data_files``
    reads JSON lines files, ``hf://`` paths included). Every failure becomes a :class:`DataError`
    that names the repository, configuration and split, and for local JSON lines files the line.
    """
    import datasets

    label = label or (f"{path} (config {name!r})" if name else str(path))
    try:
        builder = datasets.load_dataset_builder(path, name, data_files=data_files, cache_dir=cache_dir)
    except ValueError as exc:  # an unknown configuration lists the available ones
        raise DataError(f"{label}: {exc}") from None
    except Exception as exc:  # missing folder or files, hub errors
        raise DataError(f"{label}: cannot read it: {type(exc).__name__}: {exc}") from None
    files = {str(k): [str(f) for f in v] for k, v in (builder.config.data_files or {}).items()}
    if split not in files:
        raise DataError(f"split {split!r} not found in {label} (available splits: {', '.join(sorted(files)) or 'none'})")
    jsonl = all(f.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")) for f in files[split])
    bars = datasets.is_progress_bar_enabled()
    if not show_progress:
        datasets.disable_progress_bars()
    try:
        builder.download_and_prepare()
        rows = builder.as_dataset(split=split)
    except Exception as exc:
        for f in (Path(f) for f in files[split]):  # datasets names neither file nor line: find them
            if f.is_file() and jsonl:
                check_jsonl(f, ())
            elif f.is_file() and f.suffix == ".parquet" and _parquet_rows(f) == 0:
                raise DataError(f"{f} is empty") from None
        cause = exc.__cause__ or exc
        raise DataError(f"{label}: cannot read split {split!r} ({', '.join(files[split])}): {type(cause).__name__}: {cause}") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    return Split(rows=rows, files=files[split], label=f"{label} split {split!r}", jsonl=jsonl)


def _parquet_rows(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # not parquet at all: the caller reports datasets' own error
        return None


def columns(split: Split, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, list]:
    """The named columns as Python lists; no rows or a missing required column is a :class:`DataError`."""
    if split.rows.num_rows == 0:
        raise DataError(f"{split.where()} is empty")
    names = split.rows.column_names
    missing = [c for c in required if c not in names]
    if missing:
        raise DataError(f"{split.where()}: missing field(s) {', '.join(missing)} (fields: {', '.join(names)})")
    table = split.rows.with_format("arrow")
    return {c: table[c].to_pylist() for c in (*required, *optional) if c in names}


def check_strings(split: Split, values: list, field: str, *, empty_ok: bool = False) -> None:
    """Raise :class:`DataError` at the first row whose ``field`` is missing, not a string or (unless ``empty_ok``) empty."""
    for i, value in enumerate(values):
        if not isinstance(value, str):
            what = "missing" if value is None else f"not a string ({type(value).__name__})"
            raise DataError(f"{split.where(i)}: field {field} is {what}")
        if not empty_ok and not value.strip():
            raise DataError(f"{split.where(i)}: field {field} is empty")
