"""A code-search set from any local repository, made the way CodeSearchNet was made.

``python -m evaluation.codeset REPO --out DIR`` writes a BEIR-layout folder (``corpus.jsonl``,
``queries.jsonl``, ``qrels/test.tsv``, plus ``codeset.json`` with the counts) that
``python -m evaluation.beir --data-dir <parent of DIR> --dataset <name of DIR>`` evaluates.

Pairs (Husain et al. 2019, arXiv 1909.09436, section 2): the query is the first paragraph of a
docstring or doc comment (up to a blank line or a ``@param``-style block tag), whitespace
collapsed; its one relevant document is

- for a function or method: its code with the docstring removed (title: its qualified name,
  ``Class.method``, as CodeSearchNet's ``func_name``);
- for a module: the whole file without its docstring (title: the dotted module name), the
  long documents that function-level sets lack.

Every tree-sitter language of code (:data:`DOCSTRING_LANGUAGES`: Python docstrings, JSDoc,
Go doc comments, Rust ``///``, Javadoc, C/C++ comment blocks, C# ``///``, Ruby/PHP/Kotlin/Swift/
Scala doc comments, ``--languages`` to choose) takes part. Definitions with a syntax error
inside are left out (tree-sitter's ``strict`` reading: CodeSearchNet kept code that parses).
Filters, CodeSearchNet's where it has one, each counted in ``codeset.json``:

- ``test code``: files in test folders (a path component ``test``/``tests``/``testing``/
  ``testdata``/``__tests__``/``spec``, ``test_*``, ``*_test(s)`` (Go), ``*.test``/``*.spec``
  (JavaScript), ``*Test(s)`` (Java)) and functions whose name contains ``test`` (CodeSearchNet drops
  the latter; the former is ours: test suites' docstrings describe test cases, not code
  someone searches for);
- ``dunder``: ``__init__``, ``__repr__`` and other ``__special__`` methods (CodeSearchNet drops
  constructors and standard extension methods);
- ``constructor``: ``constructor``, ``__construct``, ``initialize``, ``init`` and methods named
  after their class (Java, C#), which CodeSearchNet drops too;
- ``short docstring``: a first paragraph of fewer than 3 words (CodeSearchNet: 3 tokens);
- ``long docstring``: more than 256 words (CodeXGLUE's cut);
- ``short code``: fewer than 3 non-blank lines once the docstring is gone (CodeSearchNet);
- ``duplicate code``: the same code (whitespace and the defined name aside) as an earlier
  pair, which is kept (CodeSearchNet removes near-duplicates; copies suffice within one
  repository);
- ``shared docstring``: a query text shared by several pairs ("Return the name.") cannot
  tell them apart, so all of them go.

Files are read by :class:`retrieval.codebase.files.SourceTree` (``.gitignore`` honoured, ``--exclude``
patterns, binary/huge/non-UTF-8 files, non-UTF-8 names and unreadable folders skipped and counted);
a file that is mostly syntax errors is counted and left out.
The output folder is built in a temporary sibling and renamed into place.

``--corpus chunks`` and ``--corpus windows`` make a repository-search variant of the same pairs:
the corpus is every file read, cut as ``python -m retrieval index`` cuts it (by language
structure) or into line windows of the same token budget, with the queried docstrings and
doc comments blanked (line numbers kept, so no chunk holds its query's text); a query's
relevant documents are the chunks holding lines of its function. The two compare structure
against line windows on identical files and queries. A unit over the token budget is cut at
its inner boundaries (statements, blocks, paragraphs) in ``chunks`` and by lines only in
``windows``, the cut every language but Python and Markdown had before tree-sitter.

Examples
--------
>>> from evaluation.codeset import build_codeset                          # doctest: +SKIP
>>> import sysconfig
>>> stats = build_codeset(sysconfig.get_paths()["stdlib"], "runs/codesets/stdlib", exclude=["site-packages/"])
>>> stats["counts"]["queries"] == stats["counts"]["documents"]
True
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from encoder import default_model
from indexes import storage
from retrieval.chunking.structural import PLAIN_TEXT, Chunk, Unit, UnparsableError, fit_chunks, language_for, split_lines, structural_chunks
from retrieval.chunking.grammars import LANGUAGES
from retrieval.codebase.files import MAX_BYTES, PatternError, SourceTree, describe_skipped, utf8_name

FORMAT = "codeset"
MIN_QUERY_WORDS = 3
MAX_QUERY_WORDS = 256
MIN_CODE_LINES = 3
TOKEN_THRESHOLDS = (512, 2048, 8192)
CHUNK_TOKENS = 256  # the default model's (all-MiniLM-L6-v2) maximum length: chunks of file corpora fit it
TEST_PART = re.compile(r"^(tests?|testing|testdata|__tests__|specs?|test_.*|.*_tests?|.*[.](test|spec)|.*[a-z]Tests?)$")
# Languages whose units carry docstrings or doc comments: the tree-sitter languages of code, not markup or data.
DOCSTRING_LANGUAGES = tuple(name for name, spec in LANGUAGES.items() if spec["doc"] and spec.get("root", "module") == "module")
CONSTRUCTORS = frozenset({"constructor", "__construct", "initialize", "init"})  # JS/TS, PHP, Ruby, Swift
TAG_LINE = re.compile(r"\n\s*@\w")  # a JSDoc/Javadoc/PHPDoc block tag ends the description


class CodesetError(ValueError):
    """Bad input for the builder; the message says what to do."""


def first_paragraph(docstring: str) -> str:
    """The docstring up to its first blank line or block tag (``@param``), whitespace collapsed to single spaces."""
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    return " ".join(TAG_LINE.split("\n" + paragraph, maxsplit=1)[0].split())


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return any(TEST_PART.match(part if i < len(parts) - 1 else PurePosixPath(part).stem) for i, part in enumerate(parts))


def module_name(path: str) -> str:
    """``json/decoder.py`` -> ``json.decoder``; a package's ``__init__.py`` names the package."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _definitions(units: list[Unit]):
    """Functions and methods at any depth of classes, and modules, in file order."""
    for unit in units:
        if unit.kind in ("module", "function", "method"):
            yield unit
        yield from _definitions(list(unit.children))


