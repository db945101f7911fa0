"""objdump-style listings of ELF files and raw images, laid out exactly like ``objdump -d``.

The layout follows binutils 2.40 ``objdump.c`` (``disassemble_section``/``disassemble_bytes``):

* a file header ``\\nFILE:     file format FMT\\n\\n`` and, per section, ``\\nDisassembly of
  section NAME:\\n``;
* the section is cut at symbols; each piece starts with a label ``\\n<addr> <sym>:\\n`` (full-width
  address) and, in code sections, the decoder may not read past the next symbol;
* instruction lines ``ADDR:\\tBYTES\\tTEXT``: the address right-aligned in a column whose width
  drops leading zero nibbles of the section's end address in groups of four; 7 raw bytes per line
  (``--insn-width``), each ``%02x `` and padded with blanks, longer instructions continuing on
  ``ADDR:\\tBYTES`` lines, or all on one line with ``-w``;
* runs of zero bytes print ``\\t...`` (at least 8 zeros, skipped in multiples of 4 unless they run
  to the next symbol, or fewer than 3 at its end);
* symbols marked as objects in code sections are dumped as data (16 bytes and their ASCII).

Decoding and instruction text come from a *formatter*, a callable
``(data, offset, address, print_address) -> (length, text)``; the listing supplies
``print_address`` (``1139 <main+0x10>``, or ``0x1139`` without symbols).
Output goes to a ``write`` callable piece by piece, so long listings stream.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from x86vm.disasm.elf import (
    BSF_FUNCTION,
    BSF_OBJECT,
    BSF_SYNTHETIC,
    DynamicReloc,
    ElfFormatError,
    ElfImage,
    Section,
    SectionUnreadable,
)
from x86vm.disasm.relocs import reloc_text
from x86vm.disasm.symbols import SectionSymbols, SymbolTable, is_local_label

if TYPE_CHECKING:
    from x86vm.disasm.parallel import Owner
    from x86vm.isa import Instruction

__all__ = [
    "Formatter",
    "ListingImage",
    "ListingOptions",
    "binary_image",
    "elf_image",
    "write_listing",
]

PrintAddress = Callable[[int], str]
Formatter = Callable[[bytes, int, int, PrintAddress], tuple[int, str]]

SKIP_ZEROES = 8  # objdump DEFAULT_SKIP_ZEROES
SKIP_ZEROES_AT_END = 3  # objdump DEFAULT_SKIP_ZEROES_AT_END
X86_BYTES_PER_LINE = 7  # i386-dis.c sets info->bytes_per_line = 7
DATA_BYTES_PER_LINE = 16
MAX_INSN_LENGTH = 15
_NONZERO = re.compile(rb"[^\x00]")
_PRINTABLE = bytes(c if 0x20 <= c < 0x7F else ord(".") for c in range(256))


@dataclass
class ListingOptions:
    """The objdump options that shape a listing."""

    disassemble_all: bool = False  # -D: every section with contents, objects as code
    only_sections: Sequence[str] | None = None  # -j NAME...
    symbol: str | None = None  # --disassemble=SYMBOL
    start_address: int | None = None  # --start-address
    stop_address: int | None = None  # --stop-address
    wide: bool = False  # -w
    insn_width: int | None = None  # --insn-width
    show_raw_insn: int = 0  # --show-raw-insn 1, --no-show-raw-insn -1, objdump's default 0
    prefix_addresses: bool = False  # --prefix-addresses: <sym+off> before each line
    no_addresses: bool = False  # --no-addresses
    disassemble_zeroes: bool = False  # -z: no ``...`` for runs of zeros
    reloc: bool = False  # -r: a relocatable object's relocations under their instruction
    dynamic_reloc: bool = False  # -R: the dynamic relocations, likewise
    demangle: bool = False  # -C: demangled C++ names
    visualize_jumps: str = ""  # --visualize-jumps: "plain", "color" or "extended-color"


@dataclass
class ListingImage:
    """A file to list: its sections and symbols, whether from ELF or a raw image."""

    path: str
    format_name: str
    address_digits: int  # width of a full address (bfd_sprintf_vma): 16 or 8
    sections: list[Section]
    symtab: SymbolTable
    mode: int = 64
    section_names: set[str] = field(default_factory=set)
    section_relocs: dict[int, list[DynamicReloc]] = field(default_factory=dict)
    dynamic_relocs: list[DynamicReloc] = field(default_factory=list)
    has_dynsym: bool = False
    line_numbers: object | None = None  # -l: a source.LineNumbers (its text(section, offset))
    source: bytes | None = None  # an archive member's bytes (a file is read by its path)

    def __post_init__(self) -> None:
        self.section_names = {s.name for s in self.sections}


def elf_image(elf: ElfImage, adjust_vma: int = 0) -> ListingImage:
    """A listing image of an ELF file; ``adjust_vma`` shifts sections (``--adjust-vma``)."""
    sections = elf.sections
    symbols, synthetic = elf.symbols, elf.synthetic_symbols
    if adjust_vma:
        for section in sections:
            section.vma += adjust_vma
        for symbol in (*symbols, *synthetic):
            if symbol.section >= 0:
                symbol.value += adjust_vma
                symbol.section_vma += adjust_vma
    table = SymbolTable.from_symbols(
        symbols,
        synthetic,
        elf.dynamic_relocs,
        relocatable=elf.is_relocatable,
        exec_or_dynamic=elf.is_exec_or_dynamic,
        address_digits=elf.address_digits,
    )
    image = ListingImage(elf.path, elf.format_name, elf.address_digits, sections, table,
                         elf.mode)
    image.section_relocs = elf.section_relocs
    image.dynamic_relocs = elf.dynamic_relocs
    image.has_dynsym = elf.has_dynsym
    return image


def binary_image(path: str, data: bytes, mode: int, adjust_vma: int = 0) -> ListingImage:
    """A raw image as objdump's ``-b binary`` sees it: one data section ``.data``, no symbols."""
    digits = 16 if mode == 64 else 8
    section = Section(
        index=1,
        name=".data",
        vma=adjust_vma,
        size=len(data),
        file_offset=0,
        has_contents=True,
        is_code=False,
        _data=data,
    )
    table = SymbolTable([], address_digits=digits, exec_or_dynamic=False)
    return ListingImage(path, "binary", digits, [section], table, mode)


