"""Bad input to `python -m evaluation.beir`: a clear message naming file and line, exit 2, no results file."""

import json
import os
import re
import subprocess
import sys

import pytest

from evaluation.beir import main
from tests.conftest import REPO, write_beir


def run_main(capsys, data_dir, *extra, dataset="tiny"):
    out = data_dir.parent / "result.json"
    code = main(["--data-dir", str(data_dir), "--dataset", dataset, "--output", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_tiny_dataset_runs_and_writes_json(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny")
    code, out, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 0, err
    result = json.loads(result_file.read_text())
    assert result["num_queries"] == 2 and result["num_docs"] == 3
    assert result["metrics"]["ndcg@10"] == 1.0  # both queries find their one relevant document first


def test_malformed_jsonl_line_is_reported_with_file_and_line(tmp_path, capsys):
    corpus = [{"_id": "d1", "text": "fine"}, {"_id": "d2", "text": "fine too"}, '{"_id": "d3", "text": broken}']
    write_beir(tmp_path / "data" / "tiny", corpus=corpus)
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2
    assert "corpus.jsonl:3: malformed JSON" in err
    assert not result_file.exists()


@pytest.mark.parametrize(
    "corpus, message",
    [
        ([], "corpus.jsonl is empty"),
        ([{"_id": "d1", "title": "no text field"}], "corpus.jsonl:1: missing field(s) text"),
        (b'{"_id": "d1", "text": "caf\xe9"}\n', "corpus.jsonl:1: not UTF-8"),
        ([{"_id": "d1", "text": "a"}, ""], "corpus.jsonl:2: empty line"),
        (["[1, 2]"], "corpus.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_corpus_files(tmp_path, capsys, corpus, message):
    write_beir(tmp_path / "data" / "tiny", corpus=corpus)
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2 and message in err
    assert not result_file.exists()


def test_empty_query_set(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny", queries=[])
    code, _, err, _ = run_main(capsys, tmp_path / "data")
    assert code == 2 and "queries.jsonl is empty" in err


def test_missing_split_lists_the_available_ones(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny")
    code, _, err, result_file = run_main(capsys, tmp_path / "data", "--split", "dev")
    assert code == 2
    assert "split 'dev' not found" in err and "available splits: test" in err
    assert not result_file.exists()


def test_malformed_qrels_row(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\thigh\n")
    code, _, err, _ = run_main(capsys, tmp_path / "data")
    assert code == 2 and "test.tsv:3: score 'high' is not an integer" in err


def test_unknown_ids_in_qrels_are_counted_and_skipped(tmp_path, capsys, caplog):
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tghost-doc\t1\nq2\td2\t1\nq9\td1\t1\nq8\td3\t1\n"
    write_beir(tmp_path / "data" / "tiny", qrels=qrels)
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 0, err
    result = json.loads(result_file.read_text())
    assert result["num_queries"] == 2
    joined = " ".join(result["warnings"])
    assert "skipped judgments of 2 query ids" in joined and "1 judgments naming corpus ids not in corpus.jsonl kept" in joined
    assert result["unretrievable_judgments"] == 1


def test_qrels_with_no_known_ids(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny", qrels="query-id\tcorpus-id\tscore\nq7\td1\t1\n")
    code, _, err, _ = run_main(capsys, tmp_path / "data")
    assert code == 2 and "nothing to evaluate" in err


def test_absent_dataset_offline_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("retrieval.beir_data._online", lambda host, timeout=5.0: False)
    code, _, err, _ = run_main(capsys, tmp_path / "data", dataset="nfcorpus")
    assert code == 2
    assert "dataset 'nfcorpus' not found" in err and str((tmp_path / "data" / "nfcorpus").resolve()) in err


def test_unknown_model_is_a_clear_error(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny")
    code, _, err, result_file = run_main(capsys, tmp_path / "data", "--model", str(tmp_path / "no-such-model"))
    assert code == 2 and "could not load model" in err
    assert not result_file.exists()


def test_bad_factory_string_is_a_clear_error(tmp_path, capsys):
    write_beir(tmp_path / "data" / "tiny")
    code, _, err, _ = run_main(capsys, tmp_path / "data", "--index", "NotAnIndex99")
    assert code == 2 and "invalid FAISS factory string 'NotAnIndex99'" in err


def test_module_entry_point_help_documents_every_flag():
    proc = subprocess.run([sys.executable, "-m", "evaluation.beir", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--dataset", "--data-dir", "--split", "--model", "--index", "--batch-size", "--output", "--dtype", "--cache-dir"):
        assert flag in proc.stdout


def test_a_document_sharing_the_query_id_is_never_retrieved(minilm):
    from retrieval.metrics import retrieve
    from retrieval import Retriever

    retriever = Retriever(minilm)
    retriever.add([("q1", "What animal purrs?"), ("d1", "Cats purr."), ("d2", "Paris is in France.")])
    query_ids = ["q1"]
    results = retrieve(retriever, query_ids, retriever.embed_queries(["What animal purrs?"]), k=2)
    assert list(results["q1"]) == ["d1", "d2"]  # the identical text under the query's own id is skipped


# Adversarial lines of corpus.jsonl / queries.jsonl: each is `<file>:2: <what>` (line 1 is a good record), exit 2.
# Shared with tests/retrieval/training/test_bad_input.py, which feeds the same lines to the trainers.
NESTED = '{"_id": "x1", "text": "x", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
BAD_LINES = [
    ("corpus", {"_id": "d9", "text": 5}, "corpus.jsonl:2: field text must be a string, got a number"),
    ("corpus", {"_id": "d9", "text": ["a", "b"]}, "corpus.jsonl:2: field text must be a string, got a list"),
    ("corpus", {"_id": "d9", "text": None}, "corpus.jsonl:2: field text must be a string, got null"),
    ("corpus", {"_id": "d9", "text": {"en": "a"}}, "corpus.jsonl:2: field text must be a string, got an object"),
    ("corpus", {"_id": "d9", "text": True}, "corpus.jsonl:2: field text must be a string, got a boolean"),
    ("corpus", {"_id": "d9", "title": 7, "text": "a"}, "corpus.jsonl:2: field title must be a string, got a number"),
    ("corpus", {"_id": "d9", "title": ["t"], "text": "a"}, "corpus.jsonl:2: field title must be a string, got a list"),
    ("corpus", {"_id": ["d9"], "text": "a"}, "corpus.jsonl:2: field _id must be a string (or an integer), got a list"),
    ("corpus", {"_id": {"id": "d9"}, "text": "a"}, "corpus.jsonl:2: field _id must be a string (or an integer), got an object"),
    ("corpus", {"_id": True, "text": "a"}, "corpus.jsonl:2: field _id must be a string (or an integer), got a boolean"),
    ("corpus", {"_id": None, "text": "a"}, "corpus.jsonl:2: field _id must be a string (or an integer), got null"),
    ("corpus", {"_id": 1.5, "text": "a"}, "corpus.jsonl:2: field _id must be a string (or an integer), got a number"),
    ("corpus", {"_id": " ", "text": "a"}, "corpus.jsonl:2: field _id is empty"),
    ("corpus", r'{"_id": "d9", "text": "bad \ud800 x"}', "corpus.jsonl:2: field text holds a lone surrogate '\\ud800' at character 5"),
    ("corpus", r'{"_id": "d9", "title": "\udfff", "text": "a"}', "corpus.jsonl:2: field title holds a lone surrogate"),
    ("corpus", r'{"_id": "d\ud800", "text": "a"}', "corpus.jsonl:2: field _id holds a lone surrogate"),
    ("corpus", NESTED, "corpus.jsonl:2: JSON nested too deeply to read"),
    ("corpus", {"_id": "d1", "text": "again"}, "corpus.jsonl:2: document id 'd1' already given at line 1"),
    ("queries", {"_id": "q9", "text": 3}, "queries.jsonl:2: field text must be a string, got a number"),
    ("queries", {"_id": ["q9"], "text": "a"}, "queries.jsonl:2: field _id must be a string (or an integer), got a list"),
    ("queries", r'{"_id": "q9", "text": "bad \ud800 x"}', "queries.jsonl:2: field text holds a lone surrogate"),
    ("queries", NESTED, "queries.jsonl:2: JSON nested too deeply to read"),
    ("queries", {"_id": "q1", "text": "again"}, "queries.jsonl:2: query id 'q1' already given at line 1"),
]
GOOD = {"corpus": {"_id": "d1", "title": "Cats", "text": "Cats purr."}, "queries": {"_id": "q1", "text": "What purrs?"}}


def case_id(message: str) -> str:
    """A test id from an expected message: ``corpus.jsonl:2: field text must ...`` -> ``corpus-field-text-must-...``."""
    file, what = message.split(":", 1)[0].split(".")[0], message.split(": ", 1)[1]
    return "-".join([file, *re.findall(r"[a-z0-9_]+", what.lower())])[:60]


def write_bad_line(root, which, line, split="test"):
    """A BEIR folder whose ``which`` file (corpus or queries) is a good record, then ``line``."""
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
    return write_beir(root, qrels=qrels, split=split, **{which: [GOOD[which], line]})


@pytest.mark.parametrize("which, line, message", BAD_LINES, ids=[case_id(m) for _, _, m in BAD_LINES])
def test_bad_fields_name_file_and_line(tmp_path, capsys, which, line, message):
    write_bad_line(tmp_path / "data" / "tiny", which, line)
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2 and message in err, err
    assert err.startswith("error: ") and str(tmp_path / "data" / "tiny") in err
    assert not result_file.exists()


def test_deep_nesting_from_the_command_line_is_exit_2_without_traceback(tmp_path):
    write_bad_line(tmp_path / "data" / "tiny", "corpus", NESTED)
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "evaluation.beir", "--data-dir", str(tmp_path / "data"), "--dataset",
                           "tiny", "--output", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == f"error: {tmp_path / 'data' / 'tiny' / 'corpus.jsonl'}:2: JSON nested too deeply to read\n"
    assert not out.exists()


def test_integer_ids_are_read_as_their_digits(tmp_path):
    """beir keeps a JSON number ``_id`` as an int key that no qrels string id matches; here it is its string."""
    from retrieval.beir_data import load_beir

    root = write_beir(tmp_path, corpus=[{"_id": 7, "text": "Cats purr."}, {"_id": "8", "text": "Paris."}],
                      queries=[{"_id": 1, "text": "What purrs?"}], qrels="query-id\tcorpus-id\tscore\n1\t7\t1\n")
    data = load_beir(root)
    assert set(data.corpus) == {"7", "8"} and data.queries == {"1": "What purrs?"} and data.qrels == {"1": {"7": 1}}


def test_a_null_title_is_no_title(tmp_path):
    from retrieval.beir_data import load_beir

    root = write_beir(tmp_path, corpus=[{"_id": "d1", "title": None, "text": "Cats purr."}, {"_id": "d2", "text": "b"}],
                      qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert load_beir(root).corpus == {"d1": {"text": "Cats purr.", "title": None}, "d2": {"text": "b", "title": None}}


QRELS_HEAD = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
BAD_QRELS = [
    (QRELS_HEAD + "q2\td2\n", "test.tsv:3: expected 3 tab-separated columns, got 2"),
    (QRELS_HEAD + "q2\td2\t1.5\n", "test.tsv:3: score '1.5' is not an integer"),
    (QRELS_HEAD.encode() + b"q2\td\xe92\t1\n", "test.tsv:3: not UTF-8"),
    (QRELS_HEAD + "q2\t\t1\n", "test.tsv:3: empty corpus id"),
    (QRELS_HEAD + "q2\t" + "d" * 200_000 + "\t1\n", "test.tsv:3: field larger than field limit"),
    (QRELS_HEAD + "q2\td2\t1\nq1\td1\t2\n", "test.tsv:4: query 'q1' and document 'd1' already judged 1 at line 2; "
                                            "this line says 2"),
]


@pytest.mark.parametrize("qrels, message", BAD_QRELS, ids=[case_id(m) for _, m in BAD_QRELS])
def test_bad_qrels_rows_name_file_and_line(tmp_path, capsys, qrels, message):
    root = write_beir(tmp_path / "data" / "tiny")
    (root / "qrels" / "test.tsv").write_bytes(qrels if isinstance(qrels, bytes) else qrels.encode())
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2 and message in err, err
    assert not result_file.exists()


def test_repeated_qrels_rows_with_the_same_score_are_counted_once(tmp_path):
    from retrieval.beir_data import load_beir

    root = write_beir(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq1\td1\t1\nq2\td2\t1\n")
    data = load_beir(root)
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert any("2 repeated judgments (same query, document and score) counted once" in w for w in data.warnings)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize("name", ["qrels/test.tsv", "corpus.jsonl", "queries.jsonl"])
def test_a_data_file_that_is_not_a_regular_file_is_named_and_never_opened(tmp_path, capsys, kind, name):
    root = write_beir(tmp_path / "data" / "tiny")
    (root / name).unlink()
    if kind == "fifo":
        os.mkfifo(root / name)  # opening it would block forever
    else:
        (root / name).mkdir()
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    what = "a FIFO" if kind == "fifo" else "a folder"
    assert code == 2 and f"{root / name} is not a regular file ({what})" in err, err
    assert "missing" not in err and "available splits" not in err
    assert not result_file.exists()
