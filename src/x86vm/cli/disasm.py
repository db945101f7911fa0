"""``x86vm disasm``: objdump-style disassembly listings of ELF files and raw images.

Accepts objdump's own spellings for what it shares with it (binutils 2.40 ``objdump``):
``-d``, ``-D``, ``-M intel``, ``-j SECTION``, ``--disassemble=SYMBOL``,
``--start-address=``/``--stop-address=``, ``-b binary -m i8086|i386|i386:x86-64``,
``--adjust-vma=``, ``-w``, ``--insn-width=``, ``--[no-]show-raw-insn``, ``--prefix-addresses``,
``--no-addresses``, ``-z``, ``-r``, ``-R`` and ``-C``, parsed as objdump's getopt_long parses
them (``disasm_getopt``). The output is byte for byte ``objdump``'s with the same options.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import re
import sys

from x86vm.cli import CliError
from x86vm.cli import disasm_getopt as getopt
from x86vm.cli.inputs import open_regular
from x86vm.disasm.archive import ArchiveError, is_archive, members
from x86vm.disasm.elf import ElfFormatError, load_elf
from x86vm.disasm.elfcheck import UNKNOWN_ARCH
from x86vm.disasm.listing import (
    ListingImage,
    ListingOptions,
    binary_image,
    decoder_formatter,
    elf_image,
    write_listing,
)
from x86vm.disasm.x86_options import KNOWN_PREFIXES, parse_x86_options, split_items

MACHINES = {"i8086": 16, "i386": 32, "i386:x86-64": 64, "x86-64": 64, "i386:x64-32": 64,
            "i386:intel": 32, "i386:x86-64:intel": 64, "i386:x64-32:intel": 64}
"""BFD's x86 machine names (bfd/cpu-i386.c); a ``:intel`` one defaults to Intel syntax."""
ELF_TARGETS = {"elf64-x86-64", "elf32-i386", "elf32-x86-64"}
# objdump 2.40's other targets (objdump --help): -b with one that does not take the file falls
# back to trying every target (bfd/format.c), so an ELF file is still listed; the generic
# ELF vectors take an ELF file of their class and byte order, and then know no architecture
GENERIC_ELF_TARGETS = {"elf64-little": (2, 1), "elf64-big": (2, 2), "elf32-little": (1, 1),
                       "elf32-big": (1, 2)}
FALLBACK_TARGETS = {"elf32-iamcu", "pei-i386", "pe-x86-64", "pei-x86-64", "pe-bigobj-x86-64",
                    "pe-i386", "pdb", "srec", "symbolsrec", "verilog", "tekhex", "ihex",
                    "plugin", *GENERIC_ELF_TARGETS}
MAX_INSN_WIDTH = 1 << 16  # bytes per line; objdump's own limit is its int (it overflows)
OBJDUMP_ERROR_STATUS = 1  # objdump's exit status for a bad option or input file


USAGE = """\
usage: x86vm disasm [OPTION...] FILE...
objdump 2.40's command line (getopt_long: -dw clusters, -Mintel, --no-show prefixes):
  -d, --disassemble[=SYMBOL]   code sections (or one symbol)
  -D, --disassemble-all        every section with contents
  -M, --disassembler-options=  intel|att|i8086|i386|x86-64 (comma-separated)
  -j, --section=NAME           only this section (repeatable)
  --start-address=ADDR, --stop-address=ADDR, --adjust-vma=OFFSET
  -b binary -m i8086|i386|i386:x86-64   a raw image
  -w, --wide                   all raw bytes on one line
  --insn-width=WIDTH           raw bytes per line
  --[no-]show-raw-insn, --prefix-addresses, --no-addresses
  -z, --disassemble-zeroes     do not skip blocks of zeroes
  -C, --demangle               C++ names demangled (Itanium ABI)
  -r, --reloc / -R, --dynamic-reloc   relocations under their instruction (with -d/-D)
  -f, --file-headers / -h, --section-headers   the file header, the section table
  -t, --syms / -T, --dynamic-syms      the symbol table, the dynamic symbol table
  -l, --line-numbers           function names and file:line from DWARF (or the symbols)
  -S, --source                 source lines before their code (implies -d)
  --prefix=DIR, --prefix-strip=N   with -l/-S: DIR before absolute source names, less N dirs
  --visualize-jumps[=color|extended-color]   ASCII art of the jumps in each function
Without -d, -D, -f, -h, -t or -T the code sections are disassembled (-d).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "disasm",
        help="disassemble ELF files or raw images like objdump -d",
        description=__doc__.splitlines()[0],
        add_help=False,
    )
    parser.set_defaults(func=run, exit_at_once=True)   # (see cli._exit_at_once)

    def parse_known_args(args=None, namespace=None):
        """objdump's getopt_long instead of argparse: its clusters, prefixes and wording."""
        namespace = namespace if namespace is not None else argparse.Namespace()
        for key, value in vars(parse_command_line(list(args or []))).items():
            setattr(namespace, key, value)
        namespace.func = run
        return namespace, []

    parser.parse_known_args = parse_known_args


