"""Train a DPR-style bi-encoder: ``python -m retrieval.training.dpr --model M --data D --output OUT``.

One encoder embeds queries and documents; training pulls each query toward its judged
document and away from every other document in the batch (in-batch negatives), plus
optional hard negatives mined with the model itself before training. What this module adds
to the shared path (:mod:`retrieval.training.common`: data, mining, dev evaluation, trainer,
atomic output, model card, ``train_result.json``) is the model and the loss:

- the model is a plain sentence-transformers model (``SentenceTransformer(OUT)``,
  ``python -m evaluation.beir --model OUT``, ``Retriever(OUT)``); ``--pooling`` sets mean or
  CLS pooling, ``--max-length`` the tokens per text (default: the model's own, at most 512);
- the loss is ``MultipleNegativesRankingLoss``, or ``CachedMultipleNegativesRankingLoss``
  (GradCache: batches larger than memory, same loss) with ``--mini-batch-size``, chosen
  automatically once a step holds more than ``AUTO_CACHE_TOKENS`` tokens;
- under ``torchrun`` the embeddings are gathered across processes (``--no-gather`` keeps
  them local), so every query sees the whole global batch as negatives.

Examples
--------
Command line (``--help`` explains every flag)::

    python -m retrieval.training.dpr --model sentence-transformers/all-MiniLM-L6-v2 \\
        --data ../shared/data/scifact --output runs/minilm-scifact --hard-negatives 5
    torchrun --nproc_per_node 2 -m retrieval.training.dpr --model ... --data ... --output ... --batch-size 16

Library::

    >>> from retrieval.training.dpr import train_dpr                        # doctest: +SKIP
    >>> result = train_dpr("answerdotai/ModernBERT-base", "../shared/data/scifact", "runs/mb", hard_negatives=5)
    >>> result.output, result.scores["ndcg@10"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retrieval.training.common import (
    HelpFormatter,
    RunInfo,
    TrainInputError,
    TrainResult,
    add_training_arguments,
    fit,
    run_cli,
    setup,
    training_arguments,
)
from retrieval.training.data import load_for_training, training_rows
from retrieval.training.dev import DevEvaluator

PROG = "python -m retrieval.training.dpr"
DEFAULT_MAX_LENGTH_CAP = 512
# --mini-batch-size auto: a step holding more tokens than this (rows x texts per row x max length) trains with
# CachedMultipleNegativesRankingLoss. Measured on CPU, MiniLM-L6 at 256 tokens: batch 32 with 5 hard negatives
# (224 texts) peaks at 21 GB with the plain loss (OOM-killed on a 23 GB machine), 4.3 GB cached.
AUTO_CACHE_TOKENS = 32768


def set_pooling(model, pooling: str) -> None:
    """Replace the model's Pooling module with ``mean`` or ``cls`` pooling."""
    from sentence_transformers.models import Pooling

    for key, module in model._modules.items():
        if isinstance(module, Pooling):
            if module.get_pooling_mode_str() != pooling:
                model._modules[key] = Pooling(module.get_sentence_embedding_dimension(), pooling_mode=pooling,
                                              include_prompt=module.include_prompt)
            return
    raise TrainInputError(f"the model has no Pooling module to set to {pooling!r}")


def auto_mini_batch_size(batch_size: int, texts_per_row: int, max_length: int) -> int:
    """``--mini-batch-size`` auto: 0 (plain loss) for steps up to ``AUTO_CACHE_TOKENS`` tokens, else the
    GradCache mini-batch (texts per forward pass) holding a quarter of that."""
    if batch_size * texts_per_row * max_length <= AUTO_CACHE_TOKENS:
        return 0
    return max(1, AUTO_CACHE_TOKENS // (4 * max_length))


def dpr_loss(model, rows, mini_batch_size: int | None, batch_size: int, *, scale: float, gather: bool, world: int):
    """``(loss, description, mini_batch_size used)``: MNRL, or cached MNRL for big steps or when asked."""
    from sentence_transformers import losses

    if mini_batch_size is None:  # auto: GradCache once a step's activations would not fit comfortably
        mini_batch_size = auto_mini_batch_size(batch_size, len(rows.column_names), model.max_seq_length)
    if mini_batch_size:
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=mini_batch_size,
                                                         gather_across_devices=gather)
        text = f"CachedMultipleNegativesRankingLoss (scale {scale}, mini-batch {mini_batch_size}"
    else:
        loss = losses.MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather)
        text = f"MultipleNegativesRankingLoss (scale {scale}"
    text += f", in-batch negatives{' gathered across processes' if gather and world > 1 else ''})"
    return loss, text, mini_batch_size


