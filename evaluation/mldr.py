"""MLDR long-document retrieval (English by default): ``python -m evaluation.mldr``.

MLDR (Chen et al. 2024, arXiv 2402.03216; hub ``Shitao/MLDR``) pairs GPT-3.5 questions with the
long Wikipedia articles they were written from: English has 200,000 documents (3,308 tokens on
average), 200 dev and 800 test queries, one relevant document each. It is the long-context
retrieval benchmark of the ModernBERT paper, so documents are encoded at up to
``--max-length`` 8,192 tokens by default; every run reports how many documents were longer
than the length actually used (a model's own limit may be lower: all-MiniLM-L6-v2 stops at 256).

Where the data comes from, first found first:

1. a BEIR-layout folder ``--data-dir/mldr_<language>`` (``corpus.jsonl``, ``queries.jsonl``,
   ``qrels/<split>.tsv``);
2. a local copy of the hub repository in its upstream layout, ``--data-dir/MLDR`` or ``--repo DIR``:
   ``mldr-v1.0-<language>/corpus.jsonl.gz`` (``docid``, ``text``) and ``<split>.jsonl.gz``
   (``query_id``, ``query``, ``positive_passages`` [{``docid``, ``text``}], ``negative_passages``);
3. the hub itself when the network works: the same files, ``hf://datasets/Shitao/MLDR/...``.

Hub files are read through ``datasets``' JSON builder. The repository's ``MLDR.py`` loading
script (configs ``en`` and ``corpus-en``) is never run: ``datasets`` >= 4 refuses scripts, and
the script only reads these same files. Judgments are the positive passages (relevance 1);
dev and test carry no negatives.

The evaluation itself is :mod:`evaluation.beir`'s: same metrics, same JSON, same flags for the model.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evaluation import beir
from retrieval.beir_data import DATA_DIR_ENV, BeirData, DataError, check_strings, columns, default_data_dir, find_hub_dataset
from retrieval.beir_data import join_judgments, load_split

logger = logging.getLogger("evaluation.mldr")

REPO = "Shitao/MLDR"
LANGUAGES = ("ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "pt", "ru", "th", "zh")
SPLITS = ("dev", "test")
MAX_LENGTH = 8192


def language_dir(language: str) -> str:
    """The repository's folder of one language: ``mldr-v1.0-en``."""
    return f"mldr-v1.0-{language}"


def find_mldr(language: str = "en", data_dir: str | Path | None = None, repo: str | None = None) -> tuple[str, str]:
    """``("beir", folder)`` or ``("hub", repository root)``: where MLDR ``language`` is, in the order of the module docstring.

    ``repo`` is a local copy of the repository or a hub id (default ``Shitao/MLDR``).

    Raises
    ------
    DataError
        Nowhere: the message lists every place looked at.
    """
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    beir_path, copy = data_dir / f"mldr_{language}", data_dir / REPO.split("/")[1]
    found = find_hub_dataset(beir_path, copy, language_dir(language), REPO, repo, hub_prefix="hf://datasets/")
    if found:
        return found
    raise DataError(
        f"MLDR {language!r} not found: looked for {beir_path.resolve()} and {(copy / language_dir(language)).resolve()} "
        f"(set --data-dir or ${DATA_DIR_ENV}, or --repo) and could not reach the hub for {repo or REPO} (no network). "
        f"Provide a BEIR-layout folder or a copy of the hub repository "
        f"({language_dir(language)}/corpus.jsonl.gz and {language_dir(language)}/<split>.jsonl.gz)."
    )


