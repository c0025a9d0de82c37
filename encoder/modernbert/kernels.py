"""CPU kernels of the packed encoder, compiled on first use (``csrc/packed_attention.cpp``).

Two operations that torch has no single kernel for on CPU:

* :func:`rope`: rotary embedding of queries and keys in one pass over memory (torch needs
  four elementwise passes; they took 15% of a 512-token forward);
* :func:`varlen_attention`: exact attention over the packed stream, per sequence, either
  global or banded (``|i - j| <= window``), bf16 on AMX (the matmuls through ATen's
  ``cpublas::brgemm``, online softmax in AVX-512). No padded batch, no mask tensor, keys
  packed once per layer; measured against torch's SDPA in ``benchmarks.kernels_bench``.

The extension is built with ``torch.utils.cpp_extension.load`` (a C++ compiler and ninja
are needed) into ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``), once per
source version, torch version and CPU; later processes load the cached build. Where the
build fails, or ``ENCODER_CPU_KERNELS=0`` is set, :func:`load` returns None and the encoder
runs on torch operators alone (same results, slower), after one logged warning.

Examples
--------
>>> from encoder.modernbert import kernels
>>> ops = kernels.load()                       # doctest: +SKIP
>>> kernels.attention_supported()              # AMX + bf16 here?  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import threading
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "packed_attention.cpp"
CFLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp"]

#: Query rows per block and keys per step of :func:`varlen_attention`, for global layers
#: (long / short sequences) and local ones (keys: the band). Tuned on a 2-core Sapphire
#: Rapids: larger query blocks read each head's keys fewer times; blocks of many short
#: sequences keep both cores busy.
GLOBAL_BLOCKS_LONG = (256, 256)
GLOBAL_BLOCKS = (128, 256)
LOCAL_BLOCKS = (64, 256)
LONG = 1024

#: Seconds a load waits for another process's kernel build before using torch operators.
BUILD_TIMEOUT = float(os.environ.get("ENCODER_BUILD_TIMEOUT", 600))

_lock = threading.Lock()
_state: dict[str, object] = {}


def _cpu_id() -> str:
    """What ``-march=native`` compiles for: the CPU model and its flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _build_name() -> str:
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(CFLAGS).encode(), torch.__version__.encode(), _cpu_id().encode()):
        digest.update(part)
    return f"encoder_packed_attention_{digest.hexdigest()[:12]}"


@contextlib.contextmanager
def _build_lock(name: str):
    """Hold this toolkit's own lock on the build folder, and clear torch's lock when it is stale.

    torch's ``FileBaton`` (``<build>/lock``) stays behind when a compile is killed, and every
    later load then waits on it forever. Every build of ours holds a ``flock`` first (released by
    the system when its process dies), so a baton found while we hold ours was left by a dead
    build: it is removed with a warning. A build held by a live process for over
    ``BUILD_TIMEOUT`` seconds gives up with a message, and the encoder falls back to torch ops.
    """
    from filelock import FileLock, Timeout
    from torch.utils.cpp_extension import _get_build_directory

    folder = Path(_get_build_directory(name, verbose=False))
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / "encoder-build.lock", timeout=BUILD_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise TimeoutError(f"another process has been building the kernels in {folder} for over {BUILD_TIMEOUT:.0f} s") from None
    try:
        baton = folder / "lock"
        if baton.exists():
            logger.warning("removing %s, left by an interrupted kernel build", baton)
            baton.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


def load():
    """The compiled extension, or None where it cannot be built here (reason logged once)."""
    with _lock:
        if "ops" in _state:
            return _state["ops"]
        ops = None
        if os.environ.get("ENCODER_CPU_KERNELS", "1") == "0":
            _state["why"] = "disabled by ENCODER_CPU_KERNELS=0"
        elif platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
            _state["why"] = f"built for x86-64 Linux only (this is {platform.system()} {platform.machine()})"
        else:
            try:
                from torch.utils.cpp_extension import load as load_extension

                logger.info("loading the encoder's CPU kernels (compiled on first use per machine: ~30 s)")
                with _build_lock(_build_name()):
                    ops = load_extension(
                        name=_build_name(),
                        sources=[str(SOURCE)],
                        extra_cflags=CFLAGS,
                        extra_ldflags=["-fopenmp"],
                        verbose=False,
                    )
            except Exception as exc:  # no compiler, no ninja, unsupported CPU flags, a build held too long, ...
                _state["why"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        if ops is None:
            logger.warning("encoder CPU kernels unavailable (%s); using torch operators", _state["why"])
        _state["ops"] = ops
        return ops


def unavailable_reason() -> str | None:
    """Why :func:`load` returned None (None when the kernels loaded, or before a load)."""
    return _state.get("why")  # type: ignore[return-value]


def attention_supported() -> bool:
    """Whether :func:`varlen_attention` runs here (kernels built, and AMX bf16 GEMMs)."""
    ops = load()
    if ops is None:
        return False
    if "amx" not in _state:
        _state["amx"] = bool(ops.amx_attention_supported())
    return bool(_state["amx"])


def rope(src: torch.Tensor, dst: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Rotate ``src`` rows ``(T, >=n, H, D)`` (first ``n`` vectors) into ``dst`` ``(T, n, H, D)``.

    ``cos`` and ``sin`` are float32 ``(T, D // 2)`` tables: ``dst[..., :D/2] = x1 cos - x2 sin``,
    ``dst[..., D/2:] = x2 cos + x1 sin`` (transformers' ``rotate_half`` convention), computed
    in float32 and rounded once. bfloat16 or float32.
    """
    with torch.profiler.record_function("encoder::rope"):
        load().rope(src, dst, cos, sin)


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    window: int | None,
    scale: float,
    out: torch.Tensor,
    max_seqlen: int | None = None,
    scratch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Attention of packed bf16 ``(T, H, D)`` rows within each sequence of ``cu_seqlens``.

    ``window=None``: each query sees its whole sequence; else keys with ``|i - j| <= window``.
    ``q``, ``k``, ``v`` may be row-strided views (slices of a fused QKV buffer); ``out`` is a
    contiguous ``(T, H, D)`` bf16 tensor, written and returned. ``cu_seqlens``: int64, CPU;
    ``max_seqlen`` (its longest sequence, computed when omitted) picks the block sizes.
    ``scratch``: two bf16 buffers from :func:`attention_scratch`, to reuse across calls.
    """
    if window is not None:
        block_q, block_k = LOCAL_BLOCKS
    else:
        longest = max_seqlen if max_seqlen is not None else int(cu_seqlens.diff().max())
        block_q, block_k = GLOBAL_BLOCKS_LONG if longest >= LONG else GLOBAL_BLOCKS
    if scratch is None:
        scratch = attention_scratch(*q.shape)
    with torch.profiler.record_function("encoder::varlen_attention"):
        return load().varlen_attention(
            q, k, v, cu_seqlens, -1 if window is None else int(window), float(scale), out, block_q, block_k, *scratch
        )


def attention_scratch(tokens: int, heads: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Buffers for the keys and values :func:`varlen_attention` packs for AMX (reusable)."""
    n = load().packed_buffer_numel(tokens, heads, head_dim)
    return torch.empty(n, dtype=torch.bfloat16), torch.empty(n, dtype=torch.bfloat16)
