"""``objdump -l``: the function and ``file:line`` each listed instruction comes from.

binutils 2.40 objdump.c ``show_line`` asks BFD's ``bfd_find_nearest_line_discriminator``
for every line it lists (not for ``...`` runs of zeros) and prints ``NAME():`` when the
function changes and ``FILE:LINE`` (``FILE:LINE (discriminator N)``) when the line or
discriminator does.  BFD answers from DWARF (dwarf2.c): the first unit holding the address
whose line table has a row for it, the function of smallest range holding it there
(inlined calls included), its name as `dwarf_info` picks it -- and, for a name that is not
a linkage name, the ELF symbol starting where the function starts; without DWARF, from the
static symbol table (elf.c ``elf_find_function``: the closest function-like symbol at or
below the address, preferring ones that cover it, functions, typed ones, smaller ones; its
file from the STT_FILE symbol before it), with no line.  In a relocatable object BFD first
lays the allocated sections out one after another (``place_sections``) and relocates the
debug sections to those addresses, so code of different sections does not overlap.
"""

from __future__ import annotations

import bisect
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from x86vm.disasm import elf as elfmod
from x86vm.disasm.dwarf_info import DebugSections, Function, Unit, read_units
from x86vm.disasm.dwarf_line import DwarfError, LineTable, cstring_at, read_line_table

SHF_ALLOC, SHF_COMPRESSED = 0x2, 0x800
STT_NOTYPE, STT_TLS, STV_HIDDEN = 0, 6, 2
_DEBUG_NAMES = {".debug_info": "info", ".debug_abbrev": "abbrev", ".debug_str": "str",
                ".debug_line_str": "line_str", ".debug_str_offsets": "str_offsets",
                ".debug_addr": "addr", ".debug_ranges": "ranges",
                ".debug_rnglists": "rnglists", ".debug_line": "line"}
# relocation types applied to debug sections: (x86-64?, type) -> width in bytes, PC-relative
_RELOCS = {(True, 1): (8, False), (True, 10): (4, False), (True, 11): (4, False),
           (True, 2): (4, True), (True, 24): (8, True), (True, 21): (4, False),
           (True, 17): (8, False), (False, 1): (4, False), (False, 2): (4, True),
           (False, 32): (4, False)}


@dataclass
class Found:
    """What bfd_find_nearest_line_discriminator gives for one address."""

    filename: str | None
    function: str | None
    line: int
    discriminator: int


