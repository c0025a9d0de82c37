"""encoder.modernbert.kernels (compiled CPU kernels) against torch: RoPE and packed varlen attention."""

from __future__ import annotations

import platform
import shutil

import pytest
import torch
import torch.nn.functional as F

from encoder.modernbert import kernels

BUILDABLE = platform.system() == "Linux" and platform.machine() == "x86_64" and shutil.which("c++") is not None


@pytest.fixture(scope="module")
def ops():
    ops = kernels.load()
    if ops is None:
        if BUILDABLE:  # a compiler is here: a failed build is a bug, not a skip
            pytest.fail(f"kernels did not build: {kernels.unavailable_reason()}")
        pytest.skip(f"no CPU kernels here: {kernels.unavailable_reason()}")
    return ops


def _reference_attention(q, k, v, lengths, window):
    """Per-sequence SDPA in float32 (banded by an explicit boolean mask)."""
    outs, start = [], 0
    for n in lengths:
        qq, kk, vv = (x[start : start + n].float().transpose(0, 1) for x in (q, k, v))
        mask = None
        if window is not None:
            i = torch.arange(n)
            mask = (i[:, None] - i[None, :]).abs() <= window
        outs.append(F.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask).transpose(0, 1))
        start += n
    return torch.cat(outs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_matches_rotate_half(ops, dtype):
    T, H, D = 37, 3, 64
    g = torch.Generator().manual_seed(0)
    buf = torch.randn(T + 4, 3, H, D, generator=g).to(dtype)
    src = buf[2 : 2 + T]  # row-strided view, like the encoder's workspace
    dst = torch.zeros(T + 2, 2, H, D, dtype=dtype)[1 : 1 + T]
    angles = torch.rand(T, D // 2, generator=g) * 50
    cos, sin = angles.cos(), angles.sin()
    kernels.rope(src, dst, cos, sin)
    x = src[:, :2].float()
    c, s = torch.cat((cos, cos), -1)[:, None, None], torch.cat((-sin, sin), -1)[:, None, None]
    rotated = torch.cat((x[..., D // 2 :], x[..., : D // 2]), -1)
    expected = x * c + rotated * s
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    assert (dst.float() - expected).abs().max().item() <= tol


@pytest.mark.parametrize("window", [None, 64, 3])
def test_varlen_attention_matches_per_sequence_sdpa(ops, window):
    if not kernels.attention_supported():
        pytest.skip("no AMX bf16 GEMMs on this CPU")
    H, D = 4, 64
    # Lengths around the block sizes (64 / 128 queries, 512 keys), odd starts, a 1-token sequence.
    lengths = [1, 2, 63, 64, 65, 129, 300, 513, 1100, 7]
    T = sum(lengths)
    g = torch.Generator().manual_seed(1)
    qkv = (torch.randn(T, 3, H, D, generator=g) * 2).to(torch.bfloat16)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist())
    out = torch.empty(T, H, D, dtype=torch.bfloat16)
    got = kernels.varlen_attention(q, k, v, cu, window, D**-0.5, out)
    assert got.data_ptr() == out.data_ptr()
    ref = _reference_attention(q, k, v, lengths, window)
    cos = F.cosine_similarity(out.float().reshape(T, -1), ref.reshape(T, -1), dim=-1)
    assert cos.min().item() >= 0.9999, cos.min().item()
    assert (out.float() - ref).abs().max().item() <= 0.05


@pytest.mark.parametrize("window", [None, 64])
def test_varlen_attention_rebases_on_growing_scores(ops, window):
    """Scores that grow along the sequence (by far more than 2^16 in probability). Global:
    later key steps exceed the first step's maximum, so rows are rebased; local (one key
    step per block): large scores within the band."""
    if not kernels.attention_supported():
        pytest.skip("no AMX bf16 GEMMs on this CPU")
    H, D, lengths = 2, 64, [1500, 40]
    T = sum(lengths)
    g = torch.Generator().manual_seed(3)
    qkv = torch.randn(T, 3, H, D, generator=g)
    qkv[:, 0] *= 4
    qkv[:, 1] *= torch.linspace(0.5, 6.0, T)[:, None, None]  # keys (and scores) grow with position
    qkv = qkv.to(torch.bfloat16)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    ref = _reference_attention(q, k, v, lengths, window)
    scores = q[:1000, 0].float() @ k[:1000, 0].float().T * D**-0.5
    assert (scores[:, 256:].amax(1) - scores[:, :256].amax(1)).max().item() > 16 * 0.6931  # the rebase path runs
    out = torch.empty(T, H, D, dtype=torch.bfloat16)
    kernels.varlen_attention(q, k, v, torch.tensor([0, 1500, T]), window, D**-0.5, out)
    assert torch.isfinite(out.float()).all()
    cos = F.cosine_similarity(out.float().reshape(T, -1), ref.reshape(T, -1), dim=-1)
    assert cos.min().item() >= 0.9999, cos.min().item()


def test_varlen_attention_rejects_bad_input(ops):
    if not kernels.attention_supported():
        pytest.skip("no AMX bf16 GEMMs on this CPU")
    q = torch.zeros(10, 2, 64, dtype=torch.bfloat16)
    out = torch.empty_like(q)
    with pytest.raises(RuntimeError, match="cu_seqlens must go from 0 to T"):
        kernels.varlen_attention(q, q, q, torch.tensor([0, 4, 9]), None, 0.125, out)
    with pytest.raises(RuntimeError, match="bfloat16"):
        kernels.varlen_attention(q.float(), q.float(), q.float(), torch.tensor([0, 10]), None, 0.125, out.float())


@pytest.mark.shared_data
def test_encoder_falls_back_to_torch_ops_without_kernels(monkeypatch):
    """No compiler (or ENCODER_CPU_KERNELS=0): the same encoder, on torch operators."""
    from encoder.modernbert import PackedModernBert, random_modernbert
    from tests.encoder.test_modernbert import BASE

    if not (BASE / "config.json").is_file():
        pytest.skip("no ModernBERT config")
    model = random_modernbert(BASE, num_layers=4, seed=0, dtype="bfloat16")
    ids = torch.randint(100, 16000, (700,), generator=torch.Generator().manual_seed(2))
    cu = torch.tensor([0, 5, 300, 700])
    with torch.inference_mode():
        fast = PackedModernBert(model)(ids, cu).float()
        monkeypatch.setitem(kernels._state, "ops", None)
        plain = PackedModernBert(model)(ids, cu).float()
    assert F.cosine_similarity(fast, plain, dim=-1).min().item() >= 0.999


def test_kernels_bench_cases_time_both_sides(ops):
    """benchmarks.kernels_bench measures ours and the anchor on the same (here small) inputs."""
    if not kernels.attention_supported():
        pytest.skip("no AMX bf16 GEMMs on this CPU")
    from benchmarks import kernels_bench

    with torch.inference_mode():
        for r in (
            kernels_bench._attention_case([64] * 4, None, 1),
            kernels_bench._attention_case([96] * 2, 64, 1),
            kernels_bench._rope_case(128, 1),
        ):
            assert r["ours_ms"] > 0 and r["torch_ms"] > 0


def test_a_stale_build_lock_never_hangs_the_next_load(ops):
    """kill -9 during a compile leaves torch's lock file; the next load clears it (with a warning) instead of waiting forever."""
    import subprocess
    import sys
    from pathlib import Path

    from torch.utils.cpp_extension import _get_build_directory

    from tests.conftest import REPO

    baton = Path(_get_build_directory(kernels._build_name(), verbose=False)) / "lock"
    baton.touch()  # what an interrupted build leaves
    code = "import logging; logging.basicConfig(); from encoder.modernbert import kernels; print(kernels.load() is not None)"
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        baton.unlink(missing_ok=True)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
    assert "left by an interrupted kernel build" in done.stderr
