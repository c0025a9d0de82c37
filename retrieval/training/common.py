"""The one training path DPR and ColBERT share: options and flags, precision, trainer, output, result.

Everything heavy is sentence-transformers: ``SentenceTransformerTrainer`` with the ``NO_DUPLICATES``
batch sampler (a text never appears twice in a batch, so it is never its own in-batch negative),
linear warmup/decay, bf16 autocast, gradient accumulation, DDP under ``torchrun`` (gloo on CPU,
NCCL on GPU; incomplete batches dropped there, every process needing equal full batches).
The two trainers (:mod:`retrieval.training.dpr`, :mod:`retrieval.training.colbert`) add only
their model and loss; what this module gives both:

- one set of options (:class:`TrainOptions`) and flags (:func:`add_training_arguments`), one
  command-line runner (:func:`run_cli`: bad input stops with ``error: ...`` and exit code 2
  before any training);
- one precision rule (:func:`bf16_on`): ``--precision auto`` trains with bf16 autocast only
  where the hardware runs bf16 natively (:func:`encoder.bf16_supported`: CUDA Ampere+, CPUs
  with AMX / AVX512-BF16); elsewhere bf16 is emulated and slower than fp32;
- one learning-rate default (:func:`default_learning_rate`): the ModernBERT paper's Table 9
  for ModernBERT (base 8e-5, large 1e-4, in both its DPR and ColBERT columns), else 3e-5;
- one fit (:func:`fit`): the trainer keeps the best checkpoint by dev nDCG@10 (checkpoints in
  a hidden sibling of the output, removed at the end); rank 0 writes the output folder
  atomically (:func:`indexes.storage.directory`: built beside it, swapped in only when training
  succeeds, so an existing model survives a failed run) holding the model, its ``README.md``
  model card with a section by :mod:`retrieval.training.card`, and :data:`RESULT_FILE`, the
  :class:`TrainResult` as JSON.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from retrieval.metrics import METRICS
from retrieval.training.card import card_info, card_section, insert_card_section, negatives_description

logger = logging.getLogger("retrieval.training")

EXIT_BAD_INPUT = 2
RESULT_FILE = "train_result.json"
DEFAULT_LR = 3e-5
MODERNBERT_LR = {"base": 8e-5, "large": 1e-4}  # ModernBERT paper (arXiv 2412.13663), Table 9, DPR and ColBERT columns
PRECISIONS = ("auto", "bf16", "fp32")
MARGIN_TYPES = ("relative", "absolute", "none")
SAMPLINGS = ("top", "random")


class TrainInputError(ValueError):
    """Bad options or data, found before training starts (exit code 2 on the command line)."""


@dataclass
class TrainOptions:
    """The options both trainers take, one per flag of :func:`add_training_arguments`; checked when made."""

    dataset_config: str | None = None  # data
    dataset_split: str = "train"
    hard_negatives: int = 0  # hard negatives
    margin: float = 0.05
    margin_type: str = "relative"
    range_min: int = 0
    range_max: int | None = None
    max_score: float | None = None
    sampling: str = "top"
    fill: bool = True
    index: str = "Flat"
    epochs: float = 3  # optimisation
    max_steps: int = -1
    batch_size: int = 32
    mini_batch_size: int | None = None
    learning_rate: float | None = None
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    gradient_accumulation: int = 1
    seed: int = 42
    precision: str = "auto"
    device: str | None = None
    evaluate: bool = True  # dev evaluation
    dev_fraction: float = 0.1
    max_dev_queries: int = 1000
    eval_steps: int | None = None
    logging_steps: int = 10  # output
    show_progress: bool = True
    command: str | None = None

    def __post_init__(self):
        def need(cond, msg):
            if not cond:
                raise TrainInputError(msg)

        need(self.epochs > 0, f"--epochs must be > 0, not {self.epochs}")
        need(self.batch_size >= 1, f"--batch-size must be >= 1, not {self.batch_size}")
        need(self.gradient_accumulation >= 1, f"--gradient-accumulation must be >= 1, not {self.gradient_accumulation}")
        need(self.hard_negatives >= 0, f"--hard-negatives must be >= 0, not {self.hard_negatives}")
        need(self.mini_batch_size is None or self.mini_batch_size >= 0,
             f"--mini-batch-size must be >= 0, not {self.mini_batch_size}")
        need(0 <= self.dev_fraction < 1, f"--dev-fraction must be in [0, 1), not {self.dev_fraction}")
        need(self.max_dev_queries >= 1, f"--max-dev-queries must be >= 1, not {self.max_dev_queries}")
        need(self.learning_rate is None or self.learning_rate > 0, f"--learning-rate must be > 0, not {self.learning_rate}")
        need(0 <= self.warmup_ratio < 1, f"--warmup-ratio must be in [0, 1), not {self.warmup_ratio}")
        need(self.margin_type in MARGIN_TYPES, f"--margin-type must be relative, absolute or none, not {self.margin_type!r}")
        need(self.margin >= 0, f"--margin must be >= 0, not {self.margin}")
        need(self.margin_type != "relative" or self.margin < 1, f"a relative --margin must be < 1, not {self.margin}")
        need(self.sampling in SAMPLINGS, f"--sampling must be top or random, not {self.sampling!r}")
        need(self.eval_steps is None or self.eval_steps >= 1, f"--eval-steps must be >= 1, not {self.eval_steps}")
        need(self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")


@dataclass
class RunInfo:
    """What the model card and the result file say about a run beyond the shared options."""

    trainer: str  # the module (or script) that trained, named in the card's title
    model: str  # the starting model
    data: str  # the training data, in words
    name: str = "train"  # the data set's name, for sentence-transformers' card
    dev: str = "none (no dev split, --dev-fraction 0 or --no-eval)"
    loss: str = ""
    negatives: str = "none (in-batch negatives only)"
    mined: object = None  # a retrieval.training.data.Mined, or None
    hyper: dict = field(default_factory=dict)  # the trainer's own rows of the card's hyperparameter table
    config: dict = field(default_factory=dict)  # the trainer's own options, for the result's config
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def describe(cls, training, opts: TrainOptions, *, miner: str, **info) -> RunInfo:
        """A run on ``training`` (a :class:`retrieval.training.data.TrainingData`); ``miner`` names the mining model."""
        mined = info.pop("mined", None)
        return cls(name=training.name, data=training.description, warnings=list(training.warnings), mined=mined,
                   dev=training.dev.description if training.dev else cls.dev,
                   negatives=negatives_description(mined, opts, len(training.corpus), miner), **info)


@dataclass
class TrainResult:
    """What both trainers return; :data:`RESULT_FILE` in the output folder holds it (less the model) as JSON."""

    output: Path | None  # the model folder (None on processes other than rank 0)
    scores: dict[str, float]  # dev metrics of the saved model ({} without a dev set)
    scores_before: dict[str, float]  # dev metrics of the starting model ({} unless evaluated at step 0)
    best_step: int | None
    steps: int  # optimiser steps taken
    train_seconds: float
    mining_seconds: float
    mining: dict | None  # retrieval.mining.MiningStats as a dict
    config: dict  # every option, the learning rate and precision used, processes, loss
    warnings: list[str] = field(default_factory=list)
    log_history: list[dict] = field(default_factory=list)
    model: object = field(default=None, repr=False, compare=False)  # the trained model

    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.log_history if "loss" in entry]

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["output"] = None if self.output is None else str(self.output)
        return out


# --------------------------------------------------------------------------- options


def bf16_on(precision: str, device: str) -> bool:
    """Whether to train with bf16 autocast: ``fp32`` never, ``bf16`` always (an error where the hardware does not
    run it natively), ``auto`` exactly where it does (:func:`encoder.bf16_supported`): off on a CPU without
    AMX / AVX512-BF16."""
    import encoder

    if precision not in PRECISIONS:
        raise TrainInputError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return False
    supported = encoder.bf16_supported(device)
    if precision == "bf16" and not supported:
        raise TrainInputError(f"bf16 was asked for but {device} does not run bf16 natively")
    return supported


def model_config(model):
    """The transformers config of the encoder inside a ``SentenceTransformer`` (or None)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "model_type", None):
            return config
    return None


