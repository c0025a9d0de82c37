"""The per-batch plan of the packed encoder: everything that depends on ``cu_seqlens`` only.

Built once per forward and shared by all layers: sequence lengths and positions, the RoPE
tables of each layer type, and the index bookkeeping of the attention backends.

Row layout shared by every layer: the rotated queries/keys and the values live in buffers of
``rows`` rows with the packed stream at ``pad .. pad + total`` and zero rows around it. On
the blocked SDPA path ``pad`` is the half window, so the local layers read their key bands
and query blocks straight out of the buffers (no per-layer padding copy) and row 0 is the
zero row that pads gathered global groups; the other backends use ``pad = 0``.

* global layers attend within each sequence: sequences of equal or similar length are
  grouped (at most ~20% padding work) into one batched ``scaled_dot_product_attention``
  call per group; equal-length neighbours are plain views of the stream, no copy;
* local layers: the stream is cut into blocks of queries that each see a key band of
  ``block + 2 * half_window`` tokens (work proportional to the window, never ``S x S``),
  masked by one additive band mask shared by all local layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class GlobalGroup:
    """Sequences padded to a common ``length`` for one ``scaled_dot_product_attention``.

    ``start`` is set when the sequences all have that length and lie back to back in
    the stream (plain views, no copy; ``start`` is a buffer row, padding included).
    Otherwise ``rows`` gives, for each of the ``count * length`` padded slots, the buffer
    row to gather (row 0, a zero row, for padding), and ``key_mask`` hides the padded keys.
    """

    count: int
    length: int
    start: int | None = None
    rows: torch.Tensor | None = None
    key_mask: torch.Tensor | None = None


@dataclass
class Plan:
    """Index bookkeeping for one packed batch (built once per forward)."""

    total: int
    lengths: list[int]
    cu_seqlens: torch.Tensor  # int32, on the model's device
    cu_host: torch.Tensor  # int64, on the CPU (encoder.modernbert.kernels reads it there)
    max_seqlen: int
    backend: str  # "sdpa", "varlen" or "flash_attn"
    num_heads: int
    head_dim: int
    half_window: int
    # RoPE tables (cos, sin) per layer type: (T, 1, 1, head_dim // 2) in the compute dtype, or
    # float32 (T, head_dim // 2) contiguous for kernels.rope when kernel_rope is set.
    rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    kernel_rope: bool = False
    # Attention by kernels.varlen_attention (CPU, bf16, AMX).
    kernel_attention: bool = False
    # Buffer rows (see the module docstring): the stream is rows pad .. pad + total.
    pad: int = 0
    rows: int = 0
    # Global attention: groups of sequences attended in one batched SDPA call each.
    groups: list[GlobalGroup] = field(default_factory=list)
    # Row of each stream token in the concatenated group outputs (None: already in order).
    group_order: torch.Tensor | None = None
    # Banded local attention (blocked SDPA path).
    block: int = 0
    n_blocks: int = 0
    band_mask: torch.Tensor | None = None  # additive, (n_blocks, 1, block, block + 2w)

    def empty_rows(self, *shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """An uninitialised ``(rows, *shape)`` buffer whose padding rows are zero."""
        buf = torch.empty(self.rows, *shape, dtype=dtype, device=device)
        buf[: self.pad].zero_()
        buf[self.pad + self.total :].zero_()
        return buf


def host_cu_seqlens(cu_seqlens, max_seqlen: int | None) -> torch.Tensor:
    """``cu_seqlens`` (tensor on any device, or list) as a validated int64 CPU tensor."""
    if isinstance(cu_seqlens, torch.Tensor):
        cu_host = cu_seqlens.detach().to("cpu", torch.int64).contiguous()
    else:
        cu_host = torch.as_tensor(list(cu_seqlens), dtype=torch.int64)
    if cu_host.ndim != 1 or cu_host.numel() < 2 or int(cu_host[0]) != 0:
        raise ValueError("cu_seqlens must be a 1-D sequence starting at 0 with one entry per sequence + 1")
    lengths = cu_host.diff()
    if bool((lengths <= 0).any()):
        raise ValueError("every packed sequence needs at least one token (cu_seqlens must increase)")
    longest = int(lengths.max())
    if max_seqlen is not None and int(max_seqlen) < longest:
        raise ValueError(f"max_seqlen={max_seqlen} is smaller than the longest sequence ({longest})")
    return cu_host


def build_plan(model, cu_seqlens, max_seqlen, device, dtype, backend, kernel_rope=False, kernel_attention=False) -> Plan:
    """The plan of one batch for ``model`` (a :class:`~encoder.modernbert.model.PackedModernBert`)."""
    cu_host = host_cu_seqlens(cu_seqlens, max_seqlen)
    lengths_t = cu_host.diff()
    lengths = lengths_t.tolist()
    total = int(cu_host[-1])
    plan = Plan(
        total=total,
        lengths=lengths,
        cu_seqlens=cu_host.to(device=device, dtype=torch.int32),
        cu_host=cu_host,
        max_seqlen=max(lengths),
        backend=backend,
        num_heads=model.num_heads,
        head_dim=model.head_dim,
        half_window=model.half_window,
        kernel_rope=kernel_rope,
        kernel_attention=kernel_attention,
        rows=total,
    )
    # Position of every token inside its sequence, and its sequence id.
    positions = torch.arange(total) - cu_host[:-1].repeat_interleave(lengths_t)
    plan.rope = _rope_tables(model, positions.to(device), kernel_rope, dtype)
    if backend == "sdpa" and not kernel_attention:
        plan.pad = model.half_window
        if "sliding_attention" in model.layer_types:
            plan.block = max(1, min(model.local_block, total))
            plan.n_blocks = -(-total // plan.block)
            seg = torch.repeat_interleave(torch.arange(len(lengths)), lengths_t).to(device)
            plan.band_mask = band_mask(seg, plan.block, plan.pad, plan.n_blocks, dtype)
        plan.rows = 2 * plan.pad + max(plan.n_blocks * plan.block, total)
        _plan_global(plan, cu_host[:-1].tolist(), device, dtype)
    return plan


def _rope_tables(model, positions: torch.Tensor, kernel_rope: bool, dtype: torch.dtype) -> dict:
    """(cos, sin) per layer type, attention scaling included (see :class:`Plan`)."""
    rotary = model.model.rotary_emb
    total, half = positions.numel(), model.head_dim // 2
    tables = {}
    for layer_type in set(model.layer_types):
        inv_freq = getattr(rotary, f"{layer_type}_inv_freq").to(device=positions.device, dtype=torch.float32)
        scaling = float(getattr(rotary, f"{layer_type}_attention_scaling", 1.0))
        freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, D/2)
        cos, sin = freqs.cos() * scaling, freqs.sin() * scaling
        if kernel_rope:
            tables[layer_type] = (cos, sin)
        else:
            tables[layer_type] = (cos.to(dtype).view(total, 1, 1, half), sin.to(dtype).view(total, 1, 1, half))
    return tables


def global_groups(lengths: Sequence[int], tolerance: float = 0.2) -> list[list[int]]:
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


def _plan_global(plan: Plan, starts: list[int], device, dtype) -> None:
    """The global groups of ``plan`` and the order that puts their outputs back in stream order."""
    lengths, pad = plan.lengths, plan.pad
    position = 0
    order_parts, stream_parts = [], []
    for members in global_groups(lengths):
        stream_parts += [torch.arange(starts[i], starts[i] + lengths[i]) for i in members]
        longest = lengths[members[0]]
        count = len(members)
        contiguous = all(lengths[i] == longest for i in members) and all(
            b == a + 1 for a, b in zip(members, members[1:])
        )
        if contiguous:
            group = GlobalGroup(count, longest, start=pad + starts[members[0]])
            order_parts.append(torch.arange(position, position + count * longest))
        else:
            slot = torch.arange(longest)
            rows = torch.zeros(count, longest, dtype=torch.int64)  # row 0: a zero row of the buffers
            key_mask = torch.zeros(count, 1, 1, longest, dtype=dtype)
            for r, i in enumerate(members):
                n = lengths[i]
                rows[r, :n] = pad + starts[i] + slot[:n]
                key_mask[r, ..., n:] = float("-inf")
                order_parts.append(position + r * longest + slot[:n])
            group = GlobalGroup(count, longest, rows=rows.view(-1).to(device), key_mask=key_mask.to(device))
        position += count * longest
        plan.groups.append(group)
    if len(plan.groups) == 1 and plan.groups[0].start is not None:
        return  # one run of equal lengths: the output is already in stream order
    # Stream token t is row group_order[t] of the concatenated group outputs.
    group_order = torch.empty(plan.total, dtype=torch.int64)
    group_order[torch.cat(stream_parts)] = torch.cat(order_parts)
    plan.group_order = group_order.to(device)


def band_mask(seg: torch.Tensor, block: int, half_window: int, n_blocks: int, dtype: torch.dtype) -> torch.Tensor:
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
