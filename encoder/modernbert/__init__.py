"""ModernBERT unpadded and packed: every sequence of a batch in one token stream.

``encoder.load_model`` runs every ModernBERT checkpoint through this package; its modules,
one job each:

* :mod:`~encoder.modernbert.model`: :class:`PackedModernBert`, the packed forward over a
  transformers ``ModernBertModel``'s own weights (training and inference);
* :mod:`~encoder.modernbert.plan`: the per-batch plan (positions, RoPE tables, attention layout);
* :mod:`~encoder.modernbert.attention`: RoPE and attention, one implementation per backend;
* :mod:`~encoder.modernbert.kernels` (+ ``csrc/packed_attention.cpp``): the CPU kernels;
* :mod:`~encoder.modernbert.st_module`: the sentence-transformers module (saves as a plain one);
* :mod:`~encoder.modernbert.packing`: token-budget batches and pooling of a packed output;
* :mod:`~encoder.modernbert.fixtures`: random-weight checkpoints for tests and benchmarks.

Examples
--------
>>> from encoder import encode, load_model
>>> model = load_model("answerdotai/ModernBERT-base", dtype="auto")   # doctest: +SKIP
>>> encode(model, ["a cat", "a dog"]).shape                          # doctest: +SKIP
(2, 768)
"""

from encoder.modernbert.attention import rope_torch_ops
from encoder.modernbert.fixtures import modernbert_config_dict, random_modernbert, save_random_modernbert
from encoder.modernbert.model import MAX_LENGTH, PackedModernBert
from encoder.modernbert.packing import packed_batches, pool_packed
from encoder.modernbert.st_module import PackedModernBertTransformer

__all__ = [
    "MAX_LENGTH",
    "PackedModernBert",
    "PackedModernBertTransformer",
    "modernbert_config_dict",
    "packed_batches",
    "pool_packed",
    "random_modernbert",
    "rope_torch_ops",
    "save_random_modernbert",
]
