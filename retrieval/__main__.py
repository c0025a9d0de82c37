"""``python -m retrieval COMMAND``: every command of the toolkit's command line, wired in one place.

Each command lives in its own module with ``add_command(commands)``; bad input stops with
``error: <what is wrong>`` and exit code 2 (:func:`retrieval.cli.run_reporting_errors`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from retrieval.cli import run_reporting_errors
from retrieval.codebase import cli as codebase_cli
from retrieval.scale import cli as scale_cli
from retrieval.service import cli as service_cli

COMMAND_MODULES = [codebase_cli, service_cli, scale_cli]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m retrieval", description="Index a codebase or document folder, then search it.")
    commands = p.add_subparsers(dest="command")
    for module in COMMAND_MODULES:
        module.add_command(commands)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_reporting_errors(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
