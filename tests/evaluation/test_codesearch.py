"""`python -m evaluation.codesearch`: the real CodeSearchNet Ruby folder, CoIR hub layouts read through `datasets`, bad input.

The fixtures copy the CoIR hub repositories as MTEB reads them: ``CoIR-Retrieval/stackoverflow-qa``
(``README.md`` configs ``corpus`` -> ``corpus/corpus-*``, ``queries`` -> ``queries/queries-*``,
``default`` -> ``data/{train,test}-*``) and ``CoIR-Retrieval/CodeSearchNet`` (configs and folders
``<lang>-corpus``, ``<lang>-queries``, ``<lang>-qrels``), parquet files written as ``push_to_hub`` names them.
"""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoder import token_lengths
from evaluation import beir
from evaluation.codesearch import codesearch_source, load_coir, hub_layout, main
from retrieval.beir_data import DataError
from tests.conftest import REPO, write_beir

TEXT_FIELDS = ("_id", "partition", "text", "language", "title")
TEXT_FEATURES = "".join(f"  - name: {name}\n    dtype: string\n" for name in TEXT_FIELDS)
QRELS_FEATURES = "  - name: query-id\n    dtype: string\n  - name: corpus-id\n    dtype: string\n  - name: score\n    dtype: int64\n"


def so_dataset_info(sizes: dict) -> str:
    """The card's dataset_info as upstream writes it: features and split sizes (which `datasets` checks)."""
    def splits(config, names):
        return "  splits:\n" + "".join(f"  - name: {n}\n    num_bytes: 0\n    num_examples: {sizes[config, n]}\n" for n in names)

    return (
        "dataset_info:\n"
        f"- config_name: corpus\n  features:\n{TEXT_FEATURES}{splits('corpus', ['corpus'])}"
        f"- config_name: default\n  features:\n{QRELS_FEATURES}{splits('default', ['train', 'test'])}"
        f"- config_name: queries\n  features:\n{TEXT_FEATURES}{splits('queries', ['queries'])}"
    )


SO_CONFIGS = """configs:
- config_name: corpus
  data_files:
  - split: corpus
    path: corpus/corpus-*
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
- config_name: queries
  data_files:
  - split: queries
    path: queries/queries-*
"""
QUESTIONS = {
    "q1": "How do I reverse a list in Python?",
    "q2": "How can I parse a JSON string in JavaScript?",
    "q3": "How to read a file line by line in Java?",
    "q4": "How do I merge two dictionaries in Python?",
}
ANSWERS = {
    "a1": "Use slicing: my_list[::-1] returns a reversed copy, or call my_list.reverse() in place.",
    "a2": "Call JSON.parse(text) to turn a JSON string into a JavaScript object.",
    "a3": "Wrap a FileReader in a BufferedReader and call readLine() in a loop until it returns null.",
    "a4": "With Python 3.9+ write a | b; before that use {**a, **b}.",
}


def text_rows(texts: dict, partitions: dict) -> dict:
    ids = list(texts)
    return {"_id": ids, "partition": [partitions.get(i, "test") for i in ids], "text": [texts[i] for i in ids],
            "language": ["en"] * len(ids), "title": [""] * len(ids)}


