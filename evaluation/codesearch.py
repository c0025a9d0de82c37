"""Code retrieval: ``python -m evaluation.codesearch --dataset csn_ruby|csn_<lang>|stackoverflow_qa``.

Datasets, and where they come from, first found first:

1. a BEIR-layout folder ``--data-dir/<dataset>`` (``corpus.jsonl``, ``queries.jsonl``,
   ``qrels/<split>.tsv``), such as ``../shared/data/csn_ruby``: the CodeSearchNet Ruby test
   split as filtered by CodeXGLUE, docstring (query) -> function (document);
2. a local copy of the CoIR hub repository in its upstream layout, ``--data-dir/<repo name>``
   or ``--repo DIR``, read with ``datasets`` through its ``README.md`` configs;
3. the CoIR repository on the hub when the network works.

The CoIR repositories (Li et al. 2024, arXiv 2407.02883) are laid out as MTEB reads them:

- ``stackoverflow_qa``: ``CoIR-Retrieval/stackoverflow-qa``, configs ``corpus`` (split ``corpus``:
  ``_id``, ``partition``, ``text``, ``language``, ``title``), ``queries`` (split ``queries``, same
  fields) and ``default`` (the judgments, splits ``train`` and ``test``: ``query-id``,
  ``corpus-id``, ``score``). Question -> the answer given to it.
- ``csn_<lang>`` (go, java, javascript, php, python, ruby): ``CoIR-Retrieval/CodeSearchNet``,
  configs ``<lang>-corpus``, ``<lang>-queries``, ``<lang>-qrels`` with the same splits and
  fields. Beware the direction: CoIR's CodeSearchNet is code (query) -> its summary
  (document), the reverse of the CodeXGLUE folder of point 1, so the two scores do not compare.

The evaluation itself is :mod:`evaluation.beir`'s (single-vector FAISS or ``--multi-vector``
ColBERT): same metrics, same JSON, same model flags, plus the count of documents truncated.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from evaluation import beir
from retrieval.beir_data import DATA_DIR_ENV, BeirData, DataError, check_strings, columns, default_data_dir
from retrieval.beir_data import find_hub_dataset, join_judgments, load_split

CSN_LANGUAGES = ("go", "java", "javascript", "php", "python", "ruby")


@dataclass(frozen=True)
class HubLayout:
    """Where a CoIR dataset lives on the hub: repository and the configs of corpus, queries and judgments."""

    repo: str
    corpus: str
    queries: str
    qrels: str

    @property
    def folder(self) -> str:
        """The folder name of a local copy: the repository's name."""
        return self.repo.split("/")[1]


def hub_layout(dataset: str) -> HubLayout:
    """The CoIR layout of ``dataset``; :class:`DataError` for a name this harness does not know."""
    if dataset == "stackoverflow_qa":
        return HubLayout("CoIR-Retrieval/stackoverflow-qa", "corpus", "queries", "default")
    lang = dataset.removeprefix("csn_")
    if dataset.startswith("csn_") and lang in CSN_LANGUAGES:
        return HubLayout("CoIR-Retrieval/CodeSearchNet", f"{lang}-corpus", f"{lang}-queries", f"{lang}-qrels")
    known = ", ".join([f"csn_{lang}" for lang in CSN_LANGUAGES] + ["stackoverflow_qa"])
    raise DataError(f"unknown code-search dataset {dataset!r}: choose one of {known}")


def find_codesearch(dataset: str, data_dir: str | Path | None = None, repo: str | None = None) -> tuple[str, str]:
    """``("beir", folder)`` or ``("hub", local copy or hub id)``: where ``dataset`` is, in the order of the module docstring.

    Raises
    ------
    DataError
        Unknown dataset, or found nowhere (the message lists every place looked at).
    """
    layout = hub_layout(dataset)
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    beir_path, copy = data_dir / dataset, data_dir / layout.folder
    found = find_hub_dataset(beir_path, copy, "README.md", layout.repo, repo)  # the README holds the configs
    if found:
        return found
    raise DataError(
        f"dataset {dataset!r} not found: looked for the BEIR-layout folder {beir_path.resolve()} and a copy of "
        f"{layout.repo} at {copy.resolve()} (set --data-dir or ${DATA_DIR_ENV}, or --repo) and could not reach the hub "
        f"for {repo or layout.repo} (no network)."
    )


