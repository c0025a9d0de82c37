"""The architecture, checked: layering by import-linter, and figures a reviewer can recompute.

- The contracts in ``pyproject.toml`` (``[tool.importlinter]``): packages import only downward
  (evaluation -> retrieval -> indexes, encoder), retrieval's own layers, no cycles between siblings.
  Every import counts, function-local ones included.
- 0 import circles between files (strongly connected components of the module graph).
- No library, benchmark or example file over 600 lines; no function over 80 lines, argparse
  builders excepted; no block of six or more lines written twice outside the tests.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("encoder", "indexes", "retrieval", "evaluation")
CHECKED = PACKAGES + ("benchmarks", "examples")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
DUPLICATE_LINES = 6
ARGPARSE_BUILDER = re.compile(r"^(build_parser|add_\w*arguments)$")


def source_files(folders=CHECKED) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_import_linter_contracts_hold(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(REPO)
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    disabled = {lg: lg.disabled for lg in loggers}
    try:
        assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0, "run `lint-imports` for the report"
    finally:  # import-linter configures logging with disable_existing_loggers: later tests' caplog would see nothing
        for lg, was in disabled.items():
            lg.disabled = was


def module_graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are import circles."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(component)
    return [c for c in out if len(c) > 1]


def test_strongly_connected_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["c", "b", "a"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_files():
    graph = module_graph()
    # A package's __init__ re-exporting its own modules is not a circle between files: a module
    # importing its parent package for a name would be, and shows up through the other edges.
    files = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert strongly_connected(files) == []


def test_no_file_over_600_lines():
    long = {str(p.relative_to(REPO)): n for p in source_files() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert long == {}


def long_functions(path: Path) -> dict[str, int]:
    out = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not ARGPARSE_BUILDER.match(node.name):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if (n := node.end_lineno - start + 1) > MAX_FUNCTION_LINES:
                out[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = n
    return out


def test_no_function_over_80_lines():
    assert {k: v for p in source_files() for k, v in long_functions(p).items()} == {}


def meaningful_lines(path: Path) -> list[tuple[int, str]]:
    """Lines that carry code: blank lines, comments, imports and lone punctuation left out, white space folded."""
    out = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        text = " ".join(line.split())
        if not text or text.startswith(("#", "import ", "from ")) or not re.search(r"\w", text):
            continue
        out.append((no, text))
    return out


def duplicated_blocks(paths: list[Path], size: int = DUPLICATE_LINES) -> list[str]:
    """Runs of ``size`` identical meaningful lines found in two places (exact repeats only)."""
    seen: dict[bytes, str] = {}
    found = defaultdict(set)
    for path in paths:
        lines = meaningful_lines(path)
        for i in range(len(lines) - size + 1):
            window = [text for _, text in lines[i : i + size]]
            key = hashlib.sha1("\n".join(window).encode()).digest()
            where = f"{path.relative_to(REPO)}:{lines[i][0]}"
            if key in seen and seen[key] != where:
                found[seen[key]].add(where)
            else:
                seen.setdefault(key, where)
    return sorted(f"{a} ~ {', '.join(sorted(b))}" for a, b in found.items())


def test_duplicate_finder_sees_a_repeat(tmp_path):
    body = "".join(f"    x{i} = f({i})\n" for i in range(DUPLICATE_LINES))
    (tmp_path / "a.py").write_text("def a():\n" + body)
    (tmp_path / "b.py").write_text("def b():\n" + body)
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert duplicated_blocks([tmp_path / "a.py", tmp_path / "b.py"]) == ["a.py:2 ~ b.py:2"]
    finally:
        REPO = saved


def test_no_block_of_six_lines_written_twice():
    assert duplicated_blocks(source_files()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_says_its_job(package):
    missing = [str(p.relative_to(REPO)) for p in source_files((package,)) if p.stat().st_size and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []
