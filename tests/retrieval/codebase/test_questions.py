"""The question list of ``benchmarks/codebase_questions.py``: every answer names a file of this repository and a symbol
defined in it, and the scoring counts a hit inside that definition, not beside it."""

from benchmarks.codebase_questions import QUESTIONS, answer_spans, load_questions, rank_of_answer, symbol_span
from retrieval.documents import Hit

REPO = QUESTIONS.parents[2]


def test_every_answer_exists_in_this_repository():
    questions = load_questions()
    answerable = [q for q in questions if q["path"]]
    assert len(answerable) >= 40 and len(questions) - len(answerable) >= 5
    assert len({q["id"] for q in questions}) == len(questions) and len({q["question"] for q in questions}) == len(questions)
    spans = answer_spans(REPO, questions)  # raises naming every answer not found
    assert set(spans) == {q["id"] for q in answerable}
    assert all(first <= last for _, first, last in spans.values())


def test_a_hit_counts_only_inside_the_answer():
    source = "import os\n\n\nclass A:\n    @property\n    def b(self):\n        return 1\n\n\ndef c():\n    pass\n"
    assert symbol_span(source, "A.b") == (5, 7) and symbol_span(source, "c") == (10, 11) and symbol_span(source, "A.z") is None

    def hit(start, end, path="m.py"):
        return Hit("x", 1.0, "", metadata={"path": path, "start": start, "end": end})

    span = ("m.py", 5, 7)
    assert rank_of_answer([hit(1, 3), hit(8, 11), hit(6, 6, "n.py"), hit(4, 5)], span) == 4
    assert rank_of_answer([hit(1, 4), hit(8, 11)], span) is None


def test_every_site_packages_answer_is_at_its_line_in_the_pinned_packages():
    """The site-packages list: each answer's file exists in the installed package, and its ``line`` is the ``def``/``class``
    line of the named symbol (the versions pyproject.toml pins; another version may have moved them)."""
    import pytest

    from benchmarks.codebase_questions import SITE_PACKAGES, SITE_QUESTIONS, package_folder, pinned_versions_differ

    if differ := pinned_versions_differ():
        pytest.skip(f"not the pinned versions: {'; '.join(differ)}")
    questions = load_questions(SITE_QUESTIONS)
    answerable = [q for q in questions if q["path"]]
    assert len(answerable) >= 40 and len(questions) - len(answerable) >= 5
    assert len({q["id"] for q in questions}) == len(questions) and len({q["question"] for q in questions}) == len(questions)
    assert {q["path"].split("/")[0] for q in answerable} == set(SITE_PACKAGES)
    root = package_folder(next(iter(SITE_PACKAGES))).parent
    spans = answer_spans(root, questions)  # raises naming every answer not found
    for q in answerable:
        _, first, last = spans[q["id"]]
        line = (root / q["path"]).read_text(encoding="utf-8").split("\n")[q["line"] - 1]
        name = q["symbol"].rsplit(".", 1)[-1]
        assert first <= q["line"] <= last and (f"def {name}(" in line or f"class {name}" in line), (q["id"], line)
