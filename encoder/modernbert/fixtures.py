"""Random-weight ModernBERT checkpoints from a real config, for tests, benchmarks and dry runs.

Only the config (and the tokenizer files) of a real checkpoint are needed: the weights are a
function of ``(config, num_layers, seed)``, so runs on machines without the real weights
still compare like with like.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from encoder.devices import resolve_dtype
from encoder.modernbert.model import MAX_LENGTH

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def modernbert_config_dict(config_dir: str | Path, num_layers: int | None = None) -> dict:
    """The ``config.json`` of ``config_dir`` as a dict, cut to ``num_layers`` layers (same layer types)."""
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

    config = ModernBertConfig.from_dict(modernbert_config_dict(config_dir, num_layers))
    config._attn_implementation = attn_implementation
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = ModernBertModel(config)
    finally:
        torch.random.set_rng_state(state)
    return model.to(resolve_dtype(dtype)).eval()


def save_random_modernbert(config_dir: str | Path, out: str | Path, num_layers: int | None = None, seed: int = 0) -> Path:
    """Save :func:`random_modernbert` as a plain HF checkpoint folder, with the tokenizer of ``config_dir``.

    The tokenizer's ``model_max_length`` is set to 8,192 (the shared configs leave it unset), so the
    folder loads like a real ModernBERT checkpoint in transformers, sentence-transformers and PyLate.
    """
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
