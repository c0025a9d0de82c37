"""Language structure (Python by tree-sitter, Markdown by headings, plain text) and chunks that fit a model."""

import textwrap

import numpy as np
import pytest

from retrieval.chunking import structural as chunkers
from retrieval.chunking.structural import (
    PLAIN_TEXT,
    Chunk,
    Unit,
    UnparsableError,
    chunk_files,
    file_units,
    fit_chunks,
    language_for,
    register,
    split_lines,
    structural_chunks,
)

PYTHON = textwrap.dedent('''\
    #!/usr/bin/env python
    """Geometry helpers.

    Second paragraph of the module docstring.
    """
    import math

    RATIO = 1.5


    @cached
    @other(1)
    def area(radius):
        """Area of a circle.

        Uses pi.
        """
        return math.pi * radius ** 2


    class Shape(Base):
        """A shape with a name."""

        sides = 0

        def __init__(self, name):
            self.name = name

        async def scaled(self, factor):
            \'\'\'Scale the shape — by a factor.\'\'\'
            return Shape(self.name)

        class Meta:
            def inner(self): "Inner — doc."; return 1


    if math.pi > 3:
        def fast():
            return 1
    else:
        def fast():
            """Slow path."""
            return 2


    def outer():
        def nested():
            return 0
        return nested
    ''')


def walk(units):
    for unit in units:
        yield unit
        yield from walk(unit.children)


def test_python_units_have_exact_lines_names_and_docstrings():
    language, units = file_units("pkg/geometry.py", PYTHON)
    assert language.name == "python" and len(units) == 1
    module = units[0]
    assert (module.kind, module.name, module.start, module.end) == ("module", "", 1, len(split_lines(PYTHON)))
    assert module.docstring == "Geometry helpers.\n\nSecond paragraph of the module docstring."
    found = [(u.kind, u.name, u.start, u.end) for u in walk(module.children)]
    assert found == [
        ("function", "area", 11, 18),  # from the first decorator
        ("class", "Shape", 21, 34),
        ("method", "Shape.__init__", 26, 27),
        ("method", "Shape.scaled", 29, 31),
        ("class", "Shape.Meta", 33, 34),
        ("method", "Shape.Meta.inner", 34, 34),
        ("function", "fast", 38, 39),  # both platform branches
        ("function", "fast", 41, 43),
        ("function", "outer", 46, 49),  # nested functions stay inside
    ]
    lines = split_lines(PYTHON)
    assert lines[10] == "@cached" and lines[17].strip() == "return math.pi * radius ** 2"
    by_name = {u.name: u for u in walk(module.children)}
    assert by_name["area"].docstring == "Area of a circle.\n\nUses pi."
    assert by_name["Shape.scaled"].docstring == "Scale the shape — by a factor."
    assert by_name["Shape.Meta.inner"].docstring == "Inner — doc."
    assert by_name["Shape.__init__"].docstring == ""


def test_docstring_removal_keeps_the_rest_of_the_code():
    module = file_units("geometry.py", PYTHON)[1][0]
    by_name = {u.name: u for u in walk(module.children)}
    assert by_name["area"].code == "@cached\n@other(1)\ndef area(radius):\n    return math.pi * radius ** 2"
    assert by_name["Shape.scaled"].code == "async def scaled(self, factor):\n    return Shape(self.name)"
    # A docstring sharing its line with code: ast columns count UTF-8 bytes, "—" is three.
    assert by_name["Shape.Meta.inner"].code == "def inner(self): return 1"
    assert by_name["Shape.__init__"].code == "def __init__(self, name):\n    self.name = name"
    assert module.code.startswith("#!/usr/bin/env python\nimport math\n\nRATIO = 1.5\n")
    assert "Geometry helpers" not in module.code and "Area of a circle" in module.code  # only its own docstring goes
    assert '"""' not in by_name["Shape"].code.split("\n")[1]


def test_line_numbers_survive_form_feeds_and_crlf():
    text = "x = 1\f\n\ndef f():\r\n    'Doc.'\r\n    return 1\n"
    unit = file_units("a.py", text)[1][0].children[0]
    assert (unit.name, unit.start, unit.end, unit.docstring) == ("f", 3, 5, "Doc.")


def test_python_mostly_syntax_errors_falls_back_to_plain_text():
    text = "def (((:\n  ]]]\n)))\n"
    with pytest.raises(UnparsableError):
        language_for("bad.py").units(text)
    language, units = file_units("bad.py", text)
    assert language is PLAIN_TEXT and [(u.kind, u.start, u.end) for u in units] == [("text", 1, 3)]


