"""A unit longer than the model is cut at its inner boundaries (statements, blocks, paragraphs) before lines."""

import re
import textwrap
from dataclasses import replace

from retrieval.chunking.structural import chunk_files, fit_chunks, split_lines, structural_chunks

# A real-looking long function: setup statements, a loop whose body alone is over the budget, a dict literal
# and a call spread over lines (never to be cut inside), and a tail.
LOADER = textwrap.dedent('''\
    import json
    import os


    def load_settings(path, environ=None, *, strict=False):
        """Read the settings file at ``path``, overlay the environment and check every value."""
        environ = os.environ if environ is None else environ
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: the settings file must hold a JSON object, not {type(raw).__name__}")
        defaults = {
            "host": "127.0.0.1",
            "port": 8080,
            "workers": os.cpu_count() or 1,
            "timeout": 30.0,
            "log_level": "info",
            "cache_dir": os.path.expanduser("~/.cache/settings"),
        }
        settings = dict(defaults)
        problems = []
        for key, value in raw.items():
            if key not in defaults:
                if strict:
                    problems.append(f"unknown key {key!r}")
                continue
            expected = type(defaults[key])
            if expected is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, expected):
                problems.append(f"{key}: expected {expected.__name__}, got {type(value).__name__}")
                continue
            if key == "port" and not 0 < value < 65536:
                problems.append(f"port {value} is out of range 1..65535")
                continue
            if key == "workers" and value < 1:
                problems.append(f"workers must be at least 1, not {value}")
                continue
            settings[key] = value
        for key in defaults:
            variable = "SETTINGS_" + key.upper()
            if variable in environ:
                settings[key] = type(defaults[key])(environ[variable])
        if problems:
            raise ValueError(
                f"{path}: {len(problems)} problem(s) in the settings file: "
                + "; ".join(problems)
                + " (fix them or run without --strict)"
            )
        os.makedirs(settings["cache_dir"], exist_ok=True)
        return settings
''')

# Lines a cut may precede: a statement of the function body (4 spaces) or of the loop body (8 spaces).
STATEMENT = re.compile(r"^( {4}| {8})(environ|with|if|raise|defaults|settings|problems|for|expected|os|return|variable)\b")


def words(texts):
    """A stand-in tokenizer: one token per word, plus two special tokens."""
    return [len(t.split()) + 2 for t in texts]


def covered_once(chunks, text):
    numbers = [n for c in chunks for n in range(c.start, c.end + 1)]
    assert numbers == sorted(set(numbers))  # in order, no line twice
    return {n for n, line in enumerate(split_lines(text), 1) if line.strip()} <= set(numbers)


def test_a_long_function_is_cut_between_statements_not_inside_them():
    lines = split_lines(LOADER)
    chunks = chunk_files([("app/settings.py", LOADER)], words, max_tokens=70)
    parts = [c for c in chunks if c.name == "load_settings"]
    assert len(parts) >= 3 and all(n <= 70 for n in words([c.full_text for c in chunks]))
    assert covered_once(chunks, LOADER)
    assert parts[0].start == 1 and parts[0].end > 6 and parts[-1].end == len(lines)  # the imports (3 lines) join the function
    for part in parts[1:]:
        assert STATEMENT.match(lines[part.start - 1]), lines[part.start - 1]  # every piece starts a statement
    assert any(lines[p.start - 1].startswith(" " * 8) for p in parts)  # the loop, too long alone, is cut inside
    # the dict literal and the multi-line raise stay whole
    for opener, closer in (("defaults = {", "}"), ("raise ValueError(", ")")):
        first = next(n for n, line in enumerate(lines, 1) if line.strip().startswith(opener) and line.endswith(("{", "(")))
        last = next(n for n in range(first + 1, len(lines) + 1) if lines[n - 1].strip() == closer)
        assert any(c.start <= first and last <= c.end for c in parts), opener
    # the loop body, over the budget by itself, is cut at its own statements: every "continue" stays with its "if"
    assert not any(lines[p.start - 1].strip() == "continue" for p in parts)


def test_line_windows_cut_the_same_function_mid_statement():
    """The same budget with the breaks dropped (the cut before this change): some piece starts inside a statement."""
    chunk = next(c for c in structural_chunks("app/settings.py", LOADER) if c.name == "load_settings")
    pieces = fit_chunks([replace(chunk, breaks=())], words, 70)
    lines = split_lines(LOADER)
    assert len(pieces) >= 3 and any(not STATEMENT.match(lines[p.start - 1]) for p in pieces[1:])


LOOP = """\
\tfor key, entry := range c.shard{i} {{
\t\tif entry.expires > 0 && entry.expires < now {{
\t\t\tdelete(c.shard{i}, key)
\t\t\tremoved++
\t\t}}
\t}}
"""
GO = (
    "package cache\n\n// Sweep removes expired entries and reports how many it removed.\n"
    "func (c *Cache) Sweep(now int64) int {\n\tremoved := 0\n\tc.mu.Lock()\n\tdefer c.mu.Unlock()\n"
    + "".join(LOOP.format(i=i) for i in range(8)) + "\treturn removed\n}\n"
)


def test_a_long_go_method_is_cut_between_its_loops():
    chunks = chunk_files([("cache/sweep.go", GO)], words, max_tokens=60)
    parts = [c for c in chunks if c.name == "Cache.Sweep"]
    lines = split_lines(GO)
    assert len(parts) >= 3 and covered_once(chunks, GO)
    assert all(n <= 60 for n in words([c.full_text for c in chunks]))
    assert parts[0].start == 1 and parts[0].end > 4  # package clause, doc comment and header stay together
    for part in parts[1:]:  # a piece starts at a loop (or the return), never at a "}" or inside a loop
        assert re.match(r"^\t(for|return)\b", lines[part.start - 1]), lines[part.start - 1]


def test_a_long_markdown_section_is_cut_at_paragraphs():
    paragraphs = [" ".join(f"p{i}w{j}" for j in range(12)) + "\n" + " ".join(f"p{i}v{j}" for j in range(12)) for i in range(6)]
    text = "# Guide\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunk_files([("docs/guide.md", text)], words, max_tokens=64)
    lines = split_lines(text)
    assert len(chunks) >= 3 and covered_once(chunks, text)
    for chunk in chunks[1:]:  # each piece starts a paragraph: its first line follows a blank one
        assert not lines[chunk.start - 2].strip() and lines[chunk.start - 1].startswith("p")


def test_plain_text_keeps_line_windows():
    text = "\n\n".join(f"line {i} of the log" for i in range(40)) + "\n"
    chunks = chunk_files([("server.log", text)], words, max_tokens=40)
    assert all(not any(c.breaks) for c in chunks) and covered_once(chunks, text)
    assert len(chunks) > 1 and all(n <= 40 for n in words([c.full_text for c in chunks]))
