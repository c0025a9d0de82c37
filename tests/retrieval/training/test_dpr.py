"""DPR trainer (`python -m retrieval.training.dpr`): a few training steps on a small SciFact subset.

The long runs (full SciFact, torchrun vs one process) are measurements, not tests; see the
trainer's report. Here: the output is a plain sentence-transformers model with a model card,
ModernBERT with random weights trains, mining agrees with sentence-transformers, the MS MARCO
example's dry run works offline, bad input stops with exit code 2 before any training.
"""

from __future__ import annotations

import csv
import json
import random
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, SHARED, write_beir

SCIFACT = SHARED / "data" / "scifact"
MODERNBERT_BASE = SHARED / "models" / "modernbert-base"
FAST = dict(max_length=64, batch_size=8, logging_steps=1, show_progress=False)


def scifact_subset(root: Path, num_queries: int = 30, num_docs: int = 100, test_split: bool = True) -> Path:
    """The first ``num_queries`` SciFact train queries, their documents and random others; plus the real test qrels."""
    rows = list(csv.reader(open(SCIFACT / "qrels" / "train.tsv", encoding="utf-8"), delimiter="\t"))[1:]
    qids = sorted({r[0] for r in rows}, key=int)[:num_queries]
    qrels = [r for r in rows if r[0] in set(qids)]
    positives = {r[1] for r in qrels}
    corpus = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")]
    others = [d for d in corpus if d["_id"] not in positives]
    random.Random(0).shuffle(others)
    docs = [d for d in corpus if d["_id"] in positives] + others[: num_docs - len(positives)]
    queries = [json.loads(line) for line in open(SCIFACT / "queries.jsonl", encoding="utf-8")]
    test_rows = list(csv.reader(open(SCIFACT / "qrels" / "test.tsv", encoding="utf-8"), delimiter="\t"))[1:]
    test_qids = {r[0] for r in test_rows}
    write_beir(
        root,
        corpus=docs,
        queries=[q for q in queries if q["_id"] in set(qids) | test_qids],
        qrels="query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in qrels),
        split="train",
    )
    if test_split:  # the real test judgments (most name documents left out): never read by the trainer
        (root / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in test_rows), encoding="utf-8"
        )
    return root


@pytest.fixture(scope="module")
def subset(tmp_path_factory, data_dir) -> Path:  # data_dir: the shared_data marker
    return scifact_subset(tmp_path_factory.mktemp("data") / "scifact-mini")


@pytest.fixture(scope="module")
def minilm_dir() -> str:
    from encoder import default_model

    return default_model()


# --------------------------------------------------------------------------- end to end


