"""Metrics at any cut-off, the MTEB/BEIR protocol for judgments naming missing documents, and the MTEB-schema file."""

import json
import random

import pytest

from evaluation import beir, outputs
from retrieval.metrics import METRICS, check_metrics, per_query, score
from tests.conftest import write_beir


def random_run(seed=0, queries=40, docs=300):
    rng = random.Random(seed)
    qrels = {f"q{i}": {f"d{rng.randrange(docs)}": rng.choice([1, 2]) for _ in range(rng.randint(1, 4))} for i in range(queries)}
    run = {q: {f"d{j}": rng.random() for j in rng.sample(range(docs), 120)} for q in qrels}
    return qrels, run


def test_default_metrics_equal_beirs_evaluate_retrieval():
    from beir.retrieval.evaluation import EvaluateRetrieval

    qrels, run = random_run()
    ndcg, _map, recall, _ = EvaluateRetrieval.evaluate(qrels, run, [10, 100], ignore_identical_ids=False)
    mrr = EvaluateRetrieval.evaluate_custom(qrels, run, [10], metric="mrr")
    assert score(qrels, run) == {"ndcg@10": ndcg["NDCG@10"], "recall@100": recall["Recall@100"],
                                 "mrr@10": mrr["MRR@10"], "map@100": _map["MAP@100"]}
    assert tuple(score(qrels, run)) == METRICS


def test_any_pytrec_eval_measure_at_any_cutoff():
    qrels = {"q": {"d1": 1, "d3": 1}}
    run = {"q": {"d2": 0.9, "d1": 0.8, "d3": 0.1}}
    got = score(qrels, run, ["P@1", "precision@2", "ndcg_cut@3", "mrr@1", "mrr@2", "recall@2", "success@1", "bpref", "Rprec"])
    assert got["P@1"] == 0.0 and got["precision@2"] == 0.5 and got["mrr@1"] == 0.0 and got["mrr@2"] == 0.5
    assert got["recall@2"] == 0.5 and got["success@1"] == 0.0 and 0 < got["ndcg_cut@3"] < 1 and got["Rprec"] == 0.5
    for bad, message in [("foo@3", "unknown metric"), ("ndcg@x", "positive integer"), ("P", "several values")]:
        with pytest.raises(ValueError, match=message):
            check_metrics([bad])


def test_metrics_flag_rejects_an_unknown_measure_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        beir.build_parser().parse_args(["--metrics", "ndcg@10,nonsense@5"])
    assert exit_info.value.code == 2 and "unknown metric 'nonsense@5'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ghost_result(tmp_path_factory, minilm):
    """q1 judges d1 and a missing document, q2 only a missing one, q9 is not a query."""
    root = write_beir(tmp_path_factory.mktemp("ghost") / "tiny",
                      qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tghost-a\t1\nq2\tghost-b\t1\nq9\td1\t1\n")
    source = beir.beir_source("tiny", root.parent)
    return source, beir.evaluate_source(source, model=minilm, show_progress=False)


def test_a_query_whose_judged_document_is_missing_is_kept_and_scores_zero(ghost_result):
    source, result = ghost_result
    assert result["num_queries"] == 2  # q2 kept (its only judged document is not in the corpus); q9 dropped
    assert result["unretrievable_judgments"] == 2
    joined = " ".join(result["warnings"])
    assert "skipped judgments of 1 query ids" in joined and "2 judgments naming corpus ids not in corpus.jsonl kept" in joined
    per = per_query(source.data.evaluation_qrels(), result["run"], ["ndcg@10", "recall@100"])
    assert per["q2"] == {"ndcg@10": 0.0, "recall@100": 0.0}
    assert per["q1"]["recall@100"] == 0.5 and 0.5 < per["q1"]["ndcg@10"] < 1.0  # the missing one is in the ideal ranking
    assert result["metrics"]["ndcg@10"] == round((per["q1"]["ndcg@10"] + 0.0) / 2, 5)
    assert source.data.qrels == {"q1": {"d1": 1}}  # training and mining see known documents only


def test_mteb_file_loads_with_mteb_and_agrees_with_the_summary(ghost_result, tmp_path):
    import mteb

    source, result = ghost_result
    written = outputs.write_outputs(result, source.data, output=tmp_path / "summary.json", mteb_dir=tmp_path / "mteb",
                                 per_query_file=tmp_path / "per_query.json", metrics=["ndcg@10", "P@1", "mrr@10"],
                                 settings={"retrieval": "dense"})
    summary_file, mteb_file, per_query_file = written
    assert mteb_file.parent.parent.name == "sentence-transformers__all-MiniLM-L6-v2"
    assert (mteb_file.parent / "model_meta.json").is_file()
    task = mteb.TaskResult.from_disk(mteb_file)
    scores = task.scores["test"][0]
    summary = json.loads(summary_file.read_text())
    assert "run" not in summary and summary["metrics"] == result["metrics"]
    assert set(summary["metrics"]) == {"ndcg@10", "P@1", "mrr@10"}
    assert task.task_name == "tiny" and task.get_score() == scores["main_score"] == summary["metrics"]["ndcg@10"]
    assert scores["hf_subset"] == "default" and scores["languages"] == ["eng-Latn"]
    for name in ("ndcg", "map", "recall", "precision", "mrr"):
        assert all(f"{name}_at_{k}" in scores for k in (1, 3, 5, 10, 100, 1000))
    assert scores["precision_at_1"] == summary["metrics"]["P@1"] and scores["mrr_at_10"] == summary["metrics"]["mrr@10"]
    settings = json.loads(mteb_file.read_text())["evaluation_settings"]
    assert settings["dtype"] == "float32" and settings["max_length"] == 256 and settings["index"] == "Flat"
    assert settings["retrieval"] == "dense" and len(settings["model_revision"]) == 12 and settings["toolkit_version"]
    queries = json.loads(per_query_file.read_text())["queries"]
    assert set(queries) == {"q1", "q2"} and queries["q2"]["ndcg@10"] == 0.0
