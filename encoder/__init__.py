"""Encoders: text -> embeddings.

``encoder.sentence`` embeds with any sentence-transformers model, batching by token budget.
"""

from encoder.sentence import (
    ModelLoadError,
    bf16_supported,
    default_model,
    encode,
    load_model,
    resolve_dtype,
    token_lengths,
)

__all__ = [
    "ModelLoadError",
    "bf16_supported",
    "default_model",
    "encode",
    "load_model",
    "resolve_dtype",
    "token_lengths",
]