def test_trains_with_hard_negatives_and_writes_a_plain_sentence_transformers_model(subset, minilm_dir, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    from evaluation.beir import main as beir_main
    from retrieval import Retriever
    from retrieval.training.common import RESULT_FILE
    from retrieval.training.dpr import train_dpr

    out = tmp_path / "model"
    result = train_dpr(minilm_dir, subset, out, max_steps=2, hard_negatives=2, **FAST)
    assert result.output == out and result.steps == 2
    assert [p.name for p in tmp_path.glob(".model*") if p.suffix != ".lock"] == [], "temporary and checkpoint folders are removed"
    # dev scores: before training and of the saved (best) checkpoint, from the toolkit's harness
    assert set(result.scores) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert 0 < result.scores_before["ndcg@10"] <= 1 and 0 < result.scores["ndcg@10"] <= 1
    assert result.mining["mined"] > 0 and result.mining["skipped_positive"] > 0
    assert result.config["mini_batch_size_used"] == 0  # 8 rows x 4 texts x 64 tokens: the plain loss

    card = (out / "README.md").read_text(encoding="utf-8")
    for needle in ("Training with `retrieval.training.dpr`", "MultipleNegativesRankingLoss", "learning_rate",
                   "3e-05", "NO_DUPLICATES", "scifact-mini", "Hard negatives:** 2 per query", "ndcg@10",
                   f"{result.scores['ndcg@10']:.4f}", "held out"):
        assert needle in card, needle
    summary = json.loads((out / RESULT_FILE).read_text())
    assert summary["scores"] == result.scores and summary["config"]["hard_negatives"] == 2

    # a plain sentence-transformers folder: loads, encodes like the trained model, works in Retriever and the harness
    texts = ["Vitamin D deficiency and bone fractures.", "Aspirin lowers the risk of heart attack."]
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert reloaded.max_seq_length == 64
    np.testing.assert_allclose(reloaded.encode(texts), result.model.encode(texts), atol=1e-5)
    retriever = Retriever(str(out), index="Flat")
    retriever.add([("a", texts[0]), ("b", texts[1])])
    assert retriever.search("aspirin and myocardial infarction", k=1)[0].id == "b"
    capsys.readouterr()
    assert beir_main(["--model", str(out), "--data-dir", str(subset.parent), "--dataset", subset.name,
                      "--split", "train", "--quiet"]) == 0
    assert "ndcg@10" in capsys.readouterr().out


def test_dev_set_comes_from_train_queries_never_the_test_split(subset):
    from retrieval.training.data import load_training_data

    data = load_training_data(subset, dev_fraction=0.2, seed=1)
    test_qids = {r[0] for r in csv.reader(open(subset / "qrels" / "test.tsv"), delimiter="\t")} - {"query-id"}
    assert data.dev is not None and len(data.dev.queries) == 6
    assert not set(data.dev.queries) & set(data.qrels), "held-out queries are not trained on"
    assert not set(data.dev.queries) & test_qids
    assert set(data.dev.queries) | set(data.qrels) <= {r[0] for r in csv.reader(open(subset / "qrels" / "train.tsv"), delimiter="\t")}
    assert load_training_data(subset, dev_fraction=0.2, seed=1).dev.queries == data.dev.queries  # seeded
    # a dev split, when present, is used as it is
    dev = subset.parent / "with-dev"
    shutil.copytree(subset, dev)
    train_rows = (subset / "qrels" / "train.tsv").read_text().splitlines()
    (dev / "qrels" / "dev.tsv").write_text("\n".join(train_rows[:3]) + "\n")
    with_dev = load_training_data(dev)
    assert "qrels/dev.tsv" in with_dev.dev.description and len(with_dev.dev.queries) == 2
    assert not set(with_dev.dev.queries) & set(with_dev.qrels), "dev queries are taken out of training"


def test_cached_loss_on_a_datasets_triplet_folder(tmp_path, minilm_dir):
    from datasets import Dataset

    from retrieval.training.dpr import train_dpr

    rows = {"query": [], "positive": [], "negative": []}
    for i in range(24):
        rows["query"].append(f"what is fact number {i}?")
        rows["positive"].append(f"Fact number {i} is that {i} squared is {i * i}.")
        rows["negative"].append(f"Fact number {i + 100} is unrelated to {i}.")
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "triplets"))
    result = train_dpr(minilm_dir, tmp_path / "triplets", tmp_path / "model", mini_batch_size=4, max_steps=1,
                       dev_fraction=0.25, **FAST)
    card = (tmp_path / "model" / "README.md").read_text()
    assert "CachedMultipleNegativesRankingLoss" in card and "mini-batch 4" in card
    assert "6 training queries held out" in card and result.steps == 1


def test_auto_mini_batch_switches_to_the_cached_loss_for_big_steps():
    from retrieval.training.dpr import auto_mini_batch_size

    assert auto_mini_batch_size(32, 2, 256) == 0  # (query, positive) pairs: plain MultipleNegativesRankingLoss
    assert auto_mini_batch_size(32, 7, 256) == 32  # 5 hard negatives: GradCache, 32 texts per forward pass
    assert auto_mini_batch_size(64, 3, 512) == 16


