"""The report's figures as PNGs: nDCG@10 per task with bootstrap intervals, quality against speed, encoder throughput.

matplotlib through its object API (``Figure`` + the Agg canvas, never ``pyplot``): no global
figure state, so plotting is safe from threads and needs no display. Each function returns what
it drew (``{"path", "bars"}`` or ``{"path", "lines", "points"}``), counted on the figure's own
artists before saving, which is what the tests check besides decoding the file. 100 dpi at 7 x 3.6
inches keeps a PNG near 30-50 kB, small enough to commit beside BENCHMARKS.md.

Inputs are the files other commands already write: the report's per-query scores
(:mod:`evaluation.report`), ``benchmarks.indexes_bench --json`` runs (one point per method; FAISS
points from several runs, one per knob setting, join into a curve) or a sweep file
``{"curves": {name: [{"qps", "ndcg@10", "label"}...]}}``, and ``benchmarks.encoder_bench --json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


FIGSIZE = (7.0, 3.6)
DPI = 100
ENCODER_IMPLS = (("ours", "ours (packed + kernels)"), ("ours_torch_ops", "ours, torch ops"), ("transformers", "transformers (anchor)"))


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _bars(ax) -> int:
    from matplotlib.container import BarContainer

    return sum(len(c) for c in ax.containers if isinstance(c, BarContainer))


def _save(fig, path: str | Path) -> Path:
    """Save through a temporary file in the same folder and a rename, as :mod:`indexes.storage` writes: never a half PNG."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def task_bars(scores: Mapping[str, Mapping[str, tuple[float, float, float]]], tasks: Sequence[str], path: str | Path,
              *, metric: str = "nDCG@10") -> dict:
    """Grouped bars: one group per task, one bar per series (``scores[series][task] = (mean, low, high)``).

    A series missing a task leaves a gap. Error bars are the intervals given (the report's per-query bootstrap).
    """
    fig, ax = _figure()
    series = list(scores)
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(tasks))
    for i, name in enumerate(series):
        cells = [scores[name].get(t) for t in tasks]
        pos = [x[j] + (i - (len(series) - 1) / 2) * width for j, c in enumerate(cells) if c is not None]
        got = [c for c in cells if c is not None]
        if not got:
            continue
        means = np.array([c[0] for c in got])
        err = np.array([[m - c[1] for m, c in zip(means, got)], [c[2] - m for m, c in zip(means, got)]]).clip(min=0)
        ax.bar(pos, means, width, yerr=err, capsize=2, label=name, error_kw={"linewidth": 0.8})
    ax.set_xticks(x, list(tasks))
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.2)  # headroom for the legend above bars that reach 1
    ax.set_title(f"{metric} per task (95% bootstrap CI over queries)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    bars = _bars(ax)
    return {"path": str(_save(fig, path)), "bars": bars}


def quality_speed(curves: Mapping[str, Sequence[Mapping]], path: str | Path, *, metric: str = "ndcg@10") -> dict:
    """nDCG@10 against queries/s, one line per engine (its points sorted by speed, each labelled with its knobs)."""
    fig, ax = _figure()
    points = 0
    for name, pts in curves.items():
        pts = sorted(pts, key=lambda p: p["qps"])
        if not pts:
            continue
        qps, quality = [p["qps"] for p in pts], [p[metric] for p in pts]
        ax.plot(qps, quality, marker="o", markersize=4, label=name)
        for p in pts:
            if p.get("label"):
                ax.annotate(p["label"], (p["qps"], p[metric]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        points += len(pts)
    ax.set_xscale("log")
    ax.set_xlabel("queries / s (log)")
    ax.set_ylabel(metric.replace("ndcg", "nDCG"))
    ax.set_title("multi-vector search: quality against speed", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    lines = sum(1 for line in ax.get_lines() if not line.get_label().startswith("_"))  # counted on the figure itself
    return {"path": str(_save(fig, path)), "lines": lines, "points": points}


def read_curves(paths: Sequence[str | Path]) -> dict[str, list[dict]]:
    """Curves from sweep files (``{"curves": ...}``) and ``indexes_bench --json`` runs (methods as points)."""
    curves: dict[str, list[dict]] = {}
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if "curves" in data:
            for name, pts in data["curves"].items():
                curves.setdefault(name, []).extend(pts)
            continue
        for method, r in data.get("methods", {}).items():
            knobs = r.get("search_params") or data.get("search_params") or ""
            curves.setdefault(method, []).append({"qps": r["qps"], "ndcg@10": r["ndcg@10"], "label": knobs})
    if not curves:
        raise ValueError(f"no curves in {', '.join(map(str, paths))}")
    return curves


def encoder_throughput(bench: Mapping, path: str | Path) -> dict:
    """Tokens/s per input set for each implementation of a ``benchmarks.encoder_bench --json`` run (transformers is the anchor)."""
    fig, ax = _figure()
    sets = list(bench["sets"])
    impls = [(key, label) for key, label in ENCODER_IMPLS if any(f"{key}_tok_s" in bench["sets"][s] for s in sets)]
    width = 0.8 / max(len(impls), 1)
    x = np.arange(len(sets))
    for i, (key, label) in enumerate(impls):
        values = [bench["sets"][s].get(f"{key}_tok_s", 0.0) for s in sets]
        ax.bar(x + (i - (len(impls) - 1) / 2) * width, values, width, label=label)
    bound = [bench["sets"][s].get("bound_tok_s") for s in sets]
    if all(b is not None for b in bound):
        ax.scatter(x, bound, marker="_", s=400, color="black", label="GEMM bound", zorder=3)
    ax.set_xticks(x, sets)
    ax.set_ylabel("tokens / s")
    ax.set_title(f"ModernBERT encoder, {bench.get('device', '?')} {bench.get('dtype', '')}, {bench.get('threads', '?')} threads",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    bars = _bars(ax)
    return {"path": str(_save(fig, path)), "bars": bars}
