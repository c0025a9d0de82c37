"""A RAG app's retrieval step: index documents once, save, reload, search.

Run from the checkout: ``python examples/rag_search.py`` (offline; uses the packaged MiniLM).
"""

import tempfile
from pathlib import Path

from retrieval import Retriever

DOCUMENTS = [
    {"id": "rope", "title": "Rotary embeddings", "text": "RoPE encodes positions by rotating query and key vectors.", "source": "notes/rope.md"},
    {"id": "geglu", "title": "GeGLU", "text": "GeGLU is a gated linear unit with a GELU activation on the gate.", "source": "notes/mlp.md"},
    {"id": "unpad", "title": "Unpadding", "text": "Removing padding tokens and packing sequences avoids wasted compute.", "source": "notes/speed.md"},
]


def main() -> None:
    retriever = Retriever(index="Flat")  # any FAISS factory string: "HNSW32", "IVF1024,PQ32" ...
    retriever.add(DOCUMENTS)
    with tempfile.TemporaryDirectory() as tmp:
        path = retriever.save(Path(tmp) / "notes-index")
        print(f"index saved to {path}")
        retriever = Retriever.load(path)
        for hit in retriever.search("How do I avoid computing on padding?", k=2):
            print(f"{hit.score:.3f}  {hit.id:<6} {hit.metadata['source']:<16} {hit.text}")


if __name__ == "__main__":
    main()
