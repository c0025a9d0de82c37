import subprocess
import sys

from tests.conftest import REPO


def test_rag_example_runs_and_finds_the_right_note():
    proc = subprocess.run([sys.executable, "examples/rag_search.py"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("index saved to")
    assert "unpad" in lines[1]  # best hit for the padding question


def test_colbert_recipe_dry_run(tmp_path, shared_dir):  # reads ../shared/data/scifact
    out = tmp_path / "colbert"
    proc = subprocess.run([sys.executable, "examples/train_colbert_msmarco.py", "--dry-run", "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"model written to {out}" in proc.stdout
    assert (out / "1_Dense").is_dir() and (out / "train_result.json").is_file()