def test_random_modernbert_trains_loss_decreases_and_reloads_identically(tmp_path, subset):
    import torch
    from sentence_transformers import SentenceTransformer, losses

    from encoder import load_model
    from encoder.modernbert import save_random_modernbert
    from retrieval.training.data import build_train_dataset, load_training_data
    from retrieval.training.dpr import train_dpr

    base = save_random_modernbert(MODERNBERT_BASE, tmp_path / "tiny-modernbert", num_layers=2)
    # a fixed batch of training pairs, scored by the same loss before and after training
    data = load_training_data(subset, dev_fraction=0)
    pairs, _ = build_train_dataset(data, None, 0)
    batch = pairs.select(range(16))

    def fixed_batch_loss(model) -> float:
        model.max_seq_length = 128
        loss = losses.MultipleNegativesRankingLoss(model)
        feats = [model.tokenize(list(batch[c])) for c in batch.column_names]
        with torch.no_grad():
            return loss(feats, None).item()

    before = fixed_batch_loss(load_model(str(base), device="cpu"))
    result = train_dpr(str(base), subset, tmp_path / "model", max_steps=4, batch_size=16, max_length=128,
                       dev_fraction=0, precision="fp32", logging_steps=1, show_progress=False)
    assert result.config["learning_rate"] == 8e-5  # ModernBERT-base, paper Table 9
    assert len(result.losses()) == 4
    after = fixed_batch_loss(SentenceTransformer(str(tmp_path / "model"), device="cpu"))
    assert after < before, (before, after)
    texts = ["Rotary position embeddings.", "Local attention every third layer."]
    reloaded = load_model(str(tmp_path / "model"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(texts), result.model.encode(texts), atol=1e-5)
    assert reloaded.max_seq_length == 128


def test_torchrun_two_processes_gather_negatives(subset, minilm_dir, tmp_path):
    out = tmp_path / "model"
    cmd = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "retrieval.training.dpr", "--model", minilm_dir,
           "--data", str(subset), "--output", str(out), "--max-steps", "2", "--batch-size", "4", "--max-length", "64",
           "--dev-fraction", "0", "--quiet"]
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("model written to") == 1  # rank 0 writes, once
    card = (out / "README.md").read_text()
    assert "| processes | 2 |" in card and "| effective_batch | 8 |" in card
    assert "in-batch negatives gathered across processes" in card
    summary = json.loads((out / "train_result.json").read_text())
    assert summary["steps"] == 2 and summary["config"]["processes"] == 2
    assert [p.name for p in tmp_path.glob(".model*") if p.suffix != ".lock"] == []  # the writer lock may stay


# --------------------------------------------------------------------------- mining


def test_mining_matches_sentence_transformers_and_skips_positives(subset, minilm_dir):
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives as st_mine

    from encoder import load_model
    from retrieval.mining import document_text, mine_hard_negatives
    from retrieval.training.data import load_training_data

    model = load_model(minilm_dir, device="cpu", max_length=64)
    data = load_training_data(subset, dev_fraction=0)
    single = {q: d for q, d in data.qrels.items() if len(d) == 1}  # one positive each: one row per query
    negatives, stats = mine_hard_negatives(model, data.queries, data.corpus, single, 3, relative_margin=0.05,
                                           fill=False, show_progress=False)
    for qid, negs in negatives.items():
        assert not set(negs) & set(data.qrels[qid])
    assert stats.skipped_positive > 0 and stats.skipped_margin > 0

    texts = {d: document_text(doc) for d, doc in data.corpus.items()}
    pairs = Dataset.from_dict({"query": [data.queries[q] for q in single],
                               "positive": [texts[next(iter(single[q]))] for q in single]})
    theirs = st_mine(pairs, model, corpus=list(texts.values()), relative_margin=0.05, num_negatives=3,
                     output_format="n-tuple", verbose=False, batch_size=16)
    ours = {data.queries[q]: [texts[d] for d in negs] for q, negs in negatives.items() if len(negs) == 3}
    assert len(theirs) == len(ours)
    for row in theirs:
        assert ours[row["query"]] == [row["negative_1"], row["negative_2"], row["negative_3"]]
    # fill: queries short of negatives within range_max are completed from deeper ranks, same filters
    filled, filled_stats = mine_hard_negatives(model, data.queries, data.corpus, single, 3, relative_margin=0.05,
                                               show_progress=False)
    short = [q for q, negs in negatives.items() if len(negs) < 3]
    assert short and filled_stats.filled > 0 and filled_stats.short_queries < len(short)
    for qid, negs in filled.items():
        assert negs[: len(negatives[qid])] == negatives[qid] and not set(negs) & set(data.qrels[qid])