def candidate_pairs(path: str, units: list[Unit], drops: Counter, *, min_query_words: int, max_query_words: int,
                    min_code_lines: int) -> list[dict]:
    """The (query, document) pairs of one file that pass the per-pair filters; ``drops`` counts the others."""
    pairs = []
    test_file = is_test_path(path)
    for unit in _definitions(units):
        if not unit.docstring:
            continue
        simple_name = unit.name.rsplit(".", 1)[-1]
        if test_file or (unit.kind != "module" and "test" in simple_name.lower()):
            drops["test code"] += 1
            continue
        if unit.kind != "module" and simple_name.startswith("__") and simple_name.endswith("__"):
            drops["dunder"] += 1
            continue
        if unit.kind == "method" and (simple_name in CONSTRUCTORS or simple_name == unit.name.rsplit(".", 2)[-2]):
            drops["constructor"] += 1  # CodeSearchNet drops constructors; Java and C# name them after the class
            continue
        query = first_paragraph(unit.docstring)
        words = len(query.split())
        if words < min_query_words:
            drops["short docstring"] += 1
            continue
        if words > max_query_words:
            drops["long docstring"] += 1
            continue
        if sum(1 for line in unit.code.split("\n") if line.strip()) < min_code_lines:
            drops["short code"] += 1
            continue
        pairs.append({
            "kind": unit.kind,
            "path": path,
            "name": unit.name,
            "title": module_name(path) if unit.kind == "module" else unit.name,
            "start": unit.start,
            "end": unit.end,
            "query": query,
            "code": unit.code.strip("\n"),
            "doc_span": list(unit.doc_span),
        })
    return pairs


def deduplicate(pairs: list[dict], drops: Counter) -> list[dict]:
    """Drop repeated code (the first copy stays) and then every pair whose query text is shared."""
    seen, unique = set(), []
    for pair in pairs:
        # The same code under another name is a copy too: compare with the defined name blanked out.
        simple = re.escape(pair["name"].rsplit(".", 1)[-1]) if pair["name"] else None
        code = re.sub(rf"\b{simple}\b", "_", pair["code"], count=1) if simple else pair["code"]
        key = hashlib.sha256(" ".join(code.split()).encode("utf-8")).digest()
        if key in seen:
            drops["duplicate code"] += 1
            continue
        seen.add(key)
        unique.append(pair)
    queries = Counter(p["query"] for p in unique)
    if shared := sum(n for n in queries.values() if n > 1):
        drops["shared docstring"] += shared
    return [p for p in unique if queries[p["query"]] == 1]


def assign_ids(pairs: list[dict]) -> None:
    """Document ids ``path`` (module) and ``path::Class.method`` (``@line`` added where a name repeats)."""
    taken = set()
    for pair in pairs:
        doc_id = pair["path"] if pair["kind"] == "module" else f"{pair['path']}::{pair['name']}"
        if doc_id in taken:
            doc_id = f"{doc_id}@{pair['start']}"
        taken.add(doc_id)
        pair["id"] = doc_id


