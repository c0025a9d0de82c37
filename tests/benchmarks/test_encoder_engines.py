"""``benchmarks.encoder_engines``: the OpenVINO and ONNX Runtime rows of ``python -m benchmarks.encoder_bench``."""

import json

import numpy as np
import pytest

from benchmarks.encoder_engines import padded_batches
from tests.conftest import SHARED

BASE = SHARED / "models" / "modernbert-base"


def test_padded_batches_sort_by_length_and_keep_the_token_budget():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(100, 16000, int(n)) for n in rng.integers(16, 512, 40)]
    batches = padded_batches(seqs, max_tokens=2048, pad=50283)
    assert all(ids.size <= 2048 and ids.shape == mask.shape for ids, mask in batches)
    rows = sorted((tuple(ids[r][mask[r] == 1]) for ids, mask in batches for r in range(len(ids))), key=len)
    assert rows == sorted((tuple(s) for s in seqs), key=len)  # every sequence once, whole
    longest = [int(mask.sum(1).max()) for _, mask in batches]
    assert longest == sorted(longest) and all(ids[mask == 0].tolist() == [50283] * int((mask == 0).sum())
                                              for ids, mask in batches)


def small_config(folder, layers):
    config = json.loads((BASE / "config.json").read_text())
    config["num_hidden_layers"] = layers
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.shared_data
def test_engines_rows_parity_and_ratios(tmp_path):
    """On a 2-layer copy: exports made once, fp32 parity before timing (a wrong export refused), int8's error
    reported, ratios to ours."""
    pytest.importorskip("openvino", reason="a benchmark extra: pip install .[bench]")
    pytest.importorskip("onnxruntime", reason="a benchmark extra: pip install .[bench]")
    from benchmarks import encoder_bench as bench
    from benchmarks.encoder_engines import check_parity, export_models

    config, exports, out = small_config(tmp_path / "cfg", 2), tmp_path / "exports", tmp_path / "bench.json"
    bench.main(["--config", str(config), "--dtype", "float32", "--sets", "variable_512", "--scale", "0.125",
                "--reps", "1", "--gemm-size", "256", "--export-dir", str(exports), "--json", str(out), "--quiet",
                "--impls", "ours,openvino_latency,onnxruntime,onnxruntime_int8"])
    report = json.loads(out.read_text())
    parity = report["parity_vs_transformers_fp32"]
    for name in ("openvino_latency", "onnxruntime"):
        assert parity[name]["max_abs"] < 1e-4 and parity[name]["effective_precision"] == "f32", name
    assert parity["onnxruntime_int8"]["pooled_1_minus_cos"] > 10 * parity["onnxruntime"]["pooled_1_minus_cos"]
    row = report["sets"]["variable_512"]
    assert row["openvino_tok_s"] == row["openvino_latency_tok_s"]
    assert row["ratio_vs_onnxruntime"] == pytest.approx(row["ours_tok_s"] / row["onnxruntime_tok_s"], rel=1e-2)
    assert row["ratio_vs_faster_engine"] == pytest.approx(
        row["ours_tok_s"] / max(row["openvino_tok_s"], row["onnxruntime_tok_s"]), rel=1e-2)
    assert all(row[f"{e}_peak_mb"] > 0 for e in ("openvino_latency", "onnxruntime", "onnxruntime_int8"))
    made = {p.name: p.stat().st_mtime_ns for p in exports.iterdir()}
    assert set(made) == {"modernbert.onnx", "modernbert_int8.onnx", "modernbert_openvino.xml", "modernbert_openvino.bin"}
    paths = export_models(config, exports, quiet=True)  # made once: a second call reuses them
    assert {p.name: p.stat().st_mtime_ns for p in exports.iterdir()} == made
    with pytest.raises(RuntimeError, match="not timing a wrong model"):  # other weights: 3 layers
        check_parity(small_config(tmp_path / "three", 3), paths, "float32", ["onnxruntime"], threads=1)