SUPPORTED = {"d", "D", "M", "j", "start-address", "stop-address", "b", "m", "adjust-vma",
             "w", "insn-width", "show-raw-insn", "no-show-raw-insn", "prefix-addresses",
             "no-addresses", "z", "H", "r", "R", "C", "f", "h", "t", "T", "l", "S",
             "prefix", "prefix-strip",
             "visualize-jumps"}
"""The option keys of ``disasm_getopt`` that x86vm lists; the others are refused by name."""


HEADER_OPTIONS = {"f": "file_headers", "h": "section_headers", "t": "syms", "T": "dynamic_syms"}
"""objdump's header dumps (headers.py): -f, -h, -t, -T."""


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """The disasm options from objdump's command line; a bad one exits with one line, 1."""
    try:
        parsed = getopt.parse(argv)
    except getopt.GetoptError as exc:
        _fail(str(exc))
    args = argparse.Namespace(
        files=parsed.files or ["a.out"], disassemble=False, symbol=None,
        disassemble_all=False, disassembler_options=[], sections=None, start_address=None,
        stop_address=None, target=None, architecture=None, adjust_vma=None, wide=False,
        insn_width=None, show_raw_insn=0, prefix_addresses=False, no_addresses=False,
        disassemble_zeroes=False, reloc=False, dynamic_reloc=False, demangle=False,
        file_headers=False, section_headers=False, syms=False, dynamic_syms=False,
        line_numbers=False, source=False, visualize_jumps="", prefix=None, prefix_strip=0)
    for key, value in parsed.options:
        if key not in SUPPORTED:
            _fail(f"option {getopt.spelling(key)} is not supported by x86vm disasm")
        if key == "H":
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        if key == "d":
            args.disassemble = True
            if value is not None:
                args.symbol = value
        elif key == "D":
            args.disassemble_all = True
        elif key == "M":
            args.disassembler_options.append(value)
        elif key == "j":
            args.sections = [*(args.sections or []), value]
        elif key == "b":
            args.target = value
        elif key == "m":
            args.architecture = value
        elif key == "w":
            args.wide = True
        elif key == "z":
            args.disassemble_zeroes = True
        elif key == "C":  # --demangle[=STYLE]: gnu-v3 (and auto) is what x86vm demangles
            if value not in (None, "auto", "gnu-v3"):
                _fail(f"--demangle={value}: only the auto and gnu-v3 styles are supported")
            args.demangle = True
        elif key == "l":
            args.line_numbers = True
        elif key == "prefix":  # objdump drops the trailing separators
            args.prefix = value.rstrip("/")
        elif key == "prefix-strip":  # atoi
            args.prefix_strip = int(re.match(r"\s*([+-]?\d*)", value).group(1) or 0) \
                if re.match(r"\s*[+-]?\d", value) else 0
            if args.prefix_strip < 0:
                _fail("error: prefix strip must be non-negative")
        elif key == "S":  # objdump: -S disassembles too
            args.source = args.disassemble = True
        elif key == "visualize-jumps":  # [=color|extended-color|off]
            if value not in (None, "off", "color", "extended-color"):
                _fail("unrecognized argument to --visualize-option")
            args.visualize_jumps = "" if value == "off" else value or "plain"
        elif key in HEADER_OPTIONS:
            setattr(args, HEADER_OPTIONS[key], True)
        elif key in ("r", "R"):
            setattr(args, "reloc" if key == "r" else "dynamic_reloc", True)
        elif key in ("show-raw-insn", "no-show-raw-insn"):
            args.show_raw_insn = 1 if key == "show-raw-insn" else -1
        elif key in ("prefix-addresses", "no-addresses"):
            setattr(args, key.replace("-", "_"), True)
        else:  # start-address, stop-address, adjust-vma, insn-width: the last one counts
            setattr(args, key.replace("-", "_"), value)
    return args


