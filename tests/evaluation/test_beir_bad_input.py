"""Bad input to `python -m evaluation.beir`: a clear message naming file and line, exit 2, no results file."""

import json
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
    assert "skipped judgments of 2 query ids" in joined and "skipped 1 judgments naming corpus ids" in joined


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
