"""The library API a RAG app calls: add, upsert and delete documents, search them (dense, BM25 or hybrid), save, load.

Examples
--------
>>> from retrieval import Retriever
>>> retriever = Retriever(index="Flat")          # offline all-MiniLM-L6-v2 by default
>>> retriever.add([{"id": "py", "text": "Python is a programming language.", "lang": "en"},
...                {"id": "fr", "text": "Paris is the capital of France.", "lang": "en"}])
['py', 'fr']
>>> retriever.search("Which language should I code in?", k=1)[0].id
'py'
>>> retriever.search("capital", k=1, mode="hybrid", where={"id": {"$in": ["fr"]}})[0].id
'fr'

Design, by measurement (BENCHMARKS.md, "Hybrid retrieval, filters, chunks"):

- BM25 beside the dense index (:class:`indexes.LexicalIndex`, bm25s): on SciFact the offline MiniLM
  scores nDCG@10 0.645 and bm25s 0.687 (published); on csn_ruby fusing both (:mod:`retrieval.fusion`)
  scores 0.813 against 0.770 dense and 0.677 BM25.
- Filters become the index search's ``subset`` (:mod:`retrieval.filters`), so a filtered search
  equals brute force over the kept documents; a post-filtered top-k would return fewer than k.
- Long documents are cut into chunks instead of truncated (:mod:`retrieval.chunking`): a 20,149-token
  report's last paragraph is found only so. Token windows by default; a long source file or Markdown
  page (a file path in its metadata or id) at its definitions or sections, as the codebase index cuts
  it (on Go files, nDCG@10 0.679 against 0.499 for line windows; Markdown not measured).
  ``group_by_document`` ranks documents by their best chunk (MaxP, Dai & Callan 2019).
- Documents enter the BM25 index at the first lexical or hybrid search (or at save), so an app,
  a miner or a harness that only searches densely pays nothing for it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from encoder import default_model, encode, load_model, token_lengths
from encoder.sentence import guard_tokenizer, model_dtype, model_reference
from indexes import FaissIndex, IndexFormatError, lexical_index, storage
from retrieval import fusion as fusions
from retrieval.chunking import (AUTO, DEFAULT_OVERLAP, Chunker, Chunking, best_chunk_per_document, chunker_setting,
                                model_token_offsets)
from retrieval.documents import Document, Hit, as_document, read_documents
from retrieval.filters import FilterCache
from retrieval.rerank import load_reranker

FORMAT = "retriever"
VERSION = 2  # 2: chunks (parent_id, start, end), parents.jsonl, lexical/
CONFIG_FILE = "retriever.json"
DOCUMENTS_FILE = "documents.jsonl"
PARENTS_FILE = "parents.jsonl"
INDEX_DIR = "index"
LEXICAL_DIR = "lexical"
MODEL_DIR = "model"
MODES = ("dense", "lexical", "hybrid")
HYBRID_DEPTH = 100  # candidates each part gives the fusion (at least k)


class Retriever:
    """Dense retrieval over a FAISS index and BM25 beside it, with the documents' texts kept for the answers.

    Parameters
    ----------
    model
        Hub id or local folder of a sentence-transformers model, or a loaded
        ``SentenceTransformer``. Default: the offline all-MiniLM-L6-v2.
    index
        FAISS factory string: ``"Flat"`` (exact), ``"HNSW32"``, ``"IVF1024,PQ32"`` ...
    metric
        ``"cosine"``, ``"ip"`` or ``"l2"``.
    search_params
        FAISS search parameters such as ``"efSearch=256"``.
    device, dtype, max_length
        Passed to :func:`encoder.load_model`; ``dtype="auto"`` uses bf16 where the
        hardware runs it natively.
    batch_size
        Maximum texts per encoding batch (batches are also capped by a token budget).
    chunk_size
        Documents embedded per step of :meth:`add`.
    lexical
        The BM25 index kept beside the dense one (:class:`indexes.LexicalIndex`): ``True``
        (English stemming, the default), ``"code"`` (identifiers split), a ``LexicalIndex``, or
        ``False`` for none (``mode="lexical"``/``"hybrid"`` then refused).
    chunk_overlap, chunker
        How :meth:`add` cuts documents longer than the model reads (:mod:`retrieval.chunking`):
        ``chunker="auto"`` (default) cuts a source file or Markdown page that names its path
        (metadata ``path``/``file_path``/``source``/``filename``, or the id) at its functions,
        classes or sections, and everything else into token windows overlapping by
        ``chunk_overlap`` tokens; ``"windows"`` always windows; a callable returns ``chunker(document)``'s pieces.
    trust_remote_code
        Allow a model folder whose ``modules.json`` names code outside the toolkit's allow-list
        (off: such a folder is refused and nothing from it runs).

    Threads: one ``Retriever`` serves any number of threads. ``search`` and
    ``search_by_vector`` run concurrently (the tokenizer is used under a lock, the indexes under
    readers-writer locks); ``add``, ``upsert``, ``delete``, ``compact`` and ``update_metadata`` run
    one at a time and are all or nothing; ``save`` writes a consistent snapshot.
    """

    kind = "dense"  # the name saved in retriever.json; each subclass registers its own
    index_class = FaissIndex
    batch_size_default = 256
    kinds: dict[str, type["Retriever"]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Retriever.kinds[cls.kind] = cls

    def __init__(
        self,
        model=None,
        index: str = "Flat",
        *,
        metric: str = "cosine",
        search_params: str | None = None,
        device: str | None = None,
        dtype: str = "auto",
        max_length: int | None = None,
        batch_size: int = batch_size_default,
        chunk_size: int = 4096,
        show_progress: bool = False,
        lexical=True,
        chunk_overlap: int = DEFAULT_OVERLAP,
        chunker: Chunker | str = AUTO,
        trust_remote_code: bool = False,
    ):
        self.trust_remote_code = trust_remote_code
        self._setup(model, device, dtype, max_length, batch_size, chunk_size, show_progress)
        self.index = FaissIndex(self.dimension(), index, metric=metric, search_params=search_params)
        self._documents_setup(lexical_index(lexical), chunk_overlap, chunker)

    def _setup(self, model, device, dtype, max_length, batch_size, chunk_size, show_progress) -> None:
        """Model and settings: everything but the indexes."""
        if model is None or isinstance(model, (str, Path)):
            self.model_name = str(model or default_model())
            self.model = self.load_model(
                self.model_name, device=device, dtype=dtype, max_length=max_length, trust_remote_code=self.trust_remote_code
            )
        else:
            self.model, self.model_name = model, model_reference(model)
        guard_tokenizer(self.model)  # searches from many threads share the model's tokenizer
        # What the model actually runs in, saved so that load -> search gives the same ids and scores.
        self.dtype = model_dtype(self.model) or dtype
        self.batch_size, self.chunk_size, self.show_progress = batch_size, chunk_size, show_progress
        self.device = device
        self._write_lock = threading.RLock()  # changes one at a time; searches never take it (but the lexical flush)
        self._pool = None  # Ray actors encoding documents, inside workers()

    def _documents_setup(self, lexical, chunk_overlap: int, chunker: Chunker | None) -> None:
        """The stored documents and everything kept about them, empty."""
        self.documents: dict[str, Document] = {}  # what the indexes hold (chunks and whole documents), index order
        self.parents: dict[str, Document] = {}  # documents cut into chunks, as they were added
        self.children: dict[str, list[str]] = {}  # parent id -> its chunk ids
        self.lexical = lexical
        self._lexical_pending: dict[str, None] = {}  # ids added but not yet in the BM25 index (ordered set)
        self.chunk_overlap, self.chunker = chunk_overlap, chunker_setting(chunker)
        self._filters = FilterCache()  # id sets of recent filters, cleared by every change
        self._rerankers: dict[str, object] = {}
        self._cache_lock = threading.Lock()

    @staticmethod
    def load_model(name: str, **kwargs):
        return load_model(name, **kwargs)

    def dimension(self) -> int:
        return self.model.get_sentence_embedding_dimension()

    def max_length(self) -> int:
        """The most document tokens the model reads; longer documents are chunked (or truncated with ``chunk=False``)."""
        return self.model.max_seq_length

    def set_max_length(self, length: int) -> None:
        """Encode documents at up to ``length`` tokens from now on."""
        self.model.max_seq_length = length

    def document_token_counts(self, texts: list[str]) -> np.ndarray:
        """Tokens of each document text as the model sees it before truncation (special tokens included)."""
        return token_lengths(self.model, texts, "document")

    def __len__(self) -> int:
        """Documents as added (a chunked document counts once)."""
        return len(self.documents) - sum(map(len, self.children.values())) + len(self.children)

    def embed_documents(self, documents: list) -> np.ndarray:
        """Embeddings of documents (anything :meth:`add` takes) without indexing them; on Ray inside :meth:`workers`."""
        texts = [(d if isinstance(d, Document) else as_document(d, str(i))).full_text for i, d in enumerate(documents)]
        pool = self._pool
        return pool.encode(texts, "document") if pool is not None and texts else self._encode(texts, "document")

    @contextlib.contextmanager
    def workers(self, count: int, address: str | None = None, *, quiet: bool | None = None):
        """Inside the block, documents are encoded by ``count`` Ray actors (:mod:`retrieval.parallel`).

        ``address`` joins a Ray cluster (default: a local Ray started here, stopped at the end);
        ``count=1`` without an address encodes in this process, as outside the block.

        >>> with retriever.workers(4):                    # doctest: +SKIP
        ...     retriever.add(corpus)
        """
        if count <= 1 and address is None:
            yield self
            return
        from retrieval.parallel import EncoderPool

        pool = EncoderPool(self, count, address, quiet=not self.show_progress if quiet is None else quiet)
        self._pool = pool
        try:
            yield self
        finally:
            self._pool = None
            pool.close()

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        return self._encode(list(queries), "query")

    def _encode(self, texts: list[str], role: str) -> np.ndarray:
        return encode(self.model, texts, role=role, max_batch_size=self.batch_size, show_progress=self.show_progress)

    # -- changing the documents -----------------------------------------------------------------
    def add(self, documents: Iterable, embeddings: np.ndarray | None = None, *, chunk=True) -> list[str]:
        """Embed and index documents (embedded ``chunk_size`` at a time); returns their ids.

        A document longer than the model reads is indexed as chunks ``id#0``, ``id#1``, ...
        (:mod:`retrieval.chunking`; ``chunk=False`` truncates it instead, ``"auto"``, ``"windows"``
        or a callable replace the ``chunker`` for this call). All or nothing: every document is checked (ids new and
        distinct, ``text`` a string) and embedded before any is indexed, so a failure leaves
        the retriever as it was. ``embeddings`` (one row per document, in order) skips the
        embedding step and the chunking. Strings without an id are numbered after the documents so far.
        """
        with self._write_lock:
            docs = self._parse(documents, replace=False)
            units, vectors = self._prepare(docs, embeddings, chunk, replacing=())
            if docs:
                self._insert(docs, units, vectors)
            return [d.id for d in docs]

    def upsert(self, documents: Iterable, embeddings: np.ndarray | None = None, *, chunk=True) -> list[str]:
        """Add documents, replacing those whose id is already here (their chunks included); returns the ids.

        All or nothing as :meth:`add`: the new documents are embedded before any old one leaves.
        """
        with self._write_lock:
            docs = self._parse(documents, replace=True)
            replacing = [d.id for d in docs if d.id in self.documents or d.id in self.children]
            units, vectors = self._prepare(docs, embeddings, chunk, replacing)
            if docs:
                self._remove(replacing)
                self._insert(docs, units, vectors)
            return [d.id for d in docs]

    def _parse(self, items: Iterable, *, replace: bool) -> list[Document]:
        docs, seen = [], {}
        for i, item in enumerate(items):
            doc = as_document(item, str(len(self) + i))
            if doc.id in seen:
                raise ValueError(f"documents {seen[doc.id]} and {i} share the id {doc.id!r}")
            if not replace and (doc.id in self.documents or doc.id in self.children):
                raise ValueError(f"document {i}: id {doc.id!r} is already in the retriever")
            if doc.id in self.documents and self.documents[doc.id].parent_id is not None:
                raise ValueError(f"document {i}: id {doc.id!r} is a chunk of {self.documents[doc.id].parent_id!r}")
            seen[doc.id] = i
            docs.append(doc)
        return docs

    def _prepare(self, docs: list[Document], embeddings, chunk, replacing) -> tuple[list[Document], object]:
        """The pieces to index (chunks or whole documents) and their embeddings; nothing changed yet."""
        if embeddings is not None:
            if len(embeddings) != len(docs):
                raise ValueError(f"{len(embeddings)} embeddings for {len(docs)} documents")
            if not all(np.isfinite(np.asarray(e, dtype=np.float32)).all() for e in embeddings):
                raise ValueError("embeddings hold NaN or infinite values")  # checked here: upsert removes before it adds
            units, vectors = docs, embeddings
        else:
            units = self._chunking(chunk).split(docs) if chunk is not False and docs else docs
            vectors = self._embed_units(units)
        freed = {c for p in replacing for c in self.children.get(p, [p])}
        seen = set()
        for unit in units:
            if (unit.id in self.documents and unit.id not in freed) or unit.id in seen:
                raise ValueError(f"chunk id {unit.id!r} of document {unit.parent!r} is already in the retriever")
            seen.add(unit.id)
        return units, vectors

    def _chunking(self, chunk) -> Chunking:
        chunker = chunker_setting(chunk) if callable(chunk) or isinstance(chunk, str) else self.chunker
        return Chunking(self.max_length(), self.document_token_counts, model_token_offsets(self.model), self.chunk_overlap, chunker)

    def _embed_units(self, units: list[Document]):
        parts = [self.embed_documents(units[i : i + self.chunk_size]) for i in range(0, len(units), self.chunk_size)]
        if parts and isinstance(parts[0], np.ndarray):
            return np.concatenate(parts)
        return [v for p in parts for v in p]

    def _insert(self, docs: list[Document], units: list[Document], vectors) -> None:
        """Index ``units`` (the pieces of ``docs``); on failure nothing stays."""
        ids = [u.id for u in units]
        self.documents.update((u.id, u) for u in units)  # before the index: a search that finds an id finds its text
        try:
            self.index.add(ids, vectors)
        except BaseException:
            for doc_id in ids:
                del self.documents[doc_id]
            raise
        self._lexical_pending.update(dict.fromkeys(ids))
        for unit in units:
            if unit.parent_id is not None:
                self.children.setdefault(unit.parent_id, []).append(unit.id)
        self.parents.update((d.id, d) for d in docs if d.id in self.children)
        self._changed()

    def delete(self, ids: Iterable[str]) -> None:
        """Remove documents by id: a chunked document's id removes all its chunks, a chunk's id that chunk.

        Raises ``KeyError`` for an unknown id, before changing anything. Deleted documents stay
        in the indexes as tombstones (never returned) until :meth:`compact`.
        """
        ids = [str(i) for i in ids]
        with self._write_lock:
            unknown = [i for i in dict.fromkeys(ids) if i not in self.documents and i not in self.children]
            if unknown:
                raise KeyError(f"not in the retriever: {', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}")
            self._remove(list(dict.fromkeys(ids)))

    def _remove(self, ids: list[str]) -> None:
        if not ids:
            return
        if not hasattr(self.index, "delete"):
            raise TypeError(f"{type(self.index).__name__} cannot delete documents; build a new retriever without them")
        units = list(dict.fromkeys(u for i in ids for u in self.children.get(i, [i])))
        self.index.delete(units)  # first: a search never returns a deleted id without its text
        indexed = [u for u in units if u not in self._lexical_pending]
        if indexed and self.lexical is not None:
            self.lexical.delete(indexed)
        for unit in units:
            self._lexical_pending.pop(unit, None)
            doc = self.documents.pop(unit)
            if doc.parent_id is not None and doc.parent_id in self.children:
                self.children[doc.parent_id].remove(unit)
                if not self.children[doc.parent_id]:
                    del self.children[doc.parent_id], self.parents[doc.parent_id]
        self._changed()

    def compact(self) -> None:
        """Drop the tombstones of deleted documents from the indexes (their search then equals a rebuilt one's)."""
        with self._write_lock:
            for index in (self.index, self.lexical):
                if index is not None and hasattr(index, "compact"):
                    index.compact()

    def update_metadata(self, doc_id: str, metadata: dict | None = None, *, title: str | None = None) -> None:
        """Replace a stored document's metadata (and title) without re-embedding; a chunked document's chunks follow."""
        with self._write_lock:
            if doc_id not in self.documents and doc_id not in self.children:
                raise KeyError(f"not in the retriever: {doc_id!r}")
            for target in [self.parents.get(doc_id), *(self.documents[c] for c in self.children.get(doc_id, [doc_id]))]:
                if target is not None:
                    target.metadata = dict(metadata) if metadata is not None else target.metadata
                    target.title = title if title is not None else target.title
            self._changed()

    def _changed(self) -> None:
        self._filters.clear()

    def _flush_lexical(self) -> None:
        """Put the documents added since the last flush into the BM25 index (under the write lock)."""
        with self._write_lock:
            if self._lexical_pending and self.lexical is not None:
                ids = list(self._lexical_pending)
                self.lexical.add(ids, [self.documents[i].full_text for i in ids])
            self._lexical_pending.clear()

    # -- searching ------------------------------------------------------------------------------
    def search_by_vector(self, query_embeddings: np.ndarray, k: int = 10, *, where: dict | None = None) -> list[list[Hit]]:
        """Dense top-``k`` hits for embedded queries (``where`` as in :meth:`search`)."""
        rows = self._dense(query_embeddings, k, self._subset(where))
        return [[h for doc_id, score in row if (h := self._hit(doc_id, score)) is not None] for row in rows]

    def _hit(self, doc_id: str, score: float) -> Hit | None:
        doc = self.documents.get(doc_id)  # None: deleted by another thread since the index answered
        if doc is None:
            return None
        return Hit(id=doc_id, score=float(score), text=doc.text, title=doc.title, metadata=doc.metadata,
                   parent_id=doc.parent_id, start=doc.start, end=doc.end)

    def search(self, queries: str | list[str], k: int = 10, *, mode: str = "dense", where: dict | None = None,
               rerank=None, rerank_depth: int = 100, group_by_document: bool = False, fusion: str | None = None,
               weight: float | None = None, query_embeddings=None) -> list[Hit] | list[list[Hit]]:
        """Top-``k`` hits for one query (a list of :class:`Hit`) or for each of a list of queries.

        Parameters
        ----------
        mode
            ``"dense"`` (the model), ``"lexical"`` (BM25) or ``"hybrid"`` (both, fused).
        where
            A filter over the documents (:mod:`retrieval.filters`): ``{"source": "a.md"}``,
            ``{"path": {"$glob": "src/**"}}``, ``{"parent_id": {"$in": [...]}}`` ...; applied inside the
            index search, so every hit passes it and ``k`` hits come back whenever ``k`` pass.
        rerank, rerank_depth
            A reranker (:mod:`retrieval.rerank`) or a model id / folder (a PyLate ColBERT or a
            ``CrossEncoder``) re-scoring the first stage's top ``rerank_depth``.
        group_by_document
            Documents, not chunks: each document ranked by its best chunk (MaxP), with that
            chunk's offsets in ``start``/``end``.
        fusion, weight
            ``mode="hybrid"``: ``"convex"`` (default: a convex combination of min-max normalised
            scores, dense share ``weight``, default 0.6) or ``"rrf"`` (reciprocal rank fusion, ``weight``
            the dense list's); convex scored above RRF at every weight measured (:mod:`retrieval.fusion`).
        query_embeddings
            The queries' embeddings when the caller has them (skips encoding).
        """
        single = isinstance(queries, str)
        queries = [queries] if single else list(queries)
        for i, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"query {i} is {'empty' if isinstance(query, str) else type(query).__name__}: give non-empty text")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode != "dense" and self.lexical is None:
            raise ValueError(f"mode={mode!r} needs the BM25 index: this retriever was built with lexical=False")
        if fusion is not None or weight is not None:
            fusions.fuse([], [], fusion, weight)  # checks both before any search
        reranker = self.reranker(rerank) if rerank is not None else None
        depth = max(k, rerank_depth) if reranker is not None else k
        if mode != "lexical" and query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        rows = self._first_stage(queries, query_embeddings, depth, mode, self._subset(where), fusion, weight, group_by_document)
        hits = [[h for doc_id, score in row if (h := self._hit(doc_id, score)) is not None] for row in rows]
        if reranker is not None:
            hits = reranker.rerank_many(queries, hits)
        if group_by_document:
            hits = [self._group(row) for row in hits]
        hits = [row[:k] for row in hits]
        return hits[0] if single else hits

    def _first_stage(self, queries, embeddings, depth: int, mode: str, subset, fusion, weight, group: bool):
        """``(id, score)`` rows of the first stage; grouped searches go deeper until ``depth`` documents are in."""
        fetch = depth * (4 if group else 1)
        while True:
            rows = self._ranked(queries, embeddings, fetch, mode, subset, fusion, weight)
            total = len(self.documents) if subset is None else len(subset)
            if not group or fetch >= total or all(len({self._parent(i) for i, _ in row}) >= depth for row in rows):
                return rows
            fetch *= 4

    def _parent(self, doc_id: str) -> str:
        doc = self.documents.get(doc_id)
        return doc.parent if doc is not None else doc_id

    def _ranked(self, queries, embeddings, k: int, mode: str, subset, fusion, weight) -> list[list[tuple[str, float]]]:
        if subset is not None and not subset:
            return [[] for _ in queries]
        if mode == "dense":
            return self._dense(embeddings, k, subset)
        if mode == "lexical":
            return self._lexical(queries, k, subset)
        depth = max(k, HYBRID_DEPTH)
        dense, lexical = self._dense(embeddings, depth, subset), self._lexical(queries, depth, subset)
        return [fusions.fuse(d, b, fusion, weight)[:k] for d, b in zip(dense, lexical)]

    def _dense(self, embeddings, k: int, subset) -> list[list[tuple[str, float]]]:
        result = self.index.search(embeddings, k) if subset is None else self.index.search(embeddings, k, subset=subset)
        return [list(zip(ids, scores)) for ids, scores in zip(result.ids, result.scores)]

    def _lexical(self, queries: list[str], k: int, subset) -> list[list[tuple[str, float]]]:
        if self._lexical_pending:
            self._flush_lexical()
        result = self.lexical.search(queries, k, subset=subset)
        return [list(zip(ids, scores)) for ids, scores in zip(result.ids, result.scores)]

    def _subset(self, where: dict | None) -> list[str] | None:
        """The ids a ``where`` filter keeps (cached per filter until the documents change); None for no filter."""
        return self._filters.ids(where, lambda: list(self.documents.values()))

    def _group(self, hits: list[Hit]) -> list[Hit]:
        return best_chunk_per_document(hits, lambda parent: self.parents.get(parent) or self.documents.get(parent))

    def reranker(self, rerank):
        """A reranker object as given, or the one a model id / folder names (loaded once per retriever)."""
        if hasattr(rerank, "rerank"):
            return rerank
        if not isinstance(rerank, (str, Path)):
            raise ValueError(f"rerank takes a reranker or a model id / folder, not {type(rerank).__name__}")
        with self._cache_lock:
            if str(rerank) not in self._rerankers:
                self._rerankers[str(rerank)] = load_reranker(str(rerank), device=self.device,
                                                             trust_remote_code=self.trust_remote_code)
            return self._rerankers[str(rerank)]

    # -- saving and loading ---------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the indexes, the documents and the settings to a folder, atomically.

        The model is stored by reference (its hub id or path), except where
        :meth:`_save_model` copies it. The BM25 index goes in ``lexical/``; every file is
        covered by the checksums of ``retriever.json``.
        """
        path = Path(path)
        with self._write_lock, storage.directory(path) as tmp:  # a snapshot: changes wait, searches go on
            self.index.save(tmp / INDEX_DIR)
            if self.lexical is not None:
                self._flush_lexical()
                self.lexical.save(tmp / LEXICAL_DIR)
            self._save_model(tmp)
            lines = (json.dumps(self.documents[i].record(), ensure_ascii=False) + "\n" for i in self.index.live_ids())
            storage.write_text(tmp / DOCUMENTS_FILE, "".join(lines))
            if self.parents:
                storage.write_text(tmp / PARENTS_FILE, "".join(json.dumps(d.record(), ensure_ascii=False) + "\n"
                                                               for d in self.parents.values()))
            config = {
                "format": FORMAT,
                "version": VERSION,
                "kind": self.kind,
                "model": self.model_name,
                "dtype": self.dtype,
                "max_length": self.max_length(),
                "num_documents": len(self),
                "num_pieces": len(self.documents),
                "lexical": self.lexical is not None,
                "chunk_overlap": self.chunk_overlap,
                "chunker": self.chunker if isinstance(self.chunker, str) else AUTO,  # a callable is not stored
            }
            storage.write_description(tmp, CONFIG_FILE, config, storage.files_below(tmp))
        return path

    def _save_model(self, folder: Path) -> None:
        """Dense models are stored by reference only."""

    @classmethod
    def load(cls, path, *, model=None, device: str | None = None, dtype: str | None = None,
             trust_remote_code: bool = False) -> "Retriever":
        """Read a folder written by :meth:`save`; ``model`` overrides the stored model reference.

        Every file of the folder is checked against the checksums saved with it, and the model
        (the folder's ``model/`` or the stored reference) goes through the same allow-list as
        any other: nothing in a folder runs unless ``trust_remote_code=True``. A folder saved
        before BM25 came (format version 1) gets an English BM25 index of its documents.
        """
        return storage.read_consistently(
            path, lambda: cls._load(path, model=model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        )

    @classmethod
    def _load(cls, path, *, model=None, device: str | None = None, dtype: str | None = None, trust_remote_code: bool = False):
        path = Path(path)
        config_path = path / CONFIG_FILE
        config = storage.read_description(path, CONFIG_FILE, FORMAT, VERSION, what="Retriever")
        kind = config.get("kind", "dense")
        if kind not in Retriever.kinds:
            raise IndexFormatError(f"{config_path}: unknown retriever kind {kind!r} (known: {', '.join(sorted(Retriever.kinds))})")
        cls = Retriever.kinds[kind]
        self = cls.__new__(cls)
        self.trust_remote_code = trust_remote_code
        if model is None and (path / MODEL_DIR).is_dir():
            model = str(path / MODEL_DIR)
        self._setup(
            model or config["model"], device, dtype or config["dtype"], config["max_length"], cls.batch_size_default, 4096, False
        )
        if model is not None and not isinstance(model, (str, Path)):
            self.model_name = config["model"]
        self.index = index = cls.index_class.load(path / INDEX_DIR)
        if self.dimension() != index.dim:
            raise ValueError(f"model {self.model_name!r} embeds in {self.dimension()} dimensions, the index at {path} holds {index.dim}")
        self._load_documents(path, config)
        return self

    def _load_documents(self, path: Path, config: dict) -> None:
        """The documents, parents and BM25 index of a saved folder, checked against the dense index."""
        from indexes import LexicalIndex

        saved_lexical = config.get("lexical")
        lexical = LexicalIndex.load(path / LEXICAL_DIR) if saved_lexical else None
        self._documents_setup(lexical, config.get("chunk_overlap", DEFAULT_OVERLAP), config.get("chunker", AUTO))
        self.documents = {d.id: d for d in read_documents(path / DOCUMENTS_FILE)}
        if (path / PARENTS_FILE).is_file():
            self.parents = {d.id: d for d in read_documents(path / PARENTS_FILE)}
        for doc in self.documents.values():
            if doc.parent_id is not None:
                self.children.setdefault(doc.parent_id, []).append(doc.id)
        if list(self.documents) != self.index.live_ids():
            raise IndexFormatError(f"{path / DOCUMENTS_FILE} lists {len(self.documents)} documents, the index {len(self.index)}")
        if lexical is not None and sorted(lexical.live_ids()) != sorted(self.documents):
            raise IndexFormatError(f"{path / LEXICAL_DIR} holds {len(lexical.live_ids())} documents, {DOCUMENTS_FILE} {len(self.documents)}")
        if saved_lexical is None:  # saved before BM25 came: index the stored texts at the first lexical search
            self.lexical, self._lexical_pending = LexicalIndex(), dict.fromkeys(self.documents)


Retriever.kinds[Retriever.kind] = Retriever
