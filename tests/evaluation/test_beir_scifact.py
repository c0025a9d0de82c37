"""The harness reproduces published MTEB scores of all-MiniLM-L6-v2 on the real SciFact."""

import json
import subprocess
import sys

import pytest

from evaluation.beir import evaluate
from tests.conftest import REPO, published_ndcg

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def exact_test(data_dir, minilm, embedding_cache):
    return evaluate("scifact", data_dir=data_dir, split="test", model=minilm, cache_dir=embedding_cache, show_progress=False)


def test_scifact_test_split_matches_published_score(exact_test):
    expected = published_ndcg("scifact", "test", MODEL)  # 0.64508
    assert exact_test["num_queries"] == 300 and exact_test["num_docs"] == 5183
    assert exact_test["metrics"]["ndcg@10"] == pytest.approx(expected, abs=0.002)
    assert set(exact_test["metrics"]) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert 0.8 < exact_test["metrics"]["recall@100"] <= 1.0


def test_scifact_train_split_matches_published_score(data_dir, minilm, embedding_cache):
    result = evaluate("scifact", data_dir=data_dir, split="train", model=minilm, cache_dir=embedding_cache, show_progress=False)
    assert result["num_queries"] == 809
    assert result["metrics"]["ndcg@10"] == pytest.approx(published_ndcg("scifact", "train", MODEL), abs=0.002)


@pytest.mark.parametrize("factory", ["HNSW32", "IVF64,Flat"])
def test_approximate_indexes_stay_within_001_of_exact(factory, exact_test, data_dir, minilm, embedding_cache):
    result = evaluate("scifact", data_dir=data_dir, index=factory, model=minilm, cache_dir=embedding_cache, show_progress=False)
    assert result["index"] == factory
    assert abs(result["metrics"]["ndcg@10"] - exact_test["metrics"]["ndcg@10"]) <= 0.01


def test_bf16_keeps_ndcg_within_0003_of_fp32(exact_test, data_dir):
    from encoder import bf16_supported, load_model

    if not bf16_supported("cpu"):
        pytest.skip("this CPU has no native bf16")
    model = load_model(device="cpu", dtype="bfloat16")
    result = evaluate("scifact", data_dir=data_dir, model=model, show_progress=False)
    assert result["dtype"] == "bfloat16"
    assert abs(result["metrics"]["ndcg@10"] - exact_test["metrics"]["ndcg@10"]) <= 0.003


def test_command_line_writes_the_result_json(tmp_path, data_dir, exact_test, embedding_cache):
    out = tmp_path / "scifact.json"
    proc = subprocess.run(
        [sys.executable, "-m", "evaluation.beir", "--data-dir", str(data_dir), "--cache-dir", str(embedding_cache),
         "--output", str(out), "--mteb-dir", str(tmp_path / "mteb"), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"results written to {out}" in proc.stdout
    assert "ndcg@10     0.645" in proc.stdout
    result = json.loads(out.read_text())
    for key in ("dataset", "split", "model", "index", "num_queries", "num_docs", "encode_seconds", "search_seconds", "metrics"):
        assert key in result
    assert result["metrics"] == exact_test["metrics"]
    # the MTEB-schema file says the same, and MTEB's own loader reads it
    import mteb

    (mteb_file,) = (tmp_path / "mteb").glob("sentence-transformers__all-MiniLM-L6-v2/*/SciFact.json")
    task = mteb.TaskResult.from_disk(mteb_file)
    assert task.task_name == "SciFact" and task.scores["test"][0]["hf_subset"] == "default"
    assert task.scores["test"][0]["main_score"] == task.scores["test"][0]["ndcg_at_10"] == result["metrics"]["ndcg@10"]
    assert task.scores["test"][0]["recall_at_100"] == result["metrics"]["recall@100"]
