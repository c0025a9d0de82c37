"""Encode a corpus into embedding shards with a pool of Ray actors, resumably.

Each actor loads the model once (a GPU each where the cluster has them) and embeds whole
shards through the toolkit's own path (:meth:`retrieval.Retriever.embed_documents`: token-budget
batches, the model's prompts and pooling), so its vectors equal the in-process ones. Folders of
files are cut into chunks inside the actors, which hold the tokenizer, exactly as ``python -m
retrieval index`` cuts them. The driver streams the corpus: it reads one shard's items at a
time, keeps at most two shards per actor in flight, and writes each finished shard
(:class:`indexes.shards.ShardSet`, atomic and checksummed) as it comes back, so neither the
corpus nor its embeddings are ever held whole in one process. Shards come back over Ray's
object store, so the actors may run on other machines (``--ray-address``) with no shared disk;
only a ColBERT model started from a plain encoder is read by the actors from ``SHARDS/model``
(its projection is random: it is drawn once and saved there so that every actor uses the same).

The split into shards is fixed by the corpus (:func:`retrieval.scale.sources.split`) and saved
first; a rerun after a crash finds the shards already written and encodes only the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from indexes import storage
from indexes.shards import PLAN_FILE, ShardSet
from retrieval.chunking.structural import chunk_files
from retrieval.codebase.index import chunk_ids
from retrieval.colbert import ColbertRetriever, load_colbert
from retrieval.documents import as_document
from retrieval.retriever import Retriever
from retrieval.parallel import ray_session, run_on_actors, start_actors, use_assigned_cpus
from retrieval.scale.sources import DOCUMENTS_PER_SHARD, FILES_PER_SHARD, open_source, split

MODEL_DIR = "model"


class Encoder:
    """One model in one actor (or in this process): items of a shard in, ids, vectors and documents out."""

    def __init__(self, model: str | None, multi_vector: bool, dtype: str, device: str | None, max_length: int | None,
                 batch_size: int | None, trust_remote_code: bool = False):
        use_assigned_cpus()
        kind = ColbertRetriever if multi_vector else Retriever
        self.retriever = kind(model, device=device, dtype=dtype, batch_size=batch_size or kind.batch_size_default,
                              trust_remote_code=trust_remote_code)
        if max_length:
            self.retriever.set_max_length(max_length)
        self.multi_vector = multi_vector

    def settings(self) -> dict:
        r = self.retriever
        return {"model": r.model_name, "dtype": r.dtype, "max_length": r.max_length(), "dim": r.dimension()}

    def node(self) -> str:
        """The Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def documents(self, kind: str, items: list) -> list:
        """Documents of a shard's items: as they are, or the chunks of files."""
        if kind != "files":
            return [as_document(item, item["id"]) for item in items]
        by_file: dict[str, list] = {}
        for c in chunk_files(items, self.retriever.document_token_counts, self.retriever.max_length()):
            by_file.setdefault(c.path, []).append(c)
        docs = []
        for path, chunks in by_file.items():  # ids as 'index' gives them: path#<hash of the embedded text>
            for doc_id, c in zip(chunk_ids(path, [c.full_text for c in chunks]), chunks):
                meta = {"path": c.path, "start": c.start, "end": c.end, "kind": c.kind, "name": c.name, "language": c.language}
                docs.append(as_document({"id": doc_id, "title": c.title, "text": c.text, **meta}, ""))
        return docs

    def encode(self, kind: str, items: list) -> tuple:
        """``(ids, embeddings, doclens or None, document records)`` of one shard."""
        docs = self.documents(kind, items)
        vectors = self.retriever.embed_documents(docs) if docs else np.zeros((0, self.settings()["dim"]), np.float32)
        doclens = None
        if self.multi_vector:
            doclens = np.array([len(v) for v in vectors], dtype=np.int64)
            vectors = np.concatenate(vectors) if len(vectors) else np.zeros((0, self.settings()["dim"]), np.float32)
        return [d.id for d in docs], np.asarray(vectors, dtype=np.float32), doclens, [vars(d) for d in docs]


@dataclass
class EncodeReport:
    """What :func:`encode_corpus` did."""

    out: Path
    shards: int
    encoded_shards: int
    documents: int
    seconds: float
    workers: int
    nodes: int = 0  # Ray nodes the actors ran on

    def summary(self) -> str:
        kept = self.shards - self.encoded_shards
        return (f"{self.shards} shards ({self.encoded_shards} encoded, {kept} already there), {self.documents} documents "
                f"encoded by {self.workers} workers on {self.nodes} Ray nodes in {self.seconds:.1f} s\nshards written to {self.out}")


