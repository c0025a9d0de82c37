"""Storage under faults: killed saves, crashes between the swap's steps, readers beside a writer, damaged files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from indexes import FaissIndex, IndexFormatError, MultiVectorIndex, storage
from tests.conftest import REPO

DIM = 16


def flat(n: int, seed: int = 0) -> FaissIndex:
    index = FaissIndex(DIM, "Flat")
    index.add([f"v{seed}-{i}" for i in range(n)], np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32))
    return index


def assert_complete(path, sizes) -> None:
    index = FaissIndex.load(path)
    assert len(index) in sizes and index.index.ntotal == len(index)
    assert index.ids[0].startswith(f"v{sizes.index(len(index))}-")


class Crash(BaseException):
    """Stands for the process dying: nothing after the step runs."""


def crash_at(step_name):
    def hook(step):
        if step == step_name:
            raise Crash(step)

    return hook


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_crash_between_every_step_of_the_swap(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(storage, "_exchange", lambda a, b: False)
    steps = ["built", "exchanged", "removed-old"] if exchange else ["built", "moved-old", "moved-new"]
    sizes = [10, 20]
    for step in steps:
        path = tmp_path / step
        flat(10, seed=0).save(path)
        monkeypatch.setattr(storage, "_fault_hook", crash_at(step))
        with pytest.raises(Crash):
            flat(20, seed=1).save(path)
        monkeypatch.setattr(storage, "_fault_hook", None)
        if exchange or step != "moved-old":
            assert_complete(path, sizes)  # old or new, whole
        flat(10, seed=0).save(path)  # the next save recovers and cleans up
        assert_complete(path, sizes)
        assert storage._leftovers(path) == []


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {repo!r})
    from indexes import FaissIndex
    indexes = []
    for seed, n in enumerate((300, 600)):
        ix = FaissIndex({dim}, "Flat")
        ix.add([f"v{{seed}}-{{i}}" for i in range(n)], np.random.default_rng(seed).normal(size=(n, {dim})).astype(np.float32))
        indexes.append(ix)
    print("ready", flush=True)
    i = 0
    while True:
        indexes[i % 2].save(sys.argv[1])
        i += 1
    """
)


def test_kill_9_during_saves_always_leaves_a_complete_version(tmp_path):
    path = tmp_path / "ix"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO), dim=DIM))
    rng = random.Random(0)
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if path.exists():
            assert_complete(path, [300, 600])
        assert len(storage._leftovers(path)) <= 1  # at most the killed save's own; removed by the next save
    flat(300, seed=0).save(path)
    assert storage._leftovers(path) == []


def test_reader_looping_beside_a_writer_never_fails(tmp_path):
    path = tmp_path / "ix"
    versions = [flat(300, seed=0), flat(600, seed=1)]
    versions[0].save(path)
    stop, errors = threading.Event(), []

    def write():
        i = 0
        while not stop.is_set():
            versions[i % 2].save(path)
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(400):
            try:
                assert_complete(path, [300, 600])
            except Exception as exc:  # noqa: BLE001 - counted, reported below
                errors.append(repr(exc))
    finally:
        stop.set()
        writer.join()
    assert errors == []


def test_two_writers_are_serialized_with_a_clear_message_on_timeout(tmp_path):
    path = tmp_path / "ix"
    with storage.writer_lock(path.absolute()):
        with pytest.raises(TimeoutError, match="another writer"):
            with storage.writer_lock(path.absolute(), timeout=0.2):
                pass
    threads = [threading.Thread(target=flat(50 * (i + 1), seed=i).save, args=(path,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_complete(path, [50, 100])


def damage(file, how: str) -> None:
    data = file.read_bytes()
    if how == "deleted":
        file.unlink()
    elif how == "truncated":
        file.write_bytes(data[: len(data) // 2])
    else:
        i = len(data) // 2
        file.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])


def saved_kinds(tmp_path):
    flat(40).save(tmp_path / "faiss")
    mv = MultiVectorIndex(DIM, nlist=4)
    rng = np.random.default_rng(0)
    mv.add([f"d{i}" for i in range(30)], [rng.normal(size=(5, DIM)).astype(np.float32) for _ in range(30)])
    mv.save(tmp_path / "multi")
    return {"faiss": FaissIndex.load, "multi": MultiVectorIndex.load}


@pytest.mark.parametrize("how", ["deleted", "truncated", "flipped"])
def test_every_file_damaged_is_named(tmp_path, how):
    loaders = saved_kinds(tmp_path)
    checked = 0
    for kind, load in loaders.items():
        for file in sorted((tmp_path / kind).iterdir()):
            backup = file.read_bytes()
            damage(file, how)
            with pytest.raises(IndexFormatError) as err:
                load(tmp_path / kind)
            assert file.name in str(err.value), (kind, file.name, str(err.value))
            file.write_bytes(backup)
            load(tmp_path / kind)
            checked += 1
    assert checked == 2 + 2 + 5  # index.faiss + index.json; codec + index.json + 5 arrays


def test_swapped_ids_are_detected(tmp_path):
    flat(10).save(tmp_path / "ix")
    meta = tmp_path / "ix" / "index.json"
    text = meta.read_text()
    meta.write_text(text.replace('"v0-0"', '"TMP"').replace('"v0-1"', '"v0-0"').replace('"TMP"', '"v0-1"'))
    with pytest.raises(IndexFormatError, match="index.json"):
        FaissIndex.load(tmp_path / "ix")
