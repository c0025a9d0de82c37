"""The ModernBERT paper's DPR recipe (Warner et al. 2024, arXiv 2412.13663), on this toolkit's trainer.

The recipe, for users online with GPUs:

- data: MS MARCO hard-negative triplets,
  ``sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1``, config
  ``triplet-hard`` (query, positive, negative), 1.25M samples;
- loss: CachedMultipleNegativesRankingLoss (GradCache: a large batch of in-batch negatives
  at the memory cost of a mini-batch), mean pooling;
- 1 epoch, linear schedule with 5% warmup, learning rate from the paper's Table 9
  (ModernBERT-base 8e-5, ModernBERT-large 1e-4);
- batch: the paper's stated batch sizes were wrong; the maintainers' correction
  (github.com/AnswerDotAI/ModernBERT/issues/176) is a per-GPU batch of 64 with 8
  gradient-accumulation steps on 8 GPUs for base, 16 x 32 for large. In-batch negatives
  were not gathered across GPUs. This script keeps that per-GPU batch, no gathering, and
  scales accumulation with the number of GPUs so the optimiser step sees the same
  64 x 8 x 8 = 4,096 (base) or 16 x 32 x 8 = 4,096 (large) rows.

Run it (it downloads the model and the data from the Hugging Face hub)::

    torchrun --nproc_per_node 8 examples/train_dpr_msmarco.py --size base --output runs/modernbert-base-dpr
    python -m evaluation.beir --model runs/modernbert-base-dpr --dataset scifact --data-dir data

``--dry-run`` runs the same code path offline, in a few seconds on a CPU: a 2-layer
ModernBERT with random weights built from ``../shared/models/modernbert-base`` (config and
tokenizer, no weights), a few SciFact (query, positive, negative) triplets shaped like the
MS MARCO ones, and the recipe scaled down (batch, accumulation, steps). It sets the hub
libraries offline and never touches the network::

    python examples/train_dpr_msmarco.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

DATASET = "sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1"
DATASET_CONFIG = "triplet-hard"
SAMPLES = 1_250_000
PAPER_GPUS = 8
RECIPES = {
    # per-GPU batch, accumulation on the paper's 8 GPUs, learning rate (Table 9)
    "base": {"model": "answerdotai/ModernBERT-base", "batch_size": 64, "grad_accum_8_gpus": 8, "lr": 8e-5},
    "large": {"model": "answerdotai/ModernBERT-large", "batch_size": 16, "grad_accum_8_gpus": 32, "lr": 1e-4},
}
MINI_BATCH = 32  # GradCache forward size: memory only, the result does not depend on it


def recipe(size: str, gpus: int) -> dict:
    """``train_dpr`` options of the paper's recipe for ``size`` on ``gpus`` GPUs."""
    r = RECIPES[size]
    total = r["grad_accum_8_gpus"] * PAPER_GPUS
    if total % gpus:
        raise SystemExit(f"error: {gpus} GPUs cannot keep the paper's {r['batch_size']} x {total} rows per step; use a divisor of {total}")
    return {
        "epochs": 1,
        "warmup_ratio": 0.05,
        "learning_rate": r["lr"],
        "batch_size": r["batch_size"],
        "gradient_accumulation": total // gpus,
        "mini_batch_size": min(MINI_BATCH, r["batch_size"]),
        "gather": False,  # as in the paper's runs: in-batch negatives stay on their GPU
        "pooling": "mean",
        "hard_negatives": 0,  # the triplets already carry mined hard negatives
        "dev_fraction": 0.001,  # ~1,000 held-out queries pick the best checkpoint; never a test split
        "max_dev_queries": 1000,
        "eval_steps": 100,
        "max_length": 512,
    }


def msmarco_triplets(samples: int):
    from datasets import load_dataset

    ds = load_dataset(DATASET, DATASET_CONFIG, split="train")
    return ds.select(range(min(samples, len(ds))))


def scifact_triplets(scifact: Path, n: int, seed: int = 0):
    """(query, positive, negative) rows from SciFact's train split, shaped like the MS MARCO triplets."""
    from datasets import Dataset

    from retrieval.beir_data import load_beir
    from retrieval.documents import document_text

    data = load_beir(scifact, "train")
    rng = random.Random(seed)
    doc_ids = sorted(data.corpus)
    rows = {"query": [], "positive": [], "negative": []}
    for qid in sorted(data.qrels)[:n]:
        pos = next(iter(data.qrels[qid]))
        neg = rng.choice([d for d in doc_ids[:500] if d not in data.qrels[qid]])
        rows["query"].append(data.queries[qid])
        rows["positive"].append(document_text(data.corpus[pos]))
        rows["negative"].append(document_text(data.corpus[neg]))
    return Dataset.from_dict(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring for the recipe and its sources.")
    p.add_argument("--size", choices=sorted(RECIPES), default="base", help="ModernBERT size (default base)")
    p.add_argument("--model", default=None, help="starting model (default: answerdotai/ModernBERT-<size>)")
    p.add_argument("--output", default=None, help="model folder (default: runs/modernbert-<size>-dpr; a temp folder for --dry-run)")
    p.add_argument("--samples", type=int, default=SAMPLES, help=f"training triplets (default {SAMPLES:,}, the paper's)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs taking part (default: torchrun's WORLD_SIZE, else 1)")
    p.add_argument("--dry-run", action="store_true", help="offline: the same code path on a few SciFact triplets "
                   "with a tiny random ModernBERT")
    p.add_argument("--shared-dir", default=str(Path(os.environ.get("SHARED_DIR") or REPO.parent / "shared")),
                   help="for --dry-run: folder with data/scifact and models/modernbert-base")
    args = p.parse_args(argv)

    gpus = args.gpus or int(os.environ.get("WORLD_SIZE", "1"))
    options = recipe(args.size, PAPER_GPUS if args.dry_run else gpus)
    if args.dry_run:
        # Nothing below may reach the network: the hub libraries read only local files.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from encoder.modernbert import save_random_modernbert
    from retrieval.training.dpr import train_dpr

    with tempfile.TemporaryDirectory() as tmp:
        if args.dry_run:
            shared = Path(args.shared_dir)
            model = str(save_random_modernbert(shared / "models" / "modernbert-base", Path(tmp) / "tiny-modernbert", num_layers=2))
            data = scifact_triplets(shared / "data" / "scifact", 24)
            # the recipe, scaled to a CPU: same loss, schedule, learning rate and batch structure
            options.update(batch_size=8, mini_batch_size=4, gradient_accumulation=2, max_steps=2, eval_steps=1,
                           max_length=64, dev_fraction=0.2)
            output = Path(args.output or Path(tmp) / "dry-run-model")
        else:
            model = args.model or RECIPES[args.size]["model"]
            data = msmarco_triplets(args.samples)
            output = Path(args.output or f"runs/modernbert-{args.size}-dpr")
        if os.environ.get("RANK", "0") == "0":
            print(f"recipe ({'dry run' if args.dry_run else f'{gpus} GPU(s)'}): {json.dumps(options)}")
        result = train_dpr(model, data, output, **options)
        if result.output is not None:
            print(f"dev nDCG@10 {result.scores.get('ndcg@10', float('nan')):.4f}, steps {result.steps}")
            print(f"model written to {result.output}")
            if args.dry_run and args.output is None:
                from sentence_transformers import SentenceTransformer

                emb = SentenceTransformer(str(result.output)).encode(["dry run"])
                print(f"dry run ok: the saved model reloads and embeds into {emb.shape[1]} dimensions (temp folder removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
