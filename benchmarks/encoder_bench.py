"""Throughput and peak memory: packed ModernBERT (encoder.modernbert) vs transformers.

Usage
-----
    python -m benchmarks.encoder_bench --device cpu --dtype bfloat16 --json bench_bf16.json
    python -m benchmarks.encoder_bench --device cpu --dtype float32 --json bench_fp32.json

Three implementations: ``ours`` (``PackedModernBert``, with :mod:`encoder.modernbert.kernels` on CPU),
``ours_torch_ops`` (the same packed model on torch operators only: what the hand-written
kernels add, as ``kernels_speedup``) and ``transformers`` (``ModernBertModel``, sdpa).
All share the same random weights (``random_modernbert(config, seed=0)``) and see
the same sequences. ``--impls`` adds the engines of :mod:`benchmarks.encoder_engines`
(OpenVINO under both of its performance hints, ONNX Runtime fp32 and int8), exported from the
same weights and checked against transformers before any timing.

Four sets of random token ids in ``[100, 16000)`` (seed 42):

* ``fixed_512``: all 512 tokens;    ``variable_512``: N(256, 64) clamped to [16, 512];
* ``fixed_8192``: all 8,192 tokens; ``variable_8192``: N(4096, 1024) clamped to [16, 8192].

Batching: a budget of ``--max-tokens`` (8,192) tokens per batch for both. transformers
gets ``max_tokens // longest_possible`` sequences per batch in the set's order, padded to
the batch's longest (16 for the 512 sets, 1 for the 8,192 sets): what a plain
``model(**tokenizer(batch, padding=True))`` loop does. Ours packs the same sequences, in
the same order, into batches of at most ``max_tokens`` real tokens, balanced
(``encoder.modernbert.packed_batches``: 8,334 tokens make two batches of ~4,200, not
8,192 + 142). Throughput counts real tokens only: the best of up to ``--reps`` timed
passes over the whole set, after a first (warm-up and memory) pass; no further pass once
``--time-budget`` seconds went to timed passes.

Each (set, model) runs in a fresh subprocess, one after the other, so that peak memory
is measured cleanly: ``peak_mb`` is the growth of the process's resident set during the
first pass over the set (Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs``, minus ``VmRSS`` just before the pass: weights and libraries
excluded, activations, masks and allocator overhead included). Where ``clear_refs`` is
unavailable it falls back to ``ru_maxrss`` growth.

The same run measures the machine's GEMM rate (an N^3 matmul in the run's dtype, N = --gemm-size, 4096 by default, best
of several; bf16 too where the CPU runs it natively) and turns it into a matmul-bound throughput:

* ``gemm_bound_tok_s``: rate / FLOPs per token of the linear layers (Wqkv, Wo, Wi, Wo per
  layer), the bound for short sequences; the rate is the best one seen in the run;
* per set, ``bound_tok_s``: the linear layers plus the attention matmuls the set really
  needs (QK^T and PV over the keys each query sees: the whole sequence on global layers,
  the +-64 band on local ones), at the rate measured inside our worker right before its
  passes (so other load on the machine hits both alike); ``ours_frac_of_bound`` is ours
  over it (``ours_frac_of_best_gemm_bound`` uses the best rate of the run instead).

``model_shape_gemm_tflops`` is the rate on the model's own linear shapes (8,192 rows),
for context: oneDNN runs those faster than the 4096^3 square on some CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.encoder_engines import ENGINES, OV_MODES, check_parity, engine_runner, export_models

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO.parent / "shared" / "models" / "modernbert-base"

# name: (kind, mean, sd, lo, hi, count)
# Counts sized for a 2-core CPU (about 8k tokens per set; the whole run in ~5 minutes).
SETS = {
    "fixed_512": ("fixed", 512, 0, 512, 512, 16),
    "variable_512": ("normal", 256, 64, 16, 512, 32),
    "fixed_8192": ("fixed", 8192, 0, 8192, 8192, 1),
    "variable_8192": ("normal", 4096, 1024, 16, 8192, 2),
}


def make_set(name: str, scale: float = 1.0, seed: int = 42) -> list[np.ndarray]:
    """Token-id sequences of a benchmark set (deterministic for a given seed)."""
    kind, mean, sd, lo, hi, count = SETS[name]
    count = max(1, int(round(count * scale)))
    rng = np.random.default_rng(seed)
    if kind == "fixed":
        lengths = np.full(count, mean)
    else:
        lengths = np.clip(np.round(rng.normal(mean, sd, count)), lo, hi).astype(np.int64)
    return [rng.integers(100, 16000, int(n)) for n in lengths]


def linear_flops_per_token(config) -> float:
    h, i = config.hidden_size, config.intermediate_size
    per_layer = h * 3 * h + h * h + h * 2 * i + i * h
    return 2.0 * per_layer * config.num_hidden_layers


def attention_flops(config, lengths) -> float:
    """QK^T + PV FLOPs of all layers for sequences of these lengths (keys actually needed)."""
    h, w = config.hidden_size, config.local_attention // 2
    total = 0.0
    for n in lengths:
        idx = np.arange(n)
        band_keys = float((np.minimum(idx + w, n - 1) - np.maximum(idx - w, 0) + 1).sum())
        for t in config.layer_types:
            keys = float(n) * n if t == "full_attention" else band_keys
            total += 4.0 * h * keys
    return total


def gemm_tflops(dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e12


def model_gemm_tflops(config, dtype: torch.dtype, tokens: int = 8192, reps: int = 3) -> float:
    """GEMM rate on the model's own linear shapes (``tokens`` rows), for context."""
    h, i = config.hidden_size, config.intermediate_size
    shapes = [(3 * h, h), (h, h), (2 * i, h), (h, i)]
    best = 0.0
    for _ in range(reps):
        elapsed, flops = 0.0, 0.0
        for out_f, in_f in shapes:
            x = torch.randn(tokens, in_f, dtype=dtype)
            w = torch.randn(out_f, in_f, dtype=dtype)
            y = torch.empty(tokens, out_f, dtype=dtype)
            torch.mm(x, w.t(), out=y)
            t0 = time.perf_counter()
            torch.mm(x, w.t(), out=y)
            elapsed += time.perf_counter() - t0
            flops += 2.0 * tokens * in_f * out_f
        best = max(best, flops / elapsed / 1e12)
    return best


