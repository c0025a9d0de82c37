"""The library API a RAG app calls: add documents, search, save, load.

Examples
--------
>>> from retrieval import Retriever
>>> retriever = Retriever(index="Flat")          # offline all-MiniLM-L6-v2 by default
>>> retriever.add([{"id": "py", "text": "Python is a programming language."},
...                {"id": "fr", "text": "Paris is the capital of France."}])
['py', 'fr']
>>> retriever.search("Which language should I code in?", k=1)[0].id
'py'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from encoder import default_model, encode, load_model, token_lengths
from encoder.sentence import guard_tokenizer
from indexes import FaissIndex, IndexFormatError, storage
from retrieval.documents import Document, Hit, as_document

FORMAT = "retriever"
VERSION = 1
CONFIG_FILE = "retriever.json"
DOCUMENTS_FILE = "documents.jsonl"
INDEX_DIR = "index"
MODEL_DIR = "model"


def model_reference(model) -> str:
    """The hub id or path a loaded ``SentenceTransformer`` came from, as stored with a saved index."""
    first = model[0]
    for config in (getattr(getattr(first, "auto_model", None), "config", None), getattr(first, "config", None)):
        if getattr(config, "name_or_path", None):
            return config.name_or_path
    return type(first).__name__


def model_dtype(model) -> str | None:
    """``"float32"`` / ``"bfloat16"`` / ...: the dtype of a loaded model's weights."""
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return str(param.dtype).removeprefix("torch.") if param is not None else None