def load_mldr_hub(root: str, language: str = "en", split: str = "test", *, cache_dir: str | Path | None = None,
                  show_progress: bool = True) -> BeirData:
    """One split of MLDR from the repository layout at ``root`` (a local folder or ``hf://datasets/...``).

    Raises
    ------
    DataError
        A missing file or split, a malformed line (file:line), a row without id, text or
        positives; positives naming unknown documents are skipped with a counted warning.
    """
    folder = f"{root.rstrip('/')}/{language_dir(language)}"
    local = not root.startswith("hf://")
    if local and not Path(folder, "corpus.jsonl.gz").is_file():
        raise DataError(f"{folder}/corpus.jsonl.gz is missing")
    if local and not Path(folder, f"{split}.jsonl.gz").is_file():
        present = sorted(p.name.removesuffix(".jsonl.gz") for p in Path(folder).glob("*.jsonl.gz") if p.name != "corpus.jsonl.gz")
        raise DataError(f"split {split!r} not found: {folder}/{split}.jsonl.gz is missing (available splits: {', '.join(present) or 'none'})")

    corpus_split = load_split("json", None, "corpus", data_files={"corpus": f"{folder}/corpus.jsonl.gz"}, cache_dir=cache_dir,
                              show_progress=show_progress, label=f"{folder}/corpus.jsonl.gz")
    cols = columns(corpus_split, ("docid", "text"))
    check_strings(corpus_split, cols["docid"], "docid")
    check_strings(corpus_split, cols["text"], "text", empty_ok=True)
    corpus = {did: {"title": "", "text": text} for did, text in zip(cols["docid"], cols["text"])}
    warnings = []
    if len(corpus) < len(cols["docid"]):
        warnings.append(f"{corpus_split.where()}: {len(cols['docid']) - len(corpus)} duplicate docids (the last one kept)")

    query_split = load_split("json", None, split, data_files={split: f"{folder}/{split}.jsonl.gz"}, cache_dir=cache_dir,
                             show_progress=show_progress, label=f"{folder}/{split}.jsonl.gz")
    cols = columns(query_split, ("query_id", "query", "positive_passages"))
    check_strings(query_split, cols["query_id"], "query_id")
    check_strings(query_split, cols["query"], "query")
    queries, judgments, without_positives = {}, {}, 0
    for i, (qid, text, positives) in enumerate(zip(cols["query_id"], cols["query"], cols["positive_passages"])):
        if positives is None or not isinstance(positives, list) or any(not isinstance(p, dict) for p in positives):
            raise DataError(f"{query_split.where(i)}: positive_passages must be a list of {{docid, text}} objects")
        ids = [p.get("docid") for p in positives]
        if any(not isinstance(d, str) or not d for d in ids):
            raise DataError(f"{query_split.where(i)}: a positive passage has no docid")
        queries[qid] = text
        if ids:
            judgments[qid] = {d: 1 for d in ids}
        else:
            without_positives += 1
    if without_positives:
        warnings.append(f"{query_split.where()}: skipped {without_positives} queries without positive passages")
    data = join_judgments(corpus, queries, judgments, qrels_name=query_split.where(), queries_name=query_split.where(),
                          corpus_name=corpus_split.where())
    for w in warnings:
        logger.warning(w)
    data.warnings[:0] = warnings
    return data


def mldr_source(language: str = "en", split: str = "test", *, data_dir: str | Path | None = None, repo: str | None = None,
                datasets_cache: str | Path | None = None, show_progress: bool = True) -> beir.Source:
    """MLDR ``language`` / ``split`` as a :class:`evaluation.beir.Source`, from wherever :func:`find_mldr` finds it."""
    if language not in LANGUAGES:
        raise DataError(f"unknown MLDR language {language!r}: choose one of {', '.join(LANGUAGES)}")
    kind, where = find_mldr(language, data_dir, repo)
    name = f"mldr_{language}"
    if kind == "beir":
        source = beir.beir_source(name, Path(where).parent, split)
        source.info = {"language": language, "source": where}
        return source
    data = load_mldr_hub(where, language, split, cache_dir=datasets_cache, show_progress=show_progress)
    return beir.Source(name, split, data, cache_name=name, info={"language": language, "source": f"{where}/{language_dir(language)}"})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.mldr",
        description="Evaluate a retriever on MLDR long-document retrieval (documents up to 8,192 tokens): "
        "nDCG@10, Recall@100, MRR@10, MAP@100, and the number of documents truncated.",
    )
    p.add_argument("--language", default="en", choices=LANGUAGES, help="MLDR language (default: en)")
    p.add_argument("--split", default="test", choices=SPLITS, help="queries and judgments to evaluate (default: test; 800 English queries, dev 200)")
    where = ": a BEIR-layout folder mldr_<language>, else a copy of the hub repository in MLDR/ (mldr-v1.0-<language>/corpus.jsonl.gz, <split>.jsonl.gz)"
    beir.add_hub_arguments(p, REPO, where, max_length_default=MAX_LENGTH)
    return p


main = beir.command(build_parser, lambda args: mldr_source(args.language, args.split, **beir.hub_options(args)))


if __name__ == "__main__":
    sys.exit(main())