class LineNumbers:
    """``show_line`` for one file: call `text` for each listed line, in order."""

    def __init__(self, path: str, stream: BinaryIO, demangle: Callable[[str], str] | None,
                 warn: Callable[[str], None] | None = None, line_numbers: bool = True,
                 source: bool = False, prefix: str | None = None,
                 prefix_strip: int = 0) -> None:
        self.with_line_numbers, self.with_source = line_numbers, source
        self.prefix, self.prefix_strip = prefix, prefix_strip
        self.path, self.warn = path, warn
        self.files: dict[str, _SourceFile] = {}     # objdump's print_files
        self.demangle = demangle
        self.symbols: list[elfmod.Symbol] = []
        self.units: list[Unit] = []
        self.tables: dict[int, LineTable | None] = {}
        self.dwarf_symbols = self.symbols
        self.dwarf_sections: dict[int, elfmod.Section] = {}
        self.has_dwarf = False
        self.unit_index = _Intervals(())
        self.function_index: list[_Intervals] = []
        self.placed: dict[int, int] = {}
        self.cache = _FunctionCache()
        self.prev_function: str | None = None
        self.prev_line = -1
        self.prev_discriminator = 0
        self.pending_error: str | None = None
        try:
            loader = elfmod._Loader(path, stream)
            image = loader.load()
        except Exception:  # pyelftools refuses what BFD reads: no line information then
            self.relocatable = False
            return
        self.relocatable = image.elf_type == elfmod.ET_REL
        self.symbols = loader._read_symbols(loader.symtab_index, dynamic=False)
        self.placed = _place_sections(loader, image.sections) if self.relocatable else {}
        # DWARF's own symbols and sections: a separate debug file's when the DWARF is there
        self.dwarf_symbols = self.symbols
        try:
            sections = _debug_sections(loader, image, self.placed)
            if not sections.info and image.elf_type != elfmod.ET_REL:
                sections = self._separate_debug(loader, image, sections)
            self.has_dwarf = bool(sections.info)
            if sections.info:
                self.units = read_units(sections, warn)
                for unit in self.units:
                    self.tables[unit.offset] = _line_table(sections, unit)
                self.unit_index = _Intervals(
                    (low, high, n) for n, unit in enumerate(self.units)
                    if self.tables.get(unit.offset) is not None
                    for low, high in (*unit.ranges, *self.tables[unit.offset].ranges))
                self.function_index = [_Intervals(
                    (low, high, k) for k, function in enumerate(unit.functions)
                    for low, high in function.ranges) for unit in self.units]
        except SectionTooBig as exc:    # (objdump says it at the first line looked up)
            self.pending_error = str(exc)
            self.units, self.tables, self.has_dwarf = [], {}, False
        except Exception as exc:  # corrupt DWARF, or a debug file pyelftools refuses
            if warn is not None:
                warn(str(exc))
            self.units, self.tables, self.has_dwarf = [], {}, False

    def _separate_debug(self, loader, image, sections: DebugSections) -> DebugSections:
        """The DWARF of the file's separate debug file (build-id, then .gnu_debuglink), as
        BFD follows them; its symbols then name functions, its sections matched to this
        file's by position and name (dwarf2.c _bfd_dwarf2_stash_syms)."""
        path = _debug_file_path(loader, image, self.path)
        if path is None:
            return sections
        with open(path, "rb") as stream:
            debug_loader = elfmod._Loader(path, stream)
            debug_image = debug_loader.load()
            found = _debug_sections(debug_loader, debug_image, {})
            self.dwarf_symbols = debug_loader._read_symbols(debug_loader.symtab_index,
                                                            dynamic=False)
        for ours, theirs in zip(image.sections, debug_image.sections, strict=False):
            if theirs.name.startswith(_DEBUG_PREFIXES):
                break
            if ours.name == theirs.name:
                self.dwarf_sections[ours.index] = theirs
        return found

    def _best_fit(self, n: int, address: int) -> Function | None:
        return _best_fit_in(self.units[n].functions, self.function_index[n], address)

    # -- BFD ---------------------------------------------------------------------------
    def find(self, section: elfmod.Section, offset: int) -> Found | None:
        """bfd_find_nearest_line_discriminator for ``offset`` in ``section``."""
        if self.pending_error is not None:
            print(f"x86vm: {self.pending_error}", file=sys.stderr)
            self.pending_error = None
        base = self.placed.get(section.index, section.vma)
        address = base + offset
        function: Function | None = None
        row = None
        for n in sorted(set(self.unit_index.holding(address))):
            unit = self.units[n]
            table = self.tables[unit.offset]
            fit = self._best_fit(n, address)
            function = fit or function
            row = table.lookup(address)
            if row is not None:
                function = fit
                break
        filename = row.file if row is not None else None
        line = row.line if row is not None else 0
        disc = row.discriminator if row is not None else 0
        found = row is not None
        name: str | None = None
        if function is not None and function.is_linkage:
            name = function.name
            found = True
        elif self.has_dwarf:        # dwarf2.c "done:": the symbols name what DWARF does not
            fun = self._find_function(self.dwarf_sections.get(section.index, section), offset,
                                      self.dwarf_symbols)
            if fun is not None:
                symbol, file = fun
                name = symbol.name
                if filename is None:
                    filename = file
                found = True
            if function is not None:
                if fun is None:
                    name = function.name
                elif function.ranges and \
                        fun[0].value - fun[0].section_vma + base == function.ranges[0][0]:
                    function.name = name
                function.is_linkage = True
        if found:
            return Found(filename, name, line, disc)
        if not self.symbols:
            return None
        fun = self._find_function(section, offset, self.symbols)
        if fun is None:
            return None
        return Found(fun[1], fun[0].name, 0, 0)

    def _find_function(self, section: elfmod.Section, offset: int,
                       symbols: list[elfmod.Symbol]):
        """elf.c elf_find_function with its one-entry cache: (symbol, file name) or None."""
        if not symbols:
            return None
        cache = self.cache
        func = cache.func
        if cache.section is not section or func is None or offset < cache.value or \
                offset >= cache.value + cache.size:
            cache.fill(symbols, section, offset)
        if cache.func is None:
            return None
        return cache.func, cache.filename

    # -- objdump ---------------------------------------------------------------------------
    def text(self, section: elfmod.Section, offset: int) -> str:
        """What show_line prints before the line at ``offset`` of ``section``."""
        found = self.find(section, offset)
        if found is None:
            return ""
        filename = found.filename or None
        if filename is not None and filename.startswith("/") and self.prefix is not None:
            filename = self.prefix + _strip_dirs(filename, self.prefix_strip)
        function = found.function or None
        out = []
        if not self.with_line_numbers:
            pass
        elif function is not None and function != self.prev_function:
            shown = self.demangle(function) if self.demangle is not None else function
            # a demangled name has its parameters' parentheses already
            out.append(f"{_sanitize(shown)}:\n" if shown != function
                       else f"{_sanitize(function)}():\n")
            self.prev_line = -1
        line, disc = found.line, found.discriminator
        if not self.with_line_numbers:
            pass
        elif line > 0 and (line != self.prev_line or disc != self.prev_discriminator):
            where = _sanitize(filename) if filename is not None else "???"
            out.append(f"{where}:{line} (discriminator {disc})\n" if disc > 0
                       else f"{where}:{line}\n")
        if self.with_source and filename is not None and line > 0:
            out.append(self._source_lines(filename, line))
        if function is not None and function != self.prev_function:
            self.prev_function = function
        if line > 0 and line != self.prev_line:
            self.prev_line = line
        if disc != self.prev_discriminator:
            self.prev_discriminator = disc
        return "".join(out)


    def _source_lines(self, filename: str, line: int) -> str:
        """-S: the source lines up to ``line`` not printed yet (at most 5 before it)."""
        source = self.files.get(filename)
        if source is None:
            source = _SourceFile.open(filename)
            if source is None:
                return ""                   # (tried again at the next line, as objdump does)
            self.files[filename] = source
            if source.mtime > _mtime(self.path):
                print(f"x86vm: Warning: source file {filename} is more recent than object "
                      "file", file=sys.stderr)
        if line == source.last_line:
            return ""
        first = max(line - CONTEXT_LINES, 1)
        if source.max_printed >= first:
            first = source.max_printed + 1 if source.max_printed < line else line
        text = source.lines_text(first, line)
        source.max_printed = max(source.max_printed, line)
        source.last_line = line
        return text


