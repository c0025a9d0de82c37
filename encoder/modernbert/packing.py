"""Packing helpers around the packed stream: token-budget batches in, one vector per sequence out."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


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
