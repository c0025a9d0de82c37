"""The codebase index: build a folder's index, bring it up to date re-embedding only what changed, search it.

:func:`index_codebase` walks a folder (:class:`retrieval.codebase.files.SourceTree`:
``.gitignore`` honoured, binary, huge and non-UTF-8 files skipped and counted), cuts every
file by its language structure into chunks of at most the model's length
(:mod:`retrieval.chunking.structural`), embeds them and saves a retriever of the kind asked for
(``Retriever.kinds``: ``"dense"``, single-vector FAISS; ``"colbert"``, multi-vector).
:func:`search_codebase` answers queries with ``path:line`` hits. ``python -m retrieval
index|search`` is the command line.

The index folder, always replaced as a whole (:func:`indexes.storage.directory`), so a
reader sees the previous index or the new one, never half of one:

- ``codebase.json``: the manifest, a checksummed description (:func:`indexes.storage.write_description`):
  the root, the settings (model, retriever kind, FAISS factory, dtype, chunk length in tokens,
  exclude patterns, file size limit), per file its content SHA-256 and the ids of its chunks
  (``path#`` and 12 hex digits of the SHA-256 of the text the chunk embeds, ``~2``, ``~3`` ...
  for a repeat within the file), and the SHA-256 of every other file in the folder (a
  deleted, truncated or changed one is an :class:`indexes.IndexFormatError` naming it);
- ``retriever/``: the saved retriever (documents with ``path``, ``start``, ``end``, ``kind``,
  ``name``, ``language`` metadata);
- ``embeddings.npy``: only for an index that cannot delete (FAISS), one float32 row per chunk
  in the retriever's order.

A second run hashes every file and chunks only new and changed files; of their chunks it
embeds only those whose text is new. Chunk ids name the text a chunk embeds, so an edit of
one function re-embeds that function's chunk and nothing else of the file (a chunk moved by
lines added above it keeps its id and embedding; only its line numbers are refreshed): a line
added inside ``file_digest`` of this repository's ``indexes/storage.py`` embeds 1 chunk, where
re-embedding the changed file, as before, took 22. Chunks no longer produced leave the index.
How depends on what the retriever's index can do, not on its kind's name. A multi-vector
index (:class:`indexes.MultiVectorIndex`, its own tombstones, never returned) is loaded, the
old chunks deleted and the new ones added with the trained centroids: token embeddings are
too large to keep (256 bytes a token in fp16 against 66 for the index's 4-bit codes). A
single-vector index (:class:`indexes.FaissIndex`) is rebuilt from the stored rows of the
kept chunks plus the new ones: exact for every factory string (so ``--index`` may change
between runs without re-embedding), ``dim * 4`` bytes per chunk (what ``Flat`` stores
anyway) and milliseconds for ``Flat``. ``--rebuild`` re-indexes from scratch.

Examples
--------
>>> from retrieval.codebase.index import index_codebase, search_codebase      # doctest: +SKIP
>>> index_codebase(".", "runs/code-index").encoded
412
>>> search_codebase("runs/code-index", "write a folder atomically", k=1)[0].metadata["path"]
'indexes/storage.py'
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from encoder import default_model
from encoder.sentence import model_reference
from indexes import IndexFormatError, storage
from retrieval.chunking.structural import chunk_files
from retrieval.codebase.files import MAX_BYTES, SourceTree, describe_skipped, utf8_name
from retrieval.colbert import ColbertRetriever
from retrieval.parallel import choose_workers
from retrieval.codebase.hits import format_hit  # noqa: F401  (re-exported: callers import it from here)
from retrieval.codebase.errors import CodebaseError
from retrieval.retriever import Hit, Retriever

FORMAT = "codebase-index"
VERSION = 1
CHUNKER = 3  # bump when chunking or chunk ids change: older indexes then need --rebuild
MANIFEST = "codebase.json"
RETRIEVER_DIR = "retriever"
EMBEDDINGS_FILE = "embeddings.npy"
CHUNK_FILES_BATCH = 256  # files chunked per tokenizer round (progress granularity)


@dataclass
class IndexReport:
    """What :func:`index_codebase` did."""

    out: Path
    root: Path
    files: int
    chunks: int
    encoded: int
    new_files: int
    changed_files: int
    removed_files: int
    skipped: dict = field(default_factory=dict)
    seconds: float = 0.0
    written: bool = True
    workers: int = 1  # Ray actors that encoded the chunks (1: this process)

    def summary(self) -> str:
        unchanged = self.files - self.new_files - self.changed_files
        lines = [
            f"{self.files} files ({self.new_files} new, {self.changed_files} changed, {self.removed_files} removed, "
            f"{unchanged} unchanged): {self.chunks} chunks, {self.encoded} encoded"
            f"{f' on {self.workers} Ray workers' if self.workers > 1 else ''}, {self.seconds:.1f} s",
            f"skipped: {describe_skipped(Counter(self.skipped))}",
            f"index written to {self.out}" if self.written else f"index at {self.out} is up to date",
        ]
        return "\n".join(lines)


def chunk_ids(path: str, texts: list[str]) -> list[str]:
    """Ids of a file's chunks: ``path#`` + 12 hex digits of the SHA-256 of each embedded text, ``~n`` on a repeat.

    The same text keeps its id wherever it moves in the file, so it is never embedded twice.
    """
    ids, seen = [], Counter()
    for text in texts:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        seen[digest] += 1
        ids.append(f"{path}#{digest}" + (f"~{seen[digest]}" if seen[digest] > 1 else ""))
    return ids


def read_manifest(out: Path) -> dict | None:
    """The manifest of an index folder, checked (format, version, checksums); None when ``out`` is absent or empty.

    Raises :class:`CodebaseError` for a folder with other content (it is never overwritten)
    and :class:`indexes.IndexFormatError`, naming the file, for a damaged index.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise CodebaseError(f"{out} is a file, not an index folder")
    if not (out / MANIFEST).is_file():
        if (out / RETRIEVER_DIR).exists():
            raise IndexFormatError(f"{out / MANIFEST} is missing: {out} is a damaged codebase index; delete it or choose another --out")
        if any(out.iterdir()):
            raise CodebaseError(f"{out} exists and is not a codebase index (no {MANIFEST}); it is never overwritten")
        return None
    return storage.read_description(out, MANIFEST, FORMAT, VERSION, verify=True, what="codebase index")