def _fail(message: str):
    print(f"x86vm: error: {message}", file=sys.stderr)
    raise SystemExit(OBJDUMP_ERROR_STATUS)


VMA_MAX = (1 << 64) - 1
"""strtoul's ULONG_MAX: what a value past 64 bits reads as, and objdump's "not given"."""
_STRTOUL = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def strtoul(text: str) -> tuple[int, str]:
    """C ``strtoul(text, &end, 0)`` on an LP64 host: the value (ULONG_MAX past 64 bits, a
    minus sign negating modulo 2^64) and the unparsed rest."""
    match = _STRTOUL.match(text)
    if match is None:
        return 0, text
    sign, digits = match.groups()
    value = int(digits, 16 if digits[:2] in ("0x", "0X") else 8 if digits[0] == "0" else 10)
    if value > VMA_MAX:
        return VMA_MAX, text[match.end():]
    return (-value if sign == "-" else value) & VMA_MAX, text[match.end():]


def parse_vma(text: str, option: str) -> int:
    """An address as objdump's ``parse_vma`` reads it (``bfd_scan_vma``, that is strtoul with
    base 0): 0x.. hex, 0.. octal, a minus sign modulo 2^64, past 64 bits 2^64 - 1; anything
    after the number is "bad number"."""
    value, rest = strtoul(text)
    if rest:
        raise CliError(f"{option}: bad number: {text}")
    return value


def _address(text: str | None, option: str) -> int | None:
    """--start-address/--stop-address; 2^64 - 1 is objdump's "not given" (its default)."""
    if text is None:
        return None
    value = parse_vma(text, option)
    return None if value == VMA_MAX else value


def _options(args) -> tuple[ListingOptions, str, int | None]:
    syntax = "intel" if (args.architecture or "").endswith(":intel") else "att"
    for option in split_items(args.disassembler_options):
        if not option.startswith(KNOWN_PREFIXES):  # objdump ignores it silently; say so
            print(f"x86vm: warning: unrecognised disassembler option '{option}' ignored",
                  file=sys.stderr)
    # (the known items are read per file, from the file's mode: parse_x86_options)
    mode_override = parse_x86_options(args.disassembler_options, 0).mode or None
    if args.architecture is not None:  # objdump: bfd_scan_arch ("") is plain i386
        machine = args.architecture or "i386"
        if machine not in MACHINES:
            raise CliError(f"can't use supplied machine {machine} "
                           f"(known: {', '.join(MACHINES)})")
        mode_override = mode_override or MACHINES[machine]
    insn_width = None
    if args.insn_width is not None:
        # objdump: an int from strtoul (trailing text ignored, the low 32 bits, signed)
        insn_width = strtoul(args.insn_width)[0] & 0xFFFFFFFF
        insn_width -= (insn_width & 0x80000000) << 1
        if insn_width <= 0:
            raise CliError(f"--insn-width: invalid width '{args.insn_width}'")
        if insn_width > MAX_INSN_WIDTH:
            raise CliError(f"--insn-width: {args.insn_width} is more than the "
                           f"{MAX_INSN_WIDTH} bytes per line x86vm lists")
    options = ListingOptions(
        disassemble_all=args.disassemble_all,
        only_sections=args.sections,
        symbol=args.symbol or None,
        start_address=_address(args.start_address, "--start-address"),
        stop_address=_address(args.stop_address, "--stop-address"),
        wide=args.wide,
        insn_width=insn_width,
        show_raw_insn=args.show_raw_insn,
        prefix_addresses=args.prefix_addresses,
        no_addresses=args.no_addresses,
        disassemble_zeroes=args.disassemble_zeroes,
        reloc=args.reloc,
        dynamic_reloc=args.dynamic_reloc,
        demangle=args.demangle,
        visualize_jumps=args.visualize_jumps,
    )
    return options, syntax, mode_override


