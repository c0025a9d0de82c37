import subprocess
import sys

from tests.conftest import REPO


def test_rag_example_runs_and_finds_the_right_note():
    proc = subprocess.run([sys.executable, "examples/rag_search.py"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("index saved to")
    assert "unpad" in lines[1]  # best hit for the padding question
