"""An IVF index built from shards keeps its lists in ``index.ivfdata``: loadable as any folder, movable, read-only."""

from __future__ import annotations

import numpy as np
import pytest

from indexes import FaissIndex
from indexes import from_shards
from indexes.from_shards import auto_factory, build_single
from indexes.shards import ShardSet


def built(tmp_path, factory: str = "IVF8,Flat"):
    rng = np.random.default_rng(0)
    plan = [(0, 400), (400, 400)]
    shards = ShardSet.create(tmp_path / "s", kind="single", dim=16, plan=plan, model="m", dtype="float32", max_length=8)
    for n, (start, count) in enumerate(plan):
        shards.write(n, [f"v{i}" for i in range(start, start + count)], rng.normal(size=(count, 16)).astype("float32"))
    build_single(shards, tmp_path / "built", factory)
    return tmp_path / "built", rng.normal(size=(3, 16)).astype("float32")


def test_on_disk_lists_load_with_mmap_move_and_save_as_a_snapshot(tmp_path):
    path, q = built(tmp_path)
    expected = FaissIndex.load(path).search(q, 5)
    assert FaissIndex.load(path, mmap=True).search(q, 5).ids == expected.ids  # no crash: the lists are read on disk
    moved = path.rename(tmp_path / "moved")  # the lists are found beside index.faiss, not by the path they were built at
    index = FaissIndex.load(moved)
    assert index.search(q, 5).ids == expected.ids
    with pytest.raises(ValueError, match="built from shards"):
        index.add(["new"], q[:1])
    index.delete(["v0"])  # tombstones need no change to the lists
    index.save(tmp_path / "copy")
    copy = FaissIndex.load(tmp_path / "copy")
    assert (tmp_path / "copy" / "index.ivfdata").is_file() and "v0" not in copy.live_ids()
    assert copy.search(q, 5).ids == index.search(q, 5).ids


def test_auto_factory_is_exact_up_to_a_million_then_ivf_pq(tmp_path, monkeypatch):
    assert auto_factory(1_000_000, 384) == "Flat"
    assert auto_factory(10_000_000, 384) == "IVF4096_HNSW32,PQ48np"  # the measured 10M configuration
    assert auto_factory(2_000_000, 100) == "IVF4096_HNSW32,PQ10np"  # sub-quantizers divide the dimension
    monkeypatch.setattr(from_shards, "FLAT_UP_TO", 500)  # 800 vectors are then "large": built as IVF-PQ from the shards
    monkeypatch.setattr(from_shards, "ivf_pq_factory", lambda n, dim: "IVF8,PQ4np")
    path, _ = built(tmp_path, "auto")
    assert "IVF" in FaissIndex.load(path).factory
