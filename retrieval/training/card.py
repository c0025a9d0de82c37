"""The model card section both trainers write: data, dev set, loss, negatives, hyperparameters, dev scores.

It goes right below the title of the card sentence-transformers (or PyLate) writes, so a
reader sees first how the model was trained; the same facts go into the result file
(``card`` in :data:`retrieval.training.common.RESULT_FILE`).
"""

from __future__ import annotations

from pathlib import Path

from retrieval.metrics import METRICS


def negatives_description(mined, opts, corpus_size: int, miner: str) -> str:
    """The card's line on hard negatives; ``mined`` is a :class:`retrieval.training.data.Mined` or None,
    ``opts`` the :class:`retrieval.training.common.TrainOptions`."""
    if mined is None:
        return "none (in-batch negatives only)"
    stats = mined.stats
    margin = f"{opts.margin_type} margin {opts.margin}" if opts.margin_type != "none" else "no margin"
    return (
        f"{opts.hard_negatives} per query, mined before training by {miner} with a FAISS {opts.index} index "
        f"over {corpus_size} documents; {margin}, range {opts.range_min}..{stats.range_max}, sampling {opts.sampling}; "
        f"{stats.mined} mined ({stats.filled} from below rank {stats.range_max} for queries short of negatives), "
        f"{stats.skipped_margin} candidates skipped by the margin, {mined.dropped} pairs left out"
    )


def card_info(result, info, opts) -> dict:
    """What the card section says, as a dict (also stored in the result file): ``result``, ``info`` and ``opts``
    are the run's :class:`~retrieval.training.common.TrainResult`, ``RunInfo`` and ``TrainOptions``."""
    cfg = result.config
    hyper = {
        "epochs": opts.epochs, "max_steps": opts.max_steps if opts.max_steps > 0 else "-", "steps": result.steps,
        "batch_size": f"{opts.batch_size} per process", "processes": cfg["processes"],
        "gradient_accumulation": opts.gradient_accumulation, "effective_batch": cfg["effective_batch"],
        "learning_rate": f"{cfg['learning_rate']:g}", "warmup_ratio": opts.warmup_ratio,
        "weight_decay": opts.weight_decay, "lr_scheduler": "linear",
        "precision": "bf16 autocast" if cfg["precision_used"] == "bf16" else "fp32",
        **info.hyper,
        "seed": opts.seed,
    }
    return {"trainer": info.trainer, "model": info.model, "data": info.data, "dev": info.dev, "loss": info.loss,
            "negatives": info.negatives, "command": opts.command, "hyper": hyper}


def card_section(result, card: dict) -> str:
    """The model card section written above sentence-transformers' own card."""
    lines = [
        f"## Training with `{card['trainer']}`",
        "",
        f"- **Base model:** `{card['model']}`",
        f"- **Training data:** {card['data']}",
        f"- **Dev set:** {card['dev']}",
        f"- **Loss:** {card['loss']}",
        f"- **Hard negatives:** {card['negatives']}",
    ]
    if card.get("command"):
        lines.append(f"- **Command:** `{card['command']}`")
    lines += ["", "| hyperparameter | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in card["hyper"].items()]
    lines += ["", f"Training took {result.train_seconds:.0f} s (mining {result.mining_seconds:.0f} s)."]
    if result.scores:
        lines += ["", "| dev metric | before training | after (best checkpoint" +
                  (f", step {result.best_step}" if result.best_step else "") + ") |", "|---|---|---|"]
        for name in METRICS:
            before = result.scores_before.get(name)
            after = result.scores.get(name)
            lines.append(f"| {name} | {'-' if before is None else f'{before:.4f}'} | "
                         f"{'-' if after is None else f'{after:.4f}'} |")
    return "\n".join(lines) + "\n"


def insert_card_section(readme: Path, section: str) -> None:
    """Put ``section`` below the card's title (after any YAML front matter), or at the end without a title."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    marker = "\n# "
    start = text.find(marker, text.find("---", 3) + 3 if text.startswith("---") else 0)
    if start == -1:
        text = text + "\n" + section
    else:
        end = text.find("\n", start + 1)
        text = text[: end + 1] + "\n" + section + "\n" + text[end + 1 :]
    readme.write_text(text, encoding="utf-8")
