"""``x86vm decodecode``: disassemble the ``Code:`` line of a Linux Oops or panic log.

Prints what the kernel's ``scripts/decodecode`` prints (objdump's text, the trapping
instruction marked), without objdump: the mode comes from the log's registers (``RIP:``/``RAX:``
64-bit, ``EIP:``/``EAX:`` 32-bit), the address from its instruction pointer when printed as a
number (the script's ``PC=``).
"""

from __future__ import annotations

import argparse
import sys

from x86vm.cli import CliError
from x86vm.disasm.decodecode import DecodeError, decodecode, parse_oops


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "decodecode", help="disassemble the Code: line of a Linux Oops log",
        description=__doc__.splitlines()[0])
    p.add_argument("log", nargs="?", metavar="FILE", help="the Oops log (default: stdin)")
    p.add_argument("--pc", metavar="ADDR",
                   help="address of the faulting instruction (default: from the log, if it "
                        "prints one; else listings start at 0)")
    p.add_argument("--mode", choices=("32", "64"), help="override the mode read from the log")
    p.add_argument("-M", dest="syntax", choices=("att", "intel"), default="att",
                   help="syntax (default att, as objdump)")
    p.set_defaults(func=run)


def _address(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise CliError(f"bad --pc {text!r}: expected a hex address") from None


def run(args: argparse.Namespace) -> int:
    if args.log is None:
        text = sys.stdin.read()
    else:
        try:
            with open(args.log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as exc:
            raise CliError(f"cannot read {args.log}: {exc.strerror}") from None
    pc = _address(args.pc) if args.pc is not None else None
    try:
        oops = parse_oops(text, mode=int(args.mode) if args.mode else None, pc=pc)
    except DecodeError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(decodecode(oops, args.syntax))
    return 0
