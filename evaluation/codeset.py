"""A code-search set from any local repository, made the way CodeSearchNet was made.

``python -m evaluation.codeset REPO --out DIR`` writes a BEIR-layout folder (``corpus.jsonl``,
``queries.jsonl``, ``qrels/test.tsv``, plus ``codeset.json`` with the counts) that
``python -m evaluation.beir --data-dir <parent of DIR> --dataset <name of DIR>`` evaluates.

Pairs (Husain et al. 2019, arXiv 1909.09436, section 2): the query is the first paragraph of a
docstring, whitespace collapsed; its one relevant document is

- for a function or method: its code with the docstring removed (title: its qualified name,
  ``Class.method``, as CodeSearchNet's ``func_name``);
- for a module: the whole file without its docstring (title: the dotted module name), the
  long documents that function-level sets lack.

Every language of :mod:`retrieval.codebase.chunkers` whose units carry docstrings takes part (Python
today). Filters, CodeSearchNet's where it has one, each counted in ``codeset.json``:

- ``test code``: files in test folders (a path component ``test``/``tests``/``testing``,
  ``test_*``, ``*_test(s)``) and functions whose name contains ``test`` (CodeSearchNet drops
  the latter; the former is ours: test suites' docstrings describe test cases, not code
  someone searches for);
- ``dunder``: ``__init__``, ``__repr__`` and other ``__special__`` methods (CodeSearchNet drops
  constructors and standard extension methods);
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
a file that does not parse is counted and left out.
The output folder is built in a temporary sibling and renamed into place.

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

from indexes import storage
from retrieval.codebase.chunkers import Unit, UnparsableError, language_for
from retrieval.codebase.files import MAX_BYTES, PatternError, SourceTree, describe_skipped, utf8_name

FORMAT = "codeset"
MIN_QUERY_WORDS = 3
MAX_QUERY_WORDS = 256
MIN_CODE_LINES = 3
TOKEN_THRESHOLDS = (512, 2048, 8192)
TEST_PART = re.compile(r"^(tests?|testing|test_.*|.*_tests?)$")
DOCSTRING_LANGUAGES = ("python",)  # languages of retrieval.codebase.chunkers whose units carry docstrings


class CodesetError(ValueError):
    """Bad input for the builder; the message says what to do."""


def first_paragraph(docstring: str) -> str:
    """The docstring up to its first blank line, whitespace collapsed to single spaces."""
    return " ".join(re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0].split())


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return any(TEST_PART.match(part.removesuffix(".py")) for part in parts)


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
        })
    return pairs


def deduplicate(pairs: list[dict], drops: Counter) -> list[dict]:
    """Drop repeated code (the first copy stays) and then every pair whose query text is shared."""
    seen, unique = set(), []
    for pair in pairs:
        # The same code under another name is a copy too: compare with the defined name blanked out.
        simple = re.escape(pair["name"].rsplit(".", 1)[-1]) if pair["name"] else None
        code = re.sub(rf"\b(def|class)\s+{simple}\b", r"\1 _", pair["code"], count=1) if simple else pair["code"]
        key = hashlib.sha256(" ".join(code.split()).encode("utf-8")).digest()
        if key in seen:
            drops["duplicate code"] += 1
            continue
        seen.add(key)
        unique.append(pair)
    queries = Counter(p["query"] for p in unique)
    drops["shared docstring"] += sum(n for n in queries.values() if n > 1)
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
    show_progress: bool = True,
) -> dict:
    """Write the code-search set of ``repo`` to ``out`` (BEIR layout) and return its statistics.

    ``tokenizer`` (a Hugging Face tokenizer folder) adds the documents' token lengths, as
    embedded (``title + " " + text``), to the statistics.
    """
    repo, out = Path(repo), Path(out)
    check_paths(repo, out)
    tree = SourceTree(repo, exclude=exclude, max_bytes=max_file_bytes, skip=[out, *out.parent.glob(f".{out.name}.*")])
    drops, files, pairs = Counter(), Counter(), []
    for source in tqdm(tree, desc="read files", unit="file", disable=not show_progress):
        language = language_for(source.path)
        if language.name not in DOCSTRING_LANGUAGES:
            files["other languages"] += 1
            continue
        if "\t" in source.path or "\n" in source.path:
            files["tab or newline in path"] += 1
            continue
        try:
            units = language.units(source.text)
        except UnparsableError:
            files["unparsable"] += 1
            continue
        files["read"] += 1
        pairs += candidate_pairs(source.path, units, drops, min_query_words=min_query_words,
                                 max_query_words=max_query_words, min_code_lines=min_code_lines)
    pairs = deduplicate(pairs, drops)
    if not pairs:
        raise CodesetError(
            f"no docstring/code pairs in {repo} ({files['read']} source files read, dropped: "
            f"{describe_skipped(drops)}; files skipped: {describe_skipped(tree.skipped)})"
        )
    assign_ids(pairs)
    stats = {
        "format": FORMAT,
        "source": str(repo.resolve()),
        "filters": {
            "exclude": list(exclude), "max_file_bytes": max_file_bytes, "min_query_words": min_query_words,
            "max_query_words": max_query_words, "min_code_lines": min_code_lines,
        },
        "counts": {
            "queries": len(pairs), "documents": len(pairs),
            "functions": sum(p["kind"] != "module" for p in pairs), "modules": sum(p["kind"] == "module" for p in pairs),
        },
        "dropped": dict(sorted(drops.items())),
        "files": dict(sorted(files.items())),
        "files_skipped": dict(sorted(tree.skipped.items())),
    }
    if tokenizer:
        texts = [f"{p['title']} {p['code']}".strip() for p in pairs]
        stats["tokens"] = {
            "all": token_stats(texts, tokenizer),
            "functions": token_stats([t for t, p in zip(texts, pairs) if p["kind"] != "module"], tokenizer),
            "modules": token_stats([t for t, p in zip(texts, pairs) if p["kind"] == "module"], tokenizer),
        }
    corpus = "".join(
        json.dumps({"_id": p["id"], "title": p["title"], "text": p["code"],
                    "metadata": {"path": p["path"], "start": p["start"], "end": p["end"], "kind": p["kind"]}}, ensure_ascii=False) + "\n"
        for p in pairs
    )
    queries = "".join(json.dumps({"_id": f"q:{p['id']}", "text": p["query"]}, ensure_ascii=False) + "\n" for p in pairs)
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q:{p['id']}\t{p['id']}\t1\n" for p in pairs)
    with storage.directory(out) as tmp:
        storage.write_text(tmp / "corpus.jsonl", corpus)
        storage.write_text(tmp / "queries.jsonl", queries)
        storage.write_text(tmp / "qrels" / "test.tsv", qrels)
        storage.write_json(tmp / "codeset.json", stats)
    return stats


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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        stats = build_codeset(
            args.repo, args.out, exclude=args.exclude, max_file_bytes=args.max_file_size, min_query_words=args.min_query_words,
            max_query_words=args.max_query_words, min_code_lines=args.min_code_lines, tokenizer=args.tokenizer,
            show_progress=not args.quiet,
        )
    except (CodesetError, PatternError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_stats(stats, Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