def _load(path: str, target: str | None, mode_override: int | None, adjust: int,
          line_numbers: tuple = (False, False, None, 0),
          demangle: bool = False, machine_mode: int | None = None
          ) -> list[ListingImage | str]:
    """The image of a file, or the archive's path (for objdump's ``In archive`` line) and
    the image of each of its members."""
    stream = open_regular(path)  # kept open: section bytes are read on demand
    try:
        head = stream.read(8)
        if target == "binary":
            if mode_override is None:
                raise CliError("-b binary needs a machine: -m i8086, -m i386 or -m i386:x86-64")
            size = os.fstat(stream.fileno()).st_size  # objdump's size: /proc files are 0
            if size == 0:  # objdump -b binary lists nothing and exits 1
                raise CliError(f"{path}: file is empty", OBJDUMP_ERROR_STATUS)
            stream.seek(0)
            data = stream.read(size)
            stream.close()
            # (the address width is the -m machine's; -M i8086 & co. change the decoding)
            image = binary_image(path, data, machine_mode or mode_override, adjust)
            image.mode = mode_override
            return [image]
        if is_archive(head):
            stream.seek(0)
            data = stream.read()
            stream.close()
            try:
                parts = members(data)
            except ArchiveError as exc:
                raise CliError(f"{path}: {exc}") from None
            images: list[ListingImage | str] = [path]
            for member in parts:
                if not member.data.startswith(b"\x7fELF"):
                    print(f"x86vm: error: {member.name}: file format not recognized",
                          file=sys.stderr)
                    continue
                try:
                    image = _elf_image(member.name, io.BytesIO(member.data), mode_override,
                                       adjust, line_numbers, demangle)
                except ElfFormatError as exc:
                    raise _elf_error(member.name, exc) from None
                image.source = member.data
                images.append(image)
            return images
        if head[:4] != b"\x7fELF":
            raise CliError(f"{path}: file format not recognized")
        if target in GENERIC_ELF_TARGETS and tuple(head[4:6]) == GENERIC_ELF_TARGETS[target]:
            raise CliError(UNKNOWN_ARCH)
        stream.seek(0)
        return [_elf_image(path, stream, mode_override, adjust, line_numbers, demangle)]
    except ElfFormatError as exc:
        stream.close()
        raise _elf_error(path, exc) from None
    except OSError as exc:
        stream.close()
        raise CliError(f"'{path}': {exc.strerror or exc}") from None
    except CliError:
        stream.close()
        raise


def _elf_image(path: str, stream, mode_override: int | None, adjust: int,
               line_numbers: tuple, demangle: bool) -> ListingImage:
    """An ELF file's image; ``line_numbers``: (-l, -S, --prefix, --prefix-strip)."""
    elf = load_elf(path, stream)
    for warning in elf.warnings:  # BFD's lines, e.g. "warning: FILE has a corrupt ..."
        print(f"x86vm: {warning}", file=sys.stderr)
    image = elf_image(elf, adjust)
    if line_numbers[0] or line_numbers[1]:
        from x86vm.disasm.demangle import demangle_symbol
        from x86vm.disasm.source import LineNumbers

        stream.seek(0)
        lines = LineNumbers(path, stream, demangle_symbol if demangle else None,
                            line_numbers=line_numbers[0], source=line_numbers[1],
                            prefix=line_numbers[2], prefix_strip=line_numbers[3])
        if lines.has_dwarf or lines.symbols or lines.pending_error:  # (else it never
            # prints: the fast listing)
            image.line_numbers = lines
    if mode_override is not None:
        image.mode = mode_override
    return image


