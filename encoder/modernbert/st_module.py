"""The sentence-transformers first module that runs ModernBERT through the packed path.

:class:`PackedModernBertTransformer` is a drop-in ``sentence_transformers.models.Transformer``
(same loading, tokenization, config and parameters); :func:`use_packed` swaps it into a
ModernBERT-based ``SentenceTransformer`` or PyLate ``ColBERT`` (``encoder.load_model`` and
``retrieval.colbert.load_colbert`` call it through ``encoder.use_packed_modernbert``).

Packing is how a model runs, not what it is: what a packed model saves is a plain
sentence-transformers folder, loadable without this package. sentence-transformers 5.3 writes
each module's type into ``modules.json`` from ``type(module).__module__``
(``SentenceTransformer.save``) and offers no hook to change it, so :func:`use_packed` also
gives the model a ``save`` that puts the plain ``Transformer`` (the same weights, tokenizer and
config, shared) back in place of the packed module for the time of the save
(:func:`plain_modules`). ``save_pretrained`` and the trainers' checkpoints go through it.
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch
from sentence_transformers.models import Transformer
from torch import nn

from encoder.modernbert.model import PackedModernBert

# nn.Module containers copied (not shared) when a module is re-created as another class.
_CONTAINERS = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")


def _shared(module: Transformer, cls: type) -> Transformer:
    """A ``cls`` instance sharing ``module``'s model, tokenizer and config (nothing copied)."""
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    for key, value in module.__dict__.items():
        if key in _CONTAINERS:
            new.__dict__[key] = type(value)(value)
        elif key not in ("training", "_packed"):
            new.__dict__[key] = value
    new.training = module.training
    return new


class PackedModernBertTransformer(Transformer):
    """sentence-transformers first module running ModernBERT through :class:`PackedModernBert`.

    ``forward`` unpads the tokenized batch once, runs the packed stream and pads
    ``token_embeddings`` back to ``(batch, seq, hidden)`` (zeros at padding) so any
    ``Pooling`` works. Non-ModernBERT models fall back to the plain ``Transformer`` forward.
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
    def from_transformer(cls, module: Transformer, attn_backend: str = "auto") -> "PackedModernBertTransformer":
        """Wrap an existing ``Transformer`` module (shares its model and tokenizer)."""
        new = _shared(module, cls)
        new._setup_packed(attn_backend)
        return new

    def to_plain(self) -> Transformer:
        """The plain ``Transformer`` over the same model and tokenizer (what gets saved)."""
        return _shared(self, Transformer)

    @property
    def packed(self) -> PackedModernBert | None:
        return self.__dict__.get("_packed")

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        packed = self.packed
        if packed is None or kwargs or "inputs_embeds" in features:
            return super().forward(features, **kwargs)
        features["token_embeddings"] = packed.forward_padded(features["input_ids"], features.get("attention_mask"))
        return features


@contextmanager
def plain_modules(model):
    """``model`` with each packed module replaced by its plain ``Transformer``, restored on exit."""
    packed = {name: m for name, m in model._modules.items() if isinstance(m, PackedModernBertTransformer)}
    for name, module in packed.items():
        model._modules[name] = module.to_plain()
    try:
        yield model
    finally:
        model._modules.update(packed)


def _save_plain(model, *args, **kwargs):
    """The model class's own ``save``, run on the plain modules."""
    with plain_modules(model):
        return type(model).save(model, *args, **kwargs)


def use_packed(model, attn_backend: str = "auto"):
    """Run a ModernBERT-based ``SentenceTransformer`` (or PyLate ColBERT) through the packed encoder.

    Swaps the first module for a :class:`PackedModernBertTransformer` sharing its weights and
    tokenizer, and makes the model save as the plain one; other models are returned unchanged.
    """
    first = model[0] if len(model) else None
    config = getattr(getattr(first, "auto_model", None), "config", None)
    if isinstance(first, Transformer) and getattr(config, "model_type", None) == "modernbert":
        if not isinstance(first, PackedModernBertTransformer):
            model[0] = PackedModernBertTransformer.from_transformer(first, attn_backend=attn_backend)
        model.save = types.MethodType(_save_plain, model)
    return model