def write_listing(
    image: ListingImage,
    formatter: Formatter,
    options: ListingOptions,
    write: Callable[[str], object],
    jobs: int = 1,
    header: str | None = None,
) -> None:
    """Write the whole listing of ``image`` (header, then each selected section); ``header``
    replaces the file-format line and blank line objdump starts with (the CLI puts its
    header dumps there).

    With ``jobs`` > 1 a large listing is cut into chunks of about equal work (padding counts
    little) that ``jobs`` forked processes claim as they go (`parallel`), written in order:
    the same text, sooner."""
    image.symtab.prefix_addresses = options.prefix_addresses
    image.symtab.no_addresses = options.no_addresses
    image.symtab.demangle = options.demangle
    selected = [s for s in image.sections if _selected(options, s)]
    total = sum(s.size for s in selected)
    if jobs > 1 and total >= PARALLEL_MIN_BYTES and not (options.reloc or options.dynamic_reloc) \
            and image.line_numbers is None and _preload(selected):  # (jumps: per piece, fine)
        from x86vm.disasm.parallel import MAX_CHUNKS, balanced_cuts, chunk_shares, run_chunks

        for section in selected:    # sorted once, before the processes part
            image.symtab.for_section(section)
        shares = chunk_shares(jobs, max(1 / MAX_CHUNKS, 1 / 64))
        cuts = balanced_cuts([(s.size, s.data() if s.has_contents else None,
                               *_listed_range(options, s)) for s in selected], shares,
                             b"\xcc\x90" if options.disassemble_zeroes else b"\x00\xcc\x90")
        cuts[-1] = total + 1
        run_chunks(cuts, jobs, lambda owner, out: _write_part(image, formatter, options, out,
                                                              owner, header), write)
        return
    _write_part(image, formatter, options, write, None, header)


