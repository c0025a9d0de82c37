"""The CPU kernels (:mod:`encoder.modernbert.kernels`) against torch's own operators, same inputs.

Usage
-----
    python -m benchmarks.kernels_bench --json runs/kernels_bench.json

ModernBERT-base shapes (12 heads of 64), bf16, random inputs, the machine's threads; each
case is timed as the best of ``--reps`` calls after a warm-up, ours and torch's
alternating so that load on the machine hits both alike:

* ``attention_global_1x8192`` / ``attention_global_16x512``: :func:`kernels.varlen_attention`
  (packing of keys and values included) vs ``F.scaled_dot_product_attention`` on the
  ``(batch, heads, seq, 64)`` tensors (torch's CPU flash attention, on the same AMX brgemm);
* ``attention_local_16x512``: the +-64 band of the local layers vs SDPA with the dense band
  mask (what transformers runs);
* ``rope_8192``: :func:`kernels.rope` vs transformers' ``rotate_half`` formula as torch ops.

``speedup`` is torch's time over ours.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from encoder.modernbert import kernels, rope_torch_ops

HEADS, HEAD_DIM, WINDOW = 12, 64, 64


def _best(fns: dict, reps: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: t * 1e3 for name, t in best.items()}


def _attention_case(lengths: list[int], window: int | None, reps: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    T, n = sum(lengths), len(lengths)
    qkv = torch.randn(T, 3, HEADS, HEAD_DIM, generator=g).to(torch.bfloat16)
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist())
    out = torch.empty(T, HEADS, HEAD_DIM, dtype=torch.bfloat16)
    scratch = kernels.attention_scratch(T, HEADS, HEAD_DIM)
    # torch's layout: (batch, heads, seq, dim), all sequences the same length here.
    q, k, v = (qkv[:, i].reshape(n, T // n, HEADS, HEAD_DIM).transpose(1, 2).contiguous() for i in range(3))
    mask = None
    if window is not None:
        i = torch.arange(T // n)
        mask = (i[:, None] - i[None, :]).abs() <= window
    return _best(
        {
            "ours_ms": lambda: kernels.varlen_attention(
                qkv[:, 0], qkv[:, 1], qkv[:, 2], cu, window, HEAD_DIM**-0.5, out, max(lengths), scratch
            ),
            "torch_ms": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        },
        reps,
    )


def _rope_tables(T: int) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.arange(T, dtype=torch.float32)[:, None] * torch.rand(HEAD_DIM // 2)[None, :]
    return angles.cos(), angles.sin()


def _rope_case(T: int, reps: int) -> dict[str, float]:
    qkv = torch.randn(T, 3, HEADS, HEAD_DIM).to(torch.bfloat16)
    cos, sin = _rope_tables(T)
    dst = torch.empty(T, 2, HEADS, HEAD_DIM, dtype=torch.bfloat16)
    c, s = cos.to(torch.bfloat16)[:, None, None], sin.to(torch.bfloat16)[:, None, None]

    def torch_ops():  # the encoder's own path without kernels
        rope_torch_ops(qkv, dst, c, s)

    return _best({"ours_ms": lambda: kernels.rope(qkv, dst, cos, sin), "torch_ms": torch_ops}, reps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per case and implementation (default: 5)")
    args = parser.parse_args(argv)
    if not kernels.attention_supported():
        parser.exit(1, f"no CPU attention kernel here ({kernels.unavailable_reason() or 'no AMX bf16'})\n")

    cases = {
        "attention_global_1x8192": lambda: _attention_case([8192], None, max(2, args.reps // 2)),
        "attention_global_16x512": lambda: _attention_case([512] * 16, None, args.reps),
        "attention_local_16x512": lambda: _attention_case([512] * 16, WINDOW, args.reps),
        "rope_8192": lambda: _rope_case(8192, args.reps),
    }
    results = {}
    with torch.inference_mode():
        for name, case in cases.items():
            r = case()
            r["speedup"] = round(r["torch_ms"] / r["ours_ms"], 3)
            results[name] = {k: round(v, 3) for k, v in r.items()}
            print(f"{name:26s} " + "  ".join(f"{k} {v:,.2f}" for k, v in results[name].items()), flush=True)
    if args.json:
        payload = {"threads": torch.get_num_threads(), "heads": HEADS, "head_dim": HEAD_DIM, "cases": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, args.json)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
