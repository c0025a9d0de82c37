"""The engines a CPU user would export ModernBERT to: OpenVINO and ONNX Runtime, for ``encoder_bench``.

Each engine runs the same random weights as ``ours`` and ``transformers``
(``random_modernbert(config, seed=0)``), exported once and cached under ``--export-dir``: to
ONNX by ``torch.onnx.export`` (the TorchScript exporter that optimum uses; dynamic batch and
length; opset 17), and to OpenVINO IR by ``openvino.convert_model`` from the torch module:

* ``onnxruntime``: that file in ONNX Runtime's CPU provider, fp32, all graph optimisations,
  ``intra_op_num_threads`` = torch's threads;
* ``onnxruntime_int8``: ONNX Runtime's dynamic int8 quantization of it
  (``onnxruntime.quantization.quantize_dynamic``, int8 weights, per-channel), reported beside
  its embedding error;
* ``openvino_latency`` and ``openvino_throughput``: OpenVINO's IR, compiled
  for ``CPU`` with the run's precision as ``INFERENCE_PRECISION_HINT`` (bf16 runs on AMX /
  AVX512-BF16 CPUs; elsewhere OpenVINO runs fp32 and the row says so in
  ``effective_precision``), under each of its two performance hints: ``LATENCY`` (one
  stream, every thread on one request) and ``THROUGHPUT`` (the streams and requests in
  flight it picks itself, fed through ``AsyncInferQueue``). Each runs in its own worker like
  every implementation, so that its memory is its own; the faster is "OpenVINO" in ratios.

OpenVINO converts from the torch module with transformers' ``eager`` attention: its frontend
turns that into its fused ``ScaledDotProductAttention`` op (4,096 tokens: 15.9 s and 3.3 GB
peak, against 29 s and 8.9 GB from the ONNX file, whose attention stays as separate matmuls
and softmax), and from ``sdpa`` attention it gave NaN on padded batches. ONNX Runtime has no
such fusion for this graph: the dynamo exporter's opset-23 ``Attention`` and
``RotaryEmbedding`` ops failed in ONNX Runtime 1.31 (cache shape), so it runs the decomposed
graph, whose n x n attention scores per layer make 8,192-token sequences cost ~20 GB.

Both engines get padded batches: sequences sorted by length, then cut into batches of at most
``max_tokens`` padded tokens (what gives these engines their best throughput: little padding).

Parity comes first: :func:`check_parity` runs each engine against transformers' fp32 forward
on three sequences (300 tokens, 200 of them padded in a batch with it, and one of 2,048) and
the driver stops before any timing if an fp32 engine's hidden states differ by more than
:data:`FP32_TOLERANCE`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

ENGINES = ("openvino_latency", "openvino_throughput", "onnxruntime", "onnxruntime_int8")
OV_MODES = {"openvino_latency": "LATENCY", "openvino_throughput": "THROUGHPUT"}
FP32_TOLERANCE = 1e-3  # max |difference| of fp32 hidden states (seen: ~2e-6)
OPSET = 17


def export_paths(export_dir: Path) -> dict[str, Path]:
    return {"onnx": export_dir / "modernbert.onnx", "int8": export_dir / "modernbert_int8.onnx",
            "openvino": export_dir / "modernbert_openvino.xml"}


def export_models(config_dir: Path, export_dir: Path, quiet: bool = False) -> dict[str, Path]:
    """The fp32 and int8 ONNX files and the OpenVINO IR of ``random_modernbert(config_dir, seed=0)``, made once.

    Written to a temporary name and renamed, so an interrupted export leaves no file a later run
    would take for a whole one. The folder name should carry the config (the driver's does).
    """
    from encoder.modernbert import random_modernbert

    paths = export_paths(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    if not paths["onnx"].exists():
        model = random_modernbert(config_dir, seed=0, dtype="float32", attn_implementation="sdpa")
        axes = {"b": 0, "s": 1}
        dynamic = {name: {i: a for a, i in axes.items()} for name in ("input_ids", "attention_mask", "last_hidden_state")}
        partial = paths["onnx"].with_name(f".{paths['onnx'].name}.{os.getpid()}.tmp")
        t0 = time.perf_counter()
        with torch.inference_mode():
            torch.onnx.export(model, (), str(partial), kwargs=_example_inputs(),
                              input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                              dynamic_axes=dynamic, dynamo=False, opset_version=OPSET)
        os.replace(partial, paths["onnx"])
        if not quiet:
            print(f"exported ONNX in {time.perf_counter() - t0:.1f} s: {paths['onnx']}", flush=True)
    if not paths["int8"].exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = paths["int8"].with_name(f".{paths['int8'].name}.{os.getpid()}.tmp.onnx")
        quantize_dynamic(str(paths["onnx"]), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(partial, paths["int8"])
        if not quiet:
            print(f"quantized to int8: {paths['int8']}", flush=True)
    if not paths["openvino"].exists():
        import openvino as ov

        model = random_modernbert(config_dir, seed=0, dtype="float32", attn_implementation="eager")
        with torch.inference_mode():
            converted = ov.convert_model(model, example_input=_example_inputs())
        partial = paths["openvino"].with_name(f".{os.getpid()}.tmp.xml")
        ov.save_model(converted, str(partial), compress_to_fp16=False)
        os.replace(partial.with_suffix(".bin"), paths["openvino"].with_suffix(".bin"))
        os.replace(partial, paths["openvino"])  # the .xml last: it is what marks the export whole
        if not quiet:
            print(f"converted to OpenVINO IR: {paths['openvino']}", flush=True)
    return paths


def _example_inputs() -> dict[str, torch.Tensor]:
    ids = torch.randint(100, 16000, (2, 300), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 200:] = 0
    return {"input_ids": ids, "attention_mask": mask}


class Engine:
    """One exported engine: ``run(ids, mask) -> hidden states`` and ``run_many(batches)``."""

    def __init__(self, name: str, paths: dict[str, Path], dtype: str, threads: int):
        self.name, self.mode = name, OV_MODES.get(name)
        self.effective_precision = "f32"
        if self.mode:
            import openvino as ov

            core = ov.Core()
            hint = "bf16" if dtype == "bfloat16" else "f32"
            props = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": self.mode}
            if self.mode == "LATENCY":
                props["INFERENCE_NUM_THREADS"] = threads
            self.compiled = core.compile_model(core.read_model(str(paths["openvino"])), "CPU", props)
            self.effective_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            self.requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            path = paths["int8" if name == "onnxruntime_int8" else "onnx"]
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            if name == "onnxruntime_int8":
                self.effective_precision = "int8 weights (dynamic)"

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.mode:
            return self.compiled(feeds)[0]
        return self.session.run(None, feeds)[0]

    def run_many(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Every batch once; OpenVINO's THROUGHPUT mode keeps its requests in flight."""
        if self.mode != "THROUGHPUT":
            for ids, mask in batches:
                self.run(ids, mask)
            return
        import openvino as ov

        queue = ov.AsyncInferQueue(self.compiled, self.requests)
        for ids, mask in batches:
            queue.start_async({"input_ids": ids, "attention_mask": mask})
        queue.wait_all()


def padded_batches(seqs: list[np.ndarray], max_tokens: int, pad: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sequences sorted by length, cut into batches of at most ``max_tokens`` padded tokens."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches, current = [], []
    for i in order:
        longest = max([len(seqs[j]) for j in current] + [len(seqs[i])])
        if current and longest * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    out = []
    for batch in batches:
        n = max(len(seqs[i]) for i in batch)
        ids = np.full((len(batch), n), pad, dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.int64)
        for row, i in enumerate(batch):
            ids[row, : len(seqs[i])], mask[row, : len(seqs[i])] = seqs[i], 1
        out.append((ids, mask))
    return out


def _parity_inputs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    short = rng.integers(100, 16000, (2, 300))
    short_mask = np.ones_like(short)
    short_mask[1, 200:] = 0
    long = rng.integers(100, 16000, (1, 2048))
    return [(short, short_mask), (long, np.ones_like(long))]


def check_parity(config_dir: Path, paths: dict[str, Path], dtype: str, engines: list[str], threads: int) -> dict:
    """Each engine's error against transformers' fp32 forward, before any timing.

    Per engine: ``max_abs`` (hidden states of real tokens), ``token_1_minus_cos`` (mean over
    real tokens) and ``pooled_1_minus_cos`` (mean-pooled, worst sequence). Raises
    ``RuntimeError`` if an fp32 engine's ``max_abs`` exceeds :data:`FP32_TOLERANCE`.
    """
    from encoder.modernbert import random_modernbert

    model = random_modernbert(config_dir, seed=0, dtype="float32", attn_implementation="sdpa")
    inputs = _parity_inputs()
    with torch.inference_mode():
        refs = [model(input_ids=torch.from_numpy(i), attention_mask=torch.from_numpy(m)).last_hidden_state.numpy()
                for i, m in inputs]
    del model
    report = {}
    for name in engines:
        engine = Engine(name, paths, dtype, threads)
        errors = {"max_abs": 0.0, "token_1_minus_cos": [], "pooled_1_minus_cos": 0.0}
        for (ids, mask), ref in zip(inputs, refs):
            out = engine.run(ids, mask).astype(np.float64)
            for row in range(ids.shape[0]):
                real = mask[row].astype(bool)
                a, b = out[row][real], ref[row][real].astype(np.float64)
                errors["max_abs"] = max(errors["max_abs"], float(np.abs(a - b).max()))
                cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                errors["token_1_minus_cos"].extend((1 - cos).tolist())
                pa, pb = a.mean(0), b.mean(0)
                pooled = 1 - pa @ pb / np.linalg.norm(pa) / np.linalg.norm(pb)
                errors["pooled_1_minus_cos"] = max(errors["pooled_1_minus_cos"], float(pooled))
        errors["token_1_minus_cos"] = float(np.mean(errors["token_1_minus_cos"]))
        errors = {k: float(f"{v:.3g}") for k, v in errors.items()}
        errors["effective_precision"] = engine.effective_precision
        if engine.effective_precision == "f32" and errors["max_abs"] > FP32_TOLERANCE:
            raise RuntimeError(f"{name}: fp32 export differs from transformers by {errors['max_abs']:.3g} "
                               f"(> {FP32_TOLERANCE}); not timing a wrong model ({paths['onnx']})")
        report[name] = errors
    return report


def engine_runner(args, seqs: list[np.ndarray], pad: int, threads: int):
    """``(run_all, n_batches, info)`` for the engine ``args.impl`` over these sequences."""
    batches = padded_batches(seqs, args.max_tokens, pad)
    engine = Engine(args.impl, export_paths(args.export_dir), args.dtype, threads)
    info = {"effective_precision": engine.effective_precision}
    if engine.mode:
        info["openvino_requests"] = engine.requests
    return (lambda: engine.run_many(batches)), len(batches), info
