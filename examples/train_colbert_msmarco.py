"""The ModernBERT paper's ColBERT recipe, for users online with GPUs.

PyLate, KL distillation of a teacher's scores on MS MARCO (``lightonai/ms-marco-en-bge``,
810k training queries with 32 scored candidates each), batch 16, 1 epoch, warmup 5%,
learning rate from the paper's Table 9 (ModernBERT-base 8e-5, large 1e-4), 300-token
documents, 32-token queries:

    python examples/train_colbert_msmarco.py --model answerdotai/ModernBERT-base --output runs/modernbert-colbert

``--dry-run`` runs the same code path here, offline, on a few SciFact training queries
whose "teacher" scores come from the offline MiniLM through the toolkit's Retriever:

    python examples/train_colbert_msmarco.py --dry-run --output /tmp/colbert-dry-run
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retrieval.colbert import load_colbert
from retrieval.training.colbert import fit
from retrieval.training.common import RunInfo

LEARNING_RATES = {"base": 8e-5, "large": 1e-4}  # ModernBERT paper, Table 9 (ColBERT)
N_WAYS = 32


def msmarco_distillation_data():
    """The KD training set, with queries and documents resolved by PyLate's ``KDProcessing``."""
    from datasets import load_dataset
    from pylate import utils

    train = load_dataset("lightonai/ms-marco-en-bge", "train", split="train")
    queries = load_dataset("lightonai/ms-marco-en-bge", "queries", split="train")
    documents = load_dataset("lightonai/ms-marco-en-bge", "documents", split="train")
    train.set_transform(utils.KDProcessing(queries=queries, documents=documents, n_ways=N_WAYS).transform)
    return train


def scifact_distillation_data(data_dir: Path, num_queries: int = 16, n_ways: int = 4):
    """A few SciFact queries; the offline MiniLM's scores over its top candidates play the teacher."""
    from datasets import Dataset

    from retrieval import Retriever
    from retrieval.beir_data import load_beir
    from retrieval.documents import document_text

    data = load_beir(data_dir / "scifact", "train")
    retriever = Retriever(index="Flat", dtype="auto")
    keep = _candidates(data, num_queries)
    retriever.add({"id": d, **doc} for d, doc in data.corpus.items() if d in keep)
    query_ids = list(data.queries)[:num_queries]
    rows = []
    for qid, hits in zip(query_ids, retriever.search([data.queries[q] for q in query_ids], k=n_ways)):
        rows.append({"query": data.queries[qid], "documents": [document_text(h) for h in hits],
                     "scores": [h.score for h in hits]})
    return Dataset.from_list(rows)


def _candidates(data, num_queries: int, extra: int = 200) -> set[str]:
    """The judged documents of the first queries plus a slice of the corpus: enough to rank, quick to embed."""
    ids = {d for q in list(data.queries)[:num_queries] for d in data.qrels[q]}
    return ids | set(list(data.corpus)[:extra])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="answerdotai/ModernBERT-base", help="base encoder (hub id or folder)")
    p.add_argument("--output", required=True, help="folder for the trained ColBERT model")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: Table 9 by model size)")
    p.add_argument("--batch-size", type=int, default=16, help="queries per batch (paper: 16)")
    p.add_argument("--epochs", type=float, default=1, help="epochs (paper: 1)")
    p.add_argument("--dry-run", action="store_true", help="a few offline SciFact steps with the offline MiniLM")
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                   help="--dry-run: folder holding scifact/ (default ../shared/data)")
    args = p.parse_args(argv)

    if args.dry_run:
        colbert = load_colbert(None, device="cpu", dtype="float32", max_length=128, query_length=32)
        train, lr, batch_size, max_steps = scifact_distillation_data(Path(args.data_dir)), 8e-5, 4, 2
    else:
        colbert = load_colbert(args.model, dtype="float32", max_length=300, query_length=32)
        size = "large" if "large" in args.model.lower() else "base"
        train, lr, batch_size, max_steps = msmarco_distillation_data(), LEARNING_RATES[size], args.batch_size, -1
    from pylate import losses

    info = RunInfo("examples/train_colbert_msmarco.py", model="offline MiniLM" if args.dry_run else args.model,
                   data="SciFact dry run" if args.dry_run else "lightonai/ms-marco-en-bge", loss="pylate Distillation (KL)",
                   config={"recipe": "ModernBERT paper ColBERT, KD"})
    result = fit(colbert, train, losses.Distillation(model=colbert), args.output, info=info, epochs=args.epochs,
                 batch_size=batch_size, learning_rate=args.lr or lr, warmup_ratio=0.05, max_steps=max_steps,
                 no_duplicates=False, show_progress=not args.dry_run)
    print(f"trained {result.config['train_rows']} queries in {result.train_seconds}s; model written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