def default_learning_rate(model) -> float:
    """ModernBERT paper Table 9 for ModernBERT (base 8e-5, large 1e-4), else 3e-5."""
    config = model_config(model)
    if config is not None and config.model_type == "modernbert":
        return MODERNBERT_LR["large" if getattr(config, "hidden_size", 768) >= 1024 else "base"]
    return DEFAULT_LR


def setup(options: Mapping, output) -> tuple[TrainOptions, Path, bool]:
    """``(options, output, bf16)``: the options checked, the device chosen (one GPU per ``torchrun`` process),
    the precision decided by :func:`bf16_on` and every seed set; raises :class:`TrainInputError` on bad input."""
    from transformers import set_seed

    from encoder.sentence import default_device

    unknown = set(options) - {f.name for f in fields(TrainOptions)}
    if unknown:
        raise TypeError(f"unknown training options: {', '.join(sorted(unknown))}")
    opts = TrainOptions(**options)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise TrainInputError(f"--output {output} exists and is not a folder")
    opts.device = opts.device or default_device()
    if opts.device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        opts.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    use_bf16 = bf16_on(opts.precision, opts.device)
    set_seed(opts.seed)
    return opts, output, use_bf16


def checkpoint_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.checkpoints"


def training_arguments(opts: TrainOptions, output: Path, model, *, use_bf16: bool, has_dev: bool,
                       eval_on_start: bool = True, no_duplicates: bool = True):
    """The trainer's arguments (under ``torchrun`` making them joins the process group)."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    strategy = ("steps" if opts.eval_steps else "epoch") if has_dev else "no"
    cuda = str(opts.device).startswith("cuda")
    launched_world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir(output)),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation,
        learning_rate=opts.learning_rate or default_learning_rate(model),
        warmup_steps=opts.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        weight_decay=opts.weight_decay,
        lr_scheduler_type="linear",
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=use_bf16,
        use_cpu=not cuda,
        batch_sampler=BatchSamplers.NO_DUPLICATES if no_duplicates else BatchSamplers.BATCH_SAMPLER,
        eval_strategy=strategy,
        eval_steps=opts.eval_steps,
        save_strategy=strategy,
        save_steps=opts.eval_steps,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=has_dev,
        metric_for_best_model="eval_dev_ndcg@10" if has_dev else None,
        greater_is_better=True,
        eval_on_start=has_dev and eval_on_start,
        logging_steps=opts.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not opts.show_progress,
        ddp_backend=("nccl" if cuda else "gloo") if launched_world > 1 else None,
    )
    # Under DDP every process needs equal, full batches (gradient all-reduce, cross-process gathering),
    # so incomplete batches are dropped there; a single process trains on every batch the sampler makes.
    args.dataloader_drop_last = args.world_size > 1
    if args.process_index == 0:
        shutil.rmtree(checkpoint_dir(output), ignore_errors=True)
    return args


# --------------------------------------------------------------------------- fit


def fit(model, train_dataset, loss, output: Path, opts: TrainOptions, args, info: RunInfo, *, evaluator=None,
        data_collator=None) -> TrainResult:
    """Train ``model``, keep the best dev checkpoint, write the output folder (rank 0) and return the result."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer

    rank, world = args.process_index, args.world_size
    if world > 1 and len(train_dataset) < opts.batch_size * world:
        raise TrainInputError(f"{len(train_dataset)} training rows cannot fill one batch of {opts.batch_size} "
                              f"on {world} processes")
    model.model_card_data.local_files_only = True  # never reach for the hub while writing the card
    model.model_card_data.train_datasets = [{"name": f"{info.name} (train)"}]
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss,
                                         evaluator=evaluator, data_collator=data_collator)
    if rank == 0:
        print(f"training {info.model} on {info.data}: {len(train_dataset)} rows, {world} process(es) x batch "
              f"{opts.batch_size} x accumulation {opts.gradient_accumulation}, lr {args.learning_rate:g}, "
              f"{'bf16' if args.bf16 else 'fp32'}", flush=True)
    start = time.perf_counter()
    try:
        trainer.train()
        seconds = time.perf_counter() - start
        trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # no autocast wrapper
        if world > 1:  # every process has loaded the best checkpoint before rank 0 removes it
            torch.distributed.barrier()
        result = _result(trainer, trained, evaluator, output if rank == 0 else None, seconds, opts, info,
                         train_rows=len(train_dataset))
        if rank == 0:
            _save(result, info, opts)
    finally:
        if rank == 0:
            shutil.rmtree(checkpoint_dir(output), ignore_errors=True)
    if world > 1:
        torch.distributed.barrier()
    return result


