"""The ``x86vm`` command.

Each subcommand is a module in this package exposing ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable ``(args) -> int``. Errors the user can fix are raised as
:class:`CliError` and printed as one line; the CLI never shows a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("disasm", "run", "kvm_probe", "decodecode")  # modules; each registers its command


class CliError(Exception):
    """A user-facing error: printed as ``x86vm: error: <message>``; exit status ``status``
    (2, or objdump's 1 for ``x86vm disasm``)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x86vm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"x86vm.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"x86vm.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"x86vm: error: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