CONTEXT_LINES = 5       # objdump's SHOW_PRECEDING_CONTEXT_LINES


@dataclass
class _SourceFile:
    """A source file -S prints from: its lines and what was printed of them."""

    lines: list[bytes]
    mtime: float = 0.0
    last_line: int = 0
    max_printed: int = 0

    @classmethod
    def open(cls, filename: str) -> _SourceFile | None:
        try:
            with open(filename, "rb") as f:
                data = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except OSError:
            return None
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return cls(lines, int(mtime))

    def lines_text(self, first: int, last: int) -> str:
        """objdump's dump_lines: lines first..last, each to its first CR or LF."""
        out = []
        for number in range(max(first, 1), last + 1):
            if number > len(self.lines):
                break
            text = self.lines[number - 1].split(b"\r", 1)[0]
            out.append(text.decode("utf-8", "surrogateescape") + "\n")
        return "".join(out)


def _mtime(path: str) -> float:
    """The object file's modification time in whole seconds (an archive member: never)."""
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return float("inf")


def _strip_dirs(filename: str, levels: int) -> str:
    """--prefix-strip: the absolute name from its LEVELS-th separator on (objdump walks the
    name from its second character)."""
    at = 0
    for i in range(1, len(filename)):
        if levels <= 0:
            break
        if filename[i] == "/":
            at = i
            levels -= 1
    return filename[at:]