# --------------------------------------------------------------------------- worker


def status_kb(field: str) -> int | None:
    """A field of ``/proc/self/status`` in kB (``VmRSS``, ``VmHWM``), None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_kb("VmHWM") is not None
    except OSError:
        return False


def _batches_transformers(seqs, max_tokens, longest_possible):
    size = max(1, max_tokens // longest_possible)
    return [seqs[i : i + size] for i in range(0, len(seqs), size)]


DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def _runner(args, model, seqs, device):
    """``(run_all, batches)``: one pass of ``args.impl`` over the set, its inputs prepared once."""
    from encoder.modernbert import PackedModernBert, packed_batches

    if args.impl in ("ours", "ours_torch_ops"):
        # ours_torch_ops: the same packed model on torch operators only (no encoder.modernbert.kernels).
        packed = PackedModernBert(model, attn_backend="sdpa" if args.impl == "ours_torch_ops" else "auto")
        inputs = []
        for idx in packed_batches([len(s) for s in seqs], args.max_tokens, sort=False):
            batch = [seqs[i] for i in idx]
            cu = torch.tensor([0] + np.cumsum([len(s) for s in batch]).tolist(), dtype=torch.int64)
            inputs.append((torch.cat(batch).to(device), cu.to(device), max(len(s) for s in batch)))

        def run_all():
            for ids, cu, m in inputs:
                packed(ids, cu, m)

        return run_all, len(inputs)
    pad = model.config.pad_token_id
    inputs = []
    for batch in _batches_transformers(seqs, args.max_tokens, SETS[args.set][4]):
        n = max(len(s) for s in batch)
        ids = torch.full((len(batch), n), pad, dtype=torch.long)
        mask = torch.zeros(len(batch), n, dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, : len(s)], mask[i, : len(s)] = s, 1
        inputs.append((ids.to(device), mask.to(device)))

    def run_all():
        for ids, mask in inputs:
            model(input_ids=ids, attention_mask=mask)

    return run_all, len(inputs)


def _first_pass(run_all, sync, device) -> tuple[float, dict]:
    """Time of the first pass and the memory it took (``peak_mb``, ``peak_method``)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    method = "VmHWM-VmRSS" if _reset_peak() else "ru_maxrss"
    rss0 = status_kb("VmRSS") if method == "VmHWM-VmRSS" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    run_all()
    sync()
    first = time.perf_counter() - t0
    if method == "VmHWM-VmRSS":
        peak_kb = status_kb("VmHWM") - rss0
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    if device.type == "cuda":
        return first, {"peak_mb": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1),
                       "peak_method": "torch.cuda.max_memory_allocated"}
    return first, {"peak_mb": round(peak_kb / 1024, 1), "peak_method": method}


