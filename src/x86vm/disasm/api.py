"""``x86vm.disasm.listing(path, **options)``: objdump's listing as records, for scripts.

Tools that show compiler output run ``objdump -d -l -r -C -M intel`` and parse its text line
by line.  This gives them the same listing already parsed: one `Line` per instruction (or
per data row of an object in a code section, or per ``...`` run of zeros), with its
address, raw bytes, objdump's text, the section and symbol it lies in, the relocations
applying to it and, with ``line_numbers=True``, the source line it comes from::

    import x86vm.disasm
    for line in x86vm.disasm.listing("prog.o", syntax="intel", reloc=True, demangle=True):
        if line.kind == "insn":
            print(f"{line.symbol}+{line.offset:#x}: {line.text}",
                  *(f"{r.type} {r.target}" for r in line.relocations))
        insn = line.instruction()     # the decoded x86vm.isa.Instruction (op, operands)

The text of every field is what ``objdump -dw`` (plus the same options) prints, so output
built from these records matches objdump's.  The listing is made from x86vm's own -w
listing text (exactly objdump's), parsed back.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from x86vm.disasm.elf import load_elf
from x86vm.disasm.listing import (
    ListingImage,
    ListingOptions,
    binary_image,
    decoder_formatter,
    elf_image,
    write_listing,
)

__all__ = ["Line", "Relocation", "SourceLine", "listing"]

Syntax = Literal["att", "intel"]
_LABEL = re.compile(r"^([0-9a-f]+) <(.*)>:$")
_ADDRESS = re.compile(r"^ *([0-9a-f]+):$")
_MODES = {16, 32, 64}


@dataclass(frozen=True)
class Relocation:
    """A relocation listed under an instruction (``-r``/``-R``): where it applies, BFD's type
    name (``R_X86_64_PLT32``) and its target as objdump prints it (``printf-0x4``)."""

    address: int
    type: str
    target: str


@dataclass(frozen=True)
class SourceLine:
    """Where an instruction comes from (``line_numbers=True``): the file and line DWARF
    names, and the function heading objdump prints before it (``main()``), if any."""

    file: str
    line: int
    function: str | None = None


@dataclass(frozen=True)
class Line:
    """One line of the listing (see the module docstring).

    ``kind`` is "insn" (an instruction), "data" (a row of an object's bytes in a code
    section, ``text`` its ASCII column) or "skip" (a run of zeros objdump shows as ``...``,
    no bytes).  ``symbol``/``offset``: the label the line is under and the distance from it.
    """

    kind: Literal["insn", "data", "skip"]
    address: int
    bytes: bytes
    text: str
    section: str
    symbol: str | None
    offset: int
    mode: int
    relocations: tuple[Relocation, ...] = ()
    source: SourceLine | None = None
    _syntax: str = field(default="att", repr=False, compare=False)

    @property
    def mnemonic(self) -> str:
        """The first word of the text, prefixes included (``lock``, ``rep stos``: "lock")."""
        return self.text.split(" ", 1)[0] if self.kind == "insn" else ""

    def instruction(self):
        """The instruction decoded again (an `x86vm.isa.Instruction`: op, operands...) from
        these bytes alone: a ``(bad)`` whose length objdump chose from the bytes after it
        may decode otherwise."""
        from x86vm.isa import decode

        return decode(self.bytes, 0, self.address, self.mode)


def listing(path: str, *, syntax: Syntax = "att", disassemble_all: bool = False,
            sections: list[str] | None = None, symbol: str | None = None,
            start_address: int | None = None, stop_address: int | None = None,
            reloc: bool = False, dynamic_reloc: bool = False, demangle: bool = False,
            disassemble_zeroes: bool = False, line_numbers: bool = False,
            mode: int | None = None, binary: bool = False,
            adjust_vma: int = 0) -> Iterator[Line]:
    """The listing ``objdump -dw`` prints for ``path``, as `Line` records in order.

    Keyword options are objdump's: ``syntax`` (-M intel), ``disassemble_all`` (-D),
    ``sections`` (-j), ``symbol`` (--disassemble=SYMBOL), ``start_address``/
    ``stop_address``, ``reloc`` (-r), ``dynamic_reloc`` (-R), ``demangle`` (-C),
    ``disassemble_zeroes`` (-z), ``line_numbers`` (-l), ``mode`` (-m i8086/i386/x86-64:
    16, 32, 64), ``binary`` (-b binary: a raw image, needs ``mode``), ``adjust_vma``.
    Raises ValueError for options out of range, OSError and ElfFormatError for the file.
    """
    if syntax not in ("att", "intel"):
        raise ValueError(f"syntax must be 'att' or 'intel', not {syntax!r}")
    if mode is not None and mode not in _MODES:
        raise ValueError(f"mode must be 16, 32 or 64, not {mode!r}")
    options = ListingOptions(
        disassemble_all=disassemble_all or binary, only_sections=sections, symbol=symbol,
        start_address=start_address, stop_address=stop_address, wide=True, reloc=reloc,
        dynamic_reloc=dynamic_reloc, demangle=demangle, disassemble_zeroes=disassemble_zeroes)
    with open(path, "rb") as stream:
        if binary:
            if mode is None:
                raise ValueError("a raw image (binary=True) needs mode=16, 32 or 64")
            image: ListingImage = binary_image(path, stream.read(), mode, adjust_vma)
        else:
            image = elf_image(load_elf(path, stream), adjust_vma)
            if mode is not None:
                image.mode = mode
        if dynamic_reloc and not image.has_dynsym:
            raise ValueError(f"{path}: not a dynamic object")
        if line_numbers and not binary:
            from x86vm.disasm.demangle import demangle_symbol
            from x86vm.disasm.source import LineNumbers

            stream.seek(0)
            image.line_numbers = LineNumbers(path, stream,
                                             demangle_symbol if demangle else None)
        text = io.StringIO()
        write_listing(image, decoder_formatter(image.mode, syntax), options, text.write)
    yield from parse_wide_listing(text.getvalue(), image.mode, syntax)


def parse_wide_listing(text: str, mode: int = 64, syntax: str = "att") -> Iterator[Line]:
    """`Line` records from the text of an ``objdump -dw`` listing (with -r/-R/-l)."""
    section, symbol, symbol_address = "", None, 0
    function: str | None = None
    source: SourceLine | None = None
    pending: Line | None = None
    relocs: list[Relocation] = []

    def flush() -> Iterator[Line]:
        nonlocal pending
        if pending is not None:
            if relocs:
                pending = _with(pending, relocations=tuple(relocs))
                relocs.clear()
            yield pending
            pending = None

    for row in text.split("\n"):
        if not row:
            continue
        if row.startswith("Disassembly of section ") and row.endswith(":"):
            yield from flush()
            section, symbol, function, source = row[23:-1], None, None, None
            continue
        label = _LABEL.match(row)
        if label is not None:
            yield from flush()
            symbol, symbol_address = label.group(2), int(label.group(1), 16)
            function, source = None, None
            continue
        parts = row.split("\t")
        if parts[0] == "" and len(parts) >= 3 and parts[1].endswith(":") and \
                _ADDRESS.match(parts[1]):          # a relocation of its own ("\tADDR: TYPE")
            relocs.append(_relocation(parts[1:]))
            continue
        if parts[0] == "" and parts[1:] == ["..."]:   # zeros from the end of the last line
            last = pending
            yield from flush()
            address = last.address + len(last.bytes) if last is not None else symbol_address
            pending = Line("skip", address, b"", "...", section, symbol,
                           address - symbol_address if symbol else 0, mode, (), source, syntax)
            continue
        head = _ADDRESS.match(parts[0])
        if head is None:                            # -l: "function():" or "file:line"
            yield from flush()
            if row.endswith(":"):                   # (demangled: "ns::f(int):")
                function = row[:-3] if row.endswith("():") else row[:-1]
            else:
                file, _, number = row.rpartition(":")
                number = number.split(" ", 1)[0]
                if file and number.isdigit():
                    source = SourceLine(file, int(number), function)
            continue
        yield from flush()
        address = int(head.group(1), 16)
        if len(parts) == 2:                         # a data row: bytes, four blanks, ASCII
            raw, _, ascii_text = parts[1].partition("    ")
            pending = Line("data", address, bytes.fromhex(raw), ascii_text, section, symbol,
                           address - symbol_address if symbol else 0, mode, (), source, syntax)
            continue
        raw = bytes.fromhex(parts[1])
        pending = Line("insn", address, raw, parts[2], section, symbol,
                       address - symbol_address if symbol else 0, mode, (), source, syntax)
        if len(parts) >= 5:                         # -w: the first relocation on the line
            relocs.append(_relocation(parts[3:]))
    yield from flush()


def _relocation(parts: list[str]) -> Relocation:
    where, _, kind = parts[0].partition(": ")
    return Relocation(int(where, 16), kind, parts[1] if len(parts) > 1 else "")


def _with(line: Line, **changes) -> Line:
    from dataclasses import replace

    return replace(line, **changes)