def _listed_range(options: ListingOptions, section: Section) -> tuple[int, int]:
    """The offsets of a section --start-address and --stop-address list (as `_section`)."""
    start, stop = options.start_address, options.stop_address
    lo = 0 if start is None or start < section.vma else start - section.vma
    hi = section.size if stop is None else 0 if stop < section.vma else \
        min(stop - section.vma, section.size)
    return min(lo, section.size), max(min(lo, section.size), hi)


def _preload(sections: list[Section]) -> bool:
    """Read the sections' bytes before forking (the processes share the file offset);
    False if one cannot be read: the listing then runs in one process, reporting it in
    its place."""
    try:
        for section in sections:
            if section.has_contents:
                section.data()
    except ElfFormatError:
        return False
    return True


PARALLEL_MIN_BYTES = 1 << 18
_NO_RELOC = 1 << 62     # "the next relocation" when there is none (an int: faster to compare)
"""Selected section bytes below which a listing is not worth splitting between processes."""


def _selected(options: ListingOptions, section: Section) -> bool:
    only = options.only_sections
    if only is not None:
        return section.name in only
    # binutils 2.40: -D takes every section, even NOBITS ones (listed as zeros).
    return options.disassemble_all or (section.is_code and section.has_contents)


def _write_part(image: ListingImage, formatter: Formatter, options: ListingOptions,
                write: Callable[[str], object], owner: Owner | None,
                header: str | None = None) -> None:
    """The listing, or with an ``owner`` (`parallel.Owner`) only what the pieces it owns
    print: those starting at the offsets (into the selected sections' bytes, counted
    together) it says it owns, asked in order."""
    out = _Batched(write)
    try:
        if owner is not None:
            owner.flush = out.flush
        if owner is None or owner.owns(0):
            out.write(f"\n{image.path}:     file format {image.format_name}\n\n"
                      if header is None else header)
        lister = _SectionLister(image, formatter, options, out.write)
        lister.owner = owner
        lister.flush = out.flush
        for section in image.sections:
            lister.section(section)
    finally:
        out.flush()


class _Batched:
    """The listing's output gathered into blocks of about `_BATCH` characters: one write
    per block, not two per symbol (a kernel has 15k of them; an unbuffered standard output
    makes each write a system call)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.out = write
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            text = "".join(self.parts)
            self.parts.clear()
            self.size = 0
            self.out(text)


_BATCH = 1 << 18


def _warn(lines: list[str]) -> None:
    """objdump's messages on standard error, after what the listing wrote so far."""
    sys.stdout.flush()
    for line in lines:
        print(f"x86vm: {line}", file=sys.stderr)


