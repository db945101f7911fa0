"""The parts of ``.debug_info`` that ``objdump -l`` uses, read from the DWARF spec.

Per compilation unit (DWARF 5 section 7.5.1; v2-4 headers too): the unit DIE's name,
language, compilation directory, line-table offset and address ranges, and every
DW_TAG_subprogram, DW_TAG_entry_point and DW_TAG_inlined_subroutine with its address
ranges (DW_AT_low_pc/high_pc, DW_AT_ranges in .debug_ranges or .debug_rnglists) and name.
The name is chosen as BFD 2.40 chooses it (dwarf2.c scan_unit_for_symbols and
find_abstract_instance): a linkage name over DW_AT_name, and through DW_AT_abstract_origin
and DW_AT_specification; ``is_linkage`` says whether BFD takes it as the symbol name (a
linkage name, or any name in a C-family unit).  Attribute forms: DWARF 5 table 7.6.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from x86vm.disasm.dwarf_line import DwarfError, Reader, cstring_at

DW_TAG_compile_unit, DW_TAG_partial_unit, DW_TAG_skeleton_unit = 0x11, 0x3C, 0x4A
DW_TAG_subprogram, DW_TAG_inlined_subroutine, DW_TAG_entry_point = 0x2E, 0x1D, 0x03
FUNCTION_TAGS = (DW_TAG_subprogram, DW_TAG_inlined_subroutine, DW_TAG_entry_point)
DW_AT_name, DW_AT_stmt_list, DW_AT_low_pc, DW_AT_high_pc = 0x03, 0x10, 0x11, 0x12
DW_AT_language, DW_AT_comp_dir, DW_AT_abstract_origin = 0x13, 0x1B, 0x31
DW_AT_specification, DW_AT_ranges, DW_AT_linkage_name = 0x47, 0x55, 0x6E
DW_AT_MIPS_linkage_name, DW_AT_str_offsets_base, DW_AT_addr_base = 0x2007, 0x72, 0x73
DW_AT_rnglists_base = 0x74
#: DW_LANG_* whose names BFD takes as they are (mangle_style 0): C, C89..C17, assembler
C_LANGUAGES = frozenset((0x1, 0x2, 0xC, 0x1D, 0x2C, 0x8001))

# forms (DWARF 5 table 7.6; GNU extensions)
F_ADDR, F_BLOCK2, F_BLOCK4, F_DATA2, F_DATA4, F_DATA8, F_STRING, F_BLOCK, F_BLOCK1 = \
    0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A
F_DATA1, F_FLAG, F_SDATA, F_STRP, F_UDATA, F_REF_ADDR, F_REF1, F_REF2, F_REF4, F_REF8 = \
    0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14
F_REF_UDATA, F_INDIRECT, F_SEC_OFFSET, F_EXPRLOC, F_FLAG_PRESENT, F_STRX, F_ADDRX = \
    0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B
F_REF_SUP4, F_STRP_SUP, F_DATA16, F_LINE_STRP, F_REF_SIG8, F_IMPLICIT_CONST = \
    0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21
F_LOCLISTX, F_RNGLISTX, F_REF_SUP8, F_STRX1, F_STRX2, F_STRX3, F_STRX4 = \
    0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28
F_ADDRX1, F_ADDRX2, F_ADDRX3, F_ADDRX4 = 0x29, 0x2A, 0x2B, 0x2C
F_GNU_ADDR_INDEX, F_GNU_STR_INDEX, F_GNU_REF_ALT, F_GNU_STRP_ALT = 0x1F01, 0x1F02, 0x1F20, 0x1F21
_STRING_FORMS = frozenset((F_STRING, F_STRP, F_LINE_STRP, F_STRX, F_STRX1, F_STRX2, F_STRX3,
                           F_STRX4, F_GNU_STR_INDEX))
_CONSTANT_FORMS = frozenset((F_DATA1, F_DATA2, F_DATA4, F_DATA8, F_SDATA, F_UDATA,
                             F_IMPLICIT_CONST))
_REF_FORMS = frozenset((F_REF1, F_REF2, F_REF4, F_REF8, F_REF_UDATA, F_REF_ADDR))


@dataclass
class Function:
    """A function or inlined call: its ranges, and the name BFD gives it."""

    tag: int
    ranges: list[tuple[int, int]]
    name: str | None = None
    is_linkage: bool = False


@dataclass
class Unit:
    """A compilation unit: what -l needs of it."""

    offset: int
    version: int
    address_size: int
    language: int = 0
    comp_dir: str | None = None
    name: str | None = None
    stmt_list: int | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)


@dataclass
class DebugSections:
    """The relocated bytes of the debug sections (absent: empty)."""

    info: bytes = b""
    abbrev: bytes = b""
    str: bytes = b""
    line_str: bytes = b""
    str_offsets: bytes = b""
    addr: bytes = b""
    ranges: bytes = b""
    rnglists: bytes = b""
    line: bytes = b""


@dataclass
class _Header:
    """A unit's header in .debug_info: where its DIEs are and how to read them."""

    offset: int
    end: int
    version: int
    address_size: int
    abbrev_offset: int
    offset_size: int
    first_die: int