def token_stats(texts: list[str], tokenizer_path: str | Path, max_length: int = 8192) -> dict:
    """Token lengths of ``texts`` with a Hugging Face tokenizer (special tokens included)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    tokenizer.model_max_length = max_length  # ModernBERT's config leaves it unset (a huge placeholder)
    quiet = logging.getLogger("transformers.tokenization_utils_base")
    level, lengths = quiet.level, []
    quiet.setLevel(logging.ERROR)  # counting only: no "longer than the maximum" warning per text
    try:
        for start in range(0, len(texts), 1024):
            ids = tokenizer(texts[start : start + 1024], add_special_tokens=True, truncation=False,
                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            lengths.extend(len(x) for x in ids)
    finally:
        quiet.setLevel(level)
    n = np.asarray(lengths, dtype=np.int64)
    if not len(n):
        return {"documents": 0}
    stats = {
        "tokenizer": str(tokenizer_path),
        "documents": int(len(n)),
        "mean": round(float(n.mean()), 1),
        "median": int(np.median(n)),
        "p90": int(np.percentile(n, 90)),
        "max": int(n.max()),
    }
    for threshold in TOKEN_THRESHOLDS:
        stats[f"share_over_{threshold}"] = round(float((n > threshold).mean()), 4)
    return stats


def check_paths(repo: Path, out: Path) -> None:
    """Raise :class:`CodesetError` unless ``repo`` is a folder with a UTF-8 path and ``out`` is free or an earlier set."""
    if not repo.is_dir():
        raise CodesetError(f"{repo} is not a folder")
    if not utf8_name(str(repo.resolve())):
        raise CodesetError(f"{ascii(str(repo.resolve()))}: the path is not UTF-8; rename it or read it through a UTF-8 link")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "codeset.json").is_file())):
        raise CodesetError(f"{out} exists and is not a code-search set written by this builder; choose another --out")


def read_pairs(tree: SourceTree, languages: tuple[str, ...], drops: Counter, files: Counter, texts: dict, *,
               show_progress: bool, **filters) -> list[dict]:
    """The pairs of every file of ``languages`` that parses cleanly; ``texts`` gets each such file's text."""
    pairs = []
    for source in tqdm(tree, desc="read files", unit="file", disable=not show_progress):
        language = language_for(source.path)
        if language.name not in languages:
            files["other languages"] += 1
            continue
        if "\t" in source.path or "\n" in source.path:
            files["tab or newline in path"] += 1
            continue
        try:  # CodeSearchNet kept files that parse; tree-sitter would recover, so ask it to be strict
            units = language.units(source.text, strict=True) if hasattr(language, "query") else language.units(source.text)
        except UnparsableError:
            files["unparsable"] += 1
            continue
        files[f"read {language.name}"] += 1
        texts[source.path] = (source.text, language.name)
        pairs += candidate_pairs(source.path, units, drops, **filters)
    return pairs


def file_corpus(pairs: list[dict], texts: dict, mode: str, count_tokens, max_tokens: int) -> tuple[list[dict], list[tuple]]:
    """Every file cut into chunks (``mode="chunks"``: by structure; ``"windows"``: line windows), queried docs blanked.

    Returns the corpus rows and the judgments ``(query id, chunk id)``: the chunks that hold
    lines of the query's function. Each pair's doc comment or docstring lines are blanked
    (line numbers kept), so no chunk holds the query text itself.
    """
    blanks: dict[str, set[int]] = {}
    for p in pairs:
        if p["doc_span"]:
            blanks.setdefault(p["path"], set()).update(range(p["doc_span"][0], p["doc_span"][1] + 1))
    chunks: list[Chunk] = []
    for path in sorted(texts):
        text, language = texts[path]
        lines = [("" if n in blanks.get(path, ()) else line) for n, line in enumerate(split_lines(text), 1)]
        blanked = "\n".join(lines)
        if mode == "chunks":
            chunks += structural_chunks(path, blanked)
        else:
            chunks += [Chunk(path, u.start, u.end, u.kind, "", u.code, "text") for u in PLAIN_TEXT.units(blanked)]
    chunks = fit_chunks(chunks, count_tokens, max_tokens)
    by_path: dict[str, list[tuple[int, Chunk]]] = {}
    rows = []
    for i, chunk in enumerate(chunks):
        doc_id = f"{chunk.path}#{i}"
        by_path.setdefault(chunk.path, []).append((doc_id, chunk))
        rows.append({"_id": doc_id, "title": chunk.title, "text": chunk.text,
                     "metadata": {"path": chunk.path, "start": chunk.start, "end": chunk.end, "kind": chunk.kind}})
    judged = [(f"q:{p['id']}", doc_id) for p in pairs for doc_id, c in by_path.get(p["path"], ())
              if c.start <= p["end"] and c.end >= p["start"]]
    return rows, judged


