"""Hybrid retrieval: fuse a dense ranking with a lexical (BM25) one.

Two fusions, both over the top candidates of each part:

- :func:`rrf`, reciprocal rank fusion (Cormack et al. 2009): ``sum_i w_i / (60 + rank_i)``;
  it ignores the scores, so it needs no calibration between the parts.
- :func:`convex`, a convex combination of min-max normalised scores (Bruch et al. 2023,
  "An Analysis of Fusion Functions for Hybrid Retrieval"): ``w * dense + (1 - w) * lexical``,
  each part scaled to [0, 1] over its own candidates; a document missing from one part gets
  that part's floor, 0.

``weight`` is the dense part's share in both. Measured with the offline MiniLM and bm25s
(BENCHMARKS.md, "Hybrid retrieval"; ``python -m benchmarks.hybrid_bench``), nDCG@10:

==========================  ======  =======  ==========  ==========  ==========  ========
set                         dense   BM25     convex 0.5  convex 0.6  convex 0.7  RRF 0.5
==========================  ======  =======  ==========  ==========  ==========  ========
SciFact test (english BM25) 0.6451  0.6863   0.7282      0.7140      0.7026      0.7171
csn_ruby (english BM25)     0.7703  0.6189   0.7629      0.7851      0.7920      0.7184
==========================  ======  =======  ==========  ==========  ==========  ========

Convex beats RRF at every dense share from 0.3 to 0.7 on both sets: it keeps how much better
the best candidate of a part is than the rest, RRF only the order. SciFact (where BM25 is the
stronger part) peaks at 0.5, csn_ruby (where dense is) at 0.7, and at 0.5 csn_ruby's hybrid
falls below dense alone. The default, ``"convex"`` at dense share ``weight=0.6``, is the share
with the best mean over the two (0.7495) and the lowest one above both parts on both sets.
The codebase search, tuned on its own question list, uses 0.7
(:mod:`retrieval.codebase.search`).

Examples
--------
>>> rrf([[("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 3.0)]])[0][0]
'b'
>>> convex([("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 3.0)], weight=0.5)[0]
('a', 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence

Ranking = Sequence[tuple[str, float]]  # (id, score), best first

FUSIONS = ("convex", "rrf")
DEFAULT_FUSION = "convex"
DEFAULT_WEIGHT = {"convex": 0.6, "rrf": 0.5}
RRF_K = 60  # the constant of Cormack et al.; larger flattens the head of each ranking


def check_weight(weight: float) -> float:
    """The dense part's share: a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be a number between 0 and 1 (the dense part's share), not {weight!r}")
    return float(weight)


def rrf(rankings: Sequence[Ranking], weights: Sequence[float] | None = None, k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of any number of rankings: ids by ``sum_i w_i / (k + rank_i)``, best first.

    Ranks start at 1. Ties keep the order in which ids first appear (first ranking first).
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, (doc_id, _) in enumerate(ranking, 1):
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def min_max(ranking: Ranking) -> dict[str, float]:
    """Scores scaled to [0, 1] over the ranking's own candidates (all 1.0 when they are equal)."""
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    low, high = min(scores), max(scores)
    span = high - low
    return {doc_id: (s - low) / span if span > 0 else 1.0 for doc_id, s in ranking}


def convex(dense: Ranking, lexical: Ranking, weight: float = DEFAULT_WEIGHT["convex"]) -> list[tuple[str, float]]:
    """``weight * dense + (1 - weight) * lexical`` on min-max normalised scores, best first."""
    weight = check_weight(weight)
    a, b = min_max(dense), min_max(lexical)
    fused = {doc_id: weight * a.get(doc_id, 0.0) + (1 - weight) * b.get(doc_id, 0.0) for doc_id in {**a, **b}}
    order = {doc_id: i for i, doc_id in enumerate({**a, **b})}  # stable ties: dense candidates first
    return sorted(fused.items(), key=lambda item: (-item[1], order[item[0]]))


def settings(fusion: str | None = None, weight: float | None = None) -> tuple[str, float]:
    """The fusion and dense share in effect: ``None`` means the default (:data:`DEFAULT_FUSION`, its
    :data:`DEFAULT_WEIGHT`); an unknown fusion or a weight outside [0, 1] is a ``ValueError``."""
    fusion = fusion or DEFAULT_FUSION
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    return fusion, DEFAULT_WEIGHT[fusion] if weight is None else check_weight(weight)


def fuse(dense: Ranking, lexical: Ranking, fusion: str | None = None, weight: float | None = None) -> list[tuple[str, float]]:
    """One query's hybrid ranking by ``fusion`` (``"convex"`` or ``"rrf"``; default :data:`DEFAULT_FUSION`)."""
    fusion, weight = settings(fusion, weight)
    if fusion == "rrf":
        return rrf([dense, lexical], [weight, 1.0 - weight])
    return convex(dense, lexical, weight)
