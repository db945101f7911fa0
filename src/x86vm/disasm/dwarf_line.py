"""DWARF line-number programs (``.debug_line``, versions 2 to 5), read from the DWARF spec.

DWARF 5 section 6.2 (4 and 3 likewise, 2 section 6.2): a header (unit length, version,
for v5 address and segment-selector sizes, header length, minimum instruction length,
maximum operations per instruction from v4, default_is_stmt, line_base, line_range,
opcode_base, the standard opcodes' operand counts), the include directories and file
names (v2-4: NUL-terminated lists; v5: entry formats then entries, 6.2.4.1), then the
line-number program run on the state machine of 6.2.2 (special opcodes, standard opcodes
DW_LNS_*, extended opcodes DW_LNE_*).

The rows are kept as BFD keeps them for ``objdump -l`` (binutils 2.40 dwarf2.c): one
sequence per DW_LNE_end_sequence, a row at the same address as the previous one replacing
it, file names joined with their directory and the compilation directory as BFD's
``concat_filename`` joins them, sequences sorted by start (the longer first) with nested
ones dropped and overlapping ones trimmed, and an address's row the last one at or below it
in the one sequence that holds it.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

DW_LNS_copy, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_file = 1, 2, 3, 4
DW_LNS_set_column, DW_LNS_negate_stmt, DW_LNS_set_basic_block = 5, 6, 7
DW_LNS_const_add_pc, DW_LNS_fixed_advance_pc = 8, 9
DW_LNE_end_sequence, DW_LNE_set_address, DW_LNE_define_file = 1, 2, 3
DW_LNE_set_discriminator = 4
DW_LNCT_path, DW_LNCT_directory_index = 1, 2
DW_FORM_block, DW_FORM_block1, DW_FORM_block2, DW_FORM_block4 = 0x09, 0x0A, 0x03, 0x04
DW_FORM_data1, DW_FORM_data2, DW_FORM_data4, DW_FORM_data8 = 0x0B, 0x05, 0x06, 0x07
DW_FORM_data16, DW_FORM_string, DW_FORM_strp, DW_FORM_udata = 0x1E, 0x08, 0x0E, 0x0F
DW_FORM_line_strp, DW_FORM_strx, DW_FORM_sdata = 0x1F, 0x1A, 0x0D
DW_FORM_strx1, DW_FORM_strx2, DW_FORM_strx3, DW_FORM_strx4 = 0x25, 0x26, 0x27, 0x28


class DwarfError(ValueError):
    """A line table BFD would refuse (it then has no line information for the unit)."""


class Reader:
    """Little-endian reads from ``data`` at ``pos`` (LEB128: DWARF 5 section 7.6)."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else min(end, len(data))

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > self.end:
            raise DwarfError("truncated DWARF data")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def u(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def s8(self) -> int:
        return struct.unpack("<b", self.take(1))[0]

    def uleb(self) -> int:
        return self._leb128(signed=False)

    def sleb(self) -> int:
        return self._leb128(signed=True)

    def _leb128(self, signed: bool) -> int:
        """DWARF 5 §7.6: 7 bits a byte, low first; a signed value extends its last bit 6."""
        value = shift = 0
        while True:
            byte = self.u(1)
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value - (1 << shift) if signed and byte & 0x40 else value

    def cstring(self) -> bytes:
        nul = self.data.find(b"\0", self.pos, self.end)
        if nul < 0:
            raise DwarfError("unterminated string")
        text = self.data[self.pos:nul]
        self.pos = nul + 1
        return text


def cstring_at(section: bytes, offset: int) -> str:
    """The NUL-terminated string at ``offset`` of a string section, as BFD reads it."""
    if offset >= len(section):
        raise DwarfError("string offset past its section")
    end = section.find(b"\0", offset)
    return section[offset:end if end >= 0 else len(section)].decode("utf-8", "surrogateescape")


@dataclass
class Row:
    """One row of the line-number matrix BFD keeps."""

    address: int
    file: str
    line: int
    discriminator: int
    end_sequence: bool


@dataclass
class Sequence:
    """The rows of one sequence, by address; ``low``..``high`` the addresses it covers."""

    low: int
    rows: list[Row]
    index: int = 0
    addresses: list[int] = field(default_factory=list)

    @property
    def high(self) -> int:
        return self.rows[-1].address


@dataclass
class LineTable:
    """One unit's line table: its sequences, binary-searchable as BFD makes them."""

    sequences: list[Sequence] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)  # low..high of each sequence

    def lookup(self, address: int) -> Row | None:
        """The row for ``address`` (BFD's lookup_address_in_line_info_table), or None."""
        sequences = self.sequences
        low, high = 0, len(sequences)
        seq = None
        while low < high:
            mid = (low + high) // 2
            seq = sequences[mid]
            if address < seq.low:
                high = mid
            elif address >= seq.high:
                low = mid + 1
            else:
                break
        if seq is None or not seq.low <= address < seq.high:
            return None
        rows = seq.rows
        i = bisect.bisect_right(seq.addresses, address) - 1
        if i < 0 or i + 1 >= len(rows):
            return None
        row = rows[i]
        if row.end_sequence:
            return None
        return row


