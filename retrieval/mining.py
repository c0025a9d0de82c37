"""Hard-negative mining with the toolkit's own FAISS search.

For each training query, the corpus is embedded with the model to be trained, searched
through :class:`retrieval.Retriever` (a :class:`indexes.FaissIndex`), and the
best-scoring documents that are *not* judged relevant become hard negatives.

The candidate filters follow ``sentence_transformers.util.mine_hard_negatives``, so the
same settings mean the same thing:

- every judged positive of the query is skipped (and a document sharing the query's id,
  as BEIR does when it evaluates);
- ``absolute_margin``: skip a candidate when ``score + absolute_margin > positive score``;
- ``relative_margin``: skip a candidate when ``score > positive score * (1 - relative_margin)``
  (0.05: a negative is at most 95% as similar to the query as its positive, the
  "TopK-PercPos" guard of NV-Retriever against unlabelled positives);
- the margins compare with the query's *lowest* positive score when it has several;
- ``max_score`` / ``min_score``: skip candidates above / below a similarity;
- ``range_min`` / ``range_max``: of the candidates left, in rank order, keep ranks
  ``range_min .. range_max``; ``range_max`` defaults to
  ``range_min + num_negatives + max positives`` (``10 * num_negatives`` when a margin
  or ``max_score`` may skip candidates), which is also how deep the index is searched;
- ``sampling="top"`` takes the best remaining candidates, ``"random"`` samples them
  (seeded) from the kept range and returns them best first;
- ``fill`` (this module's addition, on by default): a query left with fewer than
  ``num_negatives`` candidates inside ``range_max`` (typically one whose positive scores low,
  so the relative margin rejects most of its neighbours) is searched deeper, and the next
  candidates that pass the same filters complete its list. sentence-transformers drops such
  queries from an n-tuple dataset instead; on SciFact that would silently lose 13% of the
  training queries, the hardest ones. ``fill=False`` gives sentence-transformers' lists.

Under ``torchrun`` every process embeds its share of the texts and the shares are
gathered, so all processes mine the same negatives in a fraction of the time.

Examples
--------
>>> from encoder import load_model
>>> from retrieval.mining import mine_hard_negatives
>>> corpus = {"d1": "Cats purr.", "d2": "Kittens purr too.", "d3": "Paris is in France."}
>>> negatives, stats = mine_hard_negatives(
...     load_model(), {"q1": "Which animal purrs?"}, corpus, {"q1": {"d1": 1}},
...     num_negatives=1, relative_margin=None, show_progress=False)
>>> negatives["q1"]
['d2']
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from encoder import encode
from retrieval.documents import document_text
from retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

SAMPLING = ("top", "random")


@dataclass
class MiningStats:
    """What the filters did; ``summary()`` is the human-readable form."""

    num_queries: int = 0
    num_negatives: int = 0
    range_max: int = 0
    candidates: int = 0
    skipped_positive: int = 0
    skipped_margin: int = 0
    skipped_max_score: int = 0
    skipped_min_score: int = 0
    short_queries: int = 0  # queries that got fewer than num_negatives negatives
    filled: int = 0  # negatives found below range_max for queries short of num_negatives
    mined: int = 0
    positive_score_mean: float = float("nan")
    negative_score_mean: float = float("nan")
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"mined {self.mined} hard negatives for {self.num_queries} queries "
            f"(asked {self.num_negatives} each, searched the top {self.range_max})",
            f"mean similarity: positives {self.positive_score_mean:.4f}, negatives {self.negative_score_mean:.4f}",
            f"skipped candidates: {self.skipped_positive} judged positive, {self.skipped_margin} within the margin, "
            f"{self.skipped_max_score} above max_score, {self.skipped_min_score} below min_score",
        ]
        if self.filled:
            lines.append(f"{self.filled} negatives came from below rank {self.range_max} (queries short of negatives)")
        if self.short_queries:
            lines.append(
                f"{self.short_queries} queries got fewer than {self.num_negatives} negatives "
                "(raise range_max or loosen the margin to find more)"
            )
        return "\n".join(lines)


def distributed_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised torch.distributed group, else ``(0, 1)``."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch always has it
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def embed(model, texts: list[str], role: str, *, show_progress: bool = True, max_batch_size: int = 256) -> np.ndarray:
    """:func:`encoder.encode`, split over the processes of a ``torchrun`` job and gathered.

    Every process returns the full ``(len(texts), dim)`` array in input order.
    """
    rank, world = distributed_info()
    if world == 1:
        return encode(model, texts, role=role, show_progress=show_progress, max_batch_size=max_batch_size)
    import torch.distributed as dist

    share = encode(model, texts[rank::world], role=role, show_progress=show_progress and rank == 0, max_batch_size=max_batch_size)
    shares: list = [None] * world
    dist.all_gather_object(shares, share)
    out = np.empty((len(texts), model.get_sentence_embedding_dimension()), dtype=np.float32)
    for r, part in enumerate(shares):
        out[r::world] = part
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def mine_hard_negatives(
    model,
    queries: Mapping[str, str],
    corpus: Mapping[str, Mapping | str],
    qrels: Mapping[str, Mapping[str, int]],
    num_negatives: int = 5,
    *,
    range_min: int = 0,
    range_max: int | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = 0.05,
    max_score: float | None = None,
    min_score: float | None = None,
    sampling: Literal["top", "random"] = "top",
    fill: bool = True,
    seed: int = 0,
    index: str = "Flat",
    search_params: str | None = None,
    doc_embeddings: np.ndarray | None = None,
    show_progress: bool = True,
) -> tuple[dict[str, list[str]], MiningStats]:
    """Hard negatives for each query with at least one positive judgment.

    Parameters
    ----------
    model
        A loaded ``SentenceTransformer`` (the model about to be trained).
    queries
        ``{query id: text}``; only those with a positive in ``qrels`` are mined.
    corpus
        ``{doc id: {"title", "text"}}`` (BEIR) or ``{doc id: text}``.
    qrels
        ``{query id: {doc id: score}}``; scores > 0 are positives, all of them skipped.
    num_negatives
        Negatives per query.
    range_min, range_max, absolute_margin, relative_margin, max_score, min_score, sampling
        Candidate filters, as in ``sentence_transformers.util.mine_hard_negatives``
        (see the module docstring).
    fill
        Complete short lists with candidates from below ``range_max`` that pass the same filters.
    seed
        Seeds ``sampling="random"``.
    index, search_params
        FAISS factory string and search parameters of the index searched (default exact ``Flat``).
    doc_embeddings
        Corpus embeddings in ``corpus`` order, to skip embedding it again.

    Returns
    -------
    ``({query id: [doc id, ...]}, MiningStats)``; a query's list is best first and may be
    shorter than ``num_negatives`` when too few candidates pass the filters.
    """
    filters = CandidateFilter(absolute_margin, relative_margin, max_score, min_score)
    positives, range_max = _check_request(queries, corpus, qrels, num_negatives, range_min, range_max, sampling, filters)
    search = _CandidateSearch(model, queries, corpus, positives, index, search_params, doc_embeddings, show_progress)
    query_ids, hits = search.query_ids, search.hits(range_max)
    stats = MiningStats(
        num_queries=len(query_ids), num_negatives=num_negatives, range_max=range_max,
        settings={
            "range_min": range_min, "range_max": range_max, "absolute_margin": absolute_margin,
            "relative_margin": relative_margin, "max_score": max_score, "min_score": min_score,
            "sampling": sampling, "fill": fill, "seed": seed, "index": index,
        },
    )
    # The hardest positive of each query sets its margin floor, as in sentence-transformers.
    positive_scores = search.positive_scores()
    floors = {qid: float(scores.min()) for qid, scores in zip(query_ids, positive_scores)}
    rng = random.Random(seed)
    negatives = {}
    for qid, row in zip(query_ids, hits):
        kept = filters.keep(qid, row, positives[qid], floors[qid], stats)[:range_max][range_min:]
        if sampling == "random" and len(kept) > num_negatives:
            kept = [kept[i] for i in sorted(rng.sample(range(len(kept)), num_negatives))]
        negatives[qid] = kept[:num_negatives]
    if fill:
        search.fill_short(negatives, num_negatives, lambda qid, row: filters.keep(qid, row, positives[qid], floors[qid])[range_min:], stats)
    return _finish(negatives, [float(x) for scores in positive_scores for x in scores], num_negatives, stats)


@dataclass
class CandidateFilter:
    """The filters a mined candidate must pass (as ``sentence_transformers.util.mine_hard_negatives``)."""

    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None

    @property
    def active(self) -> bool:
        return self.absolute_margin is not None or self.relative_margin is not None or self.max_score is not None

    def reason(self, score: float, floor: float) -> str | None:
        """Why a candidate scoring ``score`` is skipped when the hardest positive scores ``floor``; None: kept."""
        if self.absolute_margin is not None and score + self.absolute_margin > floor:
            return "skipped_margin"
        if self.relative_margin is not None and score > floor * (1 - self.relative_margin):
            return "skipped_margin"
        if self.max_score is not None and score > self.max_score:
            return "skipped_max_score"
        if self.min_score is not None and score < self.min_score:
            return "skipped_min_score"
        return None

    def keep(self, qid: str, row, positives: list[str], floor: float, stats: MiningStats | None = None) -> list:
        """The hits of ``row`` that pass every filter, in rank order; counted in ``stats`` when given."""
        pos_set, kept = set(positives), []
        for hit in row:
            reason = "skipped_positive" if hit.id in pos_set or hit.id == qid else self.reason(hit.score, floor)
            if stats is not None:
                stats.candidates += 1
                if reason:
                    setattr(stats, reason, getattr(stats, reason) + 1)
            if reason is None:
                kept.append(hit)
        return kept


def _check_request(queries, corpus, qrels, num_negatives, range_min, range_max, sampling, filters) -> tuple[dict, int]:
    """The positives of each query that has one, and the candidate depth ``range_max``; ValueError on bad settings."""
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, not {num_negatives}")
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING)}, not {sampling!r}")
    if range_min < 0:
        raise ValueError(f"range_min must be >= 0, not {range_min}")
    positives = {
        qid: [did for did, s in qrels.get(qid, {}).items() if s > 0 and did in corpus] for qid in queries
    }
    positives = {qid: dids for qid, dids in positives.items() if dids}
    if not positives:
        raise ValueError("no query has a positive judgment naming a corpus document: nothing to mine for")
    if range_max is None:
        max_positives = max(len(d) for d in positives.values())
        range_max = range_min + num_negatives * (10 if filters.active else 1) + max_positives
    if range_max <= range_min:
        raise ValueError(f"range_max ({range_max}) must be larger than range_min ({range_min})")
    return positives, range_max


class _CandidateSearch:
    """The corpus in an index and the queries embedded: candidates by rank, positives' scores, deeper searches."""

    def __init__(self, model, queries, corpus, positives, index, search_params, doc_embeddings, show_progress):
        self.doc_ids, self.positives = list(corpus), positives
        self.retriever = Retriever(model, index=index, search_params=search_params)
        if doc_embeddings is None:
            texts = [document_text(corpus[d]) for d in self.doc_ids]
            doc_embeddings = embed(model, texts, "document", show_progress=show_progress)
        self.retriever.add(({"id": d, "text": ""} for d in self.doc_ids), embeddings=doc_embeddings)
        self.unit_docs = _normalise(np.asarray(doc_embeddings, dtype=np.float32))
        self.query_ids = list(positives)
        self.query_emb = embed(model, [queries[q] for q in self.query_ids], "query", show_progress=show_progress)
        self.depth = 0

    def hits(self, range_max: int) -> list:
        """Deep enough that ``range_max`` candidates remain after the positives and the query's own id drop out."""
        max_positives = max(len(d) for d in self.positives.values())
        self.depth = min(range_max + max_positives + 1, len(self.doc_ids))
        return self.retriever.search_by_vector(self.query_emb, self.depth)

    def positive_scores(self) -> list[np.ndarray]:
        row = {d: i for i, d in enumerate(self.doc_ids)}
        unit_queries = _normalise(self.query_emb)
        return [self.unit_docs[[row[d] for d in self.positives[q]]] @ unit_queries[i] for i, q in enumerate(self.query_ids)]

    def fill_short(self, negatives: dict, num_negatives: int, candidates, stats: MiningStats) -> None:
        """Complete short lists from a deeper search, with candidates that pass the same filters."""
        short = [qi for qi, qid in enumerate(self.query_ids) if len(negatives[qid]) < num_negatives]
        if not short or self.depth >= len(self.doc_ids):
            return
        deeper = min(len(self.doc_ids), max(4 * self.depth, 1000))
        for qi, row in zip(short, self.retriever.search_by_vector(self.query_emb[short], deeper)):
            qid = self.query_ids[qi]
            have = {h.id for h in negatives[qid]}
            added = [h for h in candidates(qid, row) if h.id not in have][: num_negatives - len(have)]
            stats.filled += len(added)
            negatives[qid] = negatives[qid] + added


def _finish(negatives: dict, positive_scores: list, num_negatives: int, stats: MiningStats):
    stats.short_queries = sum(len(n) < num_negatives for n in negatives.values())
    negative_scores = [h.score for hits_ in negatives.values() for h in hits_]
    stats.mined = len(negative_scores)
    stats.positive_score_mean = float(np.mean(positive_scores)) if positive_scores else float("nan")
    stats.negative_score_mean = float(np.mean(negative_scores)) if negative_scores else float("nan")
    return {qid: [h.id for h in hits_] for qid, hits_ in negatives.items()}, stats
