"""RoPE and attention over the packed stream: one implementation of each per backend.

Backends (chosen once per forward, :func:`choose_backend`):

* ``"sdpa"``, torch operators on any device: RoPE as four torch operators
  (:func:`rope_torch_ops`, with its own backward: the inverse rotation); global layers by
  grouped ``scaled_dot_product_attention`` calls, local layers by blocks of queries over
  their key bands (both laid out by :mod:`encoder.modernbert.plan`);
* CPU kernels (:mod:`encoder.modernbert.kernels`, inference): RoPE in one pass, and bf16
  attention per packed sequence on AMX, global or banded, no padding or masks;
* ``"varlen"`` / ``"flash_attn"`` (CUDA, bf16/fp16): torch's ``varlen_attn`` or flash-attn's
  ``flash_attn_varlen_func`` run both kinds with ``window_size``.

Queries and keys arrive rotated in one ``(rows, 2, H, D)`` buffer and values in a
``(rows, H, D)`` one, laid out as the plan says (stream at rows ``pad .. pad + T``); every
function returns the ``(T, H * D)`` attention output in stream order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from encoder.modernbert import kernels
from encoder.modernbert.plan import Plan


def varlen_attn_fn():
    """torch's varlen flash attention (torch >= 2.10), or None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # pragma: no cover - older torch
        return None
    return varlen_attn


def flash_attn_fn():
    """flash-attn's ``flash_attn_varlen_func`` when the package is installed, or None."""
    try:
        from flash_attn import flash_attn_varlen_func
    except Exception:  # ImportError, or a broken CUDA build
        return None
    return flash_attn_varlen_func


