"""Packed ModernBERT (encoder.modernbert) against transformers' ModernBertModel.

Random weights from the real ModernBERT-base config (reduced to a few layers so both
global and local layers, and a global layer with a real attn_norm, are covered).
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder import encode, load_model, use_packed_modernbert
from encoder.modernbert import (
    PackedModernBert,
    PackedModernBertTransformer,
    packed_batches,
    pool_packed,
    random_modernbert,
)
from encoder.modernbert.fixtures import TOKENIZER_FILES
from tests.conftest import SHARED

BASE = SHARED / "models" / "modernbert-base"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not (BASE / "config.json").is_file(), reason=f"no ModernBERT config under {BASE}"),
]

# Layers 0 (global, Identity attn_norm), 1-2 (local), 3 (global with LayerNorm).
NUM_LAYERS = 4
MIXED = [1, 5, 64, 129, 300, 8192]
SHORT = [1, 5, 64, 129, 300, 1000]


def _ids(lengths, seed=0, vocab=(100, 16000)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(vocab[0], vocab[1], (n,), generator=g) for n in lengths]


def _pad(seqs, pad_id, left=False):
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), longest, dtype=torch.long)
    for i, s in enumerate(seqs):
        if left:
            ids[i, longest - len(s) :], mask[i, longest - len(s) :] = s, 1
        else:
            ids[i, : len(s)], mask[i, : len(s)] = s, 1
    return ids, mask


def _pack(seqs):
    cu = torch.tensor([0] + np.cumsum([len(s) for s in seqs]).tolist(), dtype=torch.int64)
    return torch.cat(seqs), cu


def _reference(model, seqs, impl, max_padded=1024):
    """transformers' last hidden states per sequence: short ones in one padded batch."""
    model.config._attn_implementation = impl
    out = [None] * len(seqs)
    short = [i for i, s in enumerate(seqs) if len(s) <= max_padded]
    with torch.no_grad():
        if short:
            ids, mask = _pad([seqs[i] for i in short], model.config.pad_token_id)
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            for row, i in enumerate(short):
                out[i] = hidden[row, : len(seqs[i])]
        for i, s in enumerate(seqs):
            if out[i] is None:
                out[i] = model(input_ids=s[None]).last_hidden_state[0]
    model.config._attn_implementation = "sdpa"
    return out


@pytest.fixture(scope="module")
def hf_model():
    return random_modernbert(BASE, num_layers=NUM_LAYERS, seed=0)


@pytest.fixture(scope="module")
def mixed(hf_model):
    seqs = _ids(MIXED)
    return seqs, _reference(hf_model, seqs, "sdpa")


def test_layer_types_cover_global_and_local(hf_model):
    assert hf_model.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    assert isinstance(hf_model.layers[0].attn_norm, torch.nn.Identity)
    assert hf_model.config.sliding_window == 64


def test_packed_matches_transformers_sdpa_fp32(hf_model, mixed):
    seqs, ref = mixed
    packed = PackedModernBert(hf_model)
    ids, cu = _pack(seqs)
    with torch.inference_mode():
        fast = packed(ids, cu, max(MIXED))
    with torch.no_grad(), torch.enable_grad():  # the autograd-safe (training) code path
        slow = packed(ids, cu)
    for out in (fast, slow):
        for i, r in enumerate(ref):
            diff = (out[cu[i] : cu[i + 1]] - r).abs().max().item()
            assert diff <= 1e-4, f"length {MIXED[i]}: max abs diff {diff}"


def test_packed_matches_transformers_eager_fp32(hf_model):
    seqs = _ids(SHORT, seed=1)
    ref = _reference(hf_model, seqs, "eager")
    packed = PackedModernBert(hf_model)
    ids, mask = _pad(seqs, hf_model.config.pad_token_id)
    with torch.inference_mode():
        out = packed.forward_padded(ids, mask)
    for i, r in enumerate(ref):
        assert (out[i, : len(r)] - r).abs().max().item() <= 1e-4
        assert not out[i, len(r) :].any()  # padding stays zero