def _formatter(x86_options: list[str], mode: int, syntax: str):
    """The decoder and formatter for a file of ``mode`` with objdump's ``-M`` items: the
    syntax, the default operand/address sizes, the x87 mnemonics (x86_options.py)."""
    from x86vm.isa import decoder_mode

    options = parse_x86_options(x86_options, mode, syntax)
    formatter = decoder_formatter(
        decoder_mode(options.mode, options.operand_size, options.address_size,
                     options.isa64 == "intel64", options.suffix and options.syntax == "att"),
        options.syntax)
    amd64 = options.isa64 == "amd64"
    if options.syntax == "att" and (options.intel_mnemonic or amd64 or options.suffix):
        from x86vm.disasm.att import att_formatter

        formatter.format_text = att_formatter(options.intel_mnemonic, amd64, options.suffix)
    elif options.syntax == "intel" and (amd64 or options.suffix):
        from x86vm.disasm.intel import intel_formatter

        formatter.format_text = intel_formatter(amd64, options.suffix)
    return formatter


def _header_dumps(args, options: ListingOptions, image: ListingImage,
                  header: str) -> tuple[str, int]:
    """The file-format line followed by the -f, -h, -t and -T dumps objdump prints before a
    listing, and the exit status they leave (1 for -T of a file without dynamic symbols)."""
    from x86vm.disasm.demangle import demangle_symbol
    from x86vm.disasm.headers import (
        file_header_text,
        read_headers,
        section_headers_text,
        symbols_text,
    )

    source = image.source
    with io.BytesIO(source) if source is not None else open_regular(image.path) as stream:
        try:
            info = read_headers(image.path, stream)
        except ElfFormatError as exc:
            raise _elf_error(image.path, exc) from None
    status = 0
    parts = [header]
    if args.file_headers:
        parts.append(file_header_text(info))
    parts.append("\n")
    if args.section_headers:
        parts.append(section_headers_text(info, options.wide, options.only_sections))
    demangle = demangle_symbol if options.demangle else None
    if args.syms:
        parts.append(symbols_text(info, False, demangle, options.only_sections))
    if args.dynamic_syms:
        if not info.has_dynsym:
            print(f"x86vm: {image.path}: not a dynamic object", file=sys.stderr)
            status = OBJDUMP_ERROR_STATUS
        parts.append(symbols_text(info, True, demangle, options.only_sections))
    return "".join(parts), status


def _elf_error(path: str, exc: ElfFormatError) -> CliError:
    """objdump's lines for a refused ELF file: BFD's messages, then the error itself."""
    lines = [*exc.messages, *(exc.lines or [])]
    for line in lines[:-1] if exc.lines else lines:
        print(f"x86vm: {line}", file=sys.stderr)
    return CliError(exc.lines[-1] if exc.lines else str(exc) if exc.whole_line
                    else f"{path}: {exc}")


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) time of all CPUs so far, from Linux's /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat", "rb") as stream:
            fields = stream.readline().split()
        values = [int(v) for v in fields[1:9]]      # user nice system idle iowait ... steal
    except (OSError, ValueError):
        return None
    if fields[:1] != [b"cpu"] or len(values) < 5:
        return None
    return values[3] + values[4], sum(values)


_STARTED = _cpu_times()     # (this module is imported as the command starts)


