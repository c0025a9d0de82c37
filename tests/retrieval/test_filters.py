"""The ``where`` language: each operator, AND of keys, missing fields, chunk fields, and clear errors."""

import pytest

from retrieval.documents import Document
from retrieval.filters import glob_pattern, matching_ids

DOCS = [
    Document("a", "alpha text", "A", {"path": "src/app/main.py", "year": 2024, "tags": "x"}),
    Document("b", "beta text", "B", {"path": "src/util.py", "year": 2023}),
    Document("c", "gamma", "C", {"path": "docs/readme.md", "year": 2024}),
    Document("d#0", "delta part one", "D", {"path": "src/app/big.py"}, parent_id="d", start=0, end=14),
    Document("d#1", "delta part two", "D", {"path": "src/app/big.py"}, parent_id="d", start=10, end=24),
]


@pytest.mark.parametrize("where, expected", [
    ({"year": 2024}, ["a", "c"]),
    ({"year": {"$in": [2023, 1999]}}, ["b"]),
    ({"path": {"$prefix": "src/"}}, ["a", "b", "d#0", "d#1"]),
    ({"path": {"$glob": "src/*.py"}}, ["b"]),
    ({"path": {"$glob": "src/**"}}, ["a", "b", "d#0", "d#1"]),
    ({"path": {"$glob": "src/**/*.py"}}, ["a", "b", "d#0", "d#1"]),
    ({"path": {"$glob": "**/*.md"}}, ["c"]),
    ({"path": {"$glob": "src/app/?ain.py"}}, ["a"]),
    ({"text": {"$regex": "part (one|two)$"}}, ["d#0", "d#1"]),
    ({"title": "B"}, ["b"]),
    ({"id": {"$in": ["a", "d#1"]}}, ["a", "d#1"]),
    ({"parent_id": "d"}, ["d#0", "d#1"]),
    ({"parent_id": {"$in": ["a", "d"]}}, ["a", "d#0", "d#1"]),  # a whole document is its own parent
    ({"path": {"$prefix": "src/"}, "year": 2024}, ["a"]),  # keys AND together
    ({"tags": "x"}, ["a"]),  # documents without the field never match
    ({"missing": {"$in": [None]}}, []),
    ({"year": {"$prefix": "20"}}, []),  # string operators never match a non-string value
])
def test_where_keeps_exactly_the_matching_documents(where, expected):
    assert matching_ids(where, DOCS) == expected


def test_glob_does_not_cross_folders_with_one_star():
    assert glob_pattern("src/*").match("src/a.py") and not glob_pattern("src/*").match("src/app/a.py")
    assert glob_pattern("a.py").match("a.py") and not glob_pattern("a.py").match("xa.py")


@pytest.mark.parametrize("where, message", [
    ({"path": {"$like": "x"}}, r"where\['path'\]: expected a value or one of"),
    ({"path": {"$in": "abc"}}, r"\$in takes a list"),
    ({"path": {"$prefix": 3}}, r"\$prefix takes a string"),
    ({"path": {"$regex": "("}}, r"bad \$regex pattern"),
    ({"path": {"$in": [1], "$prefix": "a"}}, "expected a value or one of"),
    (["path"], "where must be a dict"),
])
def test_bad_filters_are_refused_with_the_key_named(where, message):
    with pytest.raises(ValueError, match=message):
        matching_ids(where, DOCS)
