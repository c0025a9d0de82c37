"""Tree-sitter structure of markup and data (HTML, CSS, JSON, YAML, TOML), and what is read as plain text.

Data files get a unit per top-level entry and its children (not one per leaf), so a
``package.json`` or a CI file is a few named chunks; an unknown extension, or a file that is
mostly syntax errors, is cut into line windows.
"""

import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from retrieval.chunking.structural import PLAIN_TEXT, file_units, language_for, structural_chunks
from retrieval.chunking.units import UnparsableError

CASES = [
    pytest.param(
        "src/a.html",
        r"""
        <!DOCTYPE html>
        <html>
        <head>
          <title>Shop</title>
          <style>
            body { margin: 0; }
          </style>
        </head>
        <body>
          <nav id="menu">
            <a href="/">Home</a>
          </nav>
          <script>
            function openMenu() { document.getElementById("menu").hidden = false; }
          </script>
        </body>
        </html>
        """,
        [
            ('style', '', 5, 7, ''),
            ('element', 'menu', 10, 12, ''),
            ('script', '', 13, 15, ''),
        ],
        id="html",
    ),
    pytest.param(
        "src/a.css",
        r"""
        /* Layout of the page. */
        body {
          margin: 0;
          font-family: sans-serif;
        }

        .card, .panel {
          padding: 1rem;
        }

        @media (max-width: 600px) {
          .card {
            padding: 0;
          }
        }
        """,
        [
            ('rule', 'body', 1, 5, 'Layout of the page.'),
            ('rule', '.card, .panel', 7, 9, ''),
            ('media', '(max-width: 600px)', 11, 15, ''),
            ('rule', '.card', 12, 14, ''),
        ],
        id="css",
    ),
    pytest.param(
        "src/a.json",
        r"""
        {
          "name": "shop",
          "version": "1.0.0",
          "scripts": {
            "build": "tsc",
            "test": "jest"
          },
          "dependencies": {
            "react": "^18.0.0"
          }
        }
        """,
        [
            ('key', 'scripts', 4, 7, ''),
            ('key', 'dependencies', 8, 10, ''),
        ],
        id="json",
    ),
    pytest.param(
        "src/a.yaml",
        r"""
        # CI settings.
        name: ci
        on:
          push:
            branches: [main]
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - run: make test
        """,
        [
            ('key', 'on', 3, 5, ''),
            ('key', 'on.push', 4, 5, ''),
            ('key', 'jobs', 6, 10, ''),
            ('key', 'jobs.test', 7, 10, ''),
        ],
        id="yaml",
    ),
    pytest.param(
        "src/a.toml",
        r"""
        # Package manifest.
        [package]
        name = "tokenizer"
        version = "0.1.0"

        [dependencies]
        serde = "1"

        [[bin]]
        name = "tok"
        """,
        [
            ('table', 'package', 1, 4, 'Package manifest.'),
            ('table', 'dependencies', 6, 7, ''),
            ('table', 'bin', 9, 10, ''),
        ],
        id="toml",
    ),
]


def walk(units):
    for unit in units:
        yield unit
        yield from walk(unit.children)


@pytest.mark.parametrize(("path", "source", "expected"), CASES)
def test_markup_and_data_units(path, source, expected):
    units = language_for(path).units(textwrap.dedent(source).lstrip("\n"))
    assert [u.kind for u in units] == ["document"]
    assert [(u.kind, u.name, u.start, u.end, u.docstring.split("\n")[0]) for u in walk(units[0].children)] == expected


def test_unknown_extensions_fall_back_to_line_windows():
    for path in ("Makefile", "notes.txt", "data.xyz", "script.lua"):
        language, units = file_units(path, "a = 1\n\nb = 2\n")
        assert language is PLAIN_TEXT and [(u.kind, u.start, u.end) for u in units] == [("text", 1, 3)]
    assert [(c.kind, c.start, c.end, c.language) for c in structural_chunks("Makefile", "all:\n\tmake x\n")] == [("text", 1, 2, "text")]


def test_syntax_errors_recover_or_fall_back():
    language, units = file_units("bad.py", "def broken(:\n    pass\n\n\ndef fine():\n    return 1\n")
    assert language.name == "python" and [u.name for u in units[0].children][-1] == "fine"  # recovered
    garbage = "}}}} {{{ ))) (((\n <<<>>> ]]] [[[\n"
    with pytest.raises(UnparsableError, match="syntax errors"):
        language_for("x.js").units(garbage)
    assert file_units("x.js", garbage)[0] is PLAIN_TEXT
    strict = language_for("bad.py").units("def broken(:\n    pass\n\n\ndef fine():\n    return 1\n", strict=True)
    assert [u.name for u in strict[0].children] == ["fine"]  # strict: definitions with errors inside left out


def test_parsing_from_many_threads_gives_the_same_units():
    text = "".join(f"def f{i}(x):\n    '''Doc {i}.'''\n    return x + {i}\n\n\n" for i in range(200))
    language = language_for("m.py")
    expected = language.units(text)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: language.units(text), range(32)))
    assert all(r == expected for r in results) and len(expected[0].children) == 200
