"""`python -m evaluation.mldr`: the hub repository's own layout read through `datasets`, truncation counted, bad input refused.

The fixtures copy the layout of the hub repository Shitao/MLDR: ``MLDR.py`` (its loading script,
never run), ``README.md`` and ``mldr-v1.0-<lang>/{corpus,dev,test,train}.jsonl.gz``; corpus rows
``{docid, text}``, query rows ``{query_id, query, positive_passages: [{docid, text}], negative_passages}``.
"""

import gzip
import json
import subprocess
import sys

import pytest

from encoder import token_lengths
from evaluation import beir
from retrieval.beir_data import DataError
from evaluation.mldr import load_mldr_hub, main, mldr_source
from tests.conftest import REPO, write_beir

LONG = "The cat is a small domesticated carnivorous mammal that purrs when content. " * 8
DOCS = [
    {"docid": "doc-en-1", "text": LONG},
    {"docid": "doc-en-2", "text": "Paris is the capital and largest city of France."},
    {"docid": "doc-en-3", "text": "Python is a popular programming language created by Guido van Rossum. " * 6},
    {"docid": "doc-en-4", "text": "The Great Barrier Reef is the largest coral reef system in the world."},
]
QUERIES = [
    {"query_id": "q-en-1", "query": "Which animal purrs when it is content?", "positive_passages": [DOCS[0]], "negative_passages": []},
    {"query_id": "q-en-2", "query": "What is the capital of France?", "positive_passages": [DOCS[1]], "negative_passages": []},
    {"query_id": "q-en-3", "query": "Who created the Python programming language?", "positive_passages": [DOCS[2]], "negative_passages": []},
]


def write_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def write_mldr(root, corpus=DOCS, splits=None, language="en"):
    """A local copy of the hub repository Shitao/MLDR in its upstream layout."""
    splits = {"dev": QUERIES[:1], "test": QUERIES} if splits is None else splits
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("---\nlicense: mit\ntask_categories:\n- text-retrieval\n---\n# MLDR\n", encoding="utf-8")
    (root / "MLDR.py").write_text("# the hub's dataset loading script: never run by the harness\n", encoding="utf-8")
    folder = root / f"mldr-v1.0-{language}"
    write_gz(folder / "corpus.jsonl.gz", corpus)
    for split, rows in splits.items():
        write_gz(folder / f"{split}.jsonl.gz", rows)
    return root