def _requested(source, model, multi_vector, dtype, max_length, shard_size) -> dict:
    """What a rerun must ask for again to resume: the corpus (by digest), the model and its settings, the split."""
    return {"source": str(source.describe()), "source_kind": source.kind, "digest": source.digest(), "model": model,
            "multi_vector": bool(multi_vector), "dtype": dtype, "max_length": max_length, "shard_size": shard_size}


def _resume_point(out: Path, plan, requested: dict) -> list[int] | None:
    """Shards still to encode in an existing shard set (None when there is none); another corpus or settings is refused."""
    if not (out / PLAN_FILE).is_file():
        return None
    shards = ShardSet(out)
    if shards.plan != plan or shards.meta.get("requested") != requested:
        raise ValueError(f"{out} holds shards of another corpus or other settings: choose another --out, or delete it to start again")
    return shards.missing()


def _colbert_model(out: Path, model: str | None, dtype: str, device: str | None, trust_remote_code: bool) -> str:
    """``SHARDS/model``: the ColBERT model every actor loads, drawn once (a plain encoder's projection is random)."""
    folder = out / MODEL_DIR
    if not folder.is_dir():
        colbert = load_colbert(model, device=device or "cpu", dtype=dtype, trust_remote_code=trust_remote_code)
        with storage.directory(folder) as tmp:
            colbert.save(str(tmp))
    return str(folder.absolute())


def _stream(ray, actors, source, shards: ShardSet, todo: list[int], quiet: bool) -> int:
    """Send the ``todo`` shards to the actors (:func:`retrieval.parallel.run_on_actors`); write each as it returns."""
    documents = 0
    jobs = ((number, (source.kind, items)) for number, items in source.shards(shards.plan, set(todo)))
    with tqdm(total=len(todo), desc="encode shards", unit="shard", disable=quiet) as bar:
        for number, (ids, vectors, doclens, records) in run_on_actors(ray, actors, jobs):
            shards.write(number, ids, vectors, doclens, records)
            documents += len(ids)
            bar.update(1)
    return documents


def encode_corpus(corpus: str, out: str | Path, *, model: str | None = None, multi_vector: bool = False, workers: int = 2,
                  address: str | None = None, shard_size: int | None = None, dtype: str = "auto", device: str | None = None,
                  max_length: int | None = None, batch_size: int | None = None, exclude: list[str] | None = None,
                  split_name: str = "train", quiet: bool = False, trust_remote_code: bool = False) -> EncodeReport:
    """Encode ``corpus`` into shards in ``out`` with ``workers`` Ray actors; only missing shards on a rerun.

    Parameters
    ----------
    corpus
        A BEIR ``corpus.jsonl`` (or its folder), a folder of files, or a ``datasets`` dataset.
    out
        The shard folder (:class:`indexes.shards.ShardSet`).
    workers, address
        Actors, on a local Ray started here, or on the cluster at ``address``.
    shard_size
        Items per shard: documents (default 10,000), or files for a folder (default 1,000).
    model, multi_vector, dtype, device, max_length, batch_size, trust_remote_code
        As for :class:`retrieval.Retriever` / :class:`retrieval.ColbertRetriever`.
    """
    started = time.perf_counter()
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    out = Path(out)
    source = open_source(corpus, split_name=split_name, exclude=exclude, skip=[out])
    size = shard_size or (FILES_PER_SHARD if source.kind == "files" else DOCUMENTS_PER_SHARD)
    plan = split(source.count(), size)
    requested = _requested(source, model, multi_vector, dtype, max_length, size)
    todo = _resume_point(out, plan, requested)
    if todo == []:
        return EncodeReport(out, len(plan), 0, 0, time.perf_counter() - started, 0)
    if multi_vector:
        out.mkdir(parents=True, exist_ok=True)
        model = _colbert_model(out, model, dtype, device, trust_remote_code)
    with ray_session(workers, address, quiet=quiet) as ray:
        actors = start_actors(ray, Encoder, workers, model, multi_vector, dtype, device, max_length, batch_size, trust_remote_code)
        settings = ray.get(actors[0].settings.remote())
        nodes = len(set(ray.get([a.node.remote() for a in actors])))
        shards = ShardSet.create(out, kind="multi" if multi_vector else "single", dim=settings.pop("dim"), plan=plan,
                                 requested=requested, **settings)
        todo = shards.missing()
        documents = _stream(ray, actors, source, shards, todo, quiet)
        for actor in actors:
            ray.kill(actor)
    return EncodeReport(out, len(plan), len(todo), documents, time.perf_counter() - started, len(actors), nodes)