class _SectionLister:
    """``disassemble_section`` and ``disassemble_bytes`` for one image."""

    def __init__(self, image: ListingImage, formatter: Formatter, options: ListingOptions,
                 write: Callable[[str], object]) -> None:
        self.image = image
        self.formatter = formatter
        self.options = options
        self.write = write
        self.digits = image.address_digits
        self.widths: dict[int, int] = {}    # section index -> address column width
        # the default layout of code: listed by sweep.PlainSweep
        self.sweep = None
        shown = options.show_raw_insn > 0 if options.prefix_addresses else \
            options.show_raw_insn >= 0
        if shown and not options.prefix_addresses and not options.no_addresses and \
                image.line_numbers is None and not options.visualize_jumps and \
                hasattr(formatter, "format_text"):
            from x86vm.disasm.sweep import PlainSweep

            self.sweep = PlainSweep(formatter, options.insn_width or X86_BYTES_PER_LINE,
                                    options.wide, _plain_wrapped)

    owner: Owner | None = None              # see _write_part
    flush: Callable[[], None] = staticmethod(lambda: None)  # the output written so far
    base = 0                                # selected bytes in the sections before this one

    def selected(self, section: Section) -> bool:
        return _selected(self.options, section)

    def inside(self, offset: int) -> bool:
        """Whether the piece at this offset of the current section is this process's."""
        owner = self.owner
        return owner is None or owner.owns(self.base + offset)

    def section(self, section: Section) -> None:
        if not self.selected(section) or section.size == 0:
            return
        owner = self.owner
        try:
            if owner is None or not owner.before(self.base + section.size):
                self._section(section)
        finally:
            self.base += section.size

    def _section(self, section: Section) -> None:
        opts = self.options
        vma, size = section.vma, section.size
        start = opts.start_address
        stop = opts.stop_address
        addr_offset = 0 if start is None or start < vma else start - vma
        if stop is None:
            stop_offset = size
        else:
            stop_offset = 0 if stop < vma else min(stop - vma, size)
        if addr_offset >= stop_offset:
            return
        try:
            data = section.data()
        except SectionUnreadable as exc:  # objdump: two lines, the section skipped, status 0
            self.flush()
            _warn(exc.lines)
            return
        symbols = self.image.symtab.for_section(section)
        if self.inside(addr_offset):
            self.write(f"\nDisassembly of section {section.name}:\n")
        # objdump: the dynamic relocations (absolute addresses) with -R when the file has
        # them, else with -r the section's own (section-relative); those below the start skipped
        self.rel_offset = 0
        if opts.dynamic_reloc and self.image.dynamic_relocs:
            self.relocs, self.rel_offset = self.image.dynamic_relocs, vma
        elif opts.reloc:
            self.relocs = self.image.section_relocs.get(section.index, [])
        else:
            self.relocs = []
        self.rel_index = 0
        while (self.rel_index < len(self.relocs)
               and self.relocs[self.rel_index].address < self.rel_offset + addr_offset):
            self.rel_index += 1

        sym, place = symbols.find(vma + addr_offset, require_section=True)
        sorted_syms = symbols.symbols
        count = len(sorted_syms)
        wanted = opts.symbol
        do_print = wanted is None
        loop_until = "stop"
        limit_reads = not opts.disassemble_all and section.is_code and section.has_contents
        while addr_offset < stop_offset:
            addr = vma + addr_offset
            if sym is not None and wanted is not None:
                if do_print:
                    if loop_until == "function" and sym.flags & BSF_FUNCTION:
                        do_print = False
                    elif loop_until == "next" and not is_local_label(sym):
                        do_print = False
                elif sym.name == wanted:
                    do_print = True
                    if sym.flags & BSF_FUNCTION:
                        if sym.flags & BSF_SYNTHETIC:
                            # objdump reads an ELF size a name@plt symbol does not have (in
                            # practice a huge number): it lists on to the end of the section.
                            stop_offset = size
                            loop_until = "stop"
                        elif sym.size > 0:
                            stop_offset = min(addr_offset + sym.size, size)
                            loop_until = "stop"
                        else:
                            loop_until = "function"
                    else:
                        loop_until = "next"
            mine = self.inside(addr_offset)
            if do_print and mine and not opts.prefix_addresses:
                self.write(f"\n{symbols.label(sym, addr)}:\n")

            if sym is not None and sym.value > addr:
                next_sym = sym
            elif sym is None:
                next_sym = None
            else:
                while place < count and not (
                    sorted_syms[place].section_name == section.name
                    and sorted_syms[place].value > sym.value
                ):
                    place += 1
                next_sym = sorted_syms[place] if place < count else None

            if sym is not None and sym.value > addr:
                next_stop = sym.value - vma
            elif next_sym is None:
                next_stop = stop_offset
            else:
                next_stop = next_sym.value - vma
            if next_stop > stop_offset or next_stop <= addr_offset:
                next_stop = stop_offset

            insns = (
                opts.disassemble_all
                or sym is None
                or sym.section != section.index
                or sym.value > addr
                or not (sym.flags & BSF_OBJECT or "gnu_compiled" in sym.name
                        or "gcc2_compiled" in sym.name)
                or bool(sym.flags & BSF_FUNCTION)
            )
            if do_print and mine:
                self.chunk(section, symbols, data, insns, addr_offset, next_stop, limit_reads,
                           sym is not None)
            addr_offset = next_stop
            sym = next_sym

    def sweep_piece(self, section: Section, symbols: SectionSymbols, data: bytes, start: int,
                    stop: int, limit_reads: bool) -> bool:
        """`chunk` of code in the default layout by the sweep; False where it does not
        apply (addresses wider than their column)."""
        width = self.widths.get(section.index)
        if width is None:
            width = self.widths[section.index] = self.address_width(section)
        vma = section.vma
        if vma + stop > 16 ** width:
            return False
        window_end = stop if limit_reads else min(len(data), stop + MAX_INSN_LENGTH)
        pieces: list[str] = []
        relocs = self.relocs
        if self.rel_index < len(relocs):        # -r, -R: relocations under their lines
            rel_offset = self.rel_offset
            x86_64 = "x86-64" in self.image.format_name
            symbol_name = self.image.symtab.symbol_name
            wide, no_addresses = self.options.wide, self.options.no_addresses

            def emit_relocs(end: int, line_ended: bool) -> float:
                while self.rel_index < len(relocs) and \
                        relocs[self.rel_index].address - rel_offset < end:
                    if wide and not line_ended and pieces and pieces[-1].endswith("\n"):
                        pieces[-1] = pieces[-1][:-1]
                    line_ended = True
                    reloc = relocs[self.rel_index]
                    place = vma - rel_offset + reloc.address
                    pieces.append(reloc_text(reloc, place, x86_64, self.digits, wide,
                                             no_addresses, symbol_name))
                    self.rel_index += 1
                if self.rel_index < len(relocs):
                    return relocs[self.rel_index].address - rel_offset
                return _NO_RELOC

            reloc_at = relocs[self.rel_index].address - rel_offset
        else:
            emit_relocs, reloc_at = None, _NO_RELOC
        self.sweep.sweep(data, data[start:window_end], start, start, stop, vma, width, symbols,
                         pieces, self.write, not self.options.disassemble_zeroes, reloc_at,
                         emit_relocs)
        if pieces:
            self.write("".join(pieces))
        return True

    def jump_art(self, data: bytes, start: int, stop: int, window_end: int, vma: int):
        """--visualize-jumps: the jumps of this piece (objdump's disassemble_jumps), or None."""
        decode_all = getattr(self.formatter, "decode_all", None)
        if decode_all is None:
            return None
        from x86vm.disasm.jumps import levelled

        low, high = vma + start, vma + stop
        branches = []
        for insn in decode_all(data[start:window_end], low):
            if insn.address >= high:
                break
            target = insn.target if insn.core.kind == "insn" else None
            if target is not None and low <= target < high:
                branches.append((insn.address, target))
        art = levelled(branches)
        if art is not None and self.options.visualize_jumps != "plain":
            art.colored = True
            art.extended = self.options.visualize_jumps == "extended-color"
        return art

    def address_width(self, section: Section) -> int:
        """Characters of the address column: leading zero nibbles of the end dropped by 4s."""
        end = (section.vma + section.size) & ((1 << 4 * self.digits) - 1)  # bfd_vma wraps
        text = f"{end:0{self.digits}x}"
        skip = len(text) - len(text.lstrip("0"))
        if skip == len(text) and section.vma != 0:
            skip = 0
        if skip:
            skip = (skip - 1) & ~3
        return len(text) - skip

    def chunk(self, section: Section, symbols: SectionSymbols, data: bytes, insns: bool,
              start: int, stop: int, limit_reads: bool, has_symbol: bool = True) -> None:
        """``disassemble_bytes`` from section offset ``start`` to ``stop``."""
        if insns and self.sweep is not None and type(data) is bytes and \
                self.sweep_piece(section, symbols, data, start, stop, limit_reads):
            return
        write = self.write
        opts = self.options
        width = self.address_width(section)
        vma = section.vma
        per_line = opts.insn_width or (X86_BYTES_PER_LINE if insns else DATA_BYTES_PER_LINE)
        wide = opts.wide
        # The decoder sees bytes up to the next symbol in code sections (objdump's stop_vma),
        # otherwise up to the end of the section.
        window_end = stop if limit_reads else min(len(data), stop + MAX_INSN_LENGTH)
        window = data[start:window_end]
        print_address = symbols.print_address
        formatter = self.formatter
        prefixed, no_addresses = opts.prefix_addresses, opts.no_addresses
        show_raw = opts.show_raw_insn > 0 if prefixed else opts.show_raw_insn >= 0

        art = self.jump_art(data, start, stop, window_end, vma) if \
            opts.visualize_jumps and has_symbol else None

        def line_prefix(address: int) -> str:
            if no_addresses:
                head = "\t"
            elif prefixed:
                head = print_address(address, True) + " "
            else:
                head = _address(address, width) + ":\t"
            return head if art is None else head + art.column(address)

        skip_zeroes = not opts.disassemble_zeroes
        relocs, rel_offset = self.relocs, self.rel_offset
        x86_64 = "x86-64" in self.image.format_name
        symbol_name = self.image.symtab.symbol_name

        def next_reloc() -> float:  # section offset of the next relocation to print
            if self.rel_index < len(relocs):
                return relocs[self.rel_index].address - rel_offset
            return float("inf")

        def emit_relocs(end: int, line_ended: bool) -> None:
            """Relocations before section offset ``end``; with -w the first one goes on the
            instruction's own line."""
            while self.rel_index < len(relocs) and relocs[self.rel_index].address - rel_offset \
                    < end:
                if wide and not line_ended and pieces and pieces[-1].endswith("\n"):
                    pieces[-1] = pieces[-1][:-1]
                line_ended = True
                reloc = relocs[self.rel_index]
                place = vma - rel_offset + reloc.address
                pieces.append(reloc_text(reloc, place, x86_64, self.digits, wide, no_addresses,
                                         symbol_name))
                self.rel_index += 1

        def wrapped_line(address: int, pos: int, length: int, text: str) -> str:
            """A line in any layout: prefix, raw bytes (maybe continued), text."""
            line = [line_prefix(address)]
            shown = length
            if show_raw:
                if length > per_line and not prefixed and not wide:
                    shown = per_line
                line.append(_hex(data, pos, shown, stop))
                if shown < per_line:
                    line.append("   " * (per_line - shown))
                line.append("\t" if insns else "    ")
            line.append(text)
            done = shown
            while done < length:
                line.append("\n\t" if no_addresses else f"\n{_address(address + done, width)}:\t")
                if art is not None:
                    line.append(art.column(address + done))
                more = min(per_line, length - done)
                line.append(_hex(data, pos + done, more, stop))
                done += more
            line.append("\n")
            return "".join(line)


        reloc_at = next_reloc()
        pieces: list[str] = []
        pos = start
        line_numbers = self.image.line_numbers
        while pos < stop:
            if skip_zeroes and data[pos] == 0:
                zeros = zeros_to_skip(data, pos, stop)
                if zeros:
                    pieces.append("\t...\n")
                    pos += zeros
                    if pos > reloc_at:
                        emit_relocs(pos, True)
                        reloc_at = next_reloc()
                    continue
            address = vma + pos
            if line_numbers is not None:  # -l: function and file:line when they change
                pieces.append(line_numbers.text(section, pos))
            if address >> 64:  # bfd_vma wrapped past 2^64: objdump cannot read address 0
                pieces.append(f"{line_prefix(0)}Address 0x0 is out of bounds.\n\n")
                break
            if insns:
                length, text = formatter(window, pos - start, address, print_address)
                if length < 1:
                    pieces.append(f"{line_prefix(address)}{text}\n")
                    break
            else:
                length = min(per_line, stop - pos)
                text = data[pos:pos + length].translate(_PRINTABLE).decode("ascii")
            pieces.append(wrapped_line(address, pos, length, text))
            pos += length
            if pos > reloc_at:
                emit_relocs(pos, False)
                reloc_at = next_reloc()
            if len(pieces) >= 512:
                write("".join(pieces))
                pieces.clear()
        if pieces:
            write("".join(pieces))