def choose_backend(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """``requested`` (``"auto"``, ``"sdpa"``, ``"varlen"``, ``"flash_attn"``) resolved for this device and dtype."""
    half = dtype in (torch.float16, torch.bfloat16)
    if requested == "auto":
        if device.type == "cuda" and half:
            if flash_attn_fn() is not None:
                return "flash_attn"
            if varlen_attn_fn() is not None:
                return "varlen"
        return "sdpa"
    if requested in ("varlen", "flash_attn"):
        if device.type != "cuda" or not half:
            raise RuntimeError(f"attn_backend={requested!r} needs CUDA and bf16/fp16 (got {device.type}, {dtype})")
        if (flash_attn_fn() if requested == "flash_attn" else varlen_attn_fn()) is None:
            raise RuntimeError(f"attn_backend={requested!r} is not available in this install")
    return requested


# --------------------------------------------------------------------------------------
# RoPE
# --------------------------------------------------------------------------------------


def rope_torch_ops(qkv_rows: torch.Tensor, out_rows: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """RoPE of the queries and keys of ``qkv_rows`` (T, >=2, H, D) into ``out_rows`` (T, 2, H, D), as
    four torch operators (transformers' ``rotate_half`` formula); ``cos`` / ``sin``: (T, 1, 1, D / 2)."""
    half = qkv_rows.shape[-1] // 2
    x1, x2 = qkv_rows[:, :2, :, :half], qkv_rows[:, :2, :, half:]
    o1, o2 = out_rows[..., :half], out_rows[..., half:]
    torch.mul(x1, cos, out=o1)
    o1.addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=o2)
    o2.addcmul_(x1, sin)


class _RopeTorchOps(torch.autograd.Function):
    """:func:`rope_torch_ops` into a fresh plan-shaped buffer, with its backward: RoPE is a
    rotation, so the gradient is the same operation with ``-sin`` (the inverse rotation)."""

    @staticmethod
    def forward(ctx, qk, cos, sin, plan: Plan):
        out = plan.empty_rows(*qk.shape[1:], dtype=qk.dtype, device=qk.device)
        rope_torch_ops(qk, out[plan.pad : plan.pad + plan.total], cos, sin)
        ctx.save_for_backward(cos, sin)
        ctx.rows = (plan.pad, plan.pad + plan.total)
        return out

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        grad = grad[ctx.rows[0] : ctx.rows[1]]
        grad_qk = torch.empty_like(grad)
        rope_torch_ops(grad, grad_qk, cos, -sin)
        return grad_qk, None, None, None


def rotate(qkv_rows: torch.Tensor, plan: Plan, layer_type: str, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rotated queries and keys of ``qkv_rows`` (T, 3, H, D) as a ``(rows, 2, H, D)`` plan buffer.

    With ``out`` (inference): written into that buffer, by the CPU kernel when the plan says
    so. Without: a new buffer, autograd-safe (training, or any backend).
    """
    cos, sin = plan.rope[layer_type]
    if out is None:
        return _RopeTorchOps.apply(qkv_rows[:, :2], cos, sin, plan)
    rope = kernels.rope if plan.kernel_rope else rope_torch_ops
    rope(qkv_rows, out[plan.pad : plan.pad + plan.total], cos, sin)
    return out


# --------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------


def attend(qk, v, plan: Plan, local: bool, dropout: float = 0.0, kernel_buffers=None) -> torch.Tensor:
    """Attention within each sequence (``local``: keys with ``|i - j| <= half_window``), ``(T, H * D)``.

    ``kernel_buffers``: ``(out, scratch)`` for the CPU kernel when ``plan.kernel_attention``.
    """
    if plan.kernel_attention:
        out, scratch = kernel_buffers
        window = plan.half_window if local else None
        scale = plan.head_dim**-0.5
        o = kernels.varlen_attention(qk[:, 0], qk[:, 1], v, plan.cu_host, window, scale, out, plan.max_seqlen, scratch)
        return o.view(plan.total, -1)
    if plan.backend == "sdpa":
        return (_banded_sdpa if local else _grouped_sdpa)(qk, v, plan, dropout)
    return _varlen(qk, v, plan, local, dropout)


def _grouped_sdpa(qk, v, plan: Plan, dropout: float) -> torch.Tensor:
    """Full attention within each sequence, one batched SDPA call per group of the plan."""
    H, D = plan.num_heads, plan.head_dim
    outs = []
    for g in plan.groups:
        if g.start is not None:
            a, b = g.start, g.start + g.count * g.length
            qkg, vg = qk[a:b], v[a:b]
        else:
            qkg, vg = qk.index_select(0, g.rows), v.index_select(0, g.rows)
        qkg = qkg.view(g.count, g.length, 2, H, D)
        o = F.scaled_dot_product_attention(
            qkg[:, :, 0].transpose(1, 2),
            qkg[:, :, 1].transpose(1, 2),
            vg.view(g.count, g.length, H, D).transpose(1, 2),
            attn_mask=g.key_mask,
            dropout_p=dropout,
            scale=D**-0.5,
        )
        outs.append(o.transpose(1, 2).reshape(g.count * g.length, H * D))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
    if plan.group_order is not None:
        out = out.index_select(0, plan.group_order)
    return out


def _banded_sdpa(qk, v, plan: Plan, dropout: float) -> torch.Tensor:
    """Banded attention: blocks of queries against their key bands, read as views of the buffers."""
    H, D, w = plan.num_heads, plan.head_dim, plan.pad
    T, B, nb = plan.total, plan.block, plan.n_blocks
    qb = qk[w : w + nb * B, 0].view(nb, B, H, D).transpose(1, 2)
    # (nb, H, D, B + 2w) windows -> (nb, H, B + 2w, D); views, no copy.
    kb = qk[:, 1].unfold(0, B + 2 * w, B).transpose(2, 3)
    vb = v.unfold(0, B + 2 * w, B).transpose(2, 3)
    o = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=plan.band_mask, dropout_p=dropout, scale=D**-0.5)
    return o.transpose(1, 2).reshape(nb * B, H * D)[:T]


def _varlen(qk, v, plan: Plan, local: bool, dropout: float) -> torch.Tensor:
    """torch ``varlen_attn`` or flash-attn on the packed stream (CUDA)."""
    D, w = plan.head_dim, plan.half_window
    q, k, v = qk[:, 0].contiguous(), qk[:, 1].contiguous(), v.contiguous()
    cu, m = plan.cu_seqlens, plan.max_seqlen
    window = (w, w) if local else (-1, -1)
    if plan.backend == "flash_attn":
        o = flash_attn_fn()(
            q, k, v, cu, cu, m, m, dropout_p=dropout, softmax_scale=D**-0.5, causal=False, window_size=window
        )
    else:
        if dropout > 0:
            raise NotImplementedError("torch varlen_attn has no dropout; use attn_backend='sdpa' or flash_attn")
        o = varlen_attn_fn()(q, k, v, cu, cu, m, m, scale=D**-0.5, window_size=window)
    return o.reshape(plan.total, -1)
