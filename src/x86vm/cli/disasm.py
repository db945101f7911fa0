"""``x86vm disasm``: objdump-style disassembly listings of ELF files and raw images.

Accepts objdump's own spellings for what it shares with it (binutils 2.40 ``objdump``):
``-d``, ``-D``, ``-M intel``, ``-j SECTION``, ``--disassemble=SYMBOL``,
``--start-address=``/``--stop-address=``, ``-b binary -m i8086|i386|i386:x86-64``,
``--adjust-vma=``, ``-w`` and ``--insn-width=``. The output is laid out like ``objdump -d``.
"""

from __future__ import annotations

import argparse
import sys

from x86vm.cli import CliError
from x86vm.cli.inputs import open_regular
from x86vm.disasm.elf import ElfFormatError, load_elf
from x86vm.disasm.listing import (
    ListingImage,
    ListingOptions,
    binary_image,
    decoder_formatter,
    elf_image,
    write_listing,
)

MACHINES = {"i8086": 16, "i386": 32, "i386:x86-64": 64, "x86-64": 64, "i386:x64-32": 64}
MODE_OPTIONS = {"i8086": 16, "i386": 32, "x86-64": 64, "x86_64": 64}
SYNTAX_OPTIONS = {"intel": "intel", "att": "att"}
ELF_TARGETS = {"elf64-x86-64", "elf32-i386", "elf32-x86-64"}
MAX_INSN_WIDTH = 1 << 16  # bytes per line; objdump's own limit is its int (it overflows)
OBJDUMP_ERROR_STATUS = 1  # objdump's exit status for a bad option or input file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "disasm",
        help="disassemble ELF files or raw images like objdump -d",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("-d", "--disassemble", action="store_true",
                        help="disassemble code sections; --disassemble=SYMBOL: one symbol")
    parser.add_argument("--disassemble-symbol", dest="symbol", help=argparse.SUPPRESS)
    parser.add_argument("-D", "--disassemble-all", action="store_true",
                        help="disassemble every section with contents")
    parser.add_argument("-M", "--disassembler-options", action="append", default=[],
                        metavar="OPT", help="intel | att | i8086 | i386 | x86-64 (comma-separated)")
    parser.add_argument("-j", "--section", action="append", dest="sections", metavar="SECTION",
                        help="only this section (repeatable)")
    parser.add_argument("--start-address", metavar="ADDR", help="from this address")
    parser.add_argument("--stop-address", metavar="ADDR", help="up to (not including) ADDR")
    parser.add_argument("-b", "--target", metavar="BFDNAME", help="binary for a raw image")
    parser.add_argument("-m", "--architecture", metavar="MACHINE",
                        help="i8086 | i386 | i386:x86-64")
    parser.add_argument("--adjust-vma", metavar="OFFSET", help="add OFFSET to section addresses")
    parser.add_argument("-w", "--wide", action="store_true", help="all raw bytes on one line")
    parser.add_argument("--insn-width", metavar="WIDTH", help="raw bytes per line")
    parser.set_defaults(func=run)
    _accept_objdump_optional_argument(parser)


def _accept_objdump_optional_argument(parser: argparse.ArgumentParser) -> None:
    """objdump's ``--disassemble[=SYMBOL]`` takes its argument only after ``=``; argparse
    would take the next word (the file). Rewrite ``--disassemble=SYMBOL`` before parsing, and
    report unknown options as one ``x86vm: error:`` line like every other bad input."""
    parse_known_args = parser.parse_known_args

    def parse(args=None, namespace=None):
        if args is not None:
            rewritten = []
            for arg in args:
                if arg.startswith("--disassemble="):
                    rewritten += ["--disassemble-symbol", arg.split("=", 1)[1]]
                else:
                    rewritten.append(arg)
            args = rewritten
        namespace, extras = parse_known_args(args, namespace)
        if extras:
            _fail(f"unrecognized arguments: {' '.join(extras)} (see x86vm disasm --help)")
        return namespace, extras

    parser.parse_known_args = parse
    parser.error = lambda message: _fail(f"{message} (see x86vm disasm --help)")


def _fail(message: str):
    print(f"x86vm: error: {message}", file=sys.stderr)
    raise SystemExit(OBJDUMP_ERROR_STATUS)


def parse_vma(text: str, option: str) -> int:
    """An address as objdump's ``bfd_scan_vma`` with base 0 reads it: 0x.. hex, 0.. octal,
    a leading minus sign taken modulo 2^64."""
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text)
    try:
        value = sign * (int(digits, 0) if not (len(digits) > 1 and digits[0] == "0"
                                               and digits[1].isdigit()) else int(digits, 8))
    except ValueError:
        raise CliError(f"{option}: bad number: {text}") from None
    if not -(1 << 64) < value < 1 << 64:
        raise CliError(f"{option}: {text} does not fit in 64 bits")
    return value & (2**64 - 1)  # a negative number wraps, as objdump's bfd_vma does


