"""What every ``python -m retrieval`` command shares: the trust flag's words and the one error boundary.

Each command is a module with ``add_command(commands)`` (adds its subparser, sets ``run``) so
commands are written apart and wired in one place, :mod:`retrieval.__main__`. Nothing heavy is
imported here (torch costs 1-2 s): the error types of ``encoder`` and ``indexes`` are looked up
only where those packages were loaded, since an error of theirs can come from nowhere else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

_ERROR_TYPES = (("encoder.sentence", "ModelLoadError"), ("indexes.base", "IndexFormatError"))

TRUST_HELP = (
    "let the model folder name module code outside the toolkit's allow-list (sentence-transformers, PyLate, "
    "encoder); off by default, when such a folder is refused and nothing from it runs"
)


def _reported_errors() -> tuple[type[BaseException], ...]:
    """ValueError, and the toolkit's own error types of the packages loaded so far."""
    loaded = (getattr(sys.modules.get(module), name, None) for module, name in _ERROR_TYPES)
    return (ValueError, *(kind for kind in loaded if kind is not None))


def run_reporting_errors(run: Callable[[], int]) -> int:
    """Run a command; bad input ends as ``error: <what is wrong>`` on stderr and exit code 2, never a traceback."""
    try:
        return run()
    except _reported_errors() as exc:  # CodebaseError, ServiceError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be read or written
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _workers(value: str) -> int | None:
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"takes 'auto' or a count of at least 1, not {value!r}")
    return int(value)


def add_workers_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--workers`` and ``--ray-address``: Ray actors encoding ``what`` (:meth:`retrieval.Retriever.workers`)."""
    p.add_argument("--workers", type=_workers, default=None, metavar="N", help=f"encode {what} on N Ray actors (one model each), or "
                   f"auto (default): in this process below 50,000 {what} or on fewer than 4 cores, else one actor per 2 cores "
                   "(per GPU with 2+ GPUs); 1: always in this process")
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="encode on the Ray cluster at ADDR (started with 'ray start "
                   "--head'), with --workers actors (default 2)")
