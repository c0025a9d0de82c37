"""Encoders: text -> embeddings.

``encoder.sentence`` (the public API, re-exported here) embeds with any sentence-transformers
model, batching by token budget; ``encoder.modernbert`` runs ModernBERT unpadded and packed (used
automatically for ModernBERT checkpoints by ``load_model``); ``encoder.devices`` resolves devices
and dtypes for both.
"""

from encoder.sentence import (
    ModelLoadError,
    bf16_supported,
    default_model,
    encode,
    load_model,
    resolve_dtype,
    token_lengths,
    use_packed_modernbert,
)

__all__ = [
    "ModelLoadError",
    "bf16_supported",
    "default_model",
    "encode",
    "load_model",
    "resolve_dtype",
    "token_lengths",
    "use_packed_modernbert",
]
