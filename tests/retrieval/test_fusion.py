"""Hybrid fusion: reciprocal rank fusion and the convex combination of min-max normalised scores."""

import pytest

from retrieval.fusion import convex, fuse, min_max, rrf


def test_rrf_sums_reciprocal_ranks_with_weights():
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 30.0), ("a", 2.0)]
    fused = dict(rrf([dense, lexical]))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert [d for d, _ in rrf([dense, lexical])] == ["a", "c", "b"]
    # all weight on the lexical list: its order, then what only the other list has (score 0)
    assert [d for d, _ in rrf([dense, lexical], [0.0, 1.0])][:2] == ["c", "a"]
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        rrf([dense], [0.5, 0.5])


def test_convex_normalises_each_part_and_gives_missing_ids_the_floor():
    assert min_max([("x", 3.0), ("y", 1.0), ("z", 2.0)]) == {"x": 1.0, "y": 0.0, "z": 0.5}
    assert min_max([("x", 5.0)]) == {"x": 1.0}
    dense = [("a", 0.8), ("b", 0.6), ("c", 0.4)]  # -> 1, 0.5, 0
    lexical = [("b", 10.0), ("d", 0.0)]  # -> 1, 0
    fused = dict(convex(dense, lexical, weight=0.25))
    assert fused == pytest.approx({"a": 0.25, "b": 0.25 * 0.5 + 0.75, "c": 0.0, "d": 0.0})
    assert convex(dense, lexical, weight=1.0)[0][0] == "a" and convex(dense, lexical, weight=0.0)[0][0] == "b"
    # scale does not matter: BM25 scores a thousand times larger fuse the same
    assert convex(dense, [(d, s * 1000) for d, s in lexical], 0.25) == convex(dense, lexical, 0.25)


def test_fuse_checks_its_settings():
    assert fuse([("a", 1.0)], [("b", 1.0)], "rrf", 0.5) == [("a", 0.5 / 61), ("b", 0.5 / 61)]
    with pytest.raises(ValueError, match="unknown fusion 'max'"):
        fuse([], [], "max")
    for bad in (1.5, -0.1, "0.3", True):
        with pytest.raises(ValueError, match="between 0 and 1"):
            fuse([], [], "convex", bad)
