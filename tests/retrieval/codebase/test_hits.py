"""Hits a person can act on (:mod:`retrieval.codebase.hits`): the signature line, its doc, JSON records, the floor."""

import json

from retrieval.codebase.hits import apply_floor, format_hit, hit_record, signature_offset, snippet
from retrieval.documents import Hit

PYTHON = '''@functools.cache
@other(
    flag=True)
def parse_duration(
    text: str,
) -> int:
    """Turn a span such as "3h20m" into seconds.

    Hours and minutes are both optional.
    """
    hours, _, minutes = text.partition("h")
    return int(hours) * 3600'''
GO = '''package shapes

// Area returns the area of a circle
// of the given radius.
func Area(r float64) float64 {
	return 3.14159 * r * r
}'''
NO_DOC = '''def helper(x):
    y = x + 1
    z = y * 2
    return z'''


def hit(text, name, start=10, score=0.5, path="pkg/mod.py", kind="function", language="python"):
    return Hit(f"{path}#x", score, text, metadata={"path": path, "start": start, "end": start + text.count("\n"), "name": name,
                                                   "kind": kind, "language": language})


def test_the_line_is_the_signature_not_a_decorator_or_comment():
    assert signature_offset(PYTHON.split("\n"), "Parser.parse_duration") == 3
    assert signature_offset(GO.split("\n"), "Area") == 4
    line, shown = snippet(hit(PYTHON, "parse_duration", start=40))
    assert line == 43 and shown == ["def parse_duration(", '    """Turn a span such as "3h20m" into seconds.',
                                     "    Hours and minutes are both optional."]
    line, shown = snippet(hit(GO, "Area", start=1, language="go"))
    assert line == 5 and shown == ["func Area(r float64) float64 {", "// Area returns the area of a circle", "// of the given radius."]


def test_a_unit_without_doc_shows_the_lines_after_its_signature():
    line, shown = snippet(hit(NO_DOC, "helper"), lines=2)
    assert (line, shown) == (10, ["def helper(x):", "    y = x + 1"])


def test_the_printed_hit_names_path_line_symbol_and_score(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = format_hit(hit(PYTHON, "Parser.parse_duration", start=40, score=0.61234), tmp_path / "repo")
    lines = text.split("\n")
    assert lines[0] == "repo/pkg/mod.py:43  Parser.parse_duration  0.612"
    assert lines[1] == "    def parse_duration(" and len(lines) == 4
    assert format_hit(hit("# setup\n" + NO_DOC, "", kind="module"), "/elsewhere", lines=0) == "/elsewhere/pkg/mod.py:11  (module)  0.500"


def test_json_record_has_what_an_editor_jumps_to():
    record = hit_record(hit(GO, "Area", start=1, path="shapes.go", language="go", score=0.25), "/repo")
    assert json.loads(json.dumps(record)) == record
    assert {k: record[k] for k in ("path", "line", "start_line", "end_line", "symbol", "kind", "language", "score")} == {
        "path": "/repo/shapes.go", "line": 5, "start_line": 1, "end_line": 7, "symbol": "Area", "kind": "function",
        "language": "go", "score": 0.25}
    assert record["snippet"].split("\n")[0] == "func Area(r float64) float64 {"


def test_floor_drops_hits_far_below_the_best_and_warns_on_a_weak_best():
    hits = [hit(NO_DOC, "a", score=0.60), hit(NO_DOC, "b", score=0.50), hit(NO_DOC, "c", score=0.30)]
    kept, warning = apply_floor(hits, "dense", dense_top=0.60, relative=0.75)
    assert [h.metadata["name"] for h in kept] == ["a", "b"] and warning is None
    kept, warning = apply_floor([hit(NO_DOC, "a", score=0.9), hit(NO_DOC, "b", score=0.8)], "hybrid", dense_top=0.2, relative=0.75)
    assert len(kept) == 2 and warning.startswith("no good match") and "0.200" in warning
    assert apply_floor(hits, "lexical", relative=0.0) == (hits, None)  # no dense score: no warning
    assert apply_floor([], "dense") == ([], "no match")