def _jobs() -> int:
    """Processes for one listing: ``X86VM_DISASM_JOBS``, else the CPUs this process may use
    that were at least a third idle since the command started (it kept one busy itself):
    the processes claim chunks of the listing as they go (`parallel`), so one on a CPU that
    other work keeps half busy still takes chunks off the others; on a busier one it would
    mostly add the cost of a second cold start (each process decodes and formats the
    distinct instructions it meets afresh)."""
    setting = os.environ.get("X86VM_DISASM_JOBS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    now = _cpu_times()
    if cpus < 2 or _STARTED is None or now is None or now[1] - _STARTED[1] < 4:
        return cpus
    idle = (now[0] - _STARTED[0]) / (now[1] - _STARTED[1]) * (os.cpu_count() or cpus)
    return max(1, min(cpus, 1 + int(idle + 2 / 3)))


def run(args) -> int:
    """List every file as objdump does; errors exit with objdump's status (1).

    The cyclic garbage collector is off meanwhile: a listing makes hundreds of thousands of
    objects that live to the end (the decoder's and formatter's memos) and almost no cycles,
    and the collector's passes over them cost more than a tenth of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(args)
    except CliError as exc:
        exc.status = OBJDUMP_ERROR_STATUS
        raise
    finally:
        if enabled:
            gc.enable()


def _run(args) -> int:
    if hasattr(sys.stderr, "reconfigure"):  # BFD's messages name sections by their raw bytes
        sys.stderr.reconfigure(errors="surrogateescape")
    options, syntax, mode_override = _options(args)
    target = args.target
    if target is not None and target != "binary" and target not in ELF_TARGETS | \
            FALLBACK_TARGETS:
        raise CliError(f"can't use target '{target}' (known: binary, {', '.join(ELF_TARGETS)})")
    adjust = parse_vma(args.adjust_vma, "--adjust-vma") if args.adjust_vma else 0
    images, status = [], 0
    for path in args.files:  # objdump reports a bad file and goes on with the next one
        try:
            images.extend(_load(path, target, mode_override, adjust,
                                (args.line_numbers, args.source, args.prefix,
                                 args.prefix_strip), options.demangle,
                                MACHINES.get(args.architecture or "i386")
                                if args.architecture is not None else None))
        except CliError as exc:
            if len(args.files) == 1:
                raise
            print(f"x86vm: error: {exc}", file=sys.stderr)
            status = OBJDUMP_ERROR_STATUS
    listed = [image for image in images if not isinstance(image, str)]
    if not images:
        return status

    if options.only_sections:
        known = set().union(*(image.section_names for image in listed))
        for name in options.only_sections:
            if name not in known:
                raise CliError(f"section '{name}' mentioned in a -j option, "
                               "but not found in any input file")
    if options.symbol is not None:  # objdump lists the section headings only, status 0
        if not any(options.symbol in image.symtab.names() for image in listed):
            print(f"x86vm: warning: symbol '{options.symbol}' not found", file=sys.stderr)

    formatters = {}
    try:
        for image in listed:
            key = (image.mode, syntax)
            if key not in formatters:
                formatters[key] = _formatter(args.disassembler_options, image.mode, syntax)
    except ImportError as exc:
        raise CliError(f"the x86 decoder is not available ({exc})") from None

    stream = sys.stdout
    if stream is None:  # started with stdout closed (>&-)
        raise CliError("cannot write the output: standard output is closed",
                       OBJDUMP_ERROR_STATUS)
    if hasattr(stream, "reconfigure"):  # names are raw bytes in ELF: print them as objdump does
        stream.reconfigure(errors="surrogateescape")
    write = stream.write
    dumps = args.file_headers or args.section_headers or args.syms or args.dynamic_syms
    disassemble = args.disassemble or args.disassemble_all or options.symbol or not dumps
    for image in images:
        if isinstance(image, str):
            write(f"In archive {image}:\n")
            continue
        header = f"\n{image.path}:     file format {image.format_name}\n"
        if dumps and image.format_name != "binary":
            header, dump_status = _header_dumps(args, options, image, header)
            status = status or dump_status
        elif dumps:
            header += "\n"
        else:
            header = None
        if not disassemble:
            write(header)
            continue
        if options.dynamic_reloc and not image.has_dynsym:
            # objdump: the file header, then "not a dynamic object", and it stops (status 1)
            write(f"\n{image.path}:     file format {image.format_name}\n\n")
            sys.stdout.flush()
            print(f"x86vm: {image.path}: not a dynamic object", file=sys.stderr)
            raise CliError(f"{image.path}: invalid operation")   # (BFD's error, objdump's)
        try:
            write_listing(image, formatters[(image.mode, syntax)], options, write, _jobs(),
                          header=header)
        except ElfFormatError as exc:
            sys.stdout.flush()
            raise CliError(f"{image.path}: {exc}") from None
    sys.stdout.flush()
    return status