def _sanitize(text: str) -> str:
    from x86vm.disasm.symbols import sanitize

    return sanitize(text)


class _Intervals:
    """Address ranges (low, high, payload), with the payloads of those holding an address
    found by bisection (ranges sorted by start, with the running maximum of their ends)."""

    def __init__(self, ranges) -> None:
        items = sorted((r for r in ranges if r[0] < r[1]), key=lambda r: r[0])
        self.lows = [r[0] for r in items]
        self.items = items
        reach, top = [], -1
        for _low, high, _payload in items:
            top = max(top, high)
            reach.append(top)
        self.reach = reach

    def holding(self, address: int) -> list:
        stop = bisect.bisect_right(self.lows, address)
        start = bisect.bisect_right(self.reach, address, 0, stop)
        items = self.items
        return [items[i][2] for i in range(start, stop) if items[i][1] > address]


def _best_fit_in(functions: list[Function], index: _Intervals, address: int):
    """lookup_address_in_function_table: the smallest range holding the address (the later
    function on a tie)."""
    best, best_len = None, None
    for k in index.holding(address):
        function = functions[k]
        for low, high in function.ranges:
            if low <= address < high and (best_len is None or high - low < best_len or
                                          high - low == best_len and k > best[0]):
                best, best_len = (k, function), high - low
    return best[1] if best is not None else None


class _FunctionCache:
    """elf_find_function and its one-entry cache (binutils 2.40 dwarf2.c
    _bfd_elf_find_function): the symbol starting closest below the offset, of several at
    one address the largest (the first of equal ones), with the file symbol before it.
    BFD scans every symbol on each cache miss; the choice depends only on the offset, so
    it is made here from a per-section table of the candidates sorted by address (a scan
    per function boundary of node's 200,000 symbols took hours)."""

    def __init__(self) -> None:
        self.section = None
        self.func: elfmod.Symbol | None = None
        self.value = self.size = 0
        self.filename: str | None = None
        self.tables: dict[int, tuple[list[int], list[tuple]]] = {}

    def fill(self, symbols: list[elfmod.Symbol], section: elfmod.Section, offset: int) -> None:
        self.section, self.func, self.filename = section, None, None
        self.value = self.size = 0
        table = self.tables.get(section.index)
        if table is None:
            table = self.tables[section.index] = _candidates(symbols, section)
        starts, winners = table
        k = bisect.bisect_right(starts, offset) - 1
        if k >= 0:
            self.func, self.value, self.size, self.filename = winners[k]


def _candidates(symbols: list[elfmod.Symbol], section: elfmod.Section
                ) -> tuple[list[int], list[tuple]]:
    """The function symbols of a section by address: the addresses, sorted, and for each
    the one BFD's scan keeps there -- (symbol, address, size, file name)."""
    best: dict[int, tuple] = {}
    file = None
    state = 0           # 0 nothing seen, 1 a symbol seen, 2 a file after a symbol
    for sym in symbols:
        if sym.flags & elfmod.BSF_FILE:
            file = sym
            if state == 1:
                state = 2
            continue
        if state == 0:
            state = 1
        size = _maybe_function(sym, section)
        if size == 0:
            continue
        code_off = sym.value - sym.section_vma
        kept = best.get(code_off)
        if kept is None or size > kept[2]:
            filename = file.name if file is not None and (
                sym.flags & elfmod.BSF_LOCAL or state != 2) else None
            best[code_off] = (sym, code_off, size, filename)
    starts = sorted(best)
    return starts, [best[start] for start in starts]


