"""Where the encoder runs: the default device, and the dtype to use there (``"auto"``: bf16 where native).

The lowest module of ``encoder``: both the public API (``encoder.sentence``) and the packed
ModernBERT (``encoder.modernbert``) resolve devices and dtypes here, so neither imports the other
for it.
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 matmuls run natively (AMX or AVX512-BF16 on CPU, Ampere+ on CUDA)."""
    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """``"auto"`` -> bfloat16 where the hardware runs it natively, else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def default_device() -> str:
    """CUDA when available, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"