def worker(args) -> dict:
    import gc

    from encoder.modernbert import random_modernbert

    torch.manual_seed(0)
    dtype = DTYPES[args.dtype]
    device = torch.device(args.device)
    sets = make_set(args.set, args.scale)
    tokens = sum(len(s) for s in sets)
    if args.impl in ENGINES:  # the engine loads its own export; the torch model would only cost memory
        from transformers import ModernBertConfig

        from encoder.modernbert import modernbert_config_dict

        pad = ModernBertConfig.from_dict(modernbert_config_dict(args.config, None)).pad_token_id
        run_all, n_batches, info = engine_runner(args, sets, pad, torch.get_num_threads())
    else:
        model = random_modernbert(args.config, seed=0, dtype=dtype, attn_implementation="sdpa").to(device)
        run_all, n_batches = _runner(args, model, [torch.from_numpy(s) for s in sets], device)
        info = {}

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    result = {"tokens": tokens, "batches": n_batches, **info}
    if device.type == "cpu" and args.impl not in ENGINES:
        # The GEMM rate under the same conditions (other load on the machine) as this run.
        result["gemm_tflops"] = gemm_tflops(dtype, n=args.gemm_size, reps=3)
    gc.collect()
    with torch.inference_mode():
        first, memory = _first_pass(run_all, sync, device)
        result.update(memory)
        times = [first]
        start = time.perf_counter()
        for rep in range(args.reps):
            if rep and time.perf_counter() - start > args.time_budget:
                break  # slow set: one timed pass is enough
            t0 = time.perf_counter()
            run_all()
            sync()
            times.append(time.perf_counter() - t0)
        if args.profile and device.type == "cpu":
            result["time_shares"] = time_shares(run_all)
    best = min(times[1:]) if len(times) > 1 else times[0]
    result["times_s"] = [round(t, 3) for t in times]
    result["tok_s"] = round(tokens / best, 1)
    return result