class _UnitReader:
    """DIEs of one unit: abbreviations, attribute values, references."""

    def __init__(self, sections: DebugSections, unit: Unit, start: int, end: int,
                 abbrev_offset: int, offset_size: int,
                 units: _Headers | None = None) -> None:
        self.s, self.unit, self.start, self.end = sections, unit, start, end
        self.offset_size = offset_size
        self.abbrevs = _abbrevs(sections.abbrev, abbrev_offset)
        self.str_offsets_base = 8 if unit.version >= 5 else 0
        self.addr_base = 8
        self.rnglists_base = 12 if unit.version >= 5 else 0
        self.units = units

    def reader_for(self, offset: int) -> _UnitReader | None:
        """The reader of the unit holding ``offset`` of .debug_info (a DW_FORM_ref_addr
        into another unit: BFD's find_abstract_instance reads it there)."""
        if self.start <= offset < self.end:
            return self
        return self.units.reader_for(offset) if self.units is not None else None

    def read_bases(self, attrs) -> None:
        """The unit DIE's bases that other attributes use (DWARF 5 section 7.5)."""
        for name, form, value in attrs:
            if name == DW_AT_str_offsets_base:
                self.str_offsets_base = value
            elif name == DW_AT_addr_base:
                self.addr_base = value
            elif name == DW_AT_rnglists_base:
                self.rnglists_base = value
            elif name == DW_AT_language and form in _CONSTANT_FORMS:
                self.unit.language = value

    def value(self, r: Reader, form: int, implicit: int = 0):
        size = self.unit.address_size
        if form == F_INDIRECT:
            return self.value(r, r.uleb())
        if form == F_ADDR:
            return r.u(size)
        if form in (F_DATA1, F_REF1, F_FLAG, F_STRX1, F_ADDRX1):
            return r.u(1)
        if form in (F_DATA2, F_REF2, F_STRX2, F_ADDRX2):
            return r.u(2)
        if form in (F_STRX3, F_ADDRX3):
            return r.u(3)
        if form in (F_DATA4, F_REF4, F_REF_SUP4, F_STRX4, F_ADDRX4):
            return r.u(4)
        if form in (F_DATA8, F_REF8, F_REF_SIG8, F_REF_SUP8):
            return r.u(8)
        if form == F_DATA16:
            return r.take(16)
        if form in (F_SDATA,):
            return r.sleb()
        if form in (F_UDATA, F_REF_UDATA, F_STRX, F_ADDRX, F_LOCLISTX, F_RNGLISTX,
                    F_GNU_ADDR_INDEX, F_GNU_STR_INDEX):
            return r.uleb()
        if form in (F_STRP, F_LINE_STRP, F_SEC_OFFSET, F_STRP_SUP, F_GNU_REF_ALT,
                    F_GNU_STRP_ALT):
            return r.u(self.offset_size)
        if form == F_REF_ADDR:
            return r.u(self.offset_size if self.unit.version >= 3 else size)
        if form == F_STRING:
            return r.cstring()
        if form == F_FLAG_PRESENT:
            return 1
        if form == F_IMPLICIT_CONST:
            return implicit
        if form in (F_BLOCK, F_EXPRLOC):
            return r.take(r.uleb())
        if form == F_BLOCK1:
            return r.take(r.u(1))
        if form == F_BLOCK2:
            return r.take(r.u(2))
        if form == F_BLOCK4:
            return r.take(r.u(4))
        raise DwarfError(f"unknown attribute form {form:#x}")

    def string(self, form: int, value) -> str | None:
        if form == F_STRING:
            return value.decode("utf-8", "surrogateescape")
        if form == F_STRP:
            return cstring_at(self.s.str, value)
        if form == F_LINE_STRP:
            return cstring_at(self.s.line_str, value)
        if form in (F_STRX, F_STRX1, F_STRX2, F_STRX3, F_STRX4, F_GNU_STR_INDEX):
            at = self.str_offsets_base + value * self.offset_size
            offset = int.from_bytes(self.s.str_offsets[at:at + self.offset_size], "little")
            return cstring_at(self.s.str, offset)
        return None

    def address(self, form: int, value) -> int:
        if form in (F_ADDRX, F_ADDRX1, F_ADDRX2, F_ADDRX3, F_ADDRX4, F_GNU_ADDR_INDEX):
            size = self.unit.address_size
            at = self.addr_base + value * size
            return int.from_bytes(self.s.addr[at:at + size], "little")
        return value

    def attributes(self, r: Reader) -> tuple[int, list[tuple[int, int, object]], bool] | None:
        """The DIE at r: (tag, [(attribute, form, value)], has children); None: a null."""
        code = r.uleb()
        if code == 0:
            return None
        abbrev = self.abbrevs.get(code)
        if abbrev is None:
            raise DwarfError(f"abbreviation {code} not found")
        tag, children, specs = abbrev
        attrs = []
        for name, form, implicit in specs:
            if form == F_INDIRECT:
                form = r.uleb()
            attrs.append((name, form, self.value(r, form, implicit)))
        return tag, attrs, children

    def die_at(self, offset: int):
        """The DIE at an offset of .debug_info in this unit (None elsewhere)."""
        if not self.start <= offset < self.end:
            return None
        return self.attributes(Reader(self.s.info, offset, self.end))


