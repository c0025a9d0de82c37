"""Packed (unpadded) ModernBERT: every sequence of a batch in one token stream.

Transformers' ``ModernBertModel`` pads a batch to its longest sequence and, without
flash-attn, builds a dense ``S x S`` mask per attention type, so local layers cost as
much as global ones and padded tokens cost as much as real ones. Here padding is removed
once, all sequences are concatenated into one stream described by cumulative sequence
lengths (``cu_seqlens``), and every layer runs on that stream:

* linear layers, norms and the GeGLU MLP see ``(total_tokens, hidden)`` matrices: no
  padding, large GEMMs;
* RoPE uses each token's position inside its own sequence;
* global layers attend within each sequence: sequences of equal or similar length are
  grouped (at most ~20% padding work) into one batched ``scaled_dot_product_attention``
  call per group; equal-length neighbours are plain views of the stream, no copy;
* local layers attend to ``|i - j| <= local_attention // 2`` tokens of the same sequence.
  On CPU the stream is cut into blocks of queries that each see a key band of
  ``block + 2 * half_window`` tokens (work proportional to the window, never ``S x S``);
  on CUDA with bf16/fp16, ``torch.nn.attention.varlen.varlen_attn`` (or flash-attn's
  ``flash_attn_varlen_func`` when installed) runs both kinds with ``window_size``.

The weights are those of a transformers ``ModernBertModel`` (same parameter objects):
:class:`PackedModernBert` only replaces its forward, so checkpoints load, save and train
as usual and gradients flow through the packed path.

Examples
--------
>>> from encoder.modernbert import load_modernbert, embed_corpus
>>> model = load_modernbert("answerdotai/ModernBERT-base", dtype="bfloat16")  # doctest: +SKIP
>>> emb = embed_corpus(model, model.tokenizer, ["a cat", "a dog"])             # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoder import kernels

logger = logging.getLogger(__name__)

#: Longest input ModernBERT was trained on; longer inputs are truncated (and counted).
MAX_LENGTH = 8192

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        dev = str(device)
        if dev.startswith("cuda"):
            ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        else:
            ok = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
        return torch.bfloat16 if ok else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _varlen_attn_fn():
    """torch's varlen flash attention (torch >= 2.10), or None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # pragma: no cover - older torch
        return None
    return varlen_attn


def _flash_attn_fn():
    """flash-attn's ``flash_attn_varlen_func`` when the package is installed, or None."""
    try:
        from flash_attn import flash_attn_varlen_func
    except Exception:  # ImportError, or a broken CUDA build
        return None
    return flash_attn_varlen_func


_ONEDNN_OK: dict[torch.dtype, bool] = {}


def _onednn_pointwise_ok(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear + post-op kernels run here (checked once per dtype)."""
    if dtype not in _ONEDNN_OK:
        ok = False
        try:
            if torch.backends.mkldnn.is_available() and dtype in (torch.float32, torch.bfloat16):
                if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                    raise RuntimeError("no native bf16")
                x = torch.randn(4, 8).to(dtype)
                w = torch.randn(6, 8).to(dtype)
                pointwise = torch.ops.mkldnn._linear_pointwise
                g = pointwise(x, w[:3], None, "gelu", [], "none")
                out = pointwise.binary(x, g, w[3:], None, "mul")
                ref = F.gelu(x.float() @ w[:3].float().t()) * (x.float() @ w[3:].float().t())
                ok = bool(torch.allclose(out.float(), ref, atol=0.1, rtol=0.05))
        except Exception:  # missing op, unsupported dtype or CPU
            ok = False
        _ONEDNN_OK[dtype] = ok
    return _ONEDNN_OK[dtype]


# --------------------------------------------------------------------------------------
# Per-batch plan: everything that depends on cu_seqlens only, shared by all layers.
# --------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Index bookkeeping for one packed batch (built once per forward)."""

    total: int
    lengths: list[int]
    cu_seqlens: torch.Tensor  # int32, on the model's device
    max_seqlen: int
    # RoPE tables per layer type: (cos, signed sin), shape (T, 1, 1, head_dim), compute dtype.
    rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # Half-width tables (cos, sin), shape (T, 1, 1, head_dim // 2), for the inference path.
    rope_half: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # The same in float32, (T, head_dim // 2) contiguous: for encoder.kernels.rope (empty: unused).
    rope_f32: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # Attention by encoder.kernels.varlen_attention (needs cu_seqlens as int64 on the CPU).
    kernel_attention: bool = False
    cu_host: torch.Tensor | None = None
    # Global attention: groups of sequences attended in one batched SDPA call each.
    groups: list["_GlobalGroup"] = field(default_factory=list)
    # Row of each stream token in the concatenated group outputs (None: already in order).
    group_order: torch.Tensor | None = None
    # Banded local attention (CPU / blocked path).
    block: int = 0
    n_blocks: int = 0
    band_mask: torch.Tensor | None = None  # additive, (n_blocks, 1, block, block + 2w)


@dataclass
class _GlobalGroup:
    """Sequences padded to a common ``length`` for one ``scaled_dot_product_attention``.

    ``start`` is set when the sequences all have that length and lie back to back in
    the stream (plain views, no copy). Otherwise ``rows`` gives, for each of the
    ``count * length`` padded slots, the stream row to gather (-1: padding, a zero
    row), and ``key_mask`` hides the padded keys.
    """

    count: int
    length: int
    start: int | None = None
    rows: torch.Tensor | None = None
    key_mask: torch.Tensor | None = None


def _global_groups(lengths: Sequence[int], tolerance: float = 0.2) -> list[list[int]]:
    """Sequence indices grouped longest first; padding a group to its longest member may
    add at most ``tolerance`` (plus 64x64 per sequence) to its attention work."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    sumsq = 0
    for i in order:
        n = lengths[i]
        if current:
            longest = lengths[current[0]]
            padded = (len(current) + 1) * longest * longest
            ideal = sumsq + n * n
            if padded - ideal <= tolerance * ideal + 4096 * (len(current) + 1):
                current.append(i)
                sumsq += n * n
                continue
            groups.append(current)
        current, sumsq = [i], n * n
    if current:
        groups.append(current)
    return groups


def _plan_global(plan: "_Plan", lengths: list[int], starts: list[int], device, dtype) -> None:
    position = 0
    order_parts, stream_parts = [], []
    for members in _global_groups(lengths):
        stream_parts += [torch.arange(starts[i], starts[i] + lengths[i]) for i in members]
        longest = lengths[members[0]]
        count = len(members)
        contiguous = all(lengths[i] == longest for i in members) and all(
            b == a + 1 for a, b in zip(members, members[1:])
        )
        if contiguous:
            group = _GlobalGroup(count, longest, start=starts[members[0]])
            order_parts.append(torch.arange(position, position + count * longest))
        else:
            slot = torch.arange(longest)
            rows = torch.full((count, longest), -1, dtype=torch.int64)
            key_mask = torch.zeros(count, 1, 1, longest, dtype=dtype)
            for r, i in enumerate(members):
                n = lengths[i]
                rows[r, :n] = starts[i] + slot[:n]
                key_mask[r, ..., n:] = float("-inf")
                order_parts.append(position + r * longest + slot[:n])
            group = _GlobalGroup(count, longest, rows=rows.view(-1).to(device), key_mask=key_mask.to(device))
        position += count * longest
        plan.groups.append(group)
    if len(plan.groups) == 1 and plan.groups[0].start is not None:
        return  # one run of equal lengths: the output is already in stream order
    # Stream token t is row group_order[t] of the concatenated group outputs.
    group_order = torch.empty(plan.total, dtype=torch.int64)
    group_order[torch.cat(stream_parts)] = torch.cat(order_parts)
    plan.group_order = group_order.to(device)


def _band_mask(seg: torch.Tensor, block: int, half_window: int, n_blocks: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask ``(n_blocks, 1, block, block + 2w)``: 0 where a query may see a key.

    Query ``i`` (stream index, padded to ``n_blocks * block``) of block ``b`` sees the keys
    of stream indices ``b * block - w ... b * block + block + w - 1``; it may attend to key
    ``j`` when both belong to the same sequence and ``|i - j| <= w``. Padding (segment -1)
    only sees padding, so padded query rows stay finite and real rows never see padding.
    """
    w = half_window
    span = block + 2 * w
    device = seg.device
    padded = torch.full((w + n_blocks * block + w,), -1, dtype=seg.dtype, device=device)
    padded[w : w + seg.numel()] = seg
    q_seg = padded[w : w + n_blocks * block].view(n_blocks, block, 1)
    k_seg = padded.unfold(0, span, block)[:n_blocks].view(n_blocks, 1, span)
    qi = torch.arange(block, device=device).view(block, 1)
    kj = torch.arange(span, device=device).view(1, span) - w
    in_band = (qi - kj).abs() <= w  # (block, span): same for every block
    allowed = (q_seg == k_seg) & in_band
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, float("-inf"))
    return mask.unsqueeze(1)


