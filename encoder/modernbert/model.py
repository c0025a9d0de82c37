"""Packed (unpadded) ModernBERT: every sequence of a batch in one token stream.

Transformers' ``ModernBertModel`` pads a batch to its longest sequence and, without
flash-attn, builds a dense ``S x S`` mask per attention type, so local layers cost as
much as global ones and padded tokens cost as much as real ones. Here padding is removed
once, all sequences are concatenated into one stream described by cumulative sequence
lengths (``cu_seqlens``), and every layer runs on that stream:

* linear layers, norms and the GeGLU MLP see ``(total_tokens, hidden)`` matrices: no
  padding, large GEMMs;
* RoPE uses each token's position inside its own sequence;
* global layers attend within each sequence, local layers to ``|i - j| <= local_attention // 2``
  tokens of the same sequence (:mod:`encoder.modernbert.attention`, laid out per batch by
  :mod:`encoder.modernbert.plan`): on CPU blocked SDPA or this package's kernels, never
  ``S x S`` work for a local layer; on CUDA with bf16/fp16 ``varlen_attn`` or flash-attn
  with ``window_size``.

One layer function serves training and inference. Without autograd (``inference_mode`` /
``no_grad``, eval mode, plain ``nn.Linear`` modules) it runs in place: large buffers are
allocated once per forward rather than once per layer (fresh allocations of this size are
page-faulted in by the kernel every time), the residual adds are fused into the output GEMMs,
and with oneDNN (x86 CPU builds) the GeGLU activation is fused into the ``Wi`` GEMMs as
post-ops (``gelu(y @ Wi_in^T)`` then ``(y @ Wi_gate^T) * that`` on row slices of the same
weight), so the ``(T, 2 * intermediate)`` output is never written out and re-read.

The weights are those of a transformers ``ModernBertModel`` (same parameter objects):
:class:`PackedModernBert` only replaces its forward, so checkpoints load, save and train
as usual and gradients flow through the packed path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from encoder.modernbert import kernels
from encoder.modernbert.attention import attend, choose_backend, rotate
from encoder.modernbert.plan import Plan, build_plan

#: Longest input ModernBERT was trained on.
MAX_LENGTH = 8192

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


def _exact_gelu(act: nn.Module) -> bool:
    """transformers' ``GELUActivation`` on ``F.gelu`` (erf): what ModernBERT's "gelu" is."""
    return type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is F.gelu


def _dropout_active(module: nn.Module) -> bool:
    return isinstance(module, nn.Dropout) and module.training and module.p > 0


def _add_linear(h: torch.Tensor, x: torch.Tensor, linear: nn.Module, drop: nn.Module, inplace: bool) -> torch.Tensor:
    """``h + drop(linear(x))``: the residual fused into the GEMM for a plain ``nn.Linear``
    (in place on ``h`` when ``inplace``)."""
    fused = type(linear) is nn.Linear and not _dropout_active(drop) and (inplace or linear.bias is None)
    if not fused:
        return h + drop(linear(x))
    h = h.addmm_(x, linear.weight.t()) if inplace else torch.addmm(h, x, linear.weight.t())
    if linear.bias is not None:
        h.add_(linear.bias)
    return h


@dataclass
class _Workspace:
    """Buffers reused by every layer of one inference forward (plan-shaped, see ``plan``)."""

    qkv: torch.Tensor  # (rows, 3, H, D): projections, stream at rows pad .. pad + T
    qk: torch.Tensor  # (rows, 2, H, D): rotated queries and keys
    onednn: bool  # fused GeGLU through oneDNN post-ops
    kernel_attention: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]] | None = None  # (out, scratch)


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
        inference uses :mod:`encoder.modernbert.kernels` when they build (one-pass RoPE;
        bf16 attention per sequence on AMX, no padding or masks).
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

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.embeddings.tok_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embeddings.tok_embeddings.weight.dtype

    def _plain_linears(self) -> bool:
        """Whether the in-place inference path applies (plain ``nn.Linear`` projections)."""
        ok = self.__dict__.get("_plain_ok")
        if ok is None:
            ok = all(
                type(m) is nn.Linear
                for layer in self.model.layers
                for m in (layer.attn.Wqkv, layer.attn.Wo, layer.mlp.Wi, layer.mlp.Wo)
            )
            self.__dict__["_plain_ok"] = ok
        return ok

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
        backend = choose_backend(self.attn_backend, device, dtype)
        # In place only when no graph is recorded (inference_mode / no_grad); there, on CPU,
        # this package's kernels replace RoPE's and attention's torch operators.
        inplace = not torch.is_grad_enabled() and backend == "sdpa" and not model.training and self._plain_linears()
        use_kernels = inplace and device.type == "cpu" and self.attn_backend == "auto" and kernels.load() is not None
        kernel_attention = use_kernels and dtype == torch.bfloat16 and kernels.attention_supported()
        plan = build_plan(self, cu_seqlens, max_seqlen, device, dtype, backend, use_kernels, kernel_attention)
        if plan.total != input_ids.numel():
            raise ValueError(f"cu_seqlens covers {plan.total} tokens but input_ids has {input_ids.numel()}")
        h = model.embeddings(input_ids=input_ids)
        ws = self._workspace(plan, h.dtype, h.device) if inplace else None
        checkpointing = model.training and getattr(model, "gradient_checkpointing", False) and torch.is_grad_enabled()
        for layer in model.layers:
            if checkpointing:
                from torch.utils.checkpoint import checkpoint

                h = checkpoint(self._layer, layer, h, plan, ws, use_reentrant=False)
            else:
                h = self._layer(layer, h, plan, ws)
        return model.final_norm(h)

    def _workspace(self, plan: Plan, dtype: torch.dtype, device: torch.device) -> _Workspace:
        H, D = self.num_heads, self.head_dim
        ws = _Workspace(
            qkv=plan.empty_rows(3, H, D, dtype=dtype, device=device),
            qk=plan.empty_rows(2, H, D, dtype=dtype, device=device),
            onednn=device.type == "cpu" and _onednn_pointwise_ok(dtype),
        )
        if plan.kernel_attention:
            out = torch.empty(plan.total, H, D, dtype=dtype, device=device)
            ws.kernel_attention = (out, kernels.attention_scratch(plan.total, H, D))
        return ws

    def _layer(self, layer: nn.Module, h: torch.Tensor, plan: Plan, ws: _Workspace | None) -> torch.Tensor:
        """One encoder layer: in place into ``ws`` (inference), or autograd-safe (``ws=None``)."""
        attn = layer.attn
        T, H, D, pad = plan.total, self.num_heads, self.head_dim, plan.pad
        x = layer.attn_norm(h)
        if ws is None:
            qkv = attn.Wqkv(x).view(T, 3, H, D)
            qk = rotate(qkv, plan, layer.attention_type)
            v = F.pad(qkv[:, 2], (0, 0, 0, 0, pad, plan.rows - pad - T)) if plan.rows != T else qkv[:, 2]
        else:
            qkv = ws.qkv[pad : pad + T]
            torch.mm(x, attn.Wqkv.weight.t(), out=qkv.view(T, 3 * H * D))
            if attn.Wqkv.bias is not None:
                qkv.view(T, 3 * H * D).add_(attn.Wqkv.bias)
            qk, v = rotate(qkv, plan, layer.attention_type, out=ws.qk), ws.qkv[:, 2]
        dropout = attn.attention_dropout if attn.training else 0.0
        local = layer.attention_type == "sliding_attention"
        o = attend(qk, v, plan, local, dropout, ws.kernel_attention if ws is not None else None)
        h = _add_linear(h, o, attn.Wo, attn.out_drop, inplace=ws is not None)
        z = self._geglu(layer.mlp, layer.mlp_norm(h), ws)
        return _add_linear(h, z, layer.mlp.Wo, layer.mlp.drop, inplace=ws is not None)

    def _geglu(self, mlp: nn.Module, y: torch.Tensor, ws: _Workspace | None) -> torch.Tensor:
        """``act(y @ Wi_in^T) * (y @ Wi_gate^T)``, fused into the GEMMs through oneDNN where it runs."""
        if ws is not None and ws.onednn and mlp.Wi.bias is None and _exact_gelu(mlp.act):
            inter = self.config.intermediate_size
            weight = mlp.Wi.weight
            pointwise = torch.ops.mkldnn._linear_pointwise
            act = pointwise(y, weight[:inter], None, "gelu", [], "none")
            return pointwise.binary(y, act, weight[inter:], None, "mul")
        inp, gate = mlp.Wi(y).chunk(2, dim=-1)
        return mlp.act(inp) * gate

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
        if not flat.numel():
            return torch.zeros(batch, seq, hidden, dtype=self.dtype, device=device)
        cu = F.pad(lengths[keep].cumsum(0), (1, 0))
        packed = self.forward(input_ids.reshape(-1)[flat], cu, int(lengths.max()))
        return packed.new_zeros(batch * seq, hidden).index_copy(0, flat, packed).view(batch, seq, hidden)
