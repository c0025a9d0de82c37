"""``python -m evaluation.report``: table, significance, per-query files, PNGs, and a second run that only re-reads."""

import json
import time

import numpy as np
import pytest

from evaluation import plots, report, significance
from tests.conftest import write_beir

DOCS = ["cats purr when they are content", "Paris is the capital of France", "Python is a programming language",
        "dogs bark at strangers", "the sun is a star", "rain falls from clouds", "bees make honey from nectar",
        "the moon orbits the earth"]
QUERIES = ["which animal purrs", "capital of France", "a language for programming", "what barks", "what is the sun",
           "where does rain come from", "who makes honey", "what goes around the earth"]


def tiny_task(root, name, n):
    corpus = [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate(DOCS[:n])]
    queries = [{"_id": f"q{i}", "text": t} for i, t in enumerate(QUERIES[:n])]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n))
    return write_beir(root / name, corpus=corpus, queries=queries, qrels=qrels)


def decoded(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    """The offline MiniLM under another folder (links to its files): a second model, scored like the first."""
    from encoder import default_model
    from pathlib import Path

    src, dst = Path(default_model()), tmp_path_factory.mktemp("models") / "minilm-copy"
    for f in src.rglob("*"):
        if f.is_file():
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / f.relative_to(src)).symlink_to(f)
    return dst


def test_report_runs_every_pair_then_reuses_them(tmp_path, second_model, capsys):
    data = tmp_path / "data"
    tiny_task(data, "animals", 8)
    codeset = tiny_task(tmp_path / "elsewhere", "codeset", 5)  # a task given by its path
    out = tmp_path / "report"
    argv = ["--models", f"minilm,{second_model}", "--tasks", f"animals,{codeset}", "--data-dir", str(data),
            "--out", str(out), "--quiet", "--resamples", "200", "--encoder-bench", str(encoder_bench(tmp_path))]
    assert report.main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 pairs evaluated, 0 reused" in printed
    table = (out / "report.md").read_text()
    assert "| model | animals | codeset | mean |" in table and "**1.0000**" in table
    assert "(+0.0000, p=1.000)" in table  # the same weights: no difference, and the test says so
    result = json.loads((out / "report.json").read_text())
    assert len(result["cells"]) == 4 and len(result["tests"]) == 2
    assert all(t["p_value"] == 1.0 and t["n"] in (8, 5) for t in result["tests"])
    assert result["figures"]["ndcg10_by_task"]["bars"] == 4  # 2 models x 2 tasks
    assert result["figures"]["encoder_throughput"]["bars"] == 6  # 3 implementations x 2 sets
    for name in ("ndcg10_by_task.png", "encoder_throughput.png"):
        decoded(out / name)
    per_query = list((out / "per_query").rglob("*.json"))
    mteb_files = [p for p in (out / "mteb").rglob("*.json") if p.name != "model_meta.json"]
    assert len(per_query) == 4 and len(mteb_files) == 4
    assert set(json.loads(per_query[0].read_text())["queries"]["q0"]) >= {"ndcg@10"}

    start = time.perf_counter()
    assert report.main(argv) == 0
    assert "0 pairs evaluated, 4 reused" in capsys.readouterr().out
    assert time.perf_counter() - start < 30  # no model loaded, nothing encoded
    assert json.loads((out / "report.json").read_text())["tests"] == result["tests"]  # seeded: same p-values


def test_unknown_task_and_mode_are_clear_errors(tmp_path, capsys):
    assert report.main(["--models", "minilm", "--tasks", "nowhere", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "task 'nowhere': no BEIR-layout folder" in capsys.readouterr().err
    tiny_task(tmp_path, "t", 3)
    assert report.main(["--models", "minilm", "--tasks", "t", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                        "--retrieval", "dense,fuzzy"]) == 2
    assert "unknown retrieval mode 'fuzzy'" in capsys.readouterr().err


def encoder_bench(tmp_path):
    sets = {s: {"ours_tok_s": 500.0 + i, "ours_torch_ops_tok_s": 450.0, "transformers_tok_s": 400.0, "bound_tok_s": 700.0}
            for i, s in enumerate(["fixed_512", "variable_512"])}
    path = tmp_path / "encoder_bench.json"
    path.write_text(json.dumps({"device": "cpu", "dtype": "float32", "threads": 2, "sets": sets}))
    return path


def test_quality_speed_curves_from_index_bench_runs_and_sweeps(tmp_path):
    runs = []
    for i, (qps, ndcg) in enumerate([(20.0, 0.72), (50.0, 0.71)]):
        path = tmp_path / f"bench{i}.json"
        path.write_text(json.dumps({"methods": {"faiss": {"qps": qps, "ndcg@10": ndcg}, "exhaustive": {"qps": 3.0, "ndcg@10": 0.73}}}))
        runs.append(path)
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"curves": {"plaid": [{"qps": 1.2, "ndcg@10": 0.728, "label": "defaults"}]}}))
    curves = plots.read_curves([*runs, sweep])
    drawn = plots.quality_speed(curves, tmp_path / "qs.png")
    assert drawn["lines"] == 3 and drawn["points"] == 5  # faiss (2 knob settings), exhaustive (twice), plaid
    decoded(drawn["path"])


def test_bootstrap_interval_brackets_the_mean_and_tests_detect_a_shift():
    rng = np.random.default_rng(0)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 200))}
    b = {q: min(1.0, v + 0.1) for q, v in a.items()}
    low, high = significance.bootstrap_ci(a)
    assert low < np.mean(list(a.values())) < high and high - low < 0.15
    assert significance.paired_test(a, b)["p_value"] < 0.001
    assert significance.paired_test(a, b, method="t")["p_value"] < 0.001
    noise = {q: v + rng.normal(0, 0.01) for q, v in a.items()}
    assert significance.paired_test(a, noise, resamples=2000)["p_value"] > 0.01


def test_code_tasks_get_the_code_tokenizer_and_stale_hybrid_results_are_not_reused(tmp_path):
    code = report.Task("stdlib", tiny_task(tmp_path, "stdlib", 2))
    (code.folder / "codeset.json").write_text("{}")
    prose, csn = report.Task("animals", tmp_path / "animals"), report.Task("csn_ruby", tmp_path / "csn_ruby")
    assert [report.lexical_tokenizer(t, "auto") for t in (code, prose, csn)] == ["code", "english", "code"]
    assert report.lexical_tokenizer(code, "english") == "english"

    settings = {"index": "Flat", "dtype": "float32"}
    summary, per_query = tmp_path / "s.json", tmp_path / "q.json"
    per_query.write_text("{}")
    now = report.search_settings("hybrid", "code")
    for weight, expected in ((now["weight"], True), (0.5, False)):  # a result of an older default weight is stale
        stored = {**now, "mode": "hybrid", "weight": weight}
        summary.write_text(json.dumps({"model": "m", "index": "Flat", "dtype": "float32", "retrieval": stored}))
        assert (report.reusable(summary, per_query, "m", settings, now) is not None) is expected
    assert report.reusable(summary, per_query, "m", settings, report.search_settings("hybrid", "english")) is None