def write_parquet(path, columns: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def write_stackoverflow_qa(root, corpus=None, queries=None, test=None, train=None):
    """A local copy of CoIR-Retrieval/stackoverflow-qa in its upstream layout."""
    partitions = {"q3": "train", "q4": "train", "a3": "train", "a4": "train"}
    corpus = corpus if corpus is not None else text_rows(ANSWERS, partitions)
    queries = queries if queries is not None else text_rows(QUESTIONS, partitions)
    test = test if test is not None else {"query-id": ["q1", "q2"], "corpus-id": ["a1", "a2"], "score": [1, 1]}
    train = train if train is not None else {"query-id": ["q3", "q4"], "corpus-id": ["a3", "a4"], "score": [1, 1]}
    root.mkdir(parents=True, exist_ok=True)
    sizes = {("corpus", "corpus"): len(corpus["_id"]), ("queries", "queries"): len(queries["_id"]),
             ("default", "test"): len(test["query-id"]), ("default", "train"): len(train["query-id"])}
    (root / "README.md").write_text(f"---\n{so_dataset_info(sizes)}{SO_CONFIGS}---\n", encoding="utf-8")
    write_parquet(root / "corpus" / "corpus-00000-of-00001.parquet", corpus)
    write_parquet(root / "queries" / "queries-00000-of-00001.parquet", queries)
    write_parquet(root / "data" / "test-00000-of-00001.parquet", test)
    write_parquet(root / "data" / "train-00000-of-00001.parquet", train)
    return root


CODE = {
    "q0": "def add(a, b)\n  a + b\nend",
    "q1": "def read_lines(path)\n  File.readlines(path).map(&:chomp)\nend",
    "q2": "def blank?(s)\n  s.nil? || s.strip.empty?\nend",
}
SUMMARIES = {"c0": "Add two numbers.", "c1": "Read the lines of a file without their newlines.", "c2": "True when the string is nil or only spaces."}


def write_coir_csn(root, lang="ruby"):
    """A local copy of CoIR-Retrieval/CodeSearchNet (one language) in its upstream layout: code (query) -> summary."""
    configs = "".join(
        f"- config_name: {lang}-{kind}\n  data_files:\n" + "".join(f"  - split: {s}\n    path: {lang}-{kind}/{s}-*\n" for s in splits)
        for kind, splits in (("corpus", ["corpus"]), ("qrels", ["train", "valid", "test"]), ("queries", ["queries"]))
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(f"---\nconfigs:\n{configs}---\n", encoding="utf-8")
    write_parquet(root / f"{lang}-corpus" / "corpus-00000-of-00001.parquet", text_rows(SUMMARIES, {}))
    write_parquet(root / f"{lang}-queries" / "queries-00000-of-00001.parquet", text_rows(CODE, {}))
    qrels = {"query-id": list(CODE), "corpus-id": list(SUMMARIES), "score": [1, 1, 1]}
    for split in ("train", "valid", "test"):
        write_parquet(root / f"{lang}-qrels" / f"{split}-00000-of-00001.parquet", qrels)
    return root


def run_main(capsys, data_dir, *extra, dataset="stackoverflow_qa"):
    out = data_dir.parent / "result.json"
    code = main(["--dataset", dataset, "--data-dir", str(data_dir), "--datasets-cache", str(data_dir.parent / "hf-cache"),
                 "--output", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_real_csn_ruby_scores_plausibly(data_dir, embedding_cache, tmp_path, capsys):
    """CodeXGLUE's CodeSearchNet Ruby test split, docstring -> function, all-MiniLM-L6-v2 (bf16 where native, for time)."""
    out = tmp_path / "csn_ruby.json"
    code = main(["--dataset", "csn_ruby", "--data-dir", str(data_dir), "--dtype", "auto", "--cache-dir", str(embedding_cache),
                 "--output", str(out), "--quiet"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "csn_ruby (test): 1261 queries, 1261 documents, index Flat" in stdout
    assert "documents encoded at up to 256 tokens: 150 of 1,261 truncated" in stdout
    assert f"results written to {out}" in stdout
    result = json.loads(out.read_text())
    # measured 0.7703 (fp32) / 0.7704 (bf16); MiniLM's training data includes CodeSearchNet pairs
    assert 0.70 <= result["metrics"]["ndcg@10"] <= 0.85
    assert result["metrics"]["recall@100"] >= 0.95
    assert result["source"] == str(data_dir / "csn_ruby") and result["truncation"]["documents_truncated"] == 150


def test_stackoverflow_qa_hub_layout_is_read_through_datasets(tmp_path, minilm):
    write_stackoverflow_qa(tmp_path / "data" / "stackoverflow-qa")
    source = codesearch_source("stackoverflow_qa", "test", data_dir=tmp_path / "data", datasets_cache=tmp_path / "hf-cache",
                               show_progress=False)
    assert source.info["source"] == str(tmp_path / "data" / "stackoverflow-qa")
    assert len(source.data.corpus) == 4  # the whole corpus, train answers included, as distractors
    assert source.data.queries == {"q1": QUESTIONS["q1"], "q2": QUESTIONS["q2"]}  # only the judged test questions
    assert source.data.qrels == {"q1": {"a1": 1}, "q2": {"a2": 1}}
    result = beir.evaluate_source(source, model=minilm, show_progress=False)
    assert result["dataset"] == "stackoverflow_qa" and result["num_queries"] == 2
    assert result["metrics"]["ndcg@10"] == 1.0
    train = load_coir(str(tmp_path / "data" / "stackoverflow-qa"), hub_layout("stackoverflow_qa"), "train",
                      cache_dir=tmp_path / "hf-cache", show_progress=False)
    assert train.qrels == {"q3": {"a3": 1}, "q4": {"a4": 1}}


def test_coir_codesearchnet_copy_is_found_when_no_beir_folder(tmp_path):
    write_coir_csn(tmp_path / "data" / "CodeSearchNet")
    source = codesearch_source("csn_ruby", "test", data_dir=tmp_path / "data", datasets_cache=tmp_path / "hf-cache",
                               show_progress=False)
    assert source.info["source"] == str(tmp_path / "data" / "CodeSearchNet")
    assert source.data.queries == CODE  # CoIR's direction: code is the query
    assert source.data.corpus["c1"] == {"title": "", "text": SUMMARIES["c1"]}
    assert source.data.qrels == {"q0": {"c0": 1}, "q1": {"c1": 1}, "q2": {"c2": 1}}
    write_beir(tmp_path / "data" / "csn_ruby")  # a BEIR-layout folder wins
    source = codesearch_source("csn_ruby", "test", data_dir=tmp_path / "data")
    assert source.info["source"] == str(tmp_path / "data" / "csn_ruby")


def test_multi_vector_counts_truncation_with_the_colbert_prefix(tmp_path, minilm):
    write_stackoverflow_qa(tmp_path / "data" / "stackoverflow-qa")
    source = codesearch_source("stackoverflow_qa", data_dir=tmp_path / "data", datasets_cache=tmp_path / "hf-cache",
                               show_progress=False)
    result = beir.evaluate_source(source, multi_vector=True, max_length=16, show_progress=False)
    lengths = token_lengths(minilm, list(ANSWERS.values())) + 1  # PyLate inserts its [D] marker
    assert result["index"] == "multi-vector nbits=4"
    assert result["truncation"]["max_length"] == 16
    assert result["truncation"]["documents_truncated"] == int((lengths > 16).sum()) > 0
    assert 0 < result["metrics"]["ndcg@10"] <= 1


def test_cli_writes_json_and_says_where(tmp_path, capsys):
    write_stackoverflow_qa(tmp_path / "data" / "stackoverflow-qa")
    code, out, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 0, err
    assert "stackoverflow_qa (test): 2 queries, 4 documents" in out and f"results written to {result_file}" in out
    result = json.loads(result_file.read_text())
    for key in ("dataset", "split", "model", "index", "num_queries", "num_docs", "encode_seconds", "search_seconds",
                "metrics", "truncation", "warnings", "source"):
        assert key in result


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(corpus={**text_rows(ANSWERS, {}), "_id": ["a1", None, "a3", "a4"]}), "corpus-00000-of-00001.parquet row 2: field _id is missing"),
        (dict(queries={**text_rows(QUESTIONS, {}), "text": ["fine", "", "fine", "fine"]}), "queries-00000-of-00001.parquet row 2: field text is empty"),
        (dict(test={"query-id": ["q1"], "corpus-id": ["a1"], "score": ["high"]}), "test-00000-of-00001.parquet"),
        (dict(test={"query-id": ["q7"], "corpus-id": ["a1"], "score": [1]}), "nothing to evaluate"),
        (dict(corpus={k: [] for k in TEXT_FIELDS}), "corpus-00000-of-00001.parquet is empty"),
    ],
)
def test_bad_rows_stop_with_file_and_row(tmp_path, capsys, change, message):
    write_stackoverflow_qa(tmp_path / "data" / "stackoverflow-qa", **change)
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2 and message in err, err
    assert not result_file.exists()


def test_unknown_ids_in_judgments_are_counted(tmp_path):
    test = {"query-id": ["q1", "q1", "q2", "q9"], "corpus-id": ["a1", "ghost", "a2", "a1"], "score": [1, 1, 1, 1]}
    write_stackoverflow_qa(tmp_path / "stackoverflow-qa", test=test)
    data = load_coir(str(tmp_path / "stackoverflow-qa"), hub_layout("stackoverflow_qa"), "test", cache_dir=tmp_path / "hf-cache",
                     show_progress=False)
    joined = " ".join(data.warnings)
    assert "skipped judgments of 1 query ids" in joined and "1 judgments naming corpus ids not in" in joined
    assert data.qrels == {"q1": {"a1": 1}, "q2": {"a2": 1}} and data.unretrievable == {"q1": {"ghost": 1}}


def test_missing_split_and_unknown_dataset(tmp_path, capsys):
    write_stackoverflow_qa(tmp_path / "data" / "stackoverflow-qa")
    code, _, err, _ = run_main(capsys, tmp_path / "data", "--split", "dev")
    assert code == 2 and "split 'dev' not found" in err and "available splits: test, train" in err
    code, _, err, _ = run_main(capsys, tmp_path / "data", dataset="csn_cobol")
    assert code == 2 and "unknown code-search dataset 'csn_cobol'" in err


def test_absent_offline_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr("retrieval.beir_data._online", lambda host, timeout=5.0: False)
    with pytest.raises(DataError, match="dataset 'stackoverflow_qa' not found") as exc:
        codesearch_source("stackoverflow_qa", data_dir=tmp_path / "data")
    assert str((tmp_path / "data" / "stackoverflow-qa").resolve()) in str(exc.value)


def test_help_documents_every_flag():
    proc = subprocess.run([sys.executable, "-m", "evaluation.codesearch", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--dataset", "--split", "--data-dir", "--repo", "--datasets-cache", "--model", "--index", "--search-params",
                 "--multi-vector", "--nbits", "--max-length", "--batch-size", "--dtype", "--device", "--cache-dir", "--output", "--quiet"):
        assert flag in proc.stdout
