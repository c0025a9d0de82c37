"""``python -m evaluation.codeset``: a CodeSearchNet-style set from a small repository written here."""

import json
import os
import textwrap
from pathlib import Path

from evaluation.codeset import build_codeset, first_paragraph, is_test_path, main, module_name

GOOD = textwrap.dedent('''\
    """Helpers that convert between units of time.

    Nothing here talks to the network.
    """
    import re

    PATTERN = re.compile(r"(\\d+)h")


    def parse_duration(text):
        """Turn a span such as 3h20m into seconds.

        Details that are not part of the query.
        """
        hours, _, minutes = text.partition("h")
        total = int(hours) * 3600
        return total + int(minutes.rstrip("m") or 0) * 60


    class Clock:
        """A clock."""

        def __init__(self, start):
            """Start the clock at a given moment in time."""
            self.start = start
            self.laps = []
            self.stopped = False

        def elapsed(self, now):
            """Seconds since the clock started, never negative."""
            if now < self.start:
                return 0
            return now - self.start

        def test_helper(self, now):
            """Check the clock against a reference time."""
            expected = now - self.start
            assert self.elapsed(now) == expected
            return expected

        def tiny(self):
            """Return the start of the clock."""
            return self.start

        def short(self):
            """Start."""
            value = self.start
            other = value
            return other
    ''')

DUPLICATES = textwrap.dedent('''\
    def first_name(person):
        """Return the name of the person given."""
        parts = person.split()
        name = parts[0]
        return name


    def given_name(person):
        """Return the name of the person given."""
        pieces = person.split()
        first = pieces[0]
        return first


    def copy_of_parse(text):
        """A second copy of the same code, documented differently."""
        hours, _, minutes = text.partition("h")
        total = int(hours) * 3600
        return total + int(minutes.rstrip("m") or 0) * 60
    ''')


def make_repo(root: Path) -> Path:
    (root / "timeutil").mkdir(parents=True)
    (root / "timeutil" / "__init__.py").write_text(GOOD, encoding="utf-8")
    (root / "timeutil" / "people.py").write_text(DUPLICATES.replace("copy_of_parse", "parse_again"), encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "helpers.py").write_text('def check_clock(clock):\n    """Make sure the clock ticks forward."""\n    a = 1\n    b = 2\n    return a + b\n', encoding="utf-8")
    (root / "broken.py").write_text("def broken(:\n", encoding="utf-8")
    (root / "README.md").write_text("# Time utilities\n", encoding="utf-8")
    (root / ".gitignore").write_text("generated/\n", encoding="utf-8")
    (root / "generated").mkdir()
    (root / "generated" / "api.py").write_text('def made(x):\n    """Generated code should not be in the set."""\n    y = x\n    z = y\n    return z\n', encoding="utf-8")
    return root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_helpers():
    assert first_paragraph("Turn a span\n  into seconds.\n\nMore.") == "Turn a span into seconds."
    assert is_test_path("pkg/tests/x.py") and is_test_path("test_io.py") and is_test_path("idlelib/idle_test/a.py")
    assert not is_test_path("unittest/case.py") and not is_test_path("contest.py")
    assert module_name("json/__init__.py") == "json" and module_name("json/decoder.py") == "json.decoder"


