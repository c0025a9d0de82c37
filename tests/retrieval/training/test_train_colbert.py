"""ColBERT training through PyLate: a few steps end to end, and bad input stopped before training."""

import json

import numpy as np
import pytest

from retrieval.train_colbert import main, train_colbert
from retrieval.train_dpr import TrainInputError
from tests.conftest import write_beir


@pytest.fixture(scope="module")
def tiny_train(tmp_path_factory):
    corpus = [{"_id": f"d{i}", "title": f"Note {i}", "text": f"document {i} about subject {i % 5} and number {i * 7}"} for i in range(40)]
    queries = [{"_id": f"q{i}", "text": f"subject {i % 5} number {i * 7}"} for i in range(20)]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(20))
    return write_beir(tmp_path_factory.mktemp("data") / "tiny", corpus, queries, qrels, split="train")


def test_contrastive_training_with_mined_negatives_saves_a_pylate_model(tmp_path, tiny_train):
    from pylate import models

    out = tmp_path / "colbert"
    run = train_colbert(None, tiny_train, out, hard_negatives=1, max_steps=3, batch_size=4, document_length=64,
                        evaluate=False, show_progress=False)
    assert run["hyperparameters"]["hard_negatives"] == 1 and "mining" in run
    assert len(run["loss_history"]) >= 1 and run["train_seconds"] > 0
    assert json.loads((out / "training_run.json").read_text())["loss"] == "contrastive"
    reloaded = models.ColBERT(str(out), device="cpu")
    emb = reloaded.encode(["subject 3 number 21"], is_query=True)[0]
    assert emb.shape[1] == 128 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-3)


def test_distillation_from_teacher_scores(tmp_path, tiny_train):
    teacher = tmp_path / "teacher.jsonl"
    lines = [{"query_id": f"q{i}", "document_ids": [f"d{i}", f"d{(i + 1) % 40}", f"d{(i + 2) % 40}"], "scores": [0.9, 0.3, 0.1]} for i in range(20)]
    lines.append({"query_id": "ghost", "document_ids": ["d1", "d2"], "scores": [1, 0]})
    teacher.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = train_colbert(None, tiny_train, tmp_path / "kd", loss="distillation", teacher_scores=teacher, max_steps=2,
                        batch_size=4, document_length=64, evaluate=False, show_progress=False)
    assert run["loss"] == "distillation" and "skipped 1 lines" in run["warnings"][-1]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"loss": "distillation"}, "needs --teacher-scores"),
        ({"loss": "cached-contrastive"}, "needs --mini-batch-size"),
        ({"document_length": 9000}, "at most 8192"),
    ],
)
def test_bad_options_stop_before_training(tmp_path, tiny_train, options, message):
    with pytest.raises(TrainInputError, match=message):
        train_colbert(None, tiny_train, tmp_path / "x", **options)
    assert not (tmp_path / "x").exists()


def test_bad_teacher_file_and_unknown_model_exit_2(tmp_path, tiny_train, capsys):
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text('{"query_id": "q1", "document_ids": ["d1", "d2"], "scores": [1, 0]}\n{oops\n')
    code = main(["--data", str(tiny_train), "--output", str(tmp_path / "o"), "--loss", "distillation",
                 "--teacher-scores", str(teacher), "--quiet"])
    assert code == 2 and "teacher.jsonl:2:" in capsys.readouterr().err
    code = main(["--data", str(tiny_train), "--output", str(tmp_path / "o"), "--model", str(tmp_path / "nope"), "--quiet"])
    assert code == 2 and "could not load ColBERT model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