def train_dpr(
    model: str | Path | None,
    data,
    output: str | Path,
    *,
    pooling: str | None = None,
    max_length: int | None = None,
    scale: float = 20.0,
    gather: bool | None = None,
    **options,
) -> TrainResult:
    """Train a bi-encoder on ``data`` starting from ``model`` and write it to ``output``.

    ``options`` are the shared :class:`retrieval.training.common.TrainOptions` (one per flag of
    ``python -m retrieval.training.dpr --help``). Raises :class:`TrainInputError` (or
    ``retrieval.beir_data.DataError`` / ``encoder.ModelLoadError``) before training when the options,
    the data or the model are unusable.
    """
    from encoder import default_model, load_model

    if pooling not in (None, "mean", "cls"):
        raise TrainInputError(f"--pooling must be mean or cls, not {pooling!r}")
    if max_length is not None and max_length < 8:
        raise TrainInputError(f"--max-length must be >= 8, not {max_length}")
    opts, output, use_bf16 = setup(options, output)
    training = load_for_training(data, opts)  # every check that can fail happens before any training
    model_name = str(model or default_model())
    st_model = load_model(model_name, device=opts.device, dtype="float32")
    if pooling:
        set_pooling(st_model, pooling)
    st_model.max_seq_length = max_length or min(st_model.max_seq_length or DEFAULT_MAX_LENGTH_CAP, DEFAULT_MAX_LENGTH_CAP)
    args = training_arguments(opts, output, st_model, use_bf16=use_bf16, has_dev=training.dev is not None)
    gather = args.world_size > 1 if gather is None else gather
    rows, mined = training_rows(training, opts, st_model)  # hard negatives, mined by the model about to be trained
    loss, loss_text, mini_batch = dpr_loss(st_model, rows, opts.mini_batch_size, opts.batch_size, scale=scale,
                                           gather=gather, world=args.world_size)
    same_corpus = mined is not None and training.dev is not None and training.dev.corpus is training.corpus
    evaluator = DevEvaluator(training.dev, index=opts.index, show_progress=opts.show_progress,
                             start_embeddings=mined.corpus_embeddings if same_corpus else None) if training.dev else None
    info = RunInfo.describe(
        training, opts, miner="the base model", mined=mined, trainer="retrieval.training.dpr", model=model_name,
        loss=loss_text, hyper={"max_length": st_model.max_seq_length, "pooling": pooling or "the model's own",
                               "batch_sampler": "NO_DUPLICATES"},
        config={"pooling": pooling, "max_length": st_model.max_seq_length, "scale": scale, "gather": gather,
                "mini_batch_size_used": mini_batch},
    )
    return fit(st_model, rows, loss, output, opts, args, info, evaluator=evaluator)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train a DPR-style bi-encoder (sentence-transformers) with in-batch and optional mined hard "
        "negatives, keep the best checkpoint by dev nDCG@10, write a plain sentence-transformers model. "
        f"Multi-process: torchrun --nproc_per_node N -m retrieval.training.dpr ...",
        formatter_class=HelpFormatter,
    )
    groups = add_training_arguments(p)
    g = groups["model"]
    g.add_argument("--pooling", choices=["mean", "cls"], default=None, help="set the pooling (default: keep the model's own)")
    g.add_argument("--max-length", type=int, default=None,
                   help=f"maximum tokens per text while training (default: the model's own, at most {DEFAULT_MAX_LENGTH_CAP})")
    g = groups["negatives"]
    g.add_argument("--mini-batch-size", type=int, default=None, help="use CachedMultipleNegativesRankingLoss "
                   "(GradCache) with this many texts per forward pass: batches larger than memory, same loss; 0: "
                   "plain MultipleNegativesRankingLoss (default: auto, cached with "
                   f"{AUTO_CACHE_TOKENS // 4:,} tokens per forward pass once a step holds more than "
                   f"{AUTO_CACHE_TOKENS:,} tokens, rows x texts per row x max length)")
    g.add_argument("--scale", type=float, default=20.0, help="similarity scale (1 / temperature) of the loss")
    g.add_argument("--no-gather", dest="gather", action="store_false", default=None,
                   help="under torchrun, do not gather embeddings across processes (default: gather, so every "
                   "query sees the whole global batch as negatives)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(train_dpr, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
