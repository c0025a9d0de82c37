"""Late-interaction retrieval: a PyLate ColBERT model over the toolkit's multi-vector FAISS index.

Examples
--------
>>> from retrieval import ColbertRetriever                     # doctest: +SKIP
>>> retriever = ColbertRetriever("lightonai/GTE-ModernColBERT-v1")
>>> retriever.add(["Paris is the capital of France.", "Cats purr."])
>>> retriever.search("French capital", k=1)[0].text
'Paris is the capital of France.'
"""

from __future__ import annotations

import numpy as np

from encoder import token_lengths
from indexes import MultiVectorIndex, lexical_index
from retrieval.chunking import DEFAULT_OVERLAP, Chunker
from retrieval.rerank import load_colbert
from retrieval.retriever import MODEL_DIR, Retriever

__all__ = ["ColbertRetriever", "load_colbert"]  # load_colbert lives in retrieval.rerank, below the retrievers


class ColbertRetriever(Retriever):
    """ColBERT retrieval with the same API as :class:`Retriever`: add, search, save, load.

    Parameters
    ----------
    model
        Hub id or folder of a PyLate ColBERT model (or a loaded one).
    nbits, nprobe, rerank
        :class:`indexes.MultiVectorIndex` settings: bits per stored dimension,
        centroids probed per query token, candidates re-scored with exact MaxSim.
    document_length
        Maximum document tokens (up to 8,192 for ModernBERT-based models); longer documents are chunked.
    lexical, chunk_overlap, chunker
        As for :class:`Retriever`: the BM25 index beside the token vectors, and how long documents are cut.

    Everything else (modes, filters, reranking, chunking, upsert, delete, compact, threads) is the
    :class:`Retriever`'s.
    """

    index_class = MultiVectorIndex
    batch_size_default = 32
    kind = "colbert"

    def __init__(
        self,
        model=None,
        *,
        nbits: int = 4,
        nprobe: int = 8,
        rerank: int = 256,
        document_length: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = batch_size_default,
        chunk_size: int = 4096,
        show_progress: bool = False,
        trust_remote_code: bool = False,
        lexical=True,
        chunk_overlap: int = DEFAULT_OVERLAP,
        chunker: Chunker | None = None,
    ):
        self.trust_remote_code = trust_remote_code
        self._setup(model, device, dtype, document_length, batch_size, chunk_size, show_progress)
        self.index = MultiVectorIndex(self.dimension(), nbits=nbits, nprobe=nprobe, rerank=rerank)
        self._documents_setup(lexical_index(lexical), chunk_overlap, chunker)

    @staticmethod
    def load_model(name: str, **kwargs):
        return load_colbert(name, **kwargs)

    def dimension(self) -> int:
        return self._encode(["dimension probe"], "query")[0].shape[1]

    def max_length(self) -> int:
        return self.model.document_length

    def set_max_length(self, length: int) -> None:
        self.model.document_length = length

    def document_token_counts(self, texts: list[str]) -> np.ndarray:
        """Tokens per document, PyLate's ``[D]`` marker included (the tokenizer's count leaves it out)."""
        marker = 1 if getattr(self.model, "document_prefix_id", None) is not None else 0
        return token_lengths(self.model, texts, "document") + marker

    def _save_model(self, folder) -> None:
        """A copy of the model goes with the index: a base encoder's fresh projection exists nowhere else."""
        self.model.save(str(folder / MODEL_DIR))

    def _encode(self, texts: list[str], role: str) -> list[np.ndarray]:
        embeddings = self.model.encode(
            texts, is_query=role == "query", batch_size=self.batch_size, show_progress_bar=self.show_progress
        )
        return [np.asarray(e, dtype=np.float32) for e in embeddings]