def run_main(capsys, data_dir, *extra):
    out = data_dir.parent / "result.json"
    code = main(["--data-dir", str(data_dir), "--datasets-cache", str(data_dir.parent / "hf-cache"), "--output", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_hub_layout_is_read_through_datasets(tmp_path):
    root = write_mldr(tmp_path / "MLDR")
    test = load_mldr_hub(str(root), "en", "test", cache_dir=tmp_path / "hf-cache", show_progress=False)
    assert set(test.corpus) == {d["docid"] for d in DOCS}
    assert test.corpus["doc-en-2"] == {"title": "", "text": DOCS[1]["text"]}
    assert test.queries == {q["query_id"]: q["query"] for q in QUERIES}
    assert test.qrels == {"q-en-1": {"doc-en-1": 1}, "q-en-2": {"doc-en-2": 1}, "q-en-3": {"doc-en-3": 1}}
    dev = load_mldr_hub(str(root), "en", "dev", cache_dir=tmp_path / "hf-cache", show_progress=False)
    assert list(dev.queries) == ["q-en-1"] and not dev.warnings


def test_truncated_documents_are_counted_at_the_length_used(tmp_path, minilm):
    write_mldr(tmp_path / "data" / "MLDR")
    source = mldr_source("en", "test", data_dir=tmp_path / "data", datasets_cache=tmp_path / "hf-cache", show_progress=False)
    result = beir.evaluate_source(source, model=minilm, max_length=32, show_progress=False)
    texts = [d["text"] for d in DOCS]
    expected = int((token_lengths(minilm, texts) > 32).sum())
    assert expected == 2  # doc-en-1 and doc-en-3 are long, the other two fit
    t = result["truncation"]
    assert (t["max_length"], t["requested_max_length"], t["documents_truncated"]) == (32, 32, expected)
    assert t["longest_document_tokens"] == int(token_lengths(minilm, texts).max())
    assert result["dataset"] == "mldr_en" and result["language"] == "en" and result["num_docs"] == 4
    assert result["metrics"]["ndcg@10"] == 1.0  # each question finds its article first
    assert minilm.max_seq_length == 256  # the shared model gets its own length back


def test_default_8192_says_when_the_model_stops_sooner(tmp_path, capsys):
    write_mldr(tmp_path / "data" / "MLDR")
    code, out, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 0, err
    # MiniLM's positions stop at 512: its own 256 is used, and said, never a silent 512
    assert "documents encoded at up to 256 tokens (--max-length 8192 is more than the model's 512 positions: its own limit 256 used)" in out
    assert f"results written to {result_file}" in out
    result = json.loads(result_file.read_text())
    assert result["truncation"]["requested_max_length"] == 8192 and result["truncation"]["max_length"] == 256
    assert result["truncation"]["model_max_length"] == 256 and result["truncation"]["documents_truncated"] == 0
    assert set(result["metrics"]) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert result["source"].endswith("mldr-v1.0-en")


@pytest.mark.parametrize(
    "requested, own, positions, used, note",
    [
        (None, 256, 512, 256, ""),
        (100, 256, 512, 100, ""),
        (400, 256, 512, 400, "beyond the model's own 256"),  # an explicit request the positions allow
        (8192, 256, 512, 256, "--max-length 8192 is more than the model's 512 positions: its own limit 256 used"),
        (8192, 512, 8192, 8192, "beyond the model's own 512"),  # ModernBERT fine-tuned at 512, run at 8,192
    ],
)
def test_length_rule(requested, own, positions, used, note):
    assert beir.choose_max_length(requested, own, positions) == (used, note)


def test_modernbert_positions_allow_8192(shared_dir):
    from types import SimpleNamespace

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(shared_dir / "models" / "modernbert-base")
    stub = SimpleNamespace(max_length=lambda: 512, model=[SimpleNamespace(auto_model=SimpleNamespace(config=config))])
    assert beir.model_limits(stub) == (512, 8192)


def test_a_beir_layout_folder_is_used_first(tmp_path):
    write_mldr(tmp_path / "data" / "MLDR")
    write_beir(tmp_path / "data" / "mldr_en")
    source = mldr_source("en", "test", data_dir=tmp_path / "data", datasets_cache=tmp_path / "hf-cache", show_progress=False)
    assert source.info["source"] == str(tmp_path / "data" / "mldr_en")
    assert set(source.data.corpus) == {"d1", "d2", "d3"}


def test_malformed_line_names_file_and_line(tmp_path, capsys):
    rows = [QUERIES[0], '{"query_id": "q-en-2", "query": broken', QUERIES[2]]
    write_mldr(tmp_path / "data" / "MLDR", splits={"test": rows})
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2
    assert "mldr-v1.0-en/test.jsonl.gz:2: malformed JSON" in err
    assert not result_file.exists()


@pytest.mark.parametrize(
    "corpus, splits, message",
    [
        (DOCS + [{"text": "no id"}], None, "corpus.jsonl.gz:5: field docid is missing"),
        (DOCS, {"test": [{"query_id": "q1", "query": "no positives field"}]}, "test.jsonl.gz: missing field(s) positive_passages"),
        (DOCS, {"test": [QUERIES[0], {**QUERIES[1], "query": ""}]}, "test.jsonl.gz:2: field query is empty"),
        (DOCS, {"dev": QUERIES}, "split 'test' not found"),
        ([], None, "corpus.jsonl.gz is empty"),
    ],
)
def test_bad_rows_stop_with_file_and_line(tmp_path, capsys, corpus, splits, message):
    write_mldr(tmp_path / "data" / "MLDR", corpus=corpus, splits=splits)
    code, _, err, result_file = run_main(capsys, tmp_path / "data")
    assert code == 2 and message in err, err
    assert not result_file.exists()


def test_missing_split_lists_the_available_ones(tmp_path):
    root = write_mldr(tmp_path / "MLDR", splits={"dev": QUERIES})
    with pytest.raises(DataError, match=r"split 'test' not found.*available splits: dev"):
        load_mldr_hub(str(root), "en", "test", cache_dir=tmp_path / "hf-cache")


def test_positives_naming_unknown_documents_are_counted(tmp_path):
    ghost = {**QUERIES[1], "positive_passages": [{"docid": "doc-en-404", "text": "gone"}]}
    root = write_mldr(tmp_path / "MLDR", splits={"test": [QUERIES[0], ghost, {**QUERIES[2], "positive_passages": []}]})
    data = load_mldr_hub(str(root), "en", "test", cache_dir=tmp_path / "hf-cache", show_progress=False)
    assert list(data.qrels) == ["q-en-1"]
    joined = " ".join(data.warnings)
    assert "skipped 1 queries without positive passages" in joined and "1 judgments naming corpus ids not in" in joined
    assert len(data.queries) == 2 and data.unretrievable == {ghost["query_id"]: {"doc-en-404": 1}}  # kept, scored 0


def test_absent_offline_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("retrieval.beir_data._online", lambda host, timeout=5.0: False)
    code, _, err, _ = run_main(capsys, tmp_path / "data")
    assert code == 2
    assert "MLDR 'en' not found" in err and str((tmp_path / "data" / "MLDR" / "mldr-v1.0-en").resolve()) in err


def test_help_documents_every_flag():
    proc = subprocess.run([sys.executable, "-m", "evaluation.mldr", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--language", "--split", "--data-dir", "--repo", "--datasets-cache", "--model", "--index", "--multi-vector",
                 "--max-length", "--batch-size", "--dtype", "--cache-dir", "--output", "--quiet"):
        assert flag in proc.stdout
    assert "8192" in proc.stdout.replace(",", "")