def _model_name(model) -> str:
    """The reference stored for a model: its hub id, or its folder as an absolute path."""
    name = str(model) if isinstance(model, (str, Path)) else model_reference(model)
    return str(Path(name).resolve()) if Path(name).exists() else name


def _settings(previous: dict | None, out: Path, *, model, multi_vector, index, dtype, max_length, exclude, max_file_bytes,
              strict: bool = True) -> dict:
    """This run's settings: the ones asked for, else the previous run's, else the defaults.

    ``strict``: asking for another model, kind, dtype or length than the previous run's is an
    error (its stored chunks and embeddings would not match); ``--rebuild`` lifts it.
    """
    old = previous["settings"] if previous else {}
    wanted = {
        "kind": None if multi_vector is None else (ColbertRetriever if multi_vector else Retriever).kind,
        "model": None if model is None else _model_name(model),
        "dtype": dtype,
        "max_length": max_length,
    }
    for key, value in wanted.items():
        if strict and previous and value is not None and value != old.get(key):
            flag = {"kind": "--multi-vector", "model": "--model", "dtype": "--dtype", "max_length": "--max-length"}[key]
            raise CodebaseError(
                f"{out} holds an index built with {key} {old.get(key)!r}, not {value!r}: leave {flag} out to update it, "
                f"choose another --out, or add --rebuild to re-index everything"
            )
    kind = wanted["kind"] or old.get("kind", Retriever.kind)
    if kind not in Retriever.kinds:
        raise CodebaseError(f"{out} holds an index of kind {kind!r}, unknown here (known: {', '.join(sorted(Retriever.kinds))})")
    same_model = wanted["model"] in (None, old.get("model")) and kind == old.get("kind", kind)
    takes_factory = _takes_factory(Retriever.kinds[kind])
    if not takes_factory and index is not None:
        raise CodebaseError("--index (a FAISS factory string) applies to single-vector indexes, not --multi-vector")
    return {
        "kind": kind,
        "model": wanted["model"] or old.get("model") or _model_name(default_model()),
        "index": (index or old.get("index") or "Flat") if takes_factory else "",
        "dtype": dtype or old.get("dtype") or "auto",
        # A length belongs to a model: another model (with --rebuild) starts from its own.
        "max_length": max_length or (old.get("max_length") if same_model else None),
        "exclude": list(exclude) if exclude is not None else old.get("exclude", []),
        "max_file_bytes": max_file_bytes or old.get("max_file_bytes") or MAX_BYTES,
        "chunker": CHUNKER,
    }