def _options(args) -> tuple[ListingOptions, str, int | None]:
    syntax = "att"
    mode_override = None
    for group in args.disassembler_options:
        for option in filter(None, group.split(",")):
            if option in SYNTAX_OPTIONS:
                syntax = SYNTAX_OPTIONS[option]
            elif option in MODE_OPTIONS:
                mode_override = MODE_OPTIONS[option]
            else:  # objdump 2.40 ignores an unknown x86 option silently; say so, go on
                print(f"x86vm: warning: unrecognised disassembler option '{option}' ignored",
                      file=sys.stderr)
    if args.architecture is not None:
        if args.architecture not in MACHINES:
            raise CliError(f"can't use supplied machine {args.architecture} "
                           f"(known: {', '.join(MACHINES)})")
        mode_override = mode_override or MACHINES[args.architecture]
    insn_width = None
    if args.insn_width is not None:
        try:
            insn_width = int(args.insn_width)
        except ValueError:
            insn_width = 0
        if insn_width <= 0:
            raise CliError(f"--insn-width: invalid width '{args.insn_width}'")
        if insn_width > MAX_INSN_WIDTH:
            raise CliError(f"--insn-width: {args.insn_width} is more than the "
                           f"{MAX_INSN_WIDTH} bytes per line x86vm lists")
    options = ListingOptions(
        disassemble_all=args.disassemble_all,
        only_sections=args.sections,
        symbol=args.symbol or None,
        start_address=(parse_vma(args.start_address, "--start-address")
                       if args.start_address is not None else None),
        stop_address=(parse_vma(args.stop_address, "--stop-address")
                      if args.stop_address is not None else None),
        wide=args.wide,
        insn_width=insn_width,
    )
    return options, syntax, mode_override


def _load(path: str, target: str | None, mode_override: int | None, adjust: int) -> ListingImage:
    stream = open_regular(path)  # kept open: section bytes are read on demand
    try:
        head = stream.read(4)
        if target == "binary":
            if mode_override is None:
                raise CliError("-b binary needs a machine: -m i8086, -m i386 or -m i386:x86-64")
            stream.seek(0)
            data = stream.read()
            stream.close()
            return binary_image(path, data, mode_override, adjust)
        if head != b"\x7fELF":
            raise CliError(f"{path}: file format not recognized")
        stream.seek(0)
        elf = load_elf(path, stream)
        for warning in elf.warnings:  # objdump: "warning: FILE has a corrupt ..."
            print(f"x86vm: warning: {path} {warning}", file=sys.stderr)
        image = elf_image(elf, adjust)
        if mode_override is not None:
            image.mode = mode_override
        return image
    except ElfFormatError as exc:
        stream.close()
        raise CliError(f"{path}: {exc}") from None
    except OSError as exc:
        stream.close()
        raise CliError(f"'{path}': {exc.strerror or exc}") from None
    except CliError:
        stream.close()
        raise


def run(args) -> int:
    """List every file as objdump does; errors exit with objdump's status (1)."""
    try:
        return _run(args)
    except CliError as exc:
        exc.status = OBJDUMP_ERROR_STATUS
        raise


def _run(args) -> int:
    options, syntax, mode_override = _options(args)
    target = args.target
    if target is not None and target != "binary" and target not in ELF_TARGETS:
        raise CliError(f"can't use target '{target}' (known: binary, {', '.join(ELF_TARGETS)})")
    adjust = parse_vma(args.adjust_vma, "--adjust-vma") if args.adjust_vma else 0
    images = [_load(path, target, mode_override, adjust) for path in args.files]

    if options.only_sections:
        known = set().union(*(image.section_names for image in images))
        for name in options.only_sections:
            if name not in known:
                raise CliError(f"section '{name}' mentioned in a -j option, "
                               "but not found in any input file")
    if options.symbol is not None:  # objdump lists the section headings only, status 0
        if not any(options.symbol in image.symtab.names() for image in images):
            print(f"x86vm: warning: symbol '{options.symbol}' not found", file=sys.stderr)

    formatters = {}
    try:
        for image in images:
            key = (image.mode, syntax)
            if key not in formatters:
                formatters[key] = decoder_formatter(image.mode, syntax)
    except ImportError as exc:
        raise CliError(f"the x86 decoder is not available ({exc})") from None

    stream = sys.stdout
    if hasattr(stream, "reconfigure"):  # names are raw bytes in ELF: print them as objdump does
        stream.reconfigure(errors="surrogateescape")
    write = stream.write
    for image in images:
        try:
            write_listing(image, formatters[(image.mode, syntax)], options, write)
        except ElfFormatError as exc:
            sys.stdout.flush()
            raise CliError(f"{image.path}: {exc}") from None
    sys.stdout.flush()
    return 0