def _strip_prefix(metrics: Mapping, prefix: str = "eval_dev_") -> dict[str, float]:
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix) and k[len(prefix):] in METRICS}


def _result(trainer, trained, evaluator, output, seconds: float, opts: TrainOptions, info: RunInfo, *,
            train_rows: int) -> TrainResult:
    """The run's :class:`TrainResult`; the card data of ``trained`` gets the saved (best) model's dev scores."""
    args = trainer.args
    history = list(trainer.state.log_history)
    evals = [h for h in history if "eval_dev_ndcg@10" in h]
    before = _strip_prefix(evals[0]) if evals and evals[0].get("step", 0) == 0 else {}
    best_step, scores = None, {}
    if evals:
        best = max((h for h in evals if h.get("step", 0) > 0), key=lambda h: h["eval_dev_ndcg@10"], default=evals[0])
        best_step, scores = best.get("step"), _strip_prefix(best)
        if evaluator is not None:
            trained.model_card_data.eval_results_dict[evaluator] = {f"dev_{k}": v for k, v in scores.items()}
            trained.model_card_data.set_best_model_step(best_step)
    config = {k: (v if v is None or isinstance(v, (bool, int, float, str)) else str(v)) for k, v in asdict(opts).items()}
    config.update(model=info.model, data=info.data, output=str(output) if output else None, loss=info.loss,
                  learning_rate=args.learning_rate, precision_used="bf16" if args.bf16 else "fp32",
                  processes=args.world_size, train_rows=train_rows,
                  effective_batch=opts.batch_size * args.world_size * opts.gradient_accumulation)
    config.update(info.config)  # the trainer's own options (ColBERT's loss: the option, the card describing it)
    mined = info.mined
    return TrainResult(
        output=output, scores=scores, scores_before=before, best_step=best_step, steps=trainer.state.global_step,
        train_seconds=round(seconds, 1), mining_seconds=round(mined.seconds, 1) if mined else 0.0,
        mining=mined.stats.as_dict() if mined else None, config=config, warnings=list(info.warnings),
        log_history=history, model=trained,
    )