def zeros_to_skip(data: bytes, pos: int, stop: int) -> int:
    """objdump's skip of a run of zeros at ``pos`` (0: list them as code)."""
    match = _NONZERO.search(data, pos, stop)
    nonzero = match.start() if match else stop
    zeros = nonzero - pos
    if zeros >= SKIP_ZEROES or (nonzero == stop and zeros < SKIP_ZEROES_AT_END):
        return zeros & ~3 if nonzero != stop else zeros
    return 0


def _plain_wrapped(data: bytes, pos: int, stop: int, address: int, length: int, text: str,
                   width: int, per_line: int, wide: bool) -> str:
    """`chunk`'s wrapped_line in the default layout: the raw bytes after the first
    ``per_line`` on lines of their own (all on one with -w), blanks for bytes past ``stop``."""
    shown = per_line if length > per_line and not wide else length
    line = [_address(address, width), ":\t", _hex(data, pos, shown, stop)]
    if shown < per_line:
        line.append("   " * (per_line - shown))
    line.append("\t")
    line.append(text)
    done = shown
    while done < length:
        line.append(f"\n{_address(address + done, width)}:\t")
        more = min(per_line, length - done)
        line.append(_hex(data, pos + done, more, stop))
        done += more
    line.append("\n")
    return "".join(line)