class _Headers:
    """Every unit header of .debug_info, and readers of the units a reference reaches."""

    def __init__(self, sections: DebugSections, headers: list[_Header]) -> None:
        self.s, self.headers = sections, headers
        self.starts = [h.offset for h in headers]
        self.readers: dict[int, _UnitReader | None] = {}

    def reader_for(self, offset: int) -> _UnitReader | None:
        k = bisect.bisect_right(self.starts, offset) - 1
        if k < 0 or offset >= self.headers[k].end:
            return None
        if k not in self.readers:
            h = self.headers[k]
            unit = Unit(h.offset, h.version, h.address_size)
            reader = _UnitReader(self.s, unit, h.offset, h.end, h.abbrev_offset,
                                 h.offset_size, self)
            top = reader.attributes(Reader(self.s.info, h.first_die, h.end))
            if top is not None:
                reader.read_bases(top[1])
            self.readers[k] = reader
        return self.readers[k]


def _headers(info: bytes) -> tuple[list[_Header], str | None]:
    """The unit headers up to the first that cannot be read (and why it cannot)."""
    headers: list[_Header] = []
    pos = 0
    while pos + 11 <= len(info):
        r = Reader(info, pos)
        length = r.u(4)
        offset_size = 4
        if length == 0xFFFFFFFF:
            length, offset_size = r.u(8), 8
        end = r.pos + length
        if length == 0 or end > len(info):
            break
        try:
            version = r.u(2)
            if version >= 5:
                unit_type, address_size, abbrev_offset = r.u(1), r.u(1), r.u(offset_size)
                if unit_type in (4, 5):         # skeleton, split_compile: a dwo_id
                    r.u(8)
                elif unit_type in (2, 6):       # type units: signature and type offset
                    r.u(8)
                    r.u(offset_size)
            else:
                abbrev_offset, address_size = r.u(offset_size), r.u(1)
        except (DwarfError, IndexError) as exc:
            return headers, str(exc)
        headers.append(_Header(pos, end, version, address_size, abbrev_offset, offset_size,
                               r.pos))
        pos = end
    return headers, None