def test_builder_writes_codesearchnet_style_pairs(tmp_path):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "sets" / "timeutil"
    stats = build_codeset(repo, out, show_progress=False)

    corpus = {d["_id"]: d for d in read_jsonl(out / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in read_jsonl(out / "queries.jsonl")}
    qrels = (out / "qrels" / "test.tsv").read_text().splitlines()
    assert set(corpus) == {"timeutil/__init__.py", "timeutil/__init__.py::parse_duration", "timeutil/__init__.py::Clock.elapsed"}
    assert qrels[0] == "query-id\tcorpus-id\tscore" and sorted(qrels[1:]) == sorted(f"q:{d}\t{d}\t1" for d in corpus)
    assert queries["q:timeutil/__init__.py::parse_duration"] == "Turn a span such as 3h20m into seconds."
    assert queries["q:timeutil/__init__.py"] == "Helpers that convert between units of time."

    function = corpus["timeutil/__init__.py::parse_duration"]
    assert function["title"] == "parse_duration" and function["text"].startswith("def parse_duration(text):\n    hours, _")
    assert "Turn a span" not in function["text"] and function["metadata"] == {"path": "timeutil/__init__.py", "start": 10, "end": 17, "kind": "function"}
    method = corpus["timeutil/__init__.py::Clock.elapsed"]
    assert method["text"] == "def elapsed(self, now):\n    if now < self.start:\n        return 0\n    return now - self.start"
    module = corpus["timeutil/__init__.py"]
    assert module["title"] == "timeutil" and module["text"].startswith("import re\n") and "class Clock" in module["text"]
    assert "Helpers that convert" not in module["text"] and "Seconds since the clock started" in module["text"]

    assert stats["counts"] == {"queries": 3, "documents": 3, "functions": 2, "modules": 1}
    assert stats["dropped"] == {
        "dunder": 1,            # Clock.__init__
        "test code": 2,         # Clock.test_helper, tests/helpers.py
        "short code": 1,        # Clock.tiny: two lines once the docstring is gone
        "short docstring": 1,   # Clock.short: "Start."
        "duplicate code": 1,    # parse_again repeats parse_duration
        "shared docstring": 2,  # first_name and given_name
    }
    # README.md, .gitignore; broken.py is read, its definition with a syntax error left out
    assert stats["files"] == {"other languages": 2, "read python": 4}
    assert stats["files_skipped"] == {"ignored": 1}  # generated/
    assert json.loads((out / "codeset.json").read_text())["counts"] == stats["counts"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".") and p.is_dir()]  # no temporary folder left


def test_cli_reports_token_lengths_and_refuses_foreign_folders(tmp_path, capsys, shared_dir):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "sets" / "timeutil"
    tokenizer = shared_dir / "models" / "modernbert-base"  # the shared_dir fixture marks the test shared_data
    assert main([str(repo), "--out", str(out), "--tokenizer", str(tokenizer), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3 queries -> 3 documents" in printed and "> 512: 0.0%" in printed and f"--dataset {out.name}" in printed
    tokens = json.loads((out / "codeset.json").read_text())["tokens"]
    assert tokens["all"]["documents"] == 3 and 20 < tokens["all"]["median"] < 512
    assert main([str(repo), "--out", str(out), "--quiet"]) == 0  # a set written by the builder is replaced

    assert main([str(repo), "--out", str(repo / "timeutil"), "--quiet"]) == 2
    assert "is not a code-search set" in capsys.readouterr().err
    assert (repo / "timeutil" / "__init__.py").is_file()
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("no code here\n", encoding="utf-8")
    assert main([str(tmp_path / "plain"), "--out", str(tmp_path / "o")]) == 2
    assert "no docstring/code pairs" in capsys.readouterr().err


def test_undecodable_file_name_is_skipped_and_counted(tmp_path, capsys):
    repo = make_repo(tmp_path / "repo")
    with open(os.path.join(os.fsencode(repo / "timeutil"), b"bad\xff.py"), "wb") as f:  # a name that is not UTF-8
        f.write(GOOD.replace("parse_duration", "parse_span").encode("utf-8"))
    out = tmp_path / "sets" / "timeutil"
    assert main([str(repo), "--out", str(out), "--quiet"]) == 0
    assert "skipped: 1 ignored, 1 undecodable-name" in capsys.readouterr().out
    stats = json.loads((out / "codeset.json").read_text(encoding="utf-8"))
    assert stats["files_skipped"] == {"ignored": 1, "undecodable-name": 1} and stats["counts"]["queries"] == 3


def test_gitignore_lines_pathspec_rejects_are_read_as_git_reads_them(tmp_path, caplog):
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("[z-a]\n\\\ngenerated/\n[!\n", encoding="utf-8")  # [z-a] ignores `z`, as in git
    stats = build_codeset(repo, tmp_path / "sets" / "timeutil", show_progress=False)
    assert stats["files_skipped"] == {"bad-ignore-line": 2, "ignored": 1} and stats["counts"]["queries"] == 3
    assert ".gitignore:2: '\\\\' cannot be parsed" in caplog.text and ".gitignore:1: '[z-a]' read as git" in caplog.text


def test_bad_exclude_pattern_is_an_error(tmp_path, capsys):
    repo = make_repo(tmp_path / "repo")
    assert main([str(repo), "--out", str(tmp_path / "o"), "--exclude", "generated\\", "--quiet"]) == 2
    assert capsys.readouterr().err == "error: --exclude:1: 'generated\\\\' cannot be parsed (git matches nothing with it)\n"


def test_repository_path_not_utf8_is_an_error(tmp_path, capsys):
    repo = make_repo(Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"repo\xff"))))
    assert main([str(repo), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "repo\\udcff': the path is not UTF-8" in capsys.readouterr().err