def test_markdown_sections_by_headings():
    text = textwrap.dedent("""\
        Intro before any heading.

        # Guide
        Some text.
        ```bash
        # a comment, not a heading
        ```
        ## Install ##
        pip install it

        Setext title
        ------------
        body
        ### Deep
        deeper
        # Other
        end
        """)
    units = language_for("README.md").units(text)
    assert [(u.name, u.start, u.end) for u in units] == [
        ("", 1, 2),
        ("Guide", 3, 7),
        ("Guide > Install", 8, 10),
        ("Guide > Setext title", 11, 13),
        ("Guide > Setext title > Deep", 14, 15),
        ("Other", 16, 17),
    ]
    assert units[1].code == "# Guide\nSome text.\n```bash\n# a comment, not a heading\n```"


def test_registry_finds_languages_by_extension(monkeypatch):
    assert language_for("a/b.PY").name == "python" and language_for("x.markdown").name == "markdown"
    assert language_for("notes.txt") is PLAIN_TEXT and language_for("Makefile") is PLAIN_TEXT

    class Toy:
        name, extensions = "toy", (".toy",)

        def units(self, text):
            return [Unit("section", line, i, i) for i, line in enumerate(split_lines(text), 1) if line]

    monkeypatch.setattr(chunkers, "_LANGUAGES", dict(chunkers._LANGUAGES))  # leave the real registry alone
    register(Toy())
    assert language_for("z.toy").name == "toy"
    assert [c.name for c in structural_chunks("z.toy", "a\n\nb\n")] == ["a", "b"]


def test_structural_chunks_cover_every_line_once():
    chunks = structural_chunks("pkg/geometry.py", PYTHON)
    lines = split_lines(PYTHON)
    covered = [n for c in chunks for n in range(c.start, c.end + 1)]
    assert covered == sorted(set(covered))  # in order, no overlap
    assert {n for n, line in enumerate(lines, 1) if line.strip()} <= set(covered)
    by_name = {c.name: c for c in chunks}
    assert by_name["area"].text.startswith("@cached") and '"""Area of a circle.' in by_name["area"].text  # chunks keep docstrings
    assert by_name["area"].title == "pkg/geometry.py area" and by_name["Shape.scaled"].text.startswith("async def scaled")
    assert (by_name[""].start, by_name[""].kind) == (1, "module")  # module header: docstring and imports
    # A short gap ("else:") joins the definition after it instead of standing alone.
    assert [(c.name, c.start, c.end) for c in chunks if c.name == "fast"] == [("fast", 37, 39), ("fast", 40, 43)]


def words(texts):
    """A stand-in tokenizer: one token per word, plus two special tokens."""
    return [len(t.split()) + 2 for t in texts]


def test_fit_chunks_cut_long_units_by_lines_and_long_lines_by_characters():
    body = "\n".join(f"    x{i} = {i} + {i}" for i in range(60))  # 3 words a line
    text = f"def long():\n{body}\n    return x0\n\n\ndef short():\n    return 1\n" + "y = '" + "word " * 200 + "'\n"
    chunks = chunk_files([("m.py", text)], words, max_tokens=40)
    assert all(n <= 40 for n in words([c.full_text for c in chunks]))
    long_parts = [c for c in chunks if c.name == "long"]
    assert len(long_parts) > 4 and long_parts[0].start == 1 and long_parts[-1].end == 62
    assert all(a.end + 1 == b.start for a, b in zip(long_parts, long_parts[1:]))  # consecutive windows
    assert "\n".join(c.text for c in long_parts).split() == " ".join(split_lines(text)[:62]).split()
    assert [c.name for c in chunks if c.name == "short"] == ["short"]
    pieces = [c for c in chunks if c.start == c.end == 67]  # one 200-word line, cut by characters
    assert len(pieces) > 4 and "".join(p.text for p in pieces) == split_lines(text)[66]


def test_fit_chunks_halves_pieces_a_non_additive_tokenizer_leaves_over():
    def clumsy(texts):  # joining lines costs an extra token per line break
        return [len(t.split()) + t.count("\n") + 2 for t in texts]

    chunk = Chunk("a.txt", 1, 30, "text", "", "\n".join(f"w{i} w{i}" for i in range(30)), "text")
    out = fit_chunks([chunk], clumsy, 20)
    assert all(n <= 20 for n in clumsy([c.full_text for c in out]))
    assert [n for c in out for n in range(c.start, c.end + 1)] == list(range(1, 31))


def test_chunks_fit_the_real_tokenizer(minilm):
    from encoder import token_lengths

    text = open(chunkers.__file__, encoding="utf-8").read()
    chunks = chunk_files([("retrieval/chunking/structural.py", text), ("notes.txt", "lorem ipsum " * 2000)], lambda t: token_lengths(minilm, t), 128)
    counts = token_lengths(minilm, [c.full_text for c in chunks])
    assert counts.max() <= 128 and np.median(counts) > 40
    assert {c.language for c in chunks} == {"python", "text"}


def test_a_chunk_embeds_what_a_document_embeds():
    from retrieval.documents import document_text

    chunk = Chunk("pkg/m.py", 3, 4, "function", "f", "def f():\n    pass", "python")
    assert chunk.full_text == document_text({"title": chunk.title, "text": chunk.text}) == "pkg/m.py f def f():\n    pass"
