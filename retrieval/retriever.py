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

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoder import default_model, encode, load_model
from indexes import FaissIndex, IndexFormatError, atomic

FORMAT = "retriever"
VERSION = 1
CONFIG_FILE = "retriever.json"
DOCUMENTS_FILE = "documents.jsonl"
INDEX_DIR = "index"
MODEL_DIR = "model"


@dataclass
class Hit:
    """One retrieved document."""

    id: str
    score: float
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """What gets embedded: ``title + " " + text``, as BEIR and MTEB do."""
        return f"{self.title} {self.text}".strip()


def as_document(item, auto_id: str) -> Document:
    """A document from a string, an ``(id, text)`` pair or a mapping with ``text`` (and ``id``/``_id``, ``title``)."""
    if isinstance(item, str):
        return Document(id=auto_id, text=item)
    if isinstance(item, Mapping):
        if not isinstance(item.get("text"), str):
            raise ValueError(f"document {item.get('id', item.get('_id', auto_id))!r} has no string 'text' field")
        rest = {k: v for k, v in item.items() if k not in ("id", "_id", "text", "title")}
        doc_id = item.get("id", item.get("_id", auto_id))
        return Document(id=str(doc_id), text=item["text"], title=item.get("title") or "", metadata=rest)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], str):
        return Document(id=str(item[0]), text=item[1])
    raise ValueError(f"cannot read a document from {type(item).__name__}: give a str, (id, text) or a dict with 'text'")


def model_reference(model) -> str:
    """The hub id or path a loaded ``SentenceTransformer`` came from, as stored with a saved index."""
    first = model[0]
    for config in (getattr(getattr(first, "auto_model", None), "config", None), getattr(first, "config", None)):
        if getattr(config, "name_or_path", None):
            return config.name_or_path
    return type(first).__name__


class Retriever:
    index_class = FaissIndex
    batch_size_default = 256

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
        Documents embedded and indexed per step of :meth:`add`.
    """

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
    ):
        self._setup(model, device, dtype, max_length, batch_size, chunk_size, show_progress)
        self.index = FaissIndex(self.dimension(), index, metric=metric, search_params=search_params)

    kind = "dense"

    def _setup(self, model, device, dtype, max_length, batch_size, chunk_size, show_progress) -> None:
        """Model and settings: everything but the index."""
        if model is None or isinstance(model, (str, Path)):
            self.model_name = str(model or default_model())
            self.model = self.load_model(self.model_name, device=device, dtype=dtype, max_length=max_length)
        else:
            self.model, self.model_name = model, model_reference(model)
        self.dtype, self.batch_size, self.chunk_size, self.show_progress = dtype, batch_size, chunk_size, show_progress
        self.documents: dict[str, Document] = {}

    @staticmethod
    def load_model(name: str, **kwargs):
        return load_model(name, **kwargs)

    def dimension(self) -> int:
        return self.model.get_sentence_embedding_dimension()

    def max_length(self) -> int:
        return self.model.max_seq_length

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
        """Embed and index documents, ``chunk_size`` at a time; returns their ids.

        ``embeddings`` (one row per document, in order) skips the embedding step.
        Ids must be new; strings without an id are numbered after the documents so far.
        """
        added: list[str] = []
        items = iter(documents)
        while chunk := list(itertools.islice(items, self.chunk_size)):
            docs = [as_document(item, str(len(self.documents) + i)) for i, item in enumerate(chunk)]
            if embeddings is None:
                vectors = self.embed_documents(docs)
            else:
                vectors = embeddings[len(added) : len(added) + len(docs)]
                if len(vectors) != len(docs):
                    raise ValueError(f"{len(docs)} documents but only {len(vectors)} embeddings left")
            self.index.add([d.id for d in docs], vectors)
            self.documents.update((d.id, d) for d in docs)
            added.extend(d.id for d in docs)
        if embeddings is not None and len(embeddings) != len(added):
            raise ValueError(f"{len(embeddings)} embeddings for {len(added)} documents")
        return added

    def delete(self, ids: Iterable[str]) -> None:
        """Remove documents by id, where the index supports it (:class:`indexes.MultiVectorIndex`).

        Raises ``KeyError`` for an unknown id and ``TypeError`` for an index without delete,
        before changing anything.
        """
        if not hasattr(self.index, "delete"):
            raise TypeError(f"{type(self.index).__name__} cannot delete documents; build a new retriever without them")
        ids = [str(i) for i in ids]
        self.index.delete(ids)
        for doc_id in ids:
            del self.documents[doc_id]

    def search_by_vector(self, query_embeddings: np.ndarray, k: int = 10) -> list[list[Hit]]:
        result = self.index.search(query_embeddings, k)
        return [
            [self._hit(doc_id, score) for doc_id, score in zip(ids, scores)]
            for ids, scores in zip(result.ids, result.scores)
        ]

    def _hit(self, doc_id: str, score: float) -> Hit:
        doc = self.documents[doc_id]
        return Hit(id=doc_id, score=float(score), text=doc.text, title=doc.title, metadata=doc.metadata)

    def search(self, queries: str | list[str], k: int = 10) -> list[Hit] | list[list[Hit]]:
        """Top-``k`` hits for one query (a list of :class:`Hit`) or for each of a list of queries."""
        single = isinstance(queries, str)
        hits = self.search_by_vector(self.embed_queries([queries] if single else queries), k)
        return hits[0] if single else hits

    def save(self, path) -> Path:
        """Write the index, the documents and the settings to a folder, atomically.

        The model is stored by reference (its hub id or path), except where
        :meth:`_save_model` copies it.
        """
        path = Path(path)
        with atomic.directory(path) as tmp:
            self.index.save(tmp / INDEX_DIR)
            self._save_model(tmp)
            config = {
                "format": FORMAT,
                "version": VERSION,
                "kind": self.kind,
                "model": self.model_name,
                "dtype": self.dtype,
                "max_length": self.max_length(),
                "num_documents": len(self.documents),
            }
            atomic.write_json(tmp / CONFIG_FILE, config)
            lines = (json.dumps(vars(self.documents[i]), ensure_ascii=False) + "\n" for i in self.index.live_ids())
            atomic.write_text(tmp / DOCUMENTS_FILE, "".join(lines))
        return path

    def _save_model(self, folder: Path) -> None:
        """Dense models are stored by reference only."""

    @classmethod
    def load(cls, path, *, model=None, device: str | None = None, dtype: str | None = None) -> "Retriever":
        """Read a folder written by :meth:`save`; ``model`` overrides the stored model reference."""
        path = Path(path)
        config_path = path / CONFIG_FILE
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(f"{config_path} is missing: {path} is not a saved Retriever") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexFormatError(f"{config_path} is corrupted: {exc}") from exc
        if config.get("format") != FORMAT or config.get("version", 0) > VERSION:
            raise IndexFormatError(f"{config_path} is not a retriever description this toolkit can read")
        cls = RETRIEVERS[config.get("kind", "dense")]()
        self = cls.__new__(cls)
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


def _colbert():
    from retrieval.colbert import ColbertRetriever

    return ColbertRetriever


RETRIEVERS = {"dense": lambda: Retriever, "colbert": _colbert}