def integer_score(value) -> int | None:
    """A relevance score as an int, or ``None`` when it is not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def load_coir(repo: str, layout: HubLayout, split: str = "test", *, cache_dir: str | Path | None = None,
              show_progress: bool = True) -> BeirData:
    """One split of a CoIR dataset from the hub or a local copy of its repository (``repo``), through ``datasets``.

    Raises
    ------
    DataError
        A missing config or split (the message lists the available ones), a bad row (file and
        row); judgments naming unknown ids are skipped with a counted warning.
    """
    corpus_split = load_split(repo, layout.corpus, "corpus", cache_dir=cache_dir, show_progress=show_progress)
    cols = columns(corpus_split, ("_id", "text"), optional=("title",))
    check_strings(corpus_split, cols["_id"], "_id")
    check_strings(corpus_split, cols["text"], "text", empty_ok=True)
    titles = cols.get("title") or [""] * len(cols["_id"])
    corpus = {did: {"title": title or "", "text": text} for did, title, text in zip(cols["_id"], titles, cols["text"])}

    query_split = load_split(repo, layout.queries, "queries", cache_dir=cache_dir, show_progress=show_progress)
    cols = columns(query_split, ("_id", "text"))
    check_strings(query_split, cols["_id"], "_id")
    check_strings(query_split, cols["text"], "text")
    queries = dict(zip(cols["_id"], cols["text"]))

    qrels_split = load_split(repo, layout.qrels, split, cache_dir=cache_dir, show_progress=show_progress)
    cols = columns(qrels_split, ("query-id", "corpus-id", "score"))
    check_strings(qrels_split, cols["query-id"], "query-id")
    check_strings(qrels_split, cols["corpus-id"], "corpus-id")
    judgments: dict[str, dict[str, int]] = {}
    for i, (qid, did, value) in enumerate(zip(cols["query-id"], cols["corpus-id"], cols["score"])):
        relevance = integer_score(value)
        if relevance is None:
            raise DataError(f"{qrels_split.where(i)}: score {value!r} is not an integer")
        judgments.setdefault(qid, {})[did] = relevance
    return join_judgments(corpus, queries, judgments, qrels_name=qrels_split.where(), queries_name=query_split.where(),
                          corpus_name=corpus_split.where())


def codesearch_source(dataset: str = "csn_ruby", split: str = "test", *, data_dir: str | Path | None = None,
                      repo: str | None = None, datasets_cache: str | Path | None = None, show_progress: bool = True) -> beir.Source:
    """``dataset`` / ``split`` as a :class:`evaluation.beir.Source`, from wherever :func:`find_codesearch` finds it."""
    kind, where = find_codesearch(dataset, data_dir, repo)
    if kind == "beir":
        source = beir.beir_source(dataset, Path(where).parent, split)
        source.info = {"source": where}
        return source
    data = load_coir(where, hub_layout(dataset), split, cache_dir=datasets_cache, show_progress=show_progress)
    return beir.Source(dataset, split, data, cache_name=dataset, info={"source": where})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.codesearch",
        description="Evaluate a retriever on code search (CodeSearchNet, StackOverflow-QA): "
        "nDCG@10, Recall@100, MRR@10, MAP@100, and the number of documents truncated.",
    )
    p.add_argument(
        "--dataset",
        default="csn_ruby",
        help="csn_<language> (go, java, javascript, php, python, ruby) or stackoverflow_qa (default: csn_ruby)",
    )
    p.add_argument("--split", default="test", help="judgments to evaluate: qrels/<split>.tsv, or the split of the hub's qrels config (default: test)")
    where = (": a BEIR-layout folder named like --dataset (CodeXGLUE's csn_ruby in ../shared/data), "
             "else a copy of the CoIR hub repository in CodeSearchNet/ or stackoverflow-qa/")
    beir.add_hub_arguments(p, "CoIR-Retrieval/CodeSearchNet or CoIR-Retrieval/stackoverflow-qa", where)
    return p


main = beir.command(build_parser, lambda args: codesearch_source(args.dataset, args.split, **beir.hub_options(args)))


if __name__ == "__main__":
    sys.exit(main())
