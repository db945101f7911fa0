"""The ``x86vm`` command.

Each subcommand is a module in this package exposing ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable ``(args) -> int``. Errors the user can fix are raised as
:class:`CliError` and printed as one line; the CLI never shows a traceback for bad input.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

SUBCOMMANDS = ("disasm", "run", "kvm_probe", "decodecode")  # modules; each registers its command


class CliError(Exception):
    """A user-facing error: printed as ``x86vm: error: <message>``; exit status ``status``
    (2, or objdump's 1 for ``x86vm disasm``)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or only of ``command`` when it names one (its
    modules alone are imported: ``x86vm disasm`` starts without the machine's)."""
    parser = argparse.ArgumentParser(prog="x86vm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [n for n in SUBCOMMANDS if n.replace("_", "-") == command] or SUBCOMMANDS
    for name in names:
        try:
            module = importlib.import_module(f"x86vm.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"x86vm.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = int(args.func(args) or 0)
    except CliError as exc:
        if sys.stderr is not None:  # started with stderr closed: the status still tells
            try:
                print(f"x86vm: error: {exc}", file=sys.stderr)
            except OSError:
                pass
        return exc.status
    except BrokenPipeError:  # the reader left (``| head``): a clean stop
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        _silence_stdout()
        if sys.stderr is not None:
            print(f"x86vm: error: cannot write the output: {exc.strerror}", file=sys.stderr)
        return 1
    if argv is None and getattr(args, "exit_at_once", False):
        _exit_at_once(status)
    return status


def _exit_at_once(status: int) -> None:
    """End this process (the ``x86vm`` command itself, not a caller of `main`) without
    tearing its objects down: a subcommand that opts in (``exit_at_once``; ``disasm``,
    whose memos hold hundreds of thousands of objects: 0.2 s of a 2 s listing) needs no
    clean-up beyond its output.  If flushing the standard streams fails, the ordinary
    exit reports it."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(status)


OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT, errno.EFBIG,
                           errno.EPIPE})
"""Errors of a standard stream the host cannot take (``> /dev/full``, a closed descriptor):
one line, not a traceback."""


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what is still
    buffered cannot fail a second time (Python's documented advice for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