def _takes_factory(kind: type[Retriever]) -> bool:
    """Whether a retriever class is built on a FAISS factory string (its ``index`` parameter)."""
    return "index" in inspect.signature(kind).parameters


def _deletes(retriever: Retriever) -> bool:
    """Whether the index is changed in place (multi-vector) rather than rebuilt from stored rows (single-vector).

    Single-vector rows are kept even where the index deletes, so the FAISS factory may change between runs.
    """
    return hasattr(retriever.index, "delete") and not _takes_factory(type(retriever))


def _retrievers(out: Path, settings: dict, model, *, keep: bool, device, batch_size, show_progress,
                trust_remote_code: bool = False, loaded_model=None) -> tuple[Retriever, Retriever | None]:
    """The retriever to take this run's chunks, and the previous run's as saved in ``out`` (None unless ``keep``).

    Where the saved retriever's index deletes, it is the one; else a new one on the same model.
    """
    loaded = loaded_model or (None if model is None or isinstance(model, (str, Path)) else model)
    saved = Retriever.load(out / RETRIEVER_DIR, model=loaded, device=device, dtype=settings["dtype"],
                           trust_remote_code=trust_remote_code) if keep else None
    if saved is not None and _deletes(saved):
        retriever = saved
        retriever.batch_size = batch_size or retriever.batch_size
    else:
        model = saved.model if saved else loaded or settings["model"]
        retriever = _new_retriever(settings, model, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code)
    retriever.show_progress = show_progress
    return retriever, saved


def _new_retriever(settings: dict, model, *, device, batch_size, trust_remote_code: bool = False) -> Retriever:
    """An empty retriever of the settings' kind (``Retriever.kinds``) on ``model``, a name or a loaded model.

    A model loaded by name reads chunks of the settings' length; a loaded model is left as it is.
    """
    kind = Retriever.kinds[settings["kind"]]
    options = {"index": settings["index"]} if _takes_factory(kind) else {}
    if "lexical" in inspect.signature(kind).parameters:
        options["lexical"] = "code"  # BM25 over identifier-split tokens, fused by search(mode="hybrid")
    retriever = kind(model, device=device, dtype=settings["dtype"], batch_size=batch_size or kind.batch_size_default,
                     trust_remote_code=trust_remote_code, **options)
    if settings["max_length"] and isinstance(model, (str, Path)):
        retriever.set_max_length(settings["max_length"])
    return retriever


def _chunk_limit(retriever: Retriever, settings: dict) -> int:
    own = retriever.max_length()
    limit = settings["max_length"] or own
    if limit > own:
        raise CodebaseError(f"--max-length {limit} is over the model's own maximum of {own} tokens")
    return limit


def _check_arguments(root: Path, **positive) -> None:
    if not root.exists():
        raise CodebaseError(f"{root} does not exist")
    if not root.is_dir():
        raise CodebaseError(f"{root} is not a folder")
    if not utf8_name(str(root.resolve())):
        raise CodebaseError(f"{ascii(str(root.resolve()))}: the path is not UTF-8; rename it or index it through a UTF-8 link")
    for name, value in positive.items():
        if value is not None and value < 1:
            raise CodebaseError(f"{name} must be a positive number, not {value}")