def _abbrevs(data: bytes, offset: int) -> dict[int, tuple[int, bool, list]]:
    r = Reader(data, offset)
    table: dict[int, tuple[int, bool, list]] = {}
    while True:
        code = r.uleb()
        if code == 0:
            return table
        tag, children = r.uleb(), bool(r.u(1))
        specs = []
        while True:
            name, form = r.uleb(), r.uleb()
            if name == 0 and form == 0:
                break
            specs.append((name, form, r.sleb() if form == F_IMPLICIT_CONST else 0))
        table[code] = (tag, children, specs)


def read_units(sections: DebugSections,
               on_error: Callable[[str], None] | None = None) -> list[Unit]:
    """Every compilation unit of .debug_info with its functions (errors end the scan)."""
    units: list[Unit] = []
    headers, error = _headers(sections.info)
    registry = _Headers(sections, headers)
    for h in headers:
        try:
            unit = Unit(h.offset, h.version, h.address_size)
            r = Reader(sections.info, h.first_die, h.end)
            _scan_unit(sections, unit, r, h.end, h.abbrev_offset, h.offset_size, registry)
            units.append(unit)
        except (DwarfError, IndexError, KeyError, UnicodeDecodeError) as exc:
            error = str(exc)
            break
    if error is not None and on_error is not None:
        on_error(error)
    return units


def _scan_unit(sections: DebugSections, unit: Unit, r: Reader, end: int, abbrev_offset: int,
               offset_size: int, registry: _Headers | None = None) -> None:
    reader = _UnitReader(sections, unit, unit.offset, end, abbrev_offset, offset_size,
                         registry)
    r.end = end
    top = reader.attributes(r)
    if top is None:
        return
    tag, attrs, children = top
    low = high = None
    high_relative = False
    ranges_value = None
    reader.read_bases(attrs)            # the bases first: other attributes use them
    for name, form, value in attrs:
        if name == DW_AT_name:
            unit.name = reader.string(form, value)
        elif name == DW_AT_comp_dir:
            unit.comp_dir = reader.string(form, value)
        elif name == DW_AT_stmt_list:
            unit.stmt_list = value
        elif name == DW_AT_low_pc:
            low = reader.address(form, value)
        elif name == DW_AT_high_pc:
            high, high_relative = reader.address(form, value), form in _CONSTANT_FORMS
        elif name == DW_AT_ranges:
            ranges_value = (form, value)
    base = low or 0
    if low is not None and high is not None:
        unit.ranges.append((low, low + high if high_relative else high))
    if ranges_value is not None:
        unit.ranges.extend(_ranges(reader, *ranges_value, base))
    if not children:
        return
    c_names = unit.language in C_LANGUAGES
    depth = 1
    while depth > 0 and r.pos < end:
        die = reader.attributes(r)
        if die is None:
            depth -= 1
            continue
        tag, attrs, has_children = die
        if has_children:
            depth += 1
        if tag not in FUNCTION_TAGS:
            continue
        function = Function(tag, [])
        low, high = 0, None
        high_relative = False
        for name, form, value in attrs:
            if name in (DW_AT_abstract_origin, DW_AT_specification) and form in _REF_FORMS:
                _abstract_name(reader, function, form, value, 0, c_names)
            elif name in (DW_AT_linkage_name, DW_AT_MIPS_linkage_name):
                text = reader.string(form, value) if form in _STRING_FORMS else None
                if text is not None:
                    function.name, function.is_linkage = text, True
            elif name == DW_AT_name:
                if function.name is None and form in _STRING_FORMS:
                    function.name = reader.string(form, value)
                    function.is_linkage = c_names
            elif name == DW_AT_low_pc:
                low = reader.address(form, value)
            elif name == DW_AT_high_pc:
                high, high_relative = reader.address(form, value), form in _CONSTANT_FORMS
            elif name == DW_AT_ranges:
                for range_low, range_high in _ranges(reader, form, value, base):
                    _add_range(function.ranges, range_low, range_high)
        if high is not None:        # (after DW_AT_ranges, with low_pc 0 when absent)
            high = low + high if high_relative else high
            if high != 0:
                _add_range(function.ranges, low, high)
        unit.functions.append(function)