def test_mining_absolute_margin_range_and_sampling():
    from encoder import load_model
    from retrieval.mining import mine_hard_negatives

    model = load_model(device="cpu")
    corpus = {f"d{i}": text for i, text in enumerate([
        "Cats purr when they are content.", "Kittens purr and meow.", "Lions are big cats that roar.",
        "Dogs bark at strangers.", "Paris is the capital of France.", "Python is a programming language.",
        "Tigers are striped cats.", "A cat's purr vibrates at 25 to 150 hertz.",
    ])}
    queries, qrels = {"q": "Why do cats purr?"}, {"q": {"d0": 1}}
    top, stats = mine_hard_negatives(model, queries, corpus, qrels, 2, relative_margin=None, show_progress=False)
    assert len(top["q"]) == 2 and "d0" not in top["q"] and stats.skipped_margin == 0
    strict, stats = mine_hard_negatives(model, queries, corpus, qrels, 2, relative_margin=None, absolute_margin=0.5,
                                        show_progress=False)
    assert stats.skipped_margin > 0 and not set(strict["q"]) & set(top["q"][:1])
    skipped, _ = mine_hard_negatives(model, queries, corpus, qrels, 2, relative_margin=None, range_min=1,
                                     show_progress=False)
    assert skipped["q"][0] == top["q"][1]
    a, _ = mine_hard_negatives(model, queries, corpus, qrels, 2, relative_margin=None, sampling="random", seed=3,
                               range_max=6, show_progress=False)
    b, _ = mine_hard_negatives(model, queries, corpus, qrels, 2, relative_margin=None, sampling="random", seed=3,
                               range_max=6, show_progress=False)
    assert a == b and "d0" not in a["q"]


# --------------------------------------------------------------------------- example


def test_msmarco_example_dry_run_is_offline(tmp_path, shared_dir):
    """The paper's recipe, scaled down, on SciFact triplets; any socket connection fails the run."""
    guard = (
        "import runpy, socket, sys\n"
        "def refuse(*a, **k):\n"
        "    raise RuntimeError('the dry run tried to use the network')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        f"sys.argv = ['train_dpr_msmarco.py', '--dry-run', '--output', {str(tmp_path / 'model')!r}]\n"
        "runpy.run_path('examples/train_dpr_msmarco.py', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", guard], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"learning_rate": 8e-05' in proc.stdout and '"warmup_ratio": 0.05' in proc.stdout
    card = (tmp_path / "model" / "README.md").read_text()
    assert "CachedMultipleNegativesRankingLoss" in card and "| effective_batch | 16 |" in card


# --------------------------------------------------------------------------- bad input


