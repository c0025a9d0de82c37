"""What every ``python -m retrieval`` command shares: the trust flag's words and the one error boundary.

Each command is a module with ``add_command(commands)`` (adds its subparser, sets ``run``) so
commands are written apart and wired in one place, :mod:`retrieval.__main__`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from encoder import ModelLoadError
from indexes import IndexFormatError

TRUST_HELP = (
    "let the model folder name module code outside the toolkit's allow-list (sentence-transformers, PyLate, "
    "encoder); off by default, when such a folder is refused and nothing from it runs"
)


def run_reporting_errors(run: Callable[[], int]) -> int:
    """Run a command; bad input ends as ``error: <what is wrong>`` on stderr and exit code 2, never a traceback."""
    try:
        return run()
    except (ModelLoadError, IndexFormatError, ValueError) as exc:  # CodebaseError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be read or written
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