def _address(address: int, width: int) -> str:
    """The address column: the last ``width`` hex digits, leading zeros as blanks (objdump
    blanks the zeros after the skipped address characters)."""
    text = f"{address:x}"
    if len(text) > width:
        text = text[-width:].lstrip("0") or "0"
    return text.rjust(width)


def _hex(data: bytes, pos: int, count: int, stop: int) -> str:
    """``count`` bytes as ``%02x `` each; bytes at or past ``stop`` print as blanks (PR 21580)."""
    end = pos + count
    if end <= stop:
        return data[pos:end].hex(" ") + " "
    shown = max(0, stop - pos)
    text = data[pos:pos + shown].hex(" ") + " " if shown else ""
    return text + " " * (count - shown)


class DecoderFormatter:
    """The product formatter: ``x86vm.isa.decode`` then the AT&T or Intel formatter.

    Called as a `Formatter`; the default layout's sweep (`sweep.PlainSweep`) uses `decode`,
    `format_text` and `mode` directly, --visualize-jumps `decode_all`."""

    def __init__(self, mode: int, syntax: str = "att") -> None:
        from x86vm.isa import decode, decode_all

        if syntax == "intel":
            from x86vm.disasm.intel import format_intel as format_text
        else:
            from x86vm.disasm.att import format_att as format_text
        self.mode = mode
        self.format_text = format_text
        self._decode, self._decode_all = decode, decode_all

    def __call__(self, data: bytes, offset: int, address: int,
                 print_address: PrintAddress) -> tuple[int, str]:
        insn = self._decode(data, offset, address, self.mode)
        return insn.length, self.format_text(insn, print_address)

    def decode(self, data: bytes, offset: int, address: int) -> Instruction:
        """The instruction at ``data[offset:]``, at ``address``."""
        return self._decode(data, offset, address, self.mode)

    def decode_all(self, data: bytes, address: int) -> Iterator[Instruction]:
        """The instructions from the start of ``data`` at ``address`` (linear sweep)."""
        return self._decode_all(data, address, self.mode)


def decoder_formatter(mode: int, syntax: str = "att") -> DecoderFormatter:
    """The product formatter for one CPU mode and syntax (see `DecoderFormatter`)."""
    return DecoderFormatter(mode, syntax)


class _CallableModule(types.ModuleType):
    """``x86vm.disasm.listing`` is this module and, called, the library listing:
    ``x86vm.disasm.listing(path, **options)`` is `x86vm.disasm.api.listing`."""

    def __call__(self, path: str, **options):
        from x86vm.disasm.api import listing

        return listing(path, **options)


sys.modules[__name__].__class__ = _CallableModule