def _maybe_function(sym: elfmod.Symbol, section: elfmod.Section) -> int:
    """_bfd_elf_maybe_function_sym: the symbol's code size (at least 1), 0 if not code."""
    if sym.flags & (elfmod.BSF_SECTION_SYM | elfmod.BSF_FILE | elfmod.BSF_OBJECT):
        return 0
    st_info, st_other = sym.elf[0], sym.elf[1]
    if st_info & 0xF == STT_TLS or sym.section != section.index:
        return 0
    size = 0 if sym.flags & elfmod.BSF_SYNTHETIC else sym.size
    if size == 0 and sym.flags & elfmod.BSF_LOCAL and st_info & 0xF == STT_NOTYPE and \
            st_other & 3 == STV_HIDDEN:
        return 0
    return size or 1


DEBUG_DIR = "/usr/lib/debug"            # BFD's DEBUGDIR on Debian
_DEBUG_PREFIXES = (".debug", ".zdebug", ".gnu.debuglto_")


def _debug_file_path(loader, image, path: str) -> str | None:
    """The separate debug file BFD would read: by build-id under DEBUG_DIR, else the
    .gnu_debuglink name beside the file, in its .debug directory, or under DEBUG_DIR."""
    by_name = {s.name: s for s in image.sections}
    note = by_name.get(".note.gnu.build-id")
    if note is not None and note.has_contents:
        data = note.data()
        if len(data) >= 16:
            namesz, descsz, kind = (int.from_bytes(data[i:i + 4], "little") for i in (0, 4, 8))
            start = 12 + (namesz + 3 & ~3)
            build_id = data[start:start + descsz]
            if kind == 3 and data[12:12 + namesz].rstrip(b"\0") == b"GNU" and len(build_id) > 1:
                hexid = build_id.hex()
                candidate = f"{DEBUG_DIR}/.build-id/{hexid[:2]}/{hexid[2:]}.debug"
                if os.path.isfile(candidate):
                    return candidate
    link = by_name.get(".gnu_debuglink")
    if link is None or not link.has_contents:
        return None
    data = link.data()
    name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if not name or "/" in name:
        return None
    crc_at = (len(name) + 1 + 3) & ~3
    crc = int.from_bytes(data[crc_at:crc_at + 4], "little")
    directory = os.path.dirname(os.path.abspath(path))
    for candidate in (os.path.join(directory, name), os.path.join(directory, ".debug", name),
                      f"{DEBUG_DIR}{directory}/{name}"):
        if os.path.abspath(candidate) == os.path.abspath(path) or \
                not os.path.isfile(candidate):
            continue
        with open(candidate, "rb") as f:
            if zlib.crc32(f.read()) == crc:
                return candidate
    return None


def _place_sections(loader, sections: list[elfmod.Section]) -> dict[int, int]:
    """dwarf2.c place_sections: allocated sections laid out one after another (aligned),
    .debug_info at 0; nothing moves when there is at most one such section."""
    chosen = [s for s in sections if loader.headers[s.index]["sh_flags"] & SHF_ALLOC
              or s.name == ".debug_info"]
    if len(chosen) <= 1:
        return {}
    placed: dict[int, int] = {}
    last_vma = last_dwarf = 0
    for section in chosen:
        if section.name == ".debug_info":
            placed[section.index] = last_dwarf
            last_dwarf += section.size
            continue
        align = loader.headers[section.index]["sh_addralign"]
        align = align & -align if align else 1
        last_vma = (last_vma + align - 1) & -align
        placed[section.index] = last_vma
        last_vma += section.size
    return placed


class SectionTooBig(DwarfError):
    """BFD's _bfd_section_size_insane refused a debug section: its DWARF is not read."""