# --------------------------------------------------------------------------------------
# The packed model
# --------------------------------------------------------------------------------------


def rope_torch_ops(qkv_rows: torch.Tensor, out_rows: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """RoPE of the queries and keys of ``qkv_rows`` (T, 3, H, D) into ``out_rows`` (T, 2, H, D), as
    four torch operators (transformers' ``rotate_half`` formula); ``cos`` / ``sin``: (T, 1, 1, D / 2)."""
    half = qkv_rows.shape[-1] // 2
    x1, x2 = qkv_rows[:, :2, :, :half], qkv_rows[:, :2, :, half:]
    o1, o2 = out_rows[..., :half], out_rows[..., half:]
    torch.mul(x1, cos, out=o1)
    o1.addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=o2)
    o2.addcmul_(x1, sin)


class PackedModernBert(nn.Module):
    """Packed-sequence forward for a transformers ``ModernBertModel`` (same weights).

    Parameters
    ----------
    model
        A ``transformers.ModernBertModel`` (its parameters are used as they are, not
        copied; ``model.train()`` / ``.to()`` / ``state_dict`` all act on them).
    attn_backend
        ``"auto"`` (default): flash-attn if installed, else torch ``varlen_attn`` on CUDA
        with bf16/fp16; the blocked SDPA path otherwise (CPU, or CUDA float32), where CPU
        inference uses :mod:`encoder.kernels` when they build (one-pass RoPE; bf16
        attention per sequence on AMX, no padding or masks).
        ``"sdpa"``: the blocked ``scaled_dot_product_attention`` path on any device, torch
        operators only.
        ``"varlen"``: torch ``varlen_attn`` (CUDA, bf16/fp16). ``"flash_attn"``: flash-attn.
    local_block
        Queries per block in the blocked local attention (CPU path). Each block sees
        ``local_block + local_attention`` keys.

    Notes
    -----
    ``forward`` takes the packed stream; :meth:`forward_padded` takes the usual
    ``(batch, seq)`` input and returns a padded ``last_hidden_state``. Padded positions of
    that output are zero (transformers leaves arbitrary values there).
    """

    def __init__(self, model: nn.Module, *, attn_backend: str = "auto", local_block: int = 32):
        super().__init__()
        if getattr(getattr(model, "config", None), "model_type", None) != "modernbert":
            raise TypeError(f"expected a transformers ModernBertModel, got {type(model).__name__}")
        if not hasattr(model, "layers"):  # e.g. ModernBertForMaskedLM: use its encoder
            model = model.model
        if attn_backend not in ("auto", "sdpa", "varlen", "flash_attn"):
            raise ValueError(f"unknown attn_backend {attn_backend!r}")
        self.model = model
        self.attn_backend = attn_backend
        self.local_block = int(local_block)
        config = model.config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.half_window = config.local_attention // 2  # keys with |i - j| <= half_window
        if self.half_window < 1:
            raise ValueError(f"local_attention must be >= 2, got {config.local_attention}")
        self.layer_types = list(config.layer_types)
        rotary = model.rotary_emb
        for layer_type in set(self.layer_types):
            rope_type = rotary.rope_type.get(layer_type, "default")
            if "dynamic" in str(rope_type):
                raise NotImplementedError(f"dynamic RoPE ({rope_type}) is not supported by the packed path")

    # ------------------------------------------------------------------ properties
    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.embeddings.tok_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embeddings.tok_embeddings.weight.dtype

    # ------------------------------------------------------------------ planning
    def _backend(self, device: torch.device, dtype: torch.dtype) -> str:
        backend = self.attn_backend
        if backend == "auto":
            if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
                if _flash_attn_fn() is not None:
                    return "flash_attn"
                if _varlen_attn_fn() is not None:
                    return "varlen"
            return "sdpa"
        if backend in ("varlen", "flash_attn"):
            if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
                raise RuntimeError(f"attn_backend={backend!r} needs CUDA and bf16/fp16 (got {device.type}, {dtype})")
            if (_flash_attn_fn() if backend == "flash_attn" else _varlen_attn_fn()) is None:
                raise RuntimeError(f"attn_backend={backend!r} is not available in this install")
        return backend

    def _plan(
        self, cu_seqlens, max_seqlen, device, dtype, backend, kernels_rope=False, kernel_attention=False
    ) -> _Plan:
        if isinstance(cu_seqlens, torch.Tensor):
            cu_host = cu_seqlens.detach().to("cpu", torch.int64).contiguous()
        else:
            cu_host = torch.as_tensor(list(cu_seqlens), dtype=torch.int64)
        if cu_host.ndim != 1 or cu_host.numel() < 2 or int(cu_host[0]) != 0:
            raise ValueError("cu_seqlens must be a 1-D sequence starting at 0 with one entry per sequence + 1")
        lengths_t = cu_host.diff()
        if bool((lengths_t <= 0).any()):
            raise ValueError("every packed sequence needs at least one token (cu_seqlens must increase)")
        lengths = lengths_t.tolist()
        total = int(cu_host[-1])
        longest = max(lengths)
        if max_seqlen is not None and int(max_seqlen) < longest:
            raise ValueError(f"max_seqlen={max_seqlen} is smaller than the longest sequence ({longest})")
        plan = _Plan(
            total=total,
            lengths=lengths,
            cu_seqlens=cu_host.to(device=device, dtype=torch.int32),
            max_seqlen=longest,
            kernel_attention=kernel_attention,
            cu_host=cu_host,
        )
        # Position of every token inside its sequence, and its sequence id.
        seg = torch.repeat_interleave(torch.arange(len(lengths)), lengths_t)
        positions = torch.arange(total) - cu_host[:-1].repeat_interleave(lengths_t)
        positions = positions.to(device)
        rotary = self.model.rotary_emb
        half = self.head_dim // 2
        for layer_type in set(self.layer_types):
            inv_freq = getattr(rotary, f"{layer_type}_inv_freq").to(device=device, dtype=torch.float32)
            scaling = float(getattr(rotary, f"{layer_type}_attention_scaling", 1.0))
            freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, D/2)
            cos, sin = freqs.cos() * scaling, freqs.sin() * scaling
            if kernels_rope:  # only the kernel's float32 tables are read on that path
                plan.rope_f32[layer_type] = (cos, sin)
                continue
            cos, sin = cos.to(dtype), sin.to(dtype)
            plan.rope_half[layer_type] = (cos.view(total, 1, 1, half), sin.view(total, 1, 1, half))
            cos = torch.cat((cos, cos), dim=-1).view(total, 1, 1, 2 * half)
            signed_sin = torch.cat((-sin, sin), dim=-1).view(total, 1, 1, 2 * half)
            plan.rope[layer_type] = (cos, signed_sin)
        if backend == "sdpa" and not kernel_attention:
            _plan_global(plan, lengths, cu_host[:-1].tolist(), device, dtype)
            if "sliding_attention" in self.layer_types:
                block = max(1, min(self.local_block, total))
                plan.block = block
                plan.n_blocks = -(-total // block)
                plan.band_mask = _band_mask(seg.to(device), block, self.half_window, plan.n_blocks, dtype)
        return plan

    # ------------------------------------------------------------------ attention
    def _rope(self, qkv: torch.Tensor, plan: _Plan, layer_type: str) -> torch.Tensor:
        """Rotated ``(T, 2, H, D)`` queries and keys (out of place: autograd-safe)."""
        cos, signed_sin = plan.rope[layer_type]
        qk = qkv[:, :2]
        half = self.head_dim // 2
        swapped = torch.cat((qk[..., half:], qk[..., :half]), dim=-1)
        return torch.addcmul(swapped * signed_sin, qk, cos)

    def _attn_global_sdpa(self, qk, v, plan: _Plan, dropout: float, zero_row: int | None = None) -> torch.Tensor:
        """Full attention within each sequence; returns ``(T, H*D)`` in stream order.

        ``qk`` is ``(rows, 2, H, D)`` (rotated queries and keys), ``v`` is ``(rows, H, D)``,
        with stream token ``t`` at row ``offset + t``; ``zero_row`` is a row of zeros that
        pads gathered groups. With ``zero_row=None`` the rows are exactly the ``T`` tokens
        and a zero row is appended when a group needs one.
        """
        H, D = self.num_heads, self.head_dim
        offset = 0
        if zero_row is None and any(g.rows is not None for g in plan.groups):
            qk, v = F.pad(qk, (0, 0, 0, 0, 0, 0, 0, 1)), F.pad(v, (0, 0, 0, 0, 0, 1))
            zero_row = plan.total
        elif zero_row is not None:
            offset = self.half_window
        outs = []
        for g in plan.groups:
            if g.start is not None:
                a, b = offset + g.start, offset + g.start + g.count * g.length
                qkg, vg, mask = qk[a:b], v[a:b], None
            else:
                rows = torch.where(g.rows < 0, zero_row, g.rows + offset)
                qkg, vg, mask = qk.index_select(0, rows), v.index_select(0, rows), g.key_mask
            qkg = qkg.view(g.count, g.length, 2, H, D)
            o = F.scaled_dot_product_attention(
                qkg[:, :, 0].transpose(1, 2),
                qkg[:, :, 1].transpose(1, 2),
                vg.view(g.count, g.length, H, D).transpose(1, 2),
                attn_mask=mask,
                dropout_p=dropout,
                scale=D**-0.5,
            )
            outs.append(o.transpose(1, 2).reshape(g.count * g.length, H * D))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
        if plan.group_order is not None:
            out = out.index_select(0, plan.group_order)
        return out

    def _attn_local_sdpa(self, q, k, v, plan: _Plan, dropout: float) -> torch.Tensor:
        """Banded attention ``|i - j| <= w`` within each sequence; returns ``(T, H*D)``."""
        H, D, w = self.num_heads, self.head_dim, self.half_window
        T, B, nb = plan.total, plan.block, plan.n_blocks
        tail = nb * B - T
        qb = F.pad(q, (0, 0, 0, 0, 0, tail)).view(nb, B, H, D).transpose(1, 2)
        kp = F.pad(k, (0, 0, 0, 0, w, w + tail))
        vp = F.pad(v, (0, 0, 0, 0, w, w + tail))
        # (nb, H, D, B + 2w) windows -> (nb, H, B + 2w, D); views, no copy.
        kb = kp.unfold(0, B + 2 * w, B).transpose(2, 3)
        vb = vp.unfold(0, B + 2 * w, B).transpose(2, 3)
        o = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=plan.band_mask, dropout_p=dropout, scale=D**-0.5)
        return o.transpose(1, 2).reshape(nb * B, H * D)[:T]

    def _attn_varlen(self, q, k, v, plan: _Plan, local: bool, backend: str, dropout: float) -> torch.Tensor:
        H, D, w = self.num_heads, self.head_dim, self.half_window
        T = plan.total
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        cu, m = plan.cu_seqlens, plan.max_seqlen
        window = (w, w) if local else (-1, -1)
        if backend == "flash_attn":
            o = _flash_attn_fn()(
                q, k, v, cu, cu, m, m, dropout_p=dropout, softmax_scale=D**-0.5, causal=False, window_size=window
            )
        else:
            if dropout > 0:
                raise NotImplementedError("torch varlen_attn has no dropout; use attn_backend='sdpa' or flash_attn")
            o = _varlen_attn_fn()(q, k, v, cu, cu, m, m, scale=D**-0.5, window_size=window)
        return o.reshape(T, H * D)

    # ------------------------------------------------------------------ layers
    @staticmethod
    def _dropout_active(module: nn.Module) -> bool:
        return isinstance(module, nn.Dropout) and module.training and module.p > 0

    def _layer(self, layer: nn.Module, h: torch.Tensor, plan: _Plan, backend: str) -> torch.Tensor:
        """One encoder layer, autograd-safe (training, or any backend)."""
        attn = layer.attn
        T, H, D = plan.total, self.num_heads, self.head_dim
        layer_type = layer.attention_type
        local = layer_type == "sliding_attention"
        dropout = attn.attention_dropout if attn.training else 0.0

        qkv = attn.Wqkv(layer.attn_norm(h)).view(T, 3, H, D)
        qk = self._rope(qkv, plan, layer_type)
        q, k, v = qk[:, 0], qk[:, 1], qkv[:, 2]
        if backend == "sdpa":
            if local:
                o = self._attn_local_sdpa(q, k, v, plan, dropout)
            else:
                o = self._attn_global_sdpa(qk, v, plan, dropout)
        else:
            o = self._attn_varlen(q, k, v, plan, local, backend, dropout)
        if self._dropout_active(attn.out_drop) or attn.Wo.bias is not None or type(attn.Wo) is not nn.Linear:
            h = h + attn.out_drop(attn.Wo(o))
        else:  # residual fused into the GEMM
            h = torch.addmm(h, o, attn.Wo.weight.t())

        mlp = layer.mlp
        inp, gate = mlp.Wi(layer.mlp_norm(h)).chunk(2, dim=-1)
        z = mlp.act(inp) * gate
        if self._dropout_active(mlp.drop) or mlp.Wo.bias is not None or type(mlp.Wo) is not nn.Linear:
            return h + mlp.drop(mlp.Wo(z))
        return torch.addmm(h, z, mlp.Wo.weight.t())

    def _fast_path_ok(self) -> bool:
        """Whether the in-place inference path applies (plain Linear / LayerNorm modules)."""
        ok = self.__dict__.get("_fast_ok")
        if ok is None:
            ok = True
            for layer in self.model.layers:
                mods = (layer.attn.Wqkv, layer.attn.Wo, layer.mlp.Wi, layer.mlp.Wo)
                ok &= all(type(m) is nn.Linear for m in mods)
            self.__dict__["_fast_ok"] = ok
        return ok

    def _workspace(self, plan: _Plan, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        """Buffers reused by every layer of one inference forward.

        ``qkv`` and ``qk`` (rotated queries and keys) hold the packed stream at rows
        ``w .. w + T`` with zero rows around it: the local layers read their key bands
        and query blocks straight out of them, with no per-layer padding copy. Large
        tensors are allocated once per forward rather than once per layer (fresh
        allocations of this size are page-faulted in by the kernel every time).
        """
        H, D, w = self.num_heads, self.head_dim, self.half_window
        T = plan.total
        rows = w + max(plan.n_blocks * plan.block, T) + w
        inter = self.config.intermediate_size
        ws = {
            "qkv": torch.empty(rows, 3, H, D, dtype=dtype, device=device),
            "qk": torch.empty(rows, 2, H, D, dtype=dtype, device=device),
        }
        for name in ("qkv", "qk"):
            ws[name][:w].zero_()
            ws[name][w + T :].zero_()
        if plan.kernel_attention:
            ws["attn"] = torch.empty(T, H, D, dtype=dtype, device=device)
            ws["attn_scratch"] = kernels.attention_scratch(T, H, D)
        ws["onednn"] = device.type == "cpu" and _onednn_pointwise_ok(dtype)
        if not ws["onednn"]:
            ws["wi"] = torch.empty(T, 2 * inter, dtype=dtype, device=device)
            ws["act"] = torch.empty(T, inter, dtype=dtype, device=device)
        return ws

    def _rope_into(self, qkv_rows: torch.Tensor, out_rows: torch.Tensor, plan: _Plan, layer_type: str) -> None:
        """Rotate queries and keys of ``qkv_rows`` (T, 3, H, D) into ``out_rows`` (T, 2, H, D)."""
        rope_torch_ops(qkv_rows, out_rows, *plan.rope_half[layer_type])

    def _layer_fast(self, layer: nn.Module, h: torch.Tensor, plan: _Plan, ws: dict) -> torch.Tensor:
        """One encoder layer for inference on CPU/SDPA: in place, into reused buffers."""
        attn, mlp = layer.attn, layer.mlp
        T, H, D, w = plan.total, self.num_heads, self.head_dim, self.half_window
        layer_type = layer.attention_type
        qkv_rows = ws["qkv"][w : w + T]
        qkv_flat = qkv_rows.view(T, 3 * H * D)
        torch.mm(layer.attn_norm(h), attn.Wqkv.weight.t(), out=qkv_flat)
        if attn.Wqkv.bias is not None:
            qkv_flat.add_(attn.Wqkv.bias)
        qk_rows = ws["qk"][w : w + T]
        if plan.rope_f32:
            kernels.rope(qkv_rows, qk_rows, *plan.rope_f32[layer_type])
        else:
            self._rope_into(qkv_rows, qk_rows, plan, layer_type)
        if plan.kernel_attention:
            window = self.half_window if layer_type == "sliding_attention" else None
            q, k, v = qk_rows[:, 0], qk_rows[:, 1], qkv_rows[:, 2]
            o = kernels.varlen_attention(
                q, k, v, plan.cu_host, window, D**-0.5, ws["attn"], plan.max_seqlen, ws["attn_scratch"]
            ).view(T, H * D)
        elif layer_type == "sliding_attention":
            B, nb = plan.block, plan.n_blocks
            qb = ws["qk"][w : w + nb * B, 0].view(nb, B, H, D).transpose(1, 2)
            kb = ws["qk"][:, 1].unfold(0, B + 2 * w, B).transpose(2, 3)
            vb = ws["qkv"][:, 2].unfold(0, B + 2 * w, B).transpose(2, 3)
            o = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=plan.band_mask, scale=D**-0.5)
            o = o.transpose(1, 2).reshape(nb * B, H * D)[:T]
        else:
            o = self._attn_global_sdpa(ws["qk"], ws["qkv"][:, 2], plan, 0.0, zero_row=0)
        h.addmm_(o, attn.Wo.weight.t())
        if attn.Wo.bias is not None:
            h.add_(attn.Wo.bias)

        h = self._mlp_fast(layer, h, ws)
        return h

    def _mlp_fast(self, layer: nn.Module, h: torch.Tensor, ws: dict) -> torch.Tensor:
        """GeGLU MLP + residual, in place on ``h``.

        With oneDNN (x86 CPU builds) the activation is fused into the GEMMs as post-ops:
        ``gelu(y @ Wi_in^T)`` then ``(y @ Wi_gate^T) * that``, on row slices of the same
        ``Wi`` weight, so the ``(T, 2 * intermediate)`` output is never written out and
        re-read by separate elementwise kernels.
        """
        mlp = layer.mlp
        inter = self.config.intermediate_size
        y = layer.mlp_norm(h)
        if ws.get("onednn") and mlp.Wi.bias is None and self._exact_gelu(mlp.act):
            weight = mlp.Wi.weight
            pointwise = torch.ops.mkldnn._linear_pointwise
            act = pointwise(y, weight[:inter], None, "gelu", [], "none")
            act = pointwise.binary(y, act, weight[inter:], None, "mul")
        else:
            wi, act = ws["wi"], ws["act"]
            torch.mm(y, mlp.Wi.weight.t(), out=wi)
            if mlp.Wi.bias is not None:
                wi.add_(mlp.Wi.bias)
            inp, gate = wi[:, :inter], wi[:, inter:]
            if self._exact_gelu(mlp.act):
                torch._C._nn.gelu(inp, out=act)
                act.mul_(gate)
            else:
                torch.mul(mlp.act(inp), gate, out=act)
        h.addmm_(act, mlp.Wo.weight.t())
        if mlp.Wo.bias is not None:
            h.add_(mlp.Wo.bias)
        return h

    @staticmethod
    def _exact_gelu(act: nn.Module) -> bool:
        """transformers' ``GELUActivation`` on ``F.gelu`` (erf): what ModernBERT's "gelu" is."""
        return type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is F.gelu

    # ------------------------------------------------------------------ public forward
    def forward(
        self,
        input_ids: torch.Tensor,
        cu_seqlens: torch.Tensor | Sequence[int],
        max_seqlen: int | None = None,
    ) -> torch.Tensor:
        """Run the encoder on a packed token stream.

        Parameters
        ----------
        input_ids
            ``(total_tokens,)`` token ids of all sequences, concatenated (no padding).
        cu_seqlens
            ``(num_sequences + 1,)`` cumulative lengths: sequence ``i`` is
            ``input_ids[cu_seqlens[i]:cu_seqlens[i + 1]]``. Tensor (any device) or list.
        max_seqlen
            Longest sequence (computed from ``cu_seqlens`` when omitted).

        Returns
        -------
        torch.Tensor
            ``(total_tokens, hidden_size)`` last hidden states (after ``final_norm``), in
            the model's dtype, in the same packed order.
        """
        if input_ids.ndim != 1:
            raise ValueError(f"input_ids must be 1-D (packed), got shape {tuple(input_ids.shape)}")
        model = self.model
        device, dtype = self.device, self.dtype
        input_ids = input_ids.to(device)
        backend = self._backend(device, dtype)
        # In-place fast path only when no graph is recorded (inference_mode / no_grad); there,
        # on CPU, this package's kernels (encoder.kernels) replace RoPE's and attention's torch ops.
        fast = not torch.is_grad_enabled() and backend == "sdpa" and not model.training and self._fast_path_ok()
        use_kernels = fast and device.type == "cpu" and self.attn_backend == "auto" and kernels.load() is not None
        kernel_attention = use_kernels and dtype == torch.bfloat16 and kernels.attention_supported()
        plan = self._plan(cu_seqlens, max_seqlen, device, dtype, backend, use_kernels, kernel_attention)
        if plan.total != input_ids.numel():
            raise ValueError(f"cu_seqlens covers {plan.total} tokens but input_ids has {input_ids.numel()}")
        h = model.embeddings(input_ids=input_ids)
        if fast:
            ws = self._workspace(plan, h.dtype, h.device)
            for layer in model.layers:
                h = self._layer_fast(layer, h, plan, ws)
        elif model.training and getattr(model, "gradient_checkpointing", False) and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            for layer in model.layers:
                h = checkpoint(self._layer, layer, h, plan, backend, use_reentrant=False)
        else:
            for layer in model.layers:
                h = self._layer(layer, h, plan, backend)
        return model.final_norm(h)

    def forward_padded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Padded in, padded out: unpad once, run :meth:`forward`, re-pad once.

        Parameters
        ----------
        input_ids
            ``(batch, seq)`` token ids.
        attention_mask
            ``(batch, seq)``, 1 for real tokens (left or right padding; the real tokens
            of a row are taken in order). ``None``: no padding.

        Returns
        -------
        torch.Tensor
            ``(batch, seq, hidden_size)`` last hidden states, zero at padded positions.
        """
        batch, seq = input_ids.shape
        device = self.device
        input_ids = input_ids.to(device)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.to(device).bool()
        lengths = mask.sum(dim=1)
        keep = lengths > 0  # fully padded rows stay zero
        flat = mask.reshape(-1).nonzero().squeeze(1)
        hidden = self.config.hidden_size
        out_flat = None
        if flat.numel():
            cu = F.pad(lengths[keep].cumsum(0), (1, 0))
            packed = self.forward(input_ids.reshape(-1)[flat], cu, int(lengths.max()))
            out_flat = packed.new_zeros(batch * seq, hidden).index_copy(0, flat, packed)
        if out_flat is None:
            return torch.zeros(batch, seq, hidden, dtype=self.dtype, device=device)
        return out_flat.view(batch, seq, hidden)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def _modernbert_config_dict(config_dir: str | Path, num_layers: int | None) -> dict:
    from transformers import ModernBertConfig

    config_dict, _ = ModernBertConfig.get_config_dict(str(config_dir))
    config_dict = dict(config_dict)
    if num_layers is not None:
        config_dict["num_hidden_layers"] = int(num_layers)
        if config_dict.get("layer_types") is not None:
            layer_types = list(config_dict["layer_types"])
            every = int(config_dict.get("global_attn_every_n_layers") or 3)
            config_dict["layer_types"] = [
                layer_types[i] if i < len(layer_types) else ("sliding_attention" if i % every else "full_attention")
                for i in range(int(num_layers))
            ]
    return config_dict


def random_modernbert(
    config_dir: str | Path,
    num_layers: int | None = None,
    seed: int = 0,
    *,
    dtype: str | torch.dtype = "float32",
    attn_implementation: str = "sdpa",
):
    """A transformers ``ModernBertModel`` with random weights (tests and benchmarks).

    Parameters
    ----------
    config_dir
        Folder with a ModernBERT ``config.json`` (transformers 4.x or 5.x format).
    num_layers
        Keep only the first ``num_layers`` layers (same layer types as the full model).
    seed
        Weights are a function of ``(config, num_layers, seed)`` only.
    dtype
        Parameter dtype (weights are drawn in float32, then cast).
    attn_implementation
        For the transformers forward itself (``"sdpa"`` or ``"eager"``).

    Returns
    -------
    transformers.ModernBertModel
        In eval mode, on CPU.
    """
    from transformers import ModernBertConfig, ModernBertModel

    config = ModernBertConfig.from_dict(_modernbert_config_dict(config_dir, num_layers))
    config._attn_implementation = attn_implementation
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = ModernBertModel(config)
    finally:
        torch.random.set_rng_state(state)
    return model.to(_resolve_dtype(dtype)).eval()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def save_random_modernbert(config_dir: str | Path, out: str | Path, num_layers: int | None = None, seed: int = 0) -> Path:
    """Save :func:`random_modernbert` as a plain HF checkpoint folder, with the tokenizer of ``config_dir``.

    The tokenizer's ``model_max_length`` is set to 8,192 (the shared configs leave it unset), so the
    folder loads like a real ModernBERT checkpoint in transformers, sentence-transformers and PyLate.
    """
    import json
    import shutil

    config_dir, out = Path(config_dir), Path(out)
    random_modernbert(config_dir, num_layers=num_layers, seed=seed).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (config_dir / name).is_file():
            shutil.copy(config_dir / name, out / name)
    tok_path = out / "tokenizer_config.json"
    tok_config = json.loads(tok_path.read_text(encoding="utf-8"))
    tok_config["model_max_length"] = MAX_LENGTH
    tok_path.write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    return out


def load_modernbert(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    *,
    attn_backend: str = "auto",
    attn_implementation: str = "sdpa",
    with_tokenizer: bool = True,
) -> PackedModernBert:
    """Load a ModernBERT checkpoint (hub id or local folder) as a :class:`PackedModernBert`.

    Any checkpoint transformers loads as ``ModernBertModel`` works (``ModernBertModel`` or
    ``ModernBertForMaskedLM`` weights, safetensors or bin). ``trust_remote_code`` is never
    used.

    Parameters
    ----------
    name_or_path
        Hub id (e.g. ``"answerdotai/ModernBERT-base"``) or folder with ``config.json`` and
        weights.
    device
        ``"cpu"``, ``"cuda"``...; default CUDA when available.
    dtype
        ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a ``torch.dtype``.
    attn_backend
        See :class:`PackedModernBert`.
    attn_implementation
        For the wrapped transformers model's own forward (not used by the packed path).
    with_tokenizer
        Also load the tokenizer into ``model.tokenizer`` (``None`` if there is none).

    Returns
    -------
    PackedModernBert
        In eval mode; ``.model`` is the transformers ``ModernBertModel``.
    """
    from transformers import AutoConfig, AutoModel

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch_dtype = _resolve_dtype(dtype, device)
    name = str(name_or_path)
    config = AutoConfig.from_pretrained(name, trust_remote_code=False)
    if config.model_type != "modernbert":
        raise ValueError(f"{name!r} is a {config.model_type!r} checkpoint, not ModernBERT")
    hf_model = AutoModel.from_pretrained(
        name, config=config, dtype=torch_dtype, attn_implementation=attn_implementation, trust_remote_code=False
    )
    packed = PackedModernBert(hf_model, attn_backend=attn_backend).to(device).eval()
    packed.tokenizer = None
    if with_tokenizer:
        from transformers import AutoTokenizer

        try:
            packed.tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            logger.warning("no tokenizer loaded for %s: %s", name, exc)
    return packed


# --------------------------------------------------------------------------------------
# Corpus embedding with token-budget packing
# --------------------------------------------------------------------------------------


def packed_batches(lengths: Sequence[int], max_tokens: int, *, sort: bool = True) -> list[np.ndarray]:
    """Group indices so that each group's total length is ``<= max_tokens``, balanced.

    Groups are filled to an even share of the total (``total / ceil(total / max_tokens)``
    tokens) rather than to the budget: 8,334 tokens under a budget of 8,192 make two
    batches of ~4,200, not 8,192 + 142 (a tiny batch runs every layer at a poor matmul
    rate). A text longer than ``max_tokens`` gets a group of its own.

    Parameters
    ----------
    lengths
        Token count of each text.
    max_tokens
        Token budget per group.
    sort
        Longest first (the default): equal lengths end up adjacent, which lets the global
        layers batch them into one attention call. False keeps the input order.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(lengths))
    total = int(lengths.sum())
    share = -(-total // max(1, -(-total // max_tokens))) if total else 0
    batches, current, used = [], [], 0
    for i in order:
        n = int(lengths[i])
        if current and (used >= share or used + n > max_tokens):
            batches.append(np.asarray(current, dtype=np.int64))
            current, used = [], 0
        current.append(int(i))
        used += n
    if current:
        batches.append(np.asarray(current, dtype=np.int64))
    return batches


def pool_packed(hidden: torch.Tensor, cu_seqlens: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """One vector per sequence of a packed ``(T, hidden)`` output, in float32.

    Parameters
    ----------
    hidden
        Packed hidden states.
    cu_seqlens
        ``(num_sequences + 1,)`` cumulative lengths.
    pooling
        ``"mean"`` over each sequence's tokens, or ``"cls"`` (its first token).
    """
    cu = cu_seqlens.to(hidden.device, torch.int64)
    if pooling == "cls":
        return hidden[cu[:-1]].float()
    if pooling != "mean":
        raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
    lengths = cu.diff()
    seg = torch.repeat_interleave(torch.arange(lengths.numel(), device=hidden.device), lengths)
    sums = torch.zeros(lengths.numel(), hidden.shape[1], dtype=torch.float32, device=hidden.device)
    sums.index_add_(0, seg, hidden.float())
    return sums / lengths.unsqueeze(1).to(torch.float32)


def tokenize_for_packing(tokenizer, texts: Sequence[str], max_length: int = MAX_LENGTH) -> list[list[int]]:
    """Token ids (special tokens included) of each text, truncated to ``max_length``.

    Truncation keeps the special tokens (the tokenizer's own ``truncation=True``) and is
    counted in one logging warning.
    """
    verbosity = logging.getLogger("transformers.tokenization_utils_base").level
    logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
    try:
        ids = tokenizer(
            list(texts), add_special_tokens=True, truncation=False,
            return_attention_mask=False, return_token_type_ids=False,
        )["input_ids"]
        over = [i for i, x in enumerate(ids) if len(x) > max_length]
        if over:
            longest = max(len(ids[i]) for i in over)
            redo = tokenizer(
                [texts[i] for i in over], add_special_tokens=True, truncation=True, max_length=max_length,
                return_attention_mask=False, return_token_type_ids=False,
            )["input_ids"]
            for i, x in zip(over, redo):
                ids[i] = x
            logger.warning(
                "%d of %d texts exceed the %d-token limit and were truncated (longest: %d tokens)",
                len(over), len(ids), max_length, longest,
            )
    finally:
        logging.getLogger("transformers.tokenization_utils_base").setLevel(verbosity)
    return [list(x) for x in ids]


def embed_corpus(
    model: PackedModernBert,
    tokenizer,
    texts: Sequence[str],
    *,
    max_tokens: int | None = None,
    pooling: str = "mean",
    normalize: bool = False,
    max_length: int | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Embed texts with packed, token-budget batches; float32 ``(len(texts), hidden)``.

    Texts are tokenized once, sorted by token length and packed into batches of at most
    ``max_tokens`` real tokens (there is no padding). Results come back in input order.

    Parameters
    ----------
    model
        A :class:`PackedModernBert`.
    tokenizer
        Its tokenizer (e.g. ``model.tokenizer`` from :func:`load_modernbert`).
    texts
        The texts.
    max_tokens
        Tokens per packed batch. Default 8,192 on CPU, 65,536 on CUDA.
    pooling
        ``"mean"`` or ``"cls"``.
    normalize
        L2-normalise the embeddings.
    max_length
        Truncation length (default: the model's ``max_position_embeddings``, 8,192 for
        ModernBERT); truncations are counted in a logging warning.
    show_progress
        tqdm bar over texts.
    """
    texts = list(texts)
    hidden = model.config.hidden_size
    out = np.empty((len(texts), hidden), dtype=np.float32)
    if not texts:
        return out
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
    device = model.device
    if max_tokens is None:
        max_tokens = 65536 if device.type == "cuda" else 8192
    if max_length is None:
        max_length = int(getattr(model.config, "max_position_embeddings", MAX_LENGTH) or MAX_LENGTH)
    ids = tokenize_for_packing(tokenizer, texts, max_length)
    lengths = [len(x) for x in ids]
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(texts), unit="text", disable=not show_progress) as bar:
            for idx in packed_batches(lengths, max_tokens):
                flat = torch.tensor([t for i in idx for t in ids[i]], dtype=torch.long)
                cu = torch.tensor(np.concatenate([[0], np.cumsum([lengths[i] for i in idx])]), dtype=torch.int64)
                h = model(flat, cu, max(lengths[i] for i in idx))
                emb = pool_packed(h, cu, pooling)
                if normalize:
                    emb = F.normalize(emb, dim=-1)
                out[idx] = emb.cpu().numpy()
                bar.update(len(idx))
    finally:
        model.train(was_training)
    return out


# --------------------------------------------------------------------------------------
# sentence-transformers integration
# --------------------------------------------------------------------------------------


def _make_packed_transformer_class():
    from sentence_transformers.models import Transformer

    class PackedModernBertTransformer(Transformer):
        """sentence-transformers first module running ModernBERT through the packed path.

        A drop-in ``sentence_transformers.models.Transformer``: same loading, saving,
        tokenization and config; ``forward`` unpads the tokenized batch once, runs
        :class:`PackedModernBert` on the packed stream and pads ``token_embeddings`` back
        to ``(batch, seq, hidden)`` (zeros at padding) so any ``Pooling`` works. Non
        ModernBERT models fall back to the plain ``Transformer`` forward.
        """

        def __init__(self, *args, attn_backend: str = "auto", **kwargs):
            super().__init__(*args, **kwargs)
            self._setup_packed(attn_backend)

        def _setup_packed(self, attn_backend: str = "auto") -> None:
            packed = None
            if getattr(getattr(self.auto_model, "config", None), "model_type", None) == "modernbert":
                packed = PackedModernBert(self.auto_model, attn_backend=attn_backend)
            # Kept out of _modules: the parameters belong to auto_model alone.
            self.__dict__["_packed"] = packed

        @classmethod
        def from_transformer(cls, module, attn_backend: str = "auto"):
            """Wrap an existing ``Transformer`` module (shares its model and tokenizer)."""
            new = cls.__new__(cls)
            nn.Module.__init__(new)
            for key, value in module.__dict__.items():
                if key in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
                    new.__dict__[key] = type(value)(value)
                elif key not in ("training",):
                    new.__dict__[key] = value
            new.training = module.training
            new._setup_packed(attn_backend)
            return new

        @property
        def packed(self) -> PackedModernBert | None:
            return self.__dict__.get("_packed")

        def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
            packed = self.packed
            if packed is None or kwargs or "inputs_embeds" in features:
                return super().forward(features, **kwargs)
            features["token_embeddings"] = packed.forward_padded(features["input_ids"], features.get("attention_mask"))
            return features

    # Saved as the plain module (modules.json "type"), so a checkpoint written through the packed path
    # stays a plain sentence-transformers model: packing is how it runs, not what it is.
    # encoder.load_model and load_colbert swap the packed module back in when they load one.
    PackedModernBertTransformer.__module__ = Transformer.__module__
    PackedModernBertTransformer.__qualname__ = "PackedModernBertTransformer"
    return PackedModernBertTransformer


def __getattr__(name: str):
    # sentence-transformers is imported only when its integration is used.
    if name == "PackedModernBertTransformer":
        cls = _make_packed_transformer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sentence_transformer_for_modernbert(
    name_or_path: str | Path,
    pooling: str | None = "mean",
    *,
    device: str | None = None,
    dtype: str | torch.dtype = "float32",
    normalize: bool | None = None,
    max_seq_length: int | None = None,
    attn_backend: str = "auto",
    keep_checkpoint_pooling: bool = True,
):
    """A ``SentenceTransformer`` whose first module runs ModernBERT packed.

    Parameters
    ----------
    name_or_path
        A ModernBERT checkpoint: plain transformers folder / hub id, or a
        sentence-transformers model built on ModernBERT.
    pooling
        ``"mean"`` or ``"cls"``: pooling for a plain transformers checkpoint (which has
        none of its own). A sentence-transformers checkpoint keeps its own ``Pooling``
        unless ``keep_checkpoint_pooling=False``.
    device
        Default CUDA when available.
    dtype
        Model dtype (``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"``).
    normalize
        ``True``: append a ``Normalize`` module when the model has none. Otherwise the
        checkpoint's modules are kept as they are.
    max_seq_length
        Truncation length; default ``min(max_position_embeddings, tokenizer max)``, and
        8,192 when the tokenizer sets no limit.
    attn_backend
        See :class:`PackedModernBert`.
    keep_checkpoint_pooling
        See ``pooling``.

    Returns
    -------
    sentence_transformers.SentenceTransformer
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cls = __getattr__("PackedModernBertTransformer")
    name = str(name_or_path)
    is_st = _is_sentence_transformers_checkpoint(name)
    if is_st:
        st = SentenceTransformer(name, device="cpu", trust_remote_code=False)
        first = st[0]
        if not isinstance(first, Transformer):
            raise ValueError(f"{name!r}: first module is {type(first).__name__}, not a Transformer")
        if not isinstance(first, cls):
            st[0] = cls.from_transformer(first, attn_backend=attn_backend)
        if pooling is not None and not keep_checkpoint_pooling:
            for key, module in st._modules.items():
                if isinstance(module, Pooling):
                    st._modules[key] = Pooling(module.word_embedding_dimension, pooling_mode=pooling)
    else:
        first = cls(name, attn_backend=attn_backend)
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        modules = [first, Pooling(first.get_word_embedding_dimension(), pooling_mode=pooling)]
        st = SentenceTransformer(modules=modules, device="cpu")
    first = st[0]
    if first.packed is None:
        raise ValueError(f"{name!r} is not a ModernBERT checkpoint")
    tokenizer_max = getattr(first.tokenizer, "model_max_length", None) or MAX_LENGTH
    if tokenizer_max > 10**8:  # transformers' "no limit set" sentinel
        tokenizer_max = MAX_LENGTH
    model_max = int(getattr(first.auto_model.config, "max_position_embeddings", MAX_LENGTH))
    if max_seq_length is not None:
        st.max_seq_length = int(max_seq_length)
    elif first.max_seq_length is None or first.max_seq_length > model_max:
        st.max_seq_length = min(model_max, tokenizer_max)
    if normalize and not any(isinstance(m, Normalize) for m in st):
        st.append(Normalize())
    st.to(device)
    torch_dtype = _resolve_dtype(dtype, device)
    if torch_dtype != torch.float32:
        st.to(torch_dtype)
    st.eval()
    return st


def _is_sentence_transformers_checkpoint(name: str) -> bool:
    path = Path(name)
    if path.is_dir():
        return (path / "modules.json").is_file()
    try:
        from huggingface_hub import file_exists

        return bool(file_exists(name, "modules.json"))
    except Exception:  # offline, unknown id: treat as a plain checkpoint
        return False


__all__ = [
    "MAX_LENGTH",
    "PackedModernBert",
    "PackedModernBertTransformer",
    "embed_corpus",
    "load_modernbert",
    "packed_batches",
    "pool_packed",
    "random_modernbert",
    "save_random_modernbert",
    "sentence_transformer_for_modernbert",
    "tokenize_for_packing",
]