@pytest.mark.parametrize("backend", ["auto", "sdpa"])  # auto: encoder.modernbert.kernels on CPU; sdpa: torch ops only
def test_bf16_cosine_against_fp32_transformers(hf_model, mixed, backend):
    seqs, ref = mixed
    model = random_modernbert(BASE, num_layers=NUM_LAYERS, seed=0, dtype="bfloat16")
    packed = PackedModernBert(model, attn_backend=backend)
    ids, cu = _pack(seqs)
    with torch.inference_mode():
        out = packed(ids, cu)
    assert out.dtype == torch.bfloat16
    cos = F.cosine_similarity(out.float(), torch.cat(ref), dim=-1)
    assert cos.min().item() >= 0.999, cos.min().item()


def test_gradients_match_transformers(hf_model):
    seqs = _ids([1, 5, 64, 129, 300], seed=2)
    probe = torch.randn(hf_model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    hf_model.train()
    try:
        ids, mask = _pad(seqs, hf_model.config.pad_token_id)
        hidden = hf_model(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        (pooled @ probe).mean().backward()
        ref = {n: p.grad.clone() for n, p in hf_model.named_parameters()}
        hf_model.zero_grad(set_to_none=True)

        packed = PackedModernBert(hf_model)
        flat, cu = _pack(seqs)
        out = packed(flat, cu)
        (pool_packed(out, cu, "mean") @ probe).mean().backward()
        for name, p in hf_model.named_parameters():
            assert p.grad is not None, name
            diff = (p.grad - ref[name]).abs().max().item()
            assert diff <= 1e-4, f"{name}: {diff}"
        assert max(g.abs().max().item() for g in ref.values()) > 1.0  # the check is not vacuous
    finally:
        hf_model.zero_grad(set_to_none=True)
        hf_model.eval()


def test_gradient_checkpointing_same_gradients(hf_model):
    seqs = _ids([3, 90, 200], seed=10)
    flat, cu = _pack(seqs)
    packed = PackedModernBert(hf_model)
    grads = []
    hf_model.train()
    try:
        for checkpointing in (False, True):
            if checkpointing:
                hf_model.gradient_checkpointing_enable()
            pool_packed(packed(flat, cu), cu).sum().backward()
            grads.append([p.grad.clone() for p in hf_model.parameters()])
            hf_model.zero_grad(set_to_none=True)
    finally:
        hf_model.gradient_checkpointing_disable()
        hf_model.eval()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_global_groups_cover_every_token():
    from encoder.modernbert.plan import global_groups

    lengths = [300, 5, 1, 64, 300, 129, 290, 8]
    groups = global_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        longest = lengths[g[0]]
        ideal = sum(lengths[i] ** 2 for i in g)
        assert len(g) * longest**2 - ideal <= 0.2 * ideal + 4096 * len(g)
    assert global_groups([512] * 4) == [[0, 1, 2, 3]]


def test_config_formats_and_custom_pattern(tmp_path):
    """transformers 4.x keys (global_rope_theta...) and 5.x keys (layer_types, rope_parameters)."""
    old = json.loads((BASE / "config.json").read_text())
    old.update(num_hidden_layers=3, global_attn_every_n_layers=2, local_rope_theta=20000.0,
               global_rope_theta=80000.0, local_attention=32)
    (tmp_path / "v4").mkdir()
    (tmp_path / "v4" / "config.json").write_text(json.dumps(old))
    v4 = random_modernbert(tmp_path / "v4", seed=5)
    assert v4.config.layer_types == ["full_attention", "sliding_attention", "full_attention"]
    assert v4.config.rope_parameters["sliding_attention"]["rope_theta"] == 20000.0
    v4.config.save_pretrained(tmp_path / "v5")
    saved = json.loads((tmp_path / "v5" / "config.json").read_text())
    assert "layer_types" in saved and "rope_parameters" in saved
    v5 = random_modernbert(tmp_path / "v5", seed=5)
    assert v5.config.layer_types == v4.config.layer_types
    assert v5.config.rope_parameters == v4.config.rope_parameters
    seqs = _ids([3, 40, 77, 200], seed=4)
    ids, cu = _pack(seqs)
    for model in (v4, v5):
        ref = _reference(model, seqs, "sdpa")
        with torch.inference_mode():
            out = PackedModernBert(model)(ids, cu)
        assert (out - torch.cat(ref)).abs().max().item() <= 1e-4


def test_left_padding_and_block_sizes(hf_model):
    seqs = _ids([7, 130, 250], seed=6)
    ref = _reference(hf_model, seqs, "sdpa")
    ids, mask = _pad(seqs, hf_model.config.pad_token_id, left=True)
    for block in (1, 16, 64, 256):
        with torch.inference_mode():
            out = PackedModernBert(hf_model, local_block=block).forward_padded(ids, mask)
        for i, r in enumerate(ref):
            assert (out[i, -len(r) :] - r).abs().max().item() <= 1e-4, block


def test_bad_inputs(hf_model):
    packed = PackedModernBert(hf_model)
    with pytest.raises(ValueError):
        packed(torch.arange(5), torch.tensor([0, 3, 3, 5]))  # empty sequence
    with pytest.raises(ValueError):
        packed(torch.arange(5), torch.tensor([0, 4]))  # does not cover input_ids
    with pytest.raises(ValueError):
        packed(torch.arange(5), torch.tensor([0, 5]), max_seqlen=3)


def test_packed_batches_respect_budget():
    lengths = [5, 300, 8192, 1, 64, 300, 9000]
    batches = packed_batches(lengths, 1000)
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or sum(lengths[i] for i in b) <= 1000


def test_packed_batches_balance_and_order():
    lengths = [300] * 28  # 8,400 tokens: two batches of 4,200, not 8,100 + 300
    batches = packed_batches(lengths, 8192, sort=False)
    assert [sum(lengths[i] for i in b) for b in batches] == [4200, 4200]
    assert np.concatenate(batches).tolist() == list(range(28))  # input order kept
    assert [len(b) for b in packed_batches([5, 9, 7], 100)] == [3]
    assert np.concatenate(packed_batches([5, 9, 7], 100)).tolist() == [1, 2, 0]  # longest first


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory, hf_model):
    path = tmp_path_factory.mktemp("modernbert-random")
    hf_model.save_pretrained(path)
    for name in TOKENIZER_FILES:
        shutil.copy(BASE / name, path / name)
    return path


def test_load_model_plain_and_masked_lm(hf_model, saved_checkpoint, tmp_path):
    """encoder.load_model runs a plain checkpoint and a masked-LM one through the same packed weights."""
    from transformers import ModernBertForMaskedLM

    ids, cu = _pack(_ids([10, 70, 130], seed=11))
    with torch.inference_mode():
        ref = PackedModernBert(hf_model)(ids, cu)
    model = load_model(str(saved_checkpoint), device="cpu")
    assert isinstance(model[0], PackedModernBertTransformer) and not model.training
    with torch.inference_mode():
        assert (model[0].packed(ids, cu) - ref).abs().max().item() <= 1e-6
    mlm = ModernBertForMaskedLM(hf_model.config)
    mlm.model.load_state_dict(hf_model.state_dict())
    mlm.save_pretrained(tmp_path / "mlm")
    for name in TOKENIZER_FILES:
        shutil.copy(saved_checkpoint / name, tmp_path / "mlm" / name)
    with torch.inference_mode():
        assert (PackedModernBert(mlm)(ids, cu) - ref).abs().max().item() <= 1e-6
        assert (load_model(str(tmp_path / "mlm"), device="cpu")[0].packed(ids, cu) - ref).abs().max().item() <= 1e-6


TEXTS = [
    "ModernBERT packs sequences.",
    "a",
    "The quick brown fox jumps over the lazy dog. " * 12,
    "Retrieval with long documents " * 40,
    "",
    "short text",
]


def test_encode_matches_transformers(hf_model, saved_checkpoint, caplog):
    """encoder.encode on a ModernBERT checkpoint (packed, token-budget batches, truncation counted)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved_checkpoint)
    limit = 64
    model = load_model(str(saved_checkpoint), device="cpu", max_length=limit)
    with caplog.at_level(logging.WARNING, logger="encoder.sentence"):
        emb = encode(model, TEXTS, max_tokens=150, show_progress=False)
    assert "2 of 6 documents exceed the model's 64-token limit" in caplog.text
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    with torch.no_grad():
        hidden = hf_model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None]
    np.testing.assert_allclose(emb, ((hidden * mask).sum(1) / mask.sum(1)).numpy(), atol=1e-4)
    # pool_packed on the packed stream itself: mean and cls.
    seqs = [torch.tensor(x) for x in tokenizer(TEXTS, truncation=True, max_length=limit)["input_ids"]]
    ids, cu = _pack(seqs)
    with torch.inference_mode():
        out = PackedModernBert(hf_model)(ids, cu)
    np.testing.assert_allclose(pool_packed(out, cu, "mean").numpy(), emb, atol=1e-4)
    np.testing.assert_allclose(pool_packed(out, cu, "cls").numpy(), hidden[:, 0].numpy(), atol=1e-4)


def _st_model(checkpoint, pooling):
    """A sentence-transformers model of a plain checkpoint with ``pooling``, run packed."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    base = Transformer(str(checkpoint))
    return SentenceTransformer(modules=[base, Pooling(768, pooling_mode=pooling)], device="cpu")


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_transformers_integration(saved_checkpoint, pooling):
    ours = use_packed_modernbert(_st_model(saved_checkpoint, pooling)).eval()
    assert isinstance(ours[0], PackedModernBertTransformer) and ours[0].packed is not None
    plain = _st_model(saved_checkpoint, pooling).eval()
    # Same weights: the plain model loaded the same checkpoint.
    texts = TEXTS * 2
    a = ours.encode(texts, batch_size=5, convert_to_numpy=True)
    b = plain.encode(texts, batch_size=5, convert_to_numpy=True)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # No duplicate parameters: state_dict keys are the plain Transformer's.
    assert set(ours.state_dict()) == set(plain.state_dict())


def test_sentence_transformers_checkpoint_roundtrip(saved_checkpoint, tmp_path):
    """Saved while packed: a plain sentence-transformers folder; the live model stays packed."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Transformer

    assert PackedModernBertTransformer.__module__ == "encoder.modernbert.st_module"
    ours = use_packed_modernbert(_st_model(saved_checkpoint, "cls")).eval()
    ours.save_pretrained(str(tmp_path / "st"))
    assert isinstance(ours[0], PackedModernBertTransformer)  # restored after the save
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert modules[0]["type"] == "sentence_transformers.models.Transformer"
    again = load_model(str(tmp_path / "st"), device="cpu")  # keeps its cls pooling
    assert again[1].get_pooling_mode_str() == "cls" and again[0].packed is not None
    plain = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    assert type(plain[0]) is Transformer
    np.testing.assert_allclose(again.encode(TEXTS), plain.encode(TEXTS), atol=1e-4)


def test_load_model_routes_modernbert_to_the_packed_encoder(saved_checkpoint, tmp_path):
    """encoder.load_model (hence the Retriever, the DPR trainer, the harness) and load_colbert run ModernBERT
    packed; what they save is a plain sentence-transformers model."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Transformer

    from retrieval.colbert import load_colbert

    ours = load_model(str(saved_checkpoint), device="cpu")
    assert type(ours[0]).__name__ == "PackedModernBertTransformer" and ours[0].packed is not None
    ours.save(str(tmp_path / "st"))
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert modules[0]["type"] == "sentence_transformers.models.Transformer"
    plain = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    assert type(plain[0]) is Transformer
    np.testing.assert_allclose(ours.encode(TEXTS), plain.encode(TEXTS), atol=1e-4)
    assert type(load_model(str(tmp_path / "st"), device="cpu")[0]).__name__ == "PackedModernBertTransformer"
    from pylate import models

    torch.manual_seed(0)  # the same fresh projection for both
    colbert = load_colbert(str(saved_checkpoint), device="cpu", dtype="float32", max_length=64)
    assert type(colbert[0]).__name__ == "PackedModernBertTransformer" and colbert[0].packed is not None
    torch.manual_seed(0)
    plain_colbert = models.ColBERT(str(saved_checkpoint), device="cpu", document_length=64)
    for a, b in zip(colbert.encode(TEXTS, is_query=False), plain_colbert.encode(TEXTS, is_query=False)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_full_base_config_moderate_length():
    model = random_modernbert(BASE, seed=7)  # all 22 layers
    seqs = _ids([37, 300, 520], seed=8)
    ref = _reference(model, seqs, "sdpa")
    ids, cu = _pack(seqs)
    with torch.inference_mode():
        out = PackedModernBert(model)(ids, cu)
    assert (out - torch.cat(ref)).abs().max().item() <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["auto", "varlen", "sdpa"])
def test_cuda_backends(hf_model, backend):
    seqs = _ids([1, 5, 64, 129, 300, 4096], seed=9)
    ref = torch.cat(_reference(hf_model, seqs, "sdpa"))
    model = random_modernbert(BASE, num_layers=NUM_LAYERS, seed=0, dtype="bfloat16").cuda()
    packed = PackedModernBert(model, attn_backend=backend)
    ids, cu = _pack(seqs)
    with torch.inference_mode():
        out = packed(ids.cuda(), cu.cuda())
    cos = F.cosine_similarity(out.float().cpu(), ref, dim=-1)
    assert cos.min().item() >= 0.999
    # Backward through the CUDA path.
    model.train()
    out = packed(ids.cuda(), cu.cuda())
    pool_packed(out, cu.cuda()).float().square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # fp32 on CUDA falls back to the blocked SDPA path and matches transformers closely.
    model32 = random_modernbert(BASE, num_layers=NUM_LAYERS, seed=0).cuda()
    with torch.inference_mode():
        out32 = PackedModernBert(model32, attn_backend="auto" if backend != "varlen" else "sdpa")(ids.cuda(), cu.cuda())
    assert (out32.cpu() - ref).abs().max().item() <= 1e-3


def test_bench_writes_the_issue_schema(tmp_path):
    """``python -m benchmarks.encoder_bench`` on a 2-layer copy: the JSON fields, the bound and the profile."""
    from benchmarks import encoder_bench as bench

    config = json.loads((BASE / "config.json").read_text())
    config["num_hidden_layers"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "bench.json"
    bench.main(["--config", str(tmp_path), "--sets", "variable_512", "--scale", "0.25", "--reps", "1",
                "--profile", "--gemm-size", "512", "--json", str(out)])
    report = json.loads(out.read_text())
    assert {"device", "dtype", "config", "sets"} <= report.keys() and report["dtype"] == "bfloat16"
    row = report["sets"]["variable_512"]
    for key in ("ours_tok_s", "transformers_tok_s", "ratio", "ours_peak_mb", "transformers_peak_mb"):
        assert row[key] > 0, key
    assert row["ratio"] == pytest.approx(row["ours_tok_s"] / row["transformers_tok_s"], rel=1e-2)
    assert row["kernels_speedup"] == pytest.approx(row["ours_tok_s"] / row["ours_torch_ops_tok_s"], rel=1e-2)
    assert 0 < row["ours_frac_of_bound"] == pytest.approx(row["ours_tok_s"] / row["bound_tok_s"], rel=1e-2)
    shares = row["ours_time_shares"]
    assert shares["linear GEMMs"] > 0 and sum(shares.values()) == pytest.approx(1.0, abs=0.01)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