def _debug_sections(loader, image, placed: dict[int, int]) -> DebugSections:
    """The debug sections' bytes, relocated for a relocatable object as BFD does.  A
    compressed .debug_info whose size is over ten times the file's is refused, as BFD 2.40
    refuses it (section.c _bfd_section_size_insane; dwarf2.c read_section's message)."""
    out = DebugSections()
    by_name = {s.name: s for s in image.sections}
    for name, field_name in _DEBUG_NAMES.items():
        section = by_name.get(name)
        if section is None or not section.has_contents:
            continue
        if name == ".debug_info" and section._compression and \
                section.size // 10 > section._file_size:
            raise SectionTooBig(f"DWARF error: section {name} is too big")
        data = section.data()
        if image.elf_type == elfmod.ET_REL:
            data = _relocated(loader, section, data, placed, image.format_name)
        setattr(out, field_name, data)
    return out


def _relocated(loader, section: elfmod.Section, data: bytes, placed: dict[int, int],
               format_name: str) -> bytes:
    """``data`` with the REL/RELA sections that target ``section`` applied (S + A)."""
    x86_64 = "x86-64" in format_name
    symbols = None
    out = bytearray(data)
    for i, hdr in enumerate(loader.headers):
        if elfmod._sh_type(hdr) not in (elfmod.SHT_REL, elfmod.SHT_RELA) or \
                hdr["sh_info"] != section.index or not loader._relocs_of_other_section(hdr):
            continue
        if symbols is None:
            symbols = _raw_symbols(loader)
        rela = elfmod._sh_type(hdr) == elfmod.SHT_RELA
        raw = loader._raw(i)
        if loader.is64:
            fmt, size = ("<QQq", 24) if rela else ("<QQ", 16)
        else:
            fmt, size = ("<IIi", 12) if rela else ("<II", 8)
        import struct

        for entry in struct.iter_unpack(fmt, raw[: len(raw) // size * size]):
            offset, info = entry[0], entry[1]
            sym_index, rtype = (info >> 32, info & 0xFFFFFFFF) if loader.is64 else \
                (info >> 8, info & 0xFF)
            kind = _RELOCS.get((x86_64, rtype))
            if kind is None or sym_index >= len(symbols):
                continue
            width, pc_relative = kind
            if offset + width > len(out):
                continue
            addend = entry[2] if rela else int.from_bytes(out[offset:offset + width],
                                                           "little", signed=True)
            value = symbols[sym_index](placed) + addend
            if pc_relative:
                value -= placed.get(section.index, 0) + offset
            out[offset:offset + width] = (value & ((1 << 8 * width) - 1)).to_bytes(
                width, "little")
    return bytes(out)


def _raw_symbols(loader) -> list:
    """Per symbol index, a function placed-VMAs -> the symbol's value S."""
    values = [lambda placed: 0]
    for sym in loader._read_symbols(loader.symtab_index, dynamic=False):
        shndx, st_value = sym.elf[2], sym.elf[3]
        if 0 < shndx < elfmod.SHN_LORESERVE:
            values.append(lambda placed, s=shndx, v=st_value: placed.get(s, 0) + v)
        else:
            values.append(lambda placed, v=st_value: v)
    return values


def _line_table(sections: DebugSections, unit: Unit) -> LineTable | None:
    if unit.stmt_list is None or not sections.line:
        return None

    def string(form: int, value: int) -> str:
        if form == 0x1F:                        # DW_FORM_line_strp
            return cstring_at(sections.line_str, value)
        if form == 0x0E:                        # DW_FORM_strp
            return cstring_at(sections.str, value)
        raise DwarfError("string index forms in a line table are not supported")

    try:
        return read_line_table(sections.line, unit.stmt_list, unit.address_size,
                               unit.comp_dir, string)
    except DwarfError as exc:
        print(f"x86vm: warning: DWARF error: {exc}", file=sys.stderr)
        return None