StringSections = Callable[[int, int], str]
"""(form, value) -> string: a string attribute of a v5 entry (line_strp, strp, strx...)."""


def read_line_table(data: bytes, offset: int, address_size: int, comp_dir: str | None,
                    string: StringSections) -> LineTable:
    """The line table of the program at ``offset`` of ``.debug_line`` (relocated bytes)."""
    r = Reader(data, offset)
    length = r.u(4)
    offset_size = 4
    if length == 0xFFFFFFFF:
        length, offset_size = r.u(8), 8
    end = r.pos + length
    if end > len(data):
        raise DwarfError("line program longer than its section")
    r.end = end
    version = r.u(2)
    if not 2 <= version <= 5:
        raise DwarfError(f"unhandled .debug_line version {version}")
    if version >= 5:
        r.u(1)                      # address size
        if r.u(1):
            raise DwarfError("segment selectors are not supported")
    r.u(offset_size)                # header length
    min_insn = r.u(1)
    max_ops = r.u(1) if version >= 4 else 1
    if max_ops == 0:
        raise DwarfError("maximum operations per instruction is 0")
    r.u(1)                          # default_is_stmt (BFD keeps every row)
    line_base, line_range, opcode_base = r.s8(), r.u(1), r.u(1)
    lengths = [1] + [r.u(1) for _ in range(1, opcode_base)]
    dirs: list[str] = []
    files: list[tuple[str, int]] = []
    if version >= 5:
        dirs = [name for name, _ in _entries(r, offset_size, string)]
        files = _entries(r, offset_size, string)
    else:
        while (name := r.cstring()):
            dirs.append(name.decode("utf-8", "surrogateescape"))
        while (name := r.cstring()):
            directory = r.uleb()
            r.uleb()
            r.uleb()
            files.append((name.decode("utf-8", "surrogateescape"), directory))
    names = _FileNames(files, dirs, comp_dir, version >= 5)
    table = LineTable()
    raw_sequences: list[Sequence] = []
    while r.pos < end:
        address, op_index, line, disc = 0, 0, 1, 0
        file = names.get(0 if version >= 5 else 1) if files else None
        rows: list[Row] = []
        done = False
        while not done and r.pos < end:
            op = r.u(1)
            if op >= opcode_base:
                if line_range == 0:
                    raise DwarfError("line_range is 0")
                adjusted = op - opcode_base
                advance = adjusted // line_range
                if max_ops == 1:
                    address += advance * min_insn
                else:
                    address += (op_index + advance) // max_ops * min_insn
                    op_index = (op_index + advance) % max_ops
                line += line_base + adjusted % line_range
                _add_row(rows, Row(address, file or "", line, disc, False))
                disc = 0
            elif op == 0:
                size = r.uleb()
                start = r.pos
                sub = r.u(1)
                if sub == DW_LNE_end_sequence:
                    _add_row(rows, Row(address, file or "", line, disc, True))
                    disc = 0
                    done = True
                elif sub == DW_LNE_set_address:
                    address, op_index = r.u(size - 1 if size > 1 else address_size), 0
                elif sub == DW_LNE_define_file:
                    name = r.cstring().decode("utf-8", "surrogateescape")
                    directory = r.uleb()
                    r.uleb()
                    r.uleb()
                    names.files.append((name, directory))
                elif sub == DW_LNE_set_discriminator:
                    disc = r.uleb()
                else:
                    raise DwarfError(f"unknown extended opcode {sub}")
                r.pos = start + size if sub != DW_LNE_define_file else r.pos
            elif op == DW_LNS_copy:
                _add_row(rows, Row(address, file or "", line, disc, False))
                disc = 0
            elif op == DW_LNS_advance_pc:
                adjust = r.uleb()
                if max_ops == 1:
                    address += min_insn * adjust
                else:
                    address = (op_index + adjust) // max_ops * min_insn
                    op_index = (op_index + adjust) % max_ops
            elif op == DW_LNS_advance_line:
                line += r.sleb()
            elif op == DW_LNS_set_file:
                file = names.get(r.uleb())
            elif op == DW_LNS_const_add_pc:
                if line_range == 0:
                    raise DwarfError("line_range is 0")
                adjust = (255 - opcode_base) // line_range
                if max_ops == 1:
                    address += min_insn * adjust
                else:
                    address += min_insn * ((op_index + adjust) // max_ops)
                    op_index = (op_index + adjust) % max_ops
            elif op == DW_LNS_fixed_advance_pc:
                address += r.u(2)
                op_index = 0
            elif op in (DW_LNS_set_column,):
                r.uleb()
            elif op in (DW_LNS_negate_stmt, DW_LNS_set_basic_block):
                pass
            else:                           # an unknown standard opcode: skip its operands
                for _ in range(lengths[op]):
                    r.uleb()
            address &= (1 << 64) - 1
        if rows and rows[-1].end_sequence:
            low = min(row.address for row in rows)
            high = max(row.address for row in rows)
            table.ranges.append((low, high))
            raw_sequences.append(Sequence(low, rows, len(raw_sequences)))
    table.sequences = _sorted_sequences(raw_sequences)
    for seq in table.sequences:
        seq.addresses = [row.address for row in seq.rows]
    return table


def _add_row(rows: list[Row], row: Row) -> None:
    """A row of the matrix; one at the address (and end flag) of the last replaces it."""
    if rows and rows[-1].address == row.address and rows[-1].end_sequence == row.end_sequence:
        rows[-1] = row
    else:
        rows.append(row)


def _sorted_sequences(sequences: list[Sequence]) -> list[Sequence]:
    """BFD's sort_line_sequences: by start, the longer first, then in reading order;
    nested sequences dropped, overlapping ones trimmed to start where the last one ends."""
    ordered = sorted(sequences, key=lambda s: (s.low, -s.high, s.index))
    kept: list[Sequence] = []
    for seq in ordered:
        if kept and seq.low < kept[-1].high:
            if seq.high <= kept[-1].high:
                continue
            seq.low = kept[-1].high
        kept.append(seq)
    return kept


class _FileNames:
    """File number -> name as BFD's concat_filename builds it."""

    def __init__(self, files: list[tuple[str, int]], dirs: list[str], comp_dir: str | None,
                 zero_based: bool) -> None:
        self.files, self.dirs, self.comp_dir, self.zero_based = files, dirs, comp_dir, zero_based

    def get(self, number: int) -> str:
        if not self.zero_based:
            if number == 0:
                return "<unknown>"
            number -= 1
        if number >= len(self.files):
            return "<unknown>"
        name, directory = self.files[number]
        if name.startswith("/"):
            return name
        if not self.zero_based:
            directory -= 1
        subdir = self.dirs[directory] if 0 <= directory < len(self.dirs) else None
        base = None
        if subdir is None or not subdir.startswith("/"):
            base = self.comp_dir
        if base is None:
            base, subdir = subdir, None
        if base is None:
            return name
        return f"{base}/{subdir}/{name}" if subdir is not None else f"{base}/{name}"


_FIXED = {DW_FORM_data1: 1, DW_FORM_data2: 2, DW_FORM_data4: 4, DW_FORM_data8: 8,
          DW_FORM_data16: 16, DW_FORM_strx1: 1, DW_FORM_strx2: 2, DW_FORM_strx3: 3,
          DW_FORM_strx4: 4}


def _entries(r: Reader, offset_size: int, string: StringSections) -> list[tuple[str, int]]:
    """A v5 directory or file-name table (6.2.4.1): (path, directory index) per entry."""
    formats = [(r.uleb(), r.uleb()) for _ in range(r.u(1))]
    out = []
    for _ in range(r.uleb()):
        path, directory = "", 0
        for content, form in formats:
            value: int | str
            if form == DW_FORM_string:
                value = r.cstring().decode("utf-8", "surrogateescape")
            elif form in (DW_FORM_line_strp, DW_FORM_strp):
                value = string(form, r.u(offset_size))
            elif form in (DW_FORM_udata, DW_FORM_strx):
                value = r.uleb()
                if form == DW_FORM_strx:
                    value = string(form, value)
            elif form == DW_FORM_sdata:
                value = r.sleb()
            elif form in _FIXED:
                value = r.u(_FIXED[form])
                if form in (DW_FORM_strx1, DW_FORM_strx2, DW_FORM_strx3, DW_FORM_strx4):
                    value = string(DW_FORM_strx, value)
            elif form == DW_FORM_block:
                r.take(r.uleb())
                continue
            elif form in (DW_FORM_block1, DW_FORM_block2, DW_FORM_block4):
                r.take(r.u({DW_FORM_block1: 1, DW_FORM_block2: 2, DW_FORM_block4: 4}[form]))
                continue
            else:
                raise DwarfError(f"unsupported form {form:#x} in a line table entry")
            if content == DW_LNCT_path and isinstance(value, str):
                path = value
            elif content == DW_LNCT_directory_index and isinstance(value, int):
                directory = value
        out.append((path, directory))
    return out