def _save(result: TrainResult, info: RunInfo, opts: TrainOptions) -> None:
    """The output folder, atomically: the model, its card with the training section, the result file."""
    from indexes import storage

    card = card_info(result, info, opts)
    with storage.directory(result.output) as tmp:
        result.model.save_pretrained(str(tmp))
        insert_card_section(tmp / "README.md", card_section(result, card))
        storage.write_json(tmp / RESULT_FILE, {**result.as_dict(), "card": card})


# --------------------------------------------------------------------------- command line


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` unless the help already says what the default is, or there is none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS) or action.required
                or isinstance(action, argparse._StoreFalseAction)):
            return text
        return super()._get_help_string(action)


def add_training_arguments(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The flags both trainers take (:class:`TrainOptions` plus ``--model``, ``--data``, ``--output``, ``--quiet``);
    returns the argument groups by name (model, negatives, optimisation, dev, output) for a trainer's own flags."""
    d = TrainOptions()
    groups = {}
    g = groups["model"] = p.add_argument_group("model, data, output")
    g.add_argument("--model", default=None, help="hub id or local folder of the starting model "
                   "(default: the offline all-MiniLM-L6-v2)")
    g.add_argument("--data", required=True, help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, "
                   "optional qrels/dev.tsv) or a datasets dataset (saved folder, .jsonl/.csv/.parquet file or hub "
                   "name) with (anchor, positive[, negative ...]) text columns")
    g.add_argument("--output", required=True, help="folder for the trained model (written atomically; an existing "
                   f"one is replaced only when training succeeds), with the model card and {RESULT_FILE}")
    g.add_argument("--dataset-config", default=d.dataset_config, help="config name of a hub dataset (e.g. triplet-hard)")
    g.add_argument("--dataset-split", default=d.dataset_split, help="split of a datasets dataset to train on")
    g = groups["negatives"] = p.add_argument_group("loss and negatives")
    g.add_argument("--hard-negatives", type=int, default=d.hard_negatives, help="mine this many hard negatives per "
                   "query with a FAISS index over the corpus, before training (0: in-batch only)")
    g.add_argument("--margin", type=float, default=d.margin, help="false-negative guard: skip candidates scoring "
                   "within this margin of the query's (lowest) positive")
    g.add_argument("--margin-type", choices=MARGIN_TYPES, default=d.margin_type,
                   help="relative: skip if score > positive * (1 - margin); absolute: skip if score + margin > positive")
    g.add_argument("--range-min", type=int, default=d.range_min, help="skip this many of the best remaining candidates")
    g.add_argument("--range-max", type=int, default=d.range_max, help="consider candidates up to this rank "
                   "(default: range-min + 10 x hard-negatives + most positives of a query)")
    g.add_argument("--max-score", type=float, default=d.max_score, help="skip candidates with a higher cosine similarity")
    g.add_argument("--sampling", choices=SAMPLINGS, default=d.sampling, help="take the best candidates or a "
                   "seeded random sample of the kept range")
    g.add_argument("--no-fill", dest="fill", action="store_false", help="leave out queries with fewer than "
                   "--hard-negatives candidates within --range-max (as sentence-transformers does) instead of "
                   "searching deeper for negatives that pass the same filters")
    g.add_argument("--index", default=d.index, help="FAISS factory string of the index used for mining "
                   "(and a bi-encoder's dev evaluation)")
    g = groups["optimisation"] = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=float, default=d.epochs, help="training epochs")
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="stop after this many optimiser steps "
                   "(overrides --epochs)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="rows (queries) per process and step; "
                   "the in-batch negatives")
    g.add_argument("--gradient-accumulation", type=int, default=d.gradient_accumulation, help="gradient "
                   "accumulation steps (more rows per optimiser step; does not add in-batch negatives)")
    g.add_argument("--grad-accum", dest="gradient_accumulation", type=int, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # deprecated spelling
    g.add_argument("--learning-rate", type=float, default=d.learning_rate, help="peak learning rate (default: "
                   f"ModernBERT paper Table 9 for ModernBERT: base {MODERNBERT_LR['base']:g}, large "
                   f"{MODERNBERT_LR['large']:g}; {DEFAULT_LR:g} otherwise)")
    g.add_argument("--lr", dest="learning_rate", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    g.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="share of the steps with linear warmup")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, shuffling, held-out dev and sampling")
    g.add_argument("--precision", choices=PRECISIONS, default=d.precision, help="auto: bf16 autocast where the "
                   "hardware runs bf16 natively (CUDA Ampere+, CPUs with AMX/AVX512-BF16), else fp32")
    g.add_argument("--bf16", dest="precision", choices=PRECISIONS, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                   type=lambda v: {"on": "bf16", "off": "fp32"}.get(v, v))  # deprecated: --bf16 auto|on|off
    g.add_argument("--device", default=d.device, help="torch device (default: cuda if available, else cpu)")
    g = groups["dev"] = p.add_argument_group("dev evaluation")
    g.add_argument("--no-eval", dest="evaluate", action="store_false", help="no dev evaluation: keep the last "
                   "model, train on every training query")
    g.add_argument("--dev-fraction", type=float, default=d.dev_fraction, help="without a dev split, hold out this "
                   "share of the training queries (seeded) as the dev set; 0: no dev evaluation, keep the last model")
    g.add_argument("--max-dev-queries", type=int, default=d.max_dev_queries, help="at most this many held-out dev queries")
    g.add_argument("--eval-steps", type=int, default=d.eval_steps, help="evaluate (and checkpoint) every N steps "
                   "(default: every epoch); the best dev nDCG@10 checkpoint is kept")
    g = groups["output"] = p.add_argument_group("output")
    g.add_argument("--logging-steps", type=int, default=d.logging_steps, help="log the training loss every N steps")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return groups


def run_cli(train, parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv``, call ``train(model, data, output, **options)``, print the outcome; exit code 2 on bad input."""
    from encoder import ModelLoadError
    from retrieval.beir_data import DataError

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("retrieval").setLevel(logging.INFO)
    options = {k: v for k, v in vars(args).items() if k not in ("model", "data", "output", "quiet")}
    options.update(show_progress=not args.quiet,
                   command=f"{parser.prog} {shlex.join(argv if argv is not None else sys.argv[1:])}")
    try:
        result = train(args.model, args.data, args.output, **options)
    except (TrainInputError, DataError, ModelLoadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.output is not None:
        print(f"trained in {result.train_seconds:.0f} s (mining {result.mining_seconds:.0f} s)")
        if result.scores:
            before = result.scores_before.get("ndcg@10")
            print(f"dev nDCG@10 {result.scores['ndcg@10']:.4f}" + (f" (before training {before:.4f})" if before is not None else "")
                  + f", best step {result.best_step}")
        print(f"model written to {result.output} (model card {result.output / 'README.md'}, "
              f"result {result.output / RESULT_FILE})")
    return 0