class Retriever:
    """Dense retrieval over a FAISS index, with the documents' texts kept for the answers.

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
    trust_remote_code
        Allow a model folder whose ``modules.json`` names code outside the toolkit's allow-list
        (off: such a folder is refused and nothing from it runs).

    Threads: one ``Retriever`` serves any number of threads. ``search`` and
    ``search_by_vector`` run concurrently (the tokenizer is used under a lock, the index under a
    readers-writer lock); ``add`` and ``delete`` run one at a time and are all or nothing;
    ``save`` writes a consistent snapshot.
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
        trust_remote_code: bool = False,
    ):
        self.trust_remote_code = trust_remote_code
        self._setup(model, device, dtype, max_length, batch_size, chunk_size, show_progress)
        self.index = FaissIndex(self.dimension(), index, metric=metric, search_params=search_params)

    def _setup(self, model, device, dtype, max_length, batch_size, chunk_size, show_progress) -> None:
        """Model and settings: everything but the index."""
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
        self.documents: dict[str, Document] = {}
        self._write_lock = threading.Lock()  # adds and deletes one at a time; searches never take it

    @staticmethod
    def load_model(name: str, **kwargs):
        return load_model(name, **kwargs)

    def dimension(self) -> int:
        return self.model.get_sentence_embedding_dimension()

    def max_length(self) -> int:
        """The most document tokens the model reads; longer documents are truncated."""
        return self.model.max_seq_length

    def set_max_length(self, length: int) -> None:
        """Encode documents at up to ``length`` tokens from now on."""
        self.model.max_seq_length = length

    def document_token_counts(self, texts: list[str]) -> np.ndarray:
        """Tokens of each document text as the model sees it before truncation (special tokens included)."""
        return token_lengths(self.model, texts, "document")

    def __len__(self) -> int:
        return len(self.documents)

    def embed_documents(self, documents: list) -> np.ndarray:
        """Embeddings of documents (anything :meth:`add` takes) without indexing them."""
        docs = [d if isinstance(d, Document) else as_document(d, str(i)) for i, d in enumerate(documents)]
        return self._encode([d.full_text for d in docs], "document")

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        return self._encode(list(queries), "query")

    def _encode(self, texts: list[str], role: str) -> np.ndarray:
        return encode(self.model, texts, role=role, max_batch_size=self.batch_size, show_progress=self.show_progress)

    def add(self, documents: Iterable, embeddings: np.ndarray | None = None) -> list[str]:
        """Embed and index documents (embedded ``chunk_size`` at a time); returns their ids.

        All or nothing: every document is checked (ids new and distinct, ``text`` a string)
        and embedded before any is indexed, so a failure leaves the retriever as it was.
        ``embeddings`` (one row per document, in order) skips the embedding step. Strings
        without an id are numbered after the documents so far.
        """
        with self._write_lock:
            docs = self._new_documents(documents)
            if embeddings is None:
                parts = [self.embed_documents(docs[i : i + self.chunk_size]) for i in range(0, len(docs), self.chunk_size)]
                vectors = np.concatenate(parts) if parts and isinstance(parts[0], np.ndarray) else [v for p in parts for v in p]
            else:
                vectors = embeddings
                if len(vectors) != len(docs):
                    raise ValueError(f"{len(vectors)} embeddings for {len(docs)} documents")
            if not docs:
                return []
            self.documents.update((d.id, d) for d in docs)  # before the index: a search that finds an id finds its text
            try:
                self.index.add([d.id for d in docs], vectors)
            except BaseException:
                for d in docs:
                    del self.documents[d.id]
                raise
            return [d.id for d in docs]

    def _new_documents(self, items: Iterable) -> list[Document]:
        docs, seen = [], {}
        for i, item in enumerate(items):
            doc = as_document(item, str(len(self.documents) + i))
            if doc.id in self.documents:
                raise ValueError(f"document {i}: id {doc.id!r} is already in the retriever")
            if doc.id in seen:
                raise ValueError(f"documents {seen[doc.id]} and {i} share the id {doc.id!r}")
            seen[doc.id] = i
            docs.append(doc)
        return docs

    def delete(self, ids: Iterable[str]) -> None:
        """Remove documents by id, where the index supports it (:class:`indexes.MultiVectorIndex`).

        Raises ``KeyError`` for an unknown id and ``TypeError`` for an index without delete,
        before changing anything.
        """
        if not hasattr(self.index, "delete"):
            raise TypeError(f"{type(self.index).__name__} cannot delete documents; build a new retriever without them")
        ids = [str(i) for i in ids]
        with self._write_lock:
            self.index.delete(ids)  # first: a search never returns a deleted id without its text
            for doc_id in ids:
                del self.documents[doc_id]

    def search_by_vector(self, query_embeddings: np.ndarray, k: int = 10) -> list[list[Hit]]:
        result = self.index.search(query_embeddings, k)
        return [
            [hit for doc_id, score in zip(ids, scores) if (hit := self._hit(doc_id, score)) is not None]
            for ids, scores in zip(result.ids, result.scores)
        ]

    def _hit(self, doc_id: str, score: float) -> Hit | None:
        doc = self.documents.get(doc_id)  # None: deleted by another thread since the index answered
        if doc is None:
            return None
        return Hit(id=doc_id, score=float(score), text=doc.text, title=doc.title, metadata=doc.metadata)

    def search(self, queries: str | list[str], k: int = 10) -> list[Hit] | list[list[Hit]]:
        """Top-``k`` hits for one query (a list of :class:`Hit`) or for each of a list of queries."""
        single = isinstance(queries, str)
        queries = [queries] if single else list(queries)
        for i, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"query {i} is {'empty' if isinstance(query, str) else type(query).__name__}: give non-empty text")
        hits = self.search_by_vector(self.embed_queries(queries), k)
        return hits[0] if single else hits

    def save(self, path) -> Path:
        """Write the index, the documents and the settings to a folder, atomically.

        The model is stored by reference (its hub id or path), except where
        :meth:`_save_model` copies it.
        """
        path = Path(path)
        with self._write_lock, storage.directory(path) as tmp:  # a snapshot: adds and deletes wait, searches go on
            self.index.save(tmp / INDEX_DIR)
            self._save_model(tmp)
            lines = (json.dumps(vars(self.documents[i]), ensure_ascii=False) + "\n" for i in self.index.live_ids())
            storage.write_text(tmp / DOCUMENTS_FILE, "".join(lines))
            config = {
                "format": FORMAT,
                "version": VERSION,
                "kind": self.kind,
                "model": self.model_name,
                "dtype": self.dtype,
                "max_length": self.max_length(),
                "num_documents": len(self.documents),
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
        any other: nothing in a folder runs unless ``trust_remote_code=True``.
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
        self.documents = {}
        docs_path = path / DOCUMENTS_FILE
        with open(docs_path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                try:
                    doc = Document(**json.loads(line))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise IndexFormatError(f"{docs_path}:{line_no}: corrupted document record: {exc}") from exc
                self.documents[doc.id] = doc
        if list(self.documents) != index.live_ids():
            raise IndexFormatError(f"{docs_path} lists {len(self.documents)} documents, the index {len(index)}")
        return self



Retriever.kinds[Retriever.kind] = Retriever
