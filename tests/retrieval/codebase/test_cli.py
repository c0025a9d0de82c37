"""``python -m retrieval search`` with filters, ``--grep``, ``--json``, modes and the floor, on a tiny three-language project
indexed once with the offline MiniLM (the model is handed to the command instead of loaded again)."""

import json

import pytest

import retrieval.codebase.index as codebase_index
from retrieval.__main__ import main
from retrieval.codebase.index import index_codebase
from retrieval.codebase.search import path_condition

FILES = {
    "src/shapes/area.py": '''"""Geometry helpers."""


class Circle:
    """A circle of a given radius."""

    def area(self):
        """Area of the circle."""
        return 3.14159 * self.radius ** 2


def parse_duration(text):
    """Turn a span such as "3h20m" into seconds."""
    hours, _, minutes = text.partition("h")
    return int(hours) * 3600 + int(minutes.rstrip("m") or 0) * 60
''',
    "src/stack/stack.go": '''package stack

// Stack is a last-in first-out list of integers.
type Stack struct {
	items []int
}

// Push adds an item on top of the stack.
func (s *Stack) Push(x int) {
	s.items = append(s.items, x)
}

// Pop removes and returns the top item of the stack.
func (s *Stack) Pop() int {
	x := s.items[len(s.items)-1]
	s.items = s.items[:len(s.items)-1]
	return x
}
''',
    "docs/guide.md": "# Guide\n\n## Durations\nDurations such as 3h20m are turned into seconds.\n\n## Stacks\nPush adds an item on top.\n",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory, minilm):
    root = tmp_path_factory.mktemp("project")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    out = tmp_path_factory.mktemp("cli-index")  # empty: index_codebase fills it
    index_codebase(root, out, model=minilm, show_progress=False)
    return root, out


@pytest.fixture
def search(index, minilm, monkeypatch, capsys):
    """``search(*flags)`` -> (exit code, stdout lines, stderr) of ``python -m retrieval search INDEX ...``."""
    load = codebase_index.load_codebase
    monkeypatch.setattr(codebase_index, "load_codebase", lambda out, **kw: load(out, **{**kw, "model": minilm}))

    def run(*flags):
        code = main(["search", str(index[1]), *flags])
        captured = capsys.readouterr()
        return code, [line for line in captured.out.split("\n") if line], captured.err

    return run


def headers(lines):
    return [line for line in lines if not line.startswith("    ")]


def test_filters_apply_inside_the_search(search):
    code, lines, _ = search("turn a span of hours and minutes into seconds", "--all")
    assert code == 0 and {h.split(":")[0].rsplit("/", 3)[-1] for h in headers(lines)} >= {"area.py", "guide.md"}
    _, lines, _ = search("turn a span of hours and minutes into seconds", "--code-only", "--all")
    assert headers(lines) and not any("guide.md" in h for h in headers(lines))
    _, lines, _ = search("add an item", "--lang", "go", "--kind", "method", "--all")
    assert [h.split("  ")[1] for h in headers(lines)] and all(h.split("  ")[1] in ("Stack.Push", "Stack.Pop") for h in headers(lines))
    _, lines, _ = search("area", "--path", "src/shapes", "--all", "-k", "10")
    assert headers(lines) and all("src/shapes/area.py" in h for h in headers(lines))
    _, lines, _ = search("remove the top item", "--path", "**/*.go", "--grep", r"\bPop\b", "--all")
    assert len(headers(lines)) == 1 and headers(lines)[0].split("  ")[1] == "Stack.Pop"


def test_json_lines_for_editors_and_agents(search, index):
    code, lines, _ = search("remove and return the top of a stack", "--json", "--lang", "go", "-k", "2", "--all")
    records = [json.loads(line) for line in lines]
    assert code == 0 and len(records) == 2
    top = records[0]
    assert set(top) >= {"path", "line", "end_line", "symbol", "kind", "language", "score", "snippet"}
    assert top["symbol"] == "Stack.Pop" and top["language"] == "go" and top["path"].endswith("src/stack/stack.go")
    source = (index[0] / "src/stack/stack.go").read_text().split("\n")
    assert source[top["line"] - 1].startswith("func (s *Stack) Pop()") and top["snippet"].startswith("func (s *Stack) Pop()")


def test_identifier_queries_and_modes(search):
    for mode in ("lexical", "hybrid"):
        code, lines, _ = search("parseDuration", "--mode", mode, "-k", "1")
        assert code == 0 and headers(lines)[0].split("  ")[1] == "parse_duration"


def test_a_question_the_code_does_not_answer_says_so(search, index):
    code, lines, err = search("send an email notification to the administrators")
    assert code == 0 and "no good match" in err and headers(lines)  # still shown, flagged on stderr
    code, lines, err = search("turn a span of hours and minutes into seconds", "--code-only")
    assert code == 0 and "no good match" not in err and headers(lines)[0].split("  ")[1] == "parse_duration"
    code, lines, err = search("send an email notification to the administrators", "--all")
    chunks = sum(f["chunks"] for f in json.loads((index[1] / "codebase.json").read_text())["files"].values())
    assert "no good match" not in err and len(headers(lines)) == min(chunks, 10)  # every hit up to -k, no floor


def test_bad_filters_are_errors_naming_what_exists(search):
    code, _, err = search("stack", "--lang", "cobol")
    assert code == 2 and "--lang cobol" in err and "go" in err and "python" in err
    code, _, err = search("stack", "--kind", "funtion")
    assert code == 2 and "kinds:" in err and "method" in err
    code, _, err = search("stack", "--grep", "Pop(")
    assert code == 2 and "not a regular expression" in err
    code, lines, err = search("stack", "--grep", "no such text anywhere")
    assert code == 0 and not lines and "no match" in err


def test_path_condition_reads_folders_files_and_globs():
    assert path_condition("src/**") == {"$glob": "src/**"}
    folder = path_condition("./src/shapes/")
    assert folder == {"$regex": r"^src/shapes(/|\Z)"}


def test_help_lists_the_new_flags(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--path", "--lang", "--kind", "--code-only", "--grep", "--mode", "--json", "--all"))
    with pytest.raises(SystemExit):
        main(["index", "--help"])
    assert "--watch" in capsys.readouterr().out
