"""An IVF index built from shards keeps its lists in ``index.ivfdata``: loadable as any folder, movable, read-only."""

from __future__ import annotations

import numpy as np
import pytest

from indexes import FaissIndex
from indexes.from_shards import build_single
from indexes.shards import ShardSet


def built(tmp_path):
    rng = np.random.default_rng(0)
    plan = [(0, 400), (400, 400)]
    shards = ShardSet.create(tmp_path / "s", kind="single", dim=16, plan=plan, model="m", dtype="float32", max_length=8)
    for n, (start, count) in enumerate(plan):
        shards.write(n, [f"v{i}" for i in range(start, start + count)], rng.normal(size=(count, 16)).astype("float32"))
    build_single(shards, tmp_path / "built", "IVF8,Flat")
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