def token_counter(tokenizer_path: str | Path):
    """Token counts as the model embeds a text (special tokens included) with a Hugging Face tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    tokenizer.model_max_length = 1 << 30  # counting only: no "longer than the maximum" warnings

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]

    return count


def build_codeset(
    repo: str | Path,
    out: str | Path,
    *,
    exclude: list[str] = (),
    max_file_bytes: int = MAX_BYTES,
    min_query_words: int = MIN_QUERY_WORDS,
    max_query_words: int = MAX_QUERY_WORDS,
    min_code_lines: int = MIN_CODE_LINES,
    tokenizer: str | Path | None = None,
    languages: tuple[str, ...] = DOCSTRING_LANGUAGES,
    corpus: str = "units",
    max_tokens: int = CHUNK_TOKENS,
    count_tokens=None,
    show_progress: bool = True,
) -> dict:
    """Write the code-search set of ``repo`` to ``out`` (BEIR layout) and return its statistics.

    ``tokenizer`` (a Hugging Face tokenizer folder) adds the documents' token lengths, as
    embedded (``title + " " + text``), to the statistics. ``corpus="units"``: one document per
    pair (CodeSearchNet); ``"chunks"`` / ``"windows"``: every file read, cut by structure or
    into line windows of at most ``max_tokens`` (counted by ``count_tokens``, else with
    ``tokenizer``, else the offline MiniLM's tokenizer), functions and methods only.
    """
    repo, out = Path(repo), Path(out)
    check_paths(repo, out)
    if unknown := sorted(set(languages) - set(DOCSTRING_LANGUAGES)):
        raise CodesetError(f"unknown language(s) {', '.join(unknown)}: choose among {', '.join(DOCSTRING_LANGUAGES)}")
    tree = SourceTree(repo, exclude=exclude, max_bytes=max_file_bytes, skip=[out, *out.parent.glob(f".{out.name}.*")])
    drops, files, texts = Counter(), Counter(), {}
    pairs = read_pairs(tree, tuple(languages), drops, files, texts, show_progress=show_progress, min_query_words=min_query_words,
                       max_query_words=max_query_words, min_code_lines=min_code_lines)
    pairs = deduplicate(pairs, drops)
    if corpus != "units":
        if modules := sum(p["kind"] == "module" for p in pairs):
            drops["module (file corpus)"] += modules  # a module's relevant chunks would be its whole file
        pairs = [p for p in pairs if p["kind"] != "module"]
    if not pairs:
        read = sum(n for k, n in files.items() if k.startswith("read"))
        raise CodesetError(
            f"no docstring/code pairs in {repo} ({read} source files read, dropped: "
            f"{describe_skipped(drops)}; files skipped: {describe_skipped(tree.skipped)})"
        )
    assign_ids(pairs)
    stats = {
        "format": FORMAT,
        "source": str(repo.resolve()),
        "filters": {
            "exclude": list(exclude), "max_file_bytes": max_file_bytes, "min_query_words": min_query_words,
            "max_query_words": max_query_words, "min_code_lines": min_code_lines, "languages": list(languages),
        },
        "corpus": corpus,
        "counts": {
            "queries": len(pairs), "documents": len(pairs),
            "functions": sum(p["kind"] != "module" for p in pairs), "modules": sum(p["kind"] == "module" for p in pairs),
        },
        "dropped": dict(sorted(drops.items())),
        "files": dict(sorted(files.items())),
        "files_skipped": dict(sorted(tree.skipped.items())),
    }
    if tokenizer and corpus == "units":
        texts_ = [f"{p['title']} {p['code']}".strip() for p in pairs]
        stats["tokens"] = {
            "all": token_stats(texts_, tokenizer),
            "functions": token_stats([t for t, p in zip(texts_, pairs) if p["kind"] != "module"], tokenizer),
            "modules": token_stats([t for t, p in zip(texts_, pairs) if p["kind"] == "module"], tokenizer),
        }
    if corpus == "units":
        rows = [{"_id": p["id"], "title": p["title"], "text": p["code"],
                 "metadata": {"path": p["path"], "start": p["start"], "end": p["end"], "kind": p["kind"]}} for p in pairs]
        judged = [(f"q:{p['id']}", p["id"]) for p in pairs]
    else:
        count_tokens = count_tokens or token_counter(tokenizer or default_model())
        rows, judged = file_corpus(pairs, texts, corpus, count_tokens, max_tokens)
        stats["counts"]["documents"] = len(rows)
    write_set(out, rows, pairs, judged, stats)
    return stats


def write_set(out: Path, rows: list[dict], pairs: list[dict], judged: list[tuple], stats: dict) -> None:
    """The BEIR-layout folder, replaced as a whole."""
    corpus = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    queries = "".join(json.dumps({"_id": f"q:{p['id']}", "text": p["query"]}, ensure_ascii=False) + "\n" for p in pairs)
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in judged)
    with storage.directory(out) as tmp:
        storage.write_text(tmp / "corpus.jsonl", corpus)
        storage.write_text(tmp / "queries.jsonl", queries)
        storage.write_text(tmp / "qrels" / "test.tsv", qrels)
        storage.write_json(tmp / "codeset.json", stats)


def format_stats(stats: dict, out: Path) -> str:
    counts = stats["counts"]
    lines = [
        f"{counts['queries']} queries -> {counts['documents']} documents ({counts['functions']} functions/methods, "
        f"{counts['modules']} modules)",
        f"dropped pairs: {describe_skipped(Counter(stats['dropped']))}",
        f"files: {describe_skipped(Counter(stats['files']))}; skipped: {describe_skipped(Counter(stats['files_skipped']))}",
    ]
    for group, t in stats.get("tokens", {}).items():
        if t.get("documents"):
            shares = ", ".join(f"> {k}: {100 * t[f'share_over_{k}']:.1f}%" for k in TOKEN_THRESHOLDS)
            lines.append(f"tokens ({group}, {t['documents']} docs): median {t['median']}, p90 {t['p90']}, max {t['max']}; {shares}")
    lines.append(f"written to {out} (evaluate: python -m evaluation.beir --data-dir {out.parent} --dataset {out.name})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.codeset",
        description="Turn a local repository into a BEIR-layout code-search set: docstring (first paragraph) -> "
        "function code without it; module docstring -> the whole file without it.",
    )
    p.add_argument("repo", metavar="REPO", help="folder of the repository (its .gitignore files are honoured)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (BEIR layout); its name is the --dataset name for evaluation.beir")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN", help="gitignore-style pattern relative to REPO to leave out, e.g. site-packages/ (repeatable)")
    p.add_argument("--max-file-size", type=int, default=MAX_BYTES, metavar="BYTES", help=f"skip larger files (default: {MAX_BYTES:,})")
    p.add_argument("--min-query-words", type=int, default=MIN_QUERY_WORDS, help=f"drop docstrings whose first paragraph is shorter (default: {MIN_QUERY_WORDS}, CodeSearchNet's)")
    p.add_argument("--max-query-words", type=int, default=MAX_QUERY_WORDS, help=f"drop longer first paragraphs (default: {MAX_QUERY_WORDS}, CodeXGLUE's)")
    p.add_argument("--min-code-lines", type=int, default=MIN_CODE_LINES, help=f"drop code with fewer non-blank lines once the docstring is removed (default: {MIN_CODE_LINES}, CodeSearchNet's)")
    p.add_argument("--tokenizer", default=None, metavar="DIR", help="Hugging Face tokenizer folder: report the documents' token lengths (share over 512 / 2,048 / 8,192)")
    p.add_argument("--languages", default=",".join(DOCSTRING_LANGUAGES), type=lambda t: tuple(x for x in t.split(",") if x),
                   metavar="LANG,...", help=f"languages to read, comma-separated (default: all: {', '.join(DOCSTRING_LANGUAGES)})")
    p.add_argument("--corpus", default="units", choices=["units", "chunks", "windows"],
                   help="units: one document per pair, the function without its doc (CodeSearchNet, default); chunks: every "
                   "file read, cut by language structure as `python -m retrieval index` cuts it; windows: the same files "
                   "in line windows; for chunks/windows the relevant documents are those holding the function's lines")
    p.add_argument("--max-tokens", type=int, default=CHUNK_TOKENS, help=f"chunks/windows: tokens per chunk, counted with --tokenizer "
                   f"(default: {CHUNK_TOKENS}, the default model's maximum; default tokenizer: the default model's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        stats = build_codeset(
            args.repo, args.out, exclude=args.exclude, max_file_bytes=args.max_file_size, min_query_words=args.min_query_words,
            max_query_words=args.max_query_words, min_code_lines=args.min_code_lines, tokenizer=args.tokenizer,
            languages=args.languages, corpus=args.corpus, max_tokens=args.max_tokens, show_progress=not args.quiet,
        )
    except (CodesetError, PatternError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_stats(stats, Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