def _previous_files(previous: dict | None, root: Path, out: Path, rebuild: bool) -> dict:
    """The files of the previous run that this one may keep: none with ``rebuild``."""
    if not previous or rebuild:
        return {}
    if previous.get("root") != str(root.resolve()):
        raise CodebaseError(f"{out} indexes {previous.get('root')}, not {root.resolve()}: choose another --out, or add --rebuild")
    if previous["settings"].get("chunker") != CHUNKER:
        raise CodebaseError(f"{out} was chunked by an older version of this toolkit: add --rebuild")
    return previous["files"]


def _read_files(root: Path, out: Path, settings: dict, previous_files: dict, show_progress: bool):
    """The walked tree, every file's content SHA-256, and the texts of the new and changed files (only they are chunked)."""
    skip = [out, *out.parent.glob(f".{out.name}.*")]  # the index itself and its temporary siblings
    tree = SourceTree(root, exclude=settings["exclude"], max_bytes=settings["max_file_bytes"], skip=skip)
    texts, digests = {}, {}
    for source in tqdm(tree, desc="read files", unit="file", disable=not show_progress):
        digests[source.path] = source.sha256
        if previous_files.get(source.path, {}).get("sha256") != source.sha256:
            texts[source.path] = source.text
    if not digests:
        raise CodebaseError(f"no text files to index under {root} (skipped: {describe_skipped(tree.skipped)})")
    return tree, digests, texts


def _chunk_documents(retriever: Retriever, texts: dict, limit: int, show_progress: bool) -> tuple[list[dict], dict]:
    """The chunks of ``texts`` as documents, each at most ``limit`` tokens, and the chunk ids of each file."""
    documents, ids = [], {}
    paths = sorted(texts)
    with tqdm(total=len(paths), desc="chunk files", unit="file", disable=not show_progress) as bar:
        for i in range(0, len(paths), CHUNK_FILES_BATCH):
            batch = paths[i : i + CHUNK_FILES_BATCH]
            chunks = chunk_files(((p, texts[p]) for p in batch), retriever.document_token_counts, limit)
            by_file: dict[str, list] = {}
            for chunk in chunks:
                by_file.setdefault(chunk.path, []).append(chunk)
            for path, file_chunks in by_file.items():
                ids[path] = chunk_ids(path, [c.full_text for c in file_chunks])
                documents += [{
                    "id": doc_id, "title": c.title, "text": c.text, "path": c.path, "start": c.start, "end": c.end,
                    "kind": c.kind, "name": c.name, "language": c.language,
                } for doc_id, c in zip(ids[path], file_chunks)]
            bar.update(len(batch))
    return documents, ids


def _refresh(retriever: Retriever, moved: list[dict]) -> None:
    """New line numbers for kept chunks (same id, so same text) that an edit above them moved: no re-embedding."""
    for record in moved:
        old = retriever.documents[record["id"]]
        if old.metadata != (new := {**old.metadata, **_metadata(record)}):
            retriever.update_metadata(old.id, new)


def _add(retriever: Retriever, documents: list[dict], embeddings=None) -> None:
    """Add chunks as they are: they already fit the model, the Retriever's own chunking would only re-cut them."""
    options = {"chunk": False} if "chunk" in inspect.signature(retriever.add).parameters else {}
    retriever.add(documents, embeddings=embeddings, **options)


def _metadata(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("id", "title", "text")}