def _add_range(ranges: list[tuple[int, int]], low: int, high: int) -> None:
    """dwarf2.c arange_add: an empty range is dropped, one that meets an existing range
    extends it, any other goes in after the first -- the first's start is the address BFD
    compares with the function's symbol, and best fits are measured on merged ranges."""
    if low == high:
        return
    for n, (start, end) in enumerate(ranges):
        if low == end:
            ranges[n] = (start, high)
            return
        if high == start:
            ranges[n] = (low, end)
            return
    ranges.insert(1, (low, high))


def _abstract_name(reader: _UnitReader, function: Function, form: int, value: int,
                   depth: int, c_names: bool) -> None:
    """find_abstract_instance: the name of the DIE a reference points to -- in another
    unit for a DW_FORM_ref_addr there (LTO's abstract instances), named as that unit's
    language names it."""
    if depth >= 100:
        raise DwarfError("abstract instance recursion")
    offset = value if form == F_REF_ADDR else reader.start + value
    if form == F_REF_ADDR:
        target = reader.reader_for(offset)
        if target is None:
            return
        if target is not reader:
            reader, c_names = target, target.unit.language in C_LANGUAGES
    die = reader.die_at(offset)
    if die is None:
        return
    for name, f, v in die[1]:
        if name == DW_AT_name:
            if function.name is None and f in _STRING_FORMS:
                function.name = reader.string(f, v)
                function.is_linkage = c_names
        elif name == DW_AT_specification and f in _REF_FORMS:
            _abstract_name(reader, function, f, v, depth + 1, c_names)
        elif name in (DW_AT_linkage_name, DW_AT_MIPS_linkage_name) and f in _STRING_FORMS:
            function.name, function.is_linkage = reader.string(f, v), True


def _ranges(reader: _UnitReader, form: int, value: int, base: int) -> list[tuple[int, int]]:
    """DW_AT_ranges: a .debug_ranges list (v2-4) or a .debug_rnglists list (v5)."""
    size = reader.unit.address_size
    out: list[tuple[int, int]] = []
    if reader.unit.version < 5:
        r = Reader(reader.s.ranges, value)
        top = (1 << 8 * size) - 1
        while True:
            low, high = r.u(size), r.u(size)
            if low == 0 and high == 0:
                return out
            if low == top and high != top:
                base = high
            elif low != high:
                out.append((base + low, base + high))
    if form == F_RNGLISTX:
        at = reader.rnglists_base + value * reader.offset_size
        value = reader.rnglists_base + int.from_bytes(
            reader.s.rnglists[at:at + reader.offset_size], "little")
    r = Reader(reader.s.rnglists, value)
    while True:
        kind = r.u(1)
        if kind == 0:                               # DW_RLE_end_of_list
            return out
        if kind == 1:                               # base_addressx
            base = reader.address(F_ADDRX, r.uleb())
        elif kind == 2:                             # startx_endx
            low, high = reader.address(F_ADDRX, r.uleb()), reader.address(F_ADDRX, r.uleb())
            out.append((low, high))
        elif kind == 3:                             # startx_length
            low = reader.address(F_ADDRX, r.uleb())
            out.append((low, low + r.uleb()))
        elif kind == 4:                             # offset_pair
            low, high = r.uleb(), r.uleb()
            out.append((base + low, base + high))
        elif kind == 5:                             # base_address
            base = r.u(size)
        elif kind == 6:                             # start_end
            out.append((r.u(size), r.u(size)))
        elif kind == 7:                             # start_length
            low = r.u(size)
            out.append((low, low + r.uleb()))
        else:
            raise DwarfError(f"unknown range list entry {kind}")
