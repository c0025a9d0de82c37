"""ColBERT trainer (`python -m retrieval.training.colbert`): a few steps end to end, and bad input stopped before training."""

import json

import numpy as np
import pytest

from retrieval.training.colbert import main, train_colbert
from retrieval.training.common import RESULT_FILE, TrainInputError


def test_contrastive_training_with_mined_negatives_saves_a_pylate_model(tmp_path, tiny_train):
    from pylate import models

    out = tmp_path / "colbert"
    result = train_colbert(None, tiny_train, out, hard_negatives=1, max_steps=3, batch_size=4, document_length=64,
                           evaluate=False, show_progress=False)
    assert result.config["hard_negatives"] == 1 and result.mining["mined"] > 0
    assert len(result.losses()) >= 1 and result.train_seconds > 0 and result.steps == 3
    assert json.loads((out / RESULT_FILE).read_text())["config"]["loss"] == "contrastive"
    card = (out / "README.md").read_text()
    assert "Training with `retrieval.training.colbert`" in card and "Hard negatives:** 1 per query" in card
    assert [p.name for p in tmp_path.glob(".colbert*") if p.suffix != ".lock"] == [], "temporary and checkpoint folders are removed"
    reloaded = models.ColBERT(str(out), device="cpu")
    emb = reloaded.encode(["subject 3 number 21"], is_query=True)[0]
    assert emb.shape[1] == 128 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-3)


def test_distillation_from_teacher_scores(tmp_path, tiny_train):
    teacher = tmp_path / "teacher.jsonl"
    lines = [{"query_id": f"q{i}", "document_ids": [f"d{i}", f"d{(i + 1) % 40}", f"d{(i + 2) % 40}"], "scores": [0.9, 0.3, 0.1]} for i in range(20)]
    lines.append({"query_id": "ghost", "document_ids": ["d1", "d2"], "scores": [1, 0]})
    teacher.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = train_colbert(None, tiny_train, tmp_path / "kd", loss="distillation", teacher_scores=teacher, max_steps=2,
                           batch_size=4, document_length=64, evaluate=False, show_progress=False)
    assert result.config["loss"] == "distillation" and "skipped 1 lines" in result.warnings[-1]
    assert result.mining is None


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


def test_dev_evaluation_through_the_multi_vector_index_keeps_the_best_checkpoint(tmp_path, tiny_train):
    result = train_colbert(None, tiny_train, tmp_path / "colbert", hard_negatives=0, max_steps=2, eval_steps=1,
                           batch_size=4, document_length=64, dev_fraction=0.2, show_progress=False)
    assert set(result.scores) == {"ndcg@10", "recall@100", "mrr@10", "map@100"} and result.best_step in (1, 2)
    assert result.scores_before == {}  # no evaluation at step 0 for ColBERT: a multi-vector dev run is costly
    assert "4 training queries held out" in (tmp_path / "colbert" / "README.md").read_text()