# Where the time goes (``--profile``): leaf operators' own CPU time, by kind. Names match by
# substring, first kind first ("aten::addmm" covers addmm_ before "aten::add" takes add_/addcmul_).
OP_KINDS = (
    ("linear GEMMs", ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise", "aten::bmm")),
    ("attention", ("scaled_dot_product", "flash_attention", "softmax", "encoder::varlen_attention")),
    ("layer norm", ("layer_norm",)),
    ("RoPE, GeGLU, residual (elementwise)", ("aten::mul", "aten::add", "aten::gelu", "aten::cat", "encoder::rope")),
)


def time_shares(run_all) -> dict[str, float]:
    """One profiled pass: the share of operator time of each kind in :data:`OP_KINDS` (rest: "other")."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_all()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        kind = next((k for k, names in OP_KINDS if any(n in event.key for n in names)), "other")
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: round(v / whole, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


# --------------------------------------------------------------------------- driver


def run_worker(args, set_name: str, impl: str) -> dict:
    cmd = [
        sys.executable, "-m", "benchmarks.encoder_bench", "--worker",
        "--set", set_name, "--impl", impl,
        "--device", args.device, "--dtype", args.dtype, "--config", str(args.config),
        "--max-tokens", str(args.max_tokens), "--reps", str(args.reps), "--scale", str(args.scale),
        "--time-budget", str(args.time_budget), "--gemm-size", str(args.gemm_size),
        "--export-dir", str(args.export_dir),
    ] + (["--profile"] if args.profile and impl == "ours" else [])
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    if proc.returncode == -9 and impl in ENGINES:
        # An exported engine that outgrows the machine (ONNX Runtime at 8,192 tokens) is a result, not a crash.
        return {"error": "killed by SIGKILL (out of memory)"}
    if proc.returncode != 0:
        raise RuntimeError(f"worker {set_name}/{impl} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.encoder_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"],
                        help="weights and activations dtype for every implementation (default: bfloat16)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="folder with the ModernBERT config.json; random weights (default: ../shared/models/modernbert-base)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of " + ",".join(SETS))
    parser.add_argument("--impls", default=None,
                        help="comma-separated subset of ours, ours_torch_ops (ours without encoder.modernbert.kernels, the CPU "
                             "kernels: torch operators only), transformers, and the exported engines "
                             + ", ".join(ENGINES) + " (benchmarks.encoder_engines; the `bench` extra) "
                             "(default: ours,ours_torch_ops,transformers on CPU, ours,transformers on other devices)")
    parser.add_argument("--max-tokens", type=int, default=8192, help="token budget per batch (default: 8192)")
    parser.add_argument("--reps", type=int, default=2, help="timed passes after the (memory) pass (default: 2)")
    parser.add_argument("--time-budget", type=float, default=40.0,
                        help="no further timed pass once the timed passes took this many seconds (default: 40)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of sequences per set (default: 1)")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed passes, profile one pass of ours and report the share of time by kind of operator")
    parser.add_argument("--gemm-size", type=int, default=4096,
                        help="N of the N x N x N GEMMs timed for the matmul bound (and 2N rows for the model's own shapes); "
                        "smaller is quicker and less exact")
    parser.add_argument("--export-dir", type=Path, default=None,
                        help="where the engines' ONNX exports of the random weights are kept and reused "
                        "(default: runs/encoder_exports/<config folder name>)")
    parser.add_argument("--quiet", action="store_true", help="print only where the results went (the JSON itself without --json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--set", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    return parser


def _header(args, config, dtype) -> tuple[dict, float | None]:
    """The run's machine figures (GEMM rates on CPU, the matmul-bound throughput they give) and its GEMM rate."""
    cpu, n = args.device == "cpu", args.gemm_size
    # bf16 on a CPU without AMX / AVX512-BF16 runs at ~1 GFLOP/s: minutes for a figure nobody uses.
    native_bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    bf16_tflops = gemm_tflops(torch.bfloat16, n=n) if cpu and (native_bf16 or dtype == torch.bfloat16) else None
    run_tflops = bf16_tflops if dtype == torch.bfloat16 else (gemm_tflops(dtype, n=n) if cpu else None)
    lin = linear_flops_per_token(config)
    shape_tflops = model_gemm_tflops(config, dtype, tokens=2 * n) if cpu else None
    out = {
        "device": args.device,
        "dtype": args.dtype,
        "config": str(args.config),
        "threads": torch.get_num_threads(),
        "max_tokens": args.max_tokens,
        "bf16_gemm_tflops": round(bf16_tflops, 3) if bf16_tflops else None,
        "gemm_tflops": round(run_tflops, 3) if run_tflops else None,
        "linear_gflop_per_token": round(lin / 1e9, 4),
        "gemm_bound_tok_s": round(run_tflops * 1e12 / lin, 1) if run_tflops else None,
        "model_shape_gemm_tflops": round(shape_tflops, 3) if shape_tflops else None,
        "model_shape_gemm_bound_tok_s": round(shape_tflops * 1e12 / lin, 1) if shape_tflops else None,
        "peak_mb_method": "resident-set growth during the first pass (VmHWM after clear_refs minus VmRSS before)",
        "sets": {},
    }
    if run_tflops and not args.quiet:
        print(f"{args.dtype} GEMM ({args.gemm_size}^3) {run_tflops:.3f} TFLOP/s; linear layers {lin / 1e9:.4f} GFLOP/token "
              f"-> matmul bound {out['gemm_bound_tok_s']:.0f} tok/s (no attention); on the model's own "
              f"linear shapes {shape_tflops:.3f} TFLOP/s -> {out['model_shape_gemm_bound_tok_s']:.0f} tok/s",
              flush=True)
    return out, run_tflops


def _set_row(args, name: str, impls: list[str], config, run_tflops: float | None, all_rates: list[float]) -> dict:
    """One set, every implementation in its own worker; GEMM rates seen go to ``all_rates``."""
    seqs = make_set(name, args.scale)
    lengths = [len(s) for s in seqs]
    tokens = sum(lengths)
    flops_tok = linear_flops_per_token(config) + attention_flops(config, lengths) / tokens
    row = {"tokens": tokens, "sequences": len(seqs)}
    rates = {}
    for impl in impls:
        res = run_worker(args, name, impl)
        if "error" in res:
            row[f"{impl}_error"] = res["error"]
            continue
        row[f"{impl}_tok_s"] = res["tok_s"]
        row[f"{impl}_peak_mb"] = res["peak_mb"]
        row[f"{impl}_times_s"] = res["times_s"]
        if "effective_precision" in res:
            row[f"{impl}_precision"] = res["effective_precision"]
        if "time_shares" in res:
            row[f"{impl}_time_shares"] = res["time_shares"]
        if res.get("gemm_tflops"):
            rates[impl] = res["gemm_tflops"]
            all_rates.append(res["gemm_tflops"])
    if "ours" in impls and "transformers" in impls:
        row["ratio"] = round(row["ours_tok_s"] / row["transformers_tok_s"], 3)
    if "ours" in impls and "ours_torch_ops" in impls:
        row["kernels_speedup"] = round(row["ours_tok_s"] / row["ours_torch_ops_tok_s"], 3)
    if run_tflops:
        # Linear layers + the attention matmuls this set really needs, at the GEMM rate
        # measured in our worker just before its passes (same load on the machine).
        rate = rates.get("ours", run_tflops)
        row["gemm_tflops"] = round(rate, 3)
        row["gflop_per_token"] = round(flops_tok / 1e9, 4)
        row["bound_tok_s"] = round(rate * 1e12 / flops_tok, 1)
        if "ours" in impls:
            row["ours_frac_of_bound"] = round(row["ours_tok_s"] / row["bound_tok_s"], 3)
    _engine_ratios(row, impls)
    if not args.quiet:
        print(f"{name:>14}: " + ", ".join(f"{k}={v}" for k, v in row.items() if not k.endswith("times_s")), flush=True)
    return row


def _engine_ratios(row: dict, impls: list[str]) -> None:
    """Ours over OpenVINO (its faster hint), ONNX Runtime fp32, the faster of the two, and ORT int8."""
    if "ours" not in impls:
        return
    ov = [row[f"{m}_tok_s"] for m in OV_MODES if f"{m}_tok_s" in row]
    if ov:
        row["openvino_tok_s"] = max(ov)
    anchors = {"openvino": row.get("openvino_tok_s"), "onnxruntime": row.get("onnxruntime_tok_s"),
               "onnxruntime_int8": row.get("onnxruntime_int8_tok_s")}
    for name, tok_s in anchors.items():
        if tok_s:
            row[f"ratio_vs_{name}"] = round(row["ours_tok_s"] / tok_s, 3)
    best = max([v for k, v in anchors.items() if v and k != "onnxruntime_int8"], default=None)
    if best:
        row["ratio_vs_faster_engine"] = round(row["ours_tok_s"] / best, 3)


def _export_and_check(args, impls: list[str]) -> dict | None:
    """Exports for the engines asked for, and their parity against transformers (before any timing)."""
    engines = [i for i in impls if i in ENGINES]
    if not engines:
        return None
    paths = export_models(args.config, args.export_dir, quiet=args.quiet)
    parity = check_parity(args.config, paths, args.dtype, engines, torch.get_num_threads())
    if not args.quiet:
        for name, errors in parity.items():
            print(f"parity {name}: " + ", ".join(f"{k}={v}" for k, v in errors.items()), flush=True)
    return parity


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.export_dir is None:
        args.export_dir = REPO / "runs" / "encoder_exports" / Path(args.config).resolve().name
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    from transformers import ModernBertConfig

    from encoder.modernbert import modernbert_config_dict

    config = ModernBertConfig.from_dict(modernbert_config_dict(args.config, None))
    t_start = time.perf_counter()
    out, run_tflops = _header(args, config, DTYPES[args.dtype])
    if args.impls is None:
        args.impls = "ours,ours_torch_ops,transformers" if args.device == "cpu" else "ours,transformers"
    impls = [s for s in args.impls.split(",") if s]
    unknown = [i for i in impls if i not in ("ours", "ours_torch_ops", "transformers", *ENGINES)]
    if unknown:
        raise SystemExit(f"--impls: unknown {', '.join(unknown)}")
    out["parity_vs_transformers_fp32"] = _export_and_check(args, impls)
    all_rates = [run_tflops] if run_tflops else []
    for name in [s for s in args.sets.split(",") if s]:
        out["sets"][name] = _set_row(args, name, impls, config, run_tflops, all_rates)
    if all_rates:
        # Conservative: the best GEMM rate seen anywhere in the run.
        lin = linear_flops_per_token(config)
        out["gemm_tflops"] = round(max(all_rates), 3)
        out["gemm_bound_tok_s"] = round(max(all_rates) * 1e12 / lin, 1)
        for row in out["sets"].values():
            if "ours_tok_s" in row:
                row["ours_frac_of_best_gemm_bound"] = round(
                    row["ours_tok_s"] * row["gflop_per_token"] * 1e9 / (max(all_rates) * 1e12), 3
                )
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(out, indent=2)
    if not (args.quiet and args.json):
        print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        partial = args.json.with_name(f".{args.json.name}.{os.getpid()}.tmp")
        partial.write_text(text + "\n")
        os.replace(partial, args.json)  # never a half-written results file
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