def run_cli(capsys, *argv):
    from retrieval.training.dpr import main

    code = main(list(argv) + ["--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_nothing_written(out: Path):
    assert not out.exists(), "no output on bad input"
    assert not list(out.parent.glob(f".{out.name}*")), "no checkpoints or temporary folders either"


def test_train_split_without_positives(tmp_path, capsys):
    data = write_beir(tmp_path / "d", qrels="query-id\tcorpus-id\tscore\nq1\td1\t0\nq2\td2\t0\n", split="train")
    code, _, err = run_cli(capsys, "--data", str(data), "--output", str(tmp_path / "out"))
    assert code == 2 and "no judgment with a positive score" in err
    assert_nothing_written(tmp_path / "out")


def test_qrels_naming_only_unknown_documents(tmp_path, capsys):
    data = write_beir(tmp_path / "d", qrels="query-id\tcorpus-id\tscore\nq1\tnope\t1\nq2\tgone\t1\n", split="train")
    code, _, err = run_cli(capsys, "--data", str(data), "--output", str(tmp_path / "out"))
    assert code == 2 and "cannot train on" in err and "no judgment names a known query and document" in err
    assert_nothing_written(tmp_path / "out")


def test_unknown_ids_are_dropped_with_a_warning(tmp_path):
    from retrieval.training.data import load_training_data

    data = write_beir(tmp_path / "d", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tgone\t1\nq9\td2\t1\n", split="train")
    loaded = load_training_data(data, dev_fraction=0)
    assert loaded.qrels == {"q1": {"d1": 1}}
    assert any("corpus ids" in w for w in loaded.warnings) and any("query ids" in w for w in loaded.warnings)


def test_missing_train_split_lists_the_available_ones(tmp_path, capsys):
    data = write_beir(tmp_path / "d")  # only qrels/test.tsv
    code, _, err = run_cli(capsys, "--data", str(data), "--output", str(tmp_path / "out"))
    assert code == 2 and "split 'train' not found" in err and "available splits: test" in err
    assert_nothing_written(tmp_path / "out")


def test_unknown_model(tmp_path, capsys):
    data = write_beir(tmp_path / "d", split="train")
    code, _, err = run_cli(capsys, "--model", str(tmp_path / "no-such-model"), "--data", str(data),
                           "--output", str(tmp_path / "out"))
    assert code == 2 and "could not load model" in err
    assert_nothing_written(tmp_path / "out")


def test_existing_output_survives_a_failed_run(tmp_path, capsys):
    data = write_beir(tmp_path / "d", split="train")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("previous model")
    code, _, _ = run_cli(capsys, "--model", str(tmp_path / "nope"), "--data", str(data), "--output", str(tmp_path / "out"))
    assert code == 2 and (tmp_path / "out" / "keep.txt").read_text() == "previous model"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--margin", "1.5"], "a relative --margin must be < 1"),
        (["--dev-fraction", "1"], "--dev-fraction must be in [0, 1)"),
        (["--hard-negatives", "-1"], "--hard-negatives must be >= 0"),
    ],
)
def test_bad_options(tmp_path, capsys, argv, message):
    data = write_beir(tmp_path / "d", split="train")
    code, _, err = run_cli(capsys, "--data", str(data), "--output", str(tmp_path / "out"), *argv)
    assert code == 2 and message in err


def test_bad_datasets_input(tmp_path, capsys):
    from datasets import Dataset

    Dataset.from_dict({"query": ["a", "b"], "positive": ["", " "]}).save_to_disk(str(tmp_path / "empty"))
    code, _, err = run_cli(capsys, "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    assert code == 2 and "no row has both an anchor and a positive" in err
    Dataset.from_dict({"query": ["a"], "positive": ["b"], "label": [1]}).save_to_disk(str(tmp_path / "labels"))
    code, _, err = run_cli(capsys, "--data", str(tmp_path / "labels"), "--output", str(tmp_path / "out"))
    assert code == 2 and "['label'] are not text" in err
    code, _, err = run_cli(capsys, "--data", str(tmp_path / "missing" / "folder"), "--output", str(tmp_path / "out"))
    assert code == 2 and "no such file or folder" in err
    assert_nothing_written(tmp_path / "out")


def test_help_explains_every_flag():
    proc = subprocess.run([sys.executable, "-m", "retrieval.training.dpr", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--model", "--data", "--output", "--pooling", "--max-length", "--hard-negatives", "--margin",
                 "--margin-type", "--range-min", "--range-max", "--max-score", "--sampling", "--no-fill", "--mini-batch-size",
                 "--no-gather", "--epochs", "--max-steps", "--batch-size", "--gradient-accumulation", "--learning-rate",
                 "--warmup-ratio",
                 "--seed", "--precision", "--dev-fraction", "--eval-steps", "--dataset-config", "--quiet"):
        assert flag in proc.stdout, flag