def _update(retriever: Retriever, saved: Retriever | None, out: Path, documents: list[dict], gone: list[str],
            moved: list[dict]) -> np.ndarray | None:
    """Take the ``gone`` chunk ids out of the index, put ``documents`` in, refresh ``moved``; the rows to store, if any.

    An index that deletes (the ``saved`` one, or a new one on a first run) is changed in place.
    Any other, always new, gets the saved retriever's other chunks with their stored rows
    (``embeddings.npy``), then the new documents; all its rows are returned, to be stored.
    """
    if _deletes(retriever):
        if gone:
            retriever.delete(gone)
        _refresh(retriever, moved)
        _add(retriever, documents)
        return None
    kept_docs, kept_rows = [], np.zeros((0, retriever.dimension()), dtype=np.float32)
    if saved is not None:
        rows = np.load(out / EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
        if len(rows) != len(saved.documents):
            raise IndexFormatError(f"{out / EMBEDDINGS_FILE} holds {len(rows)} rows for {len(saved.documents)} chunks: add --rebuild")
        gone_ids, moves = set(gone), {m["id"]: _metadata(m) for m in moved}
        keep = [i for i, doc_id in enumerate(saved.documents) if doc_id not in gone_ids]
        old_docs = list(saved.documents.values())
        kept_docs = [{"id": d.id, "title": d.title, "text": d.text, **d.metadata, **moves.get(d.id, {})} for d in (old_docs[i] for i in keep)]
        kept_rows = np.asarray(rows[keep], dtype=np.float32)
    embeddings = np.concatenate([kept_rows, retriever.embed_documents(documents)]) if documents or saved is None else kept_rows
    _add(retriever, kept_docs + documents, embeddings)
    return embeddings


def _changes(previous_files: dict, digests: dict, texts: dict, documents: list[dict]) -> tuple[list[dict], list[str], list[dict]]:
    """``(fresh, gone, moved)``: chunks to embed (text new), ids to drop (text no longer produced), kept chunks to refresh."""
    changed = [p for p in previous_files if p not in digests or p in texts]
    old_ids = {i for p in changed for i in previous_files[p]["ids"]}
    new_ids = {d["id"] for d in documents}
    gone = [i for p in changed for i in previous_files[p]["ids"] if i not in new_ids]
    return [d for d in documents if d["id"] not in old_ids], gone, [d for d in documents if d["id"] in old_ids]


def _manifest(root: Path, settings: dict, digests: dict, ids: dict, previous_files: dict) -> dict:
    """The manifest: settings, and per file its SHA-256, chunk ids (this run's where it was chunked) and chunk count."""
    files = {}
    for p in sorted(digests):
        chunk_list = ids.get(p, []) if previous_files.get(p, {}).get("sha256") != digests[p] else previous_files[p]["ids"]
        files[p] = {"sha256": digests[p], "ids": chunk_list, "chunks": len(chunk_list)}
    return {"format": FORMAT, "version": VERSION, "root": str(root.resolve()), "settings": settings, "files": files}


def _write(out: Path, retriever: Retriever, embeddings: np.ndarray | None, manifest: dict) -> None:
    """The index folder, replaced as a whole; the manifest carries the checksum of every other file in it."""
    with storage.directory(out) as tmp:
        retriever.save(tmp / RETRIEVER_DIR)
        if embeddings is not None:
            np.save(tmp / EMBEDDINGS_FILE, embeddings, allow_pickle=False)
        storage.write_description(tmp, MANIFEST, manifest, files=storage.files_below(tmp))


def _new_report(out: Path, root: Path, tree, digests: dict, texts: dict, previous_files: dict) -> IndexReport:
    """The report's file counts, before anything is encoded."""
    return IndexReport(
        out=out, root=root, files=len(digests), chunks=0, encoded=0, new_files=sum(p not in previous_files for p in texts),
        changed_files=sum(p in previous_files for p in texts), removed_files=sum(p not in digests for p in previous_files),
        skipped=dict(tree.skipped),
    )


def index_codebase(
    root: str | Path,
    out: str | Path,
    *,
    model=None,
    multi_vector: bool | None = None,
    index: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
    exclude: list[str] | None = None,
    max_file_bytes: int | None = None,
    rebuild: bool = False,
    show_progress: bool = True,
    trust_remote_code: bool = False,  # a model folder may name code outside the allow-list
    loaded_model=None,
    workers: int | None = None, ray_address: str | None = None,
) -> IndexReport:
    """Index the text files under ``root`` into the folder ``out``, or bring that index up to date.

    Settings left at None keep the previous run's (so a second run needs no flags), else
    the defaults: the offline MiniLM, single vector, ``Flat``, dtype ``auto``, chunks of
    the model's maximum length, no extra exclusions, files up to 1 MB.

    Parameters
    ----------
    root
        The folder to index.
    out
        The index folder: created, or updated when it holds an index of ``root``.
    model
        Hub id or folder of a sentence-transformers model (a PyLate ColBERT model with
        ``multi_vector``), or a loaded one.
    multi_vector
        ColBERT token vectors in :class:`indexes.MultiVectorIndex` instead of one vector per chunk.
    index
        FAISS factory string of the single-vector index (it may change between runs: the
        index is rebuilt from the stored embeddings).
    dtype, device, batch_size
        Model settings (``dtype="auto"``: bf16 where the hardware runs it natively).
    max_length
        Chunk length in tokens (at most, and by default, the model's maximum).
    exclude
        Extra gitignore-style patterns relative to ``root``.
    max_file_bytes
        Larger files are skipped.
    rebuild
        Ignore the previous index and embed everything again.
    loaded_model
        The index's own model, already loaded (``--watch`` loads it once for every update).
    workers, ray_address
        Ray actors encoding the chunks (:meth:`retrieval.Retriever.workers`; None: :func:`retrieval.parallel.choose_workers`).
    """
    started = time.perf_counter()
    root, out = Path(root), Path(out)
    _check_arguments(root, **{"--max-length": max_length, "--batch-size": batch_size, "--max-file-size": max_file_bytes})
    previous = read_manifest(out)
    previous_files = _previous_files(previous, root, out, rebuild)
    settings = _settings(previous, out, model=model, multi_vector=multi_vector, index=index, dtype=dtype, max_length=max_length,
                         exclude=exclude, max_file_bytes=max_file_bytes, strict=not rebuild)
    tree, digests, texts = _read_files(root, out, settings, previous_files, show_progress)  # before the model loads
    report = _new_report(out, root, tree, digests, texts, previous_files)
    if previous_files and not texts and not report.removed_files and settings == previous["settings"]:
        report.chunks, report.written = sum(len(f["ids"]) for f in previous_files.values()), False
        report.seconds = time.perf_counter() - started
        return report
    retriever, saved = _retrievers(
        out, settings, model, keep=bool(previous_files), device=device, batch_size=batch_size,
        show_progress=show_progress, trust_remote_code=trust_remote_code, loaded_model=loaded_model)
    settings["max_length"] = _chunk_limit(retriever, settings)
    documents, ids = _chunk_documents(retriever, texts, settings["max_length"], show_progress)
    fresh, gone, moved = _changes(previous_files, digests, texts, documents)
    report.workers = choose_workers(workers, ray_address, len(fresh))
    with retriever.workers(report.workers, ray_address, quiet=not show_progress):
        embeddings = _update(retriever, saved, out, fresh, gone, moved)
    report.encoded, report.chunks = len(fresh), len(retriever)
    _write(out, retriever, embeddings, _manifest(root, settings, digests, ids, previous_files))
    report.seconds = time.perf_counter() - started
    return report


def load_codebase(out: str | Path, *, model=None, device: str | None = None,
                  trust_remote_code: bool = False) -> tuple[Retriever, dict]:
    """The retriever and manifest of an index folder written by :func:`index_codebase`.

    Nothing in the folder runs: its model goes through the toolkit's allow-list unless
    ``trust_remote_code=True``.
    """
    out = Path(out)
    if not out.is_dir():
        raise CodebaseError(f"{out} is not an index folder (index a codebase first: python -m retrieval index PATH --out {out})")
    manifest = read_manifest(out)
    if manifest is None:
        raise CodebaseError(f"{out} is empty: index a codebase first")
    return Retriever.load(out / RETRIEVER_DIR, model=model, device=device, trust_remote_code=trust_remote_code), manifest


def search_codebase(out: str | Path, query: str, k: int = 10, *, model=None, device: str | None = None) -> list[Hit]:
    """The ``k`` best chunks for ``query``; each hit's metadata holds ``path``, ``start``, ``end``, ``name``."""
    retriever, _ = load_codebase(out, model=model, device=device)
    return retriever.search(query, k=k)
