"""Symbol lookup the way objdump does it, and objdump's ``ADDR <sym+0xoff>`` address text.

objdump (binutils 2.40, ``binutils/objdump.c``) chooses the symbol for an address in three
steps, reproduced here because every branch target and RIP-relative comment depends on them:

1. **Which symbols.** The static symbol table, or the dynamic one if there is no static one,
   minus symbols without a name, section and file symbols (except names starting ``.plt`` or
   ``.got``), undefined and common symbols; plus the synthetic ``name@plt`` symbols.
2. **Their order** (``compare_symbols``), per section being disassembled: by value; then
   symbols of that section first; ``gnu_compiled``/``gcc2_compiled`` and file-like names last;
   debugging and section symbols after others; functions, then objects, then globals before
   locals; larger ELF sizes first; names starting with ``.`` last; finally by name.
3. **The lookup** (``find_symbol_for_address``): the first symbol of the highest value not above
   the address (or the very first symbol if none is), preferring one in the current section;
   for labels (and in relocatable files, for addresses inside the section) only a symbol of
   the current section will do. When the match is not exact, a dynamic relocation at exactly
   that address names the slot instead (GOT entries: ``<stdout@GLIBC_2.2.5>``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from x86vm.disasm.demangle import demangle_symbol
from x86vm.disasm.elf import (
    BSF_DEBUGGING,
    BSF_FILE,
    BSF_FUNCTION,
    BSF_GLOBAL,
    BSF_GNU_UNIQUE,
    BSF_LOCAL,
    BSF_OBJECT,
    BSF_SECTION_SYM,
    BSF_SYNTHETIC,
    BSF_WEAK,
    SEC_ABS,
    SEC_COMMON,
    SEC_UNDEF,
    DynamicReloc,
    Section,
    Symbol,
)

__all__ = ["SymbolTable", "SectionSymbols", "sanitize", "is_local_label"]


def sanitize(name: str) -> str:
    """objdump's ``sanitize_string``: control characters shown as ``^X``."""
    if name.isprintable():
        return name
    return "".join(f"^{chr(ord(c) + 0x40)}" if ord(c) < 0x20 else c for c in name)


def is_local_label(symbol: Symbol) -> bool:
    """BFD's ``bfd_is_local_label`` for ELF: a non-global ``.L``/``..``/``_.L_`` name."""
    if symbol.flags & (BSF_GLOBAL | BSF_WEAK | BSF_GNU_UNIQUE | BSF_SECTION_SYM):
        return False
    name = symbol.name
    return name.startswith((".L", "..", "_.L_"))


def _is_useful(symbol: Symbol) -> bool:
    """objdump's ``remove_useless_symbols`` test (kept: .plt*/.got* section symbols)."""
    if not symbol.name:
        return False
    if symbol.flags & (BSF_DEBUGGING | BSF_SECTION_SYM) and not symbol.name.startswith(
        (".plt", ".got")
    ):
        return False
    return symbol.section not in (SEC_UNDEF, SEC_COMMON)


def _is_file_like(symbol: Symbol) -> bool:
    name = symbol.name
    return bool(symbol.flags & BSF_FILE) or (
        len(name) > 2 and name[-2] == "." and name[-1] in "oa"
    )


def _sort_key(symbol: Symbol) -> tuple:
    """``compare_symbols`` as a sort key, but for its second test (symbols of the section
    being disassembled first: `SectionSymbols` sorts by value and that, stably, after)."""
    flags = symbol.flags
    name = symbol.name
    size = 0 if flags & (BSF_SECTION_SYM | BSF_SYNTHETIC) else symbol.size
    return (
        symbol.value,
        "gnu_compiled" in name or "gcc2_compiled" in name,
        _is_file_like(symbol),
        bool(flags & BSF_DEBUGGING),
        bool(flags & BSF_SECTION_SYM),
        not flags & BSF_FUNCTION,
        not flags & BSF_OBJECT,
        bool(flags & BSF_LOCAL),
        not flags & BSF_GLOBAL,
        -size,
        name.startswith("."),
        name.encode("utf-8", "surrogateescape"),
    )


@dataclass
class SymbolTable:
    """The symbols of one file as objdump uses them when disassembling."""

    symbols: list[Symbol]
    dynamic_relocs: Sequence[DynamicReloc] = ()
    relocatable: bool = False  # BFD HAS_RELOC: prefer same-section symbols inside a section
    exec_or_dynamic: bool = True  # undefined symbols then get no +offset
    address_digits: int = 16
    prefix_addresses: bool = False  # --prefix-addresses: full-width addresses
    no_addresses: bool = False  # --no-addresses: no address before <sym>
    demangle: bool = False  # -C: C++ names as bfd_demangle prints them

    @classmethod
    def from_symbols(
        cls,
        symbols: Sequence[Symbol],
        synthetic: Sequence[Symbol] = (),
        dynamic_relocs: Sequence[DynamicReloc] = (),
        **kwargs,
    ) -> SymbolTable:
        kept = [s for s in symbols if _is_useful(s)]
        kept.extend(synthetic)
        return cls(kept, dynamic_relocs, **kwargs)

    def __post_init__(self) -> None:
        self._views: dict[str, SectionSymbols] = {}
        self._sorted: list[Symbol] | None = None    # by `_sort_key`, made once
        self._reloc_addresses = [r.address for r in self.dynamic_relocs]

    def __bool__(self) -> bool:
        return bool(self.symbols)

    def sorted_symbols(self) -> list[Symbol]:
        """The symbols in objdump's order but for the section test (see `_sort_key`)."""
        if self._sorted is None:
            self._sorted = sorted(self.symbols, key=_sort_key)
        return self._sorted

    def for_section(self, section: Section) -> SectionSymbols:
        """The symbols sorted as objdump sorts them while disassembling ``section``."""
        view = self._views.get(section.name)
        if view is None or view.section is not section:
            view = SectionSymbols(self, section)
            self._views[section.name] = view
        return view

    def names(self) -> set[str]:
        return {s.name for s in self.symbols}

    def reloc_symbol_at(self, vma: int) -> Symbol | None:
        """The symbol of the first non-absolute dynamic relocation at exactly ``vma``."""
        addresses = self._reloc_addresses
        i = bisect.bisect_left(addresses, vma)
        while i < len(addresses) and addresses[i] == vma:
            symbol = self.dynamic_relocs[i].symbol
            if symbol is not None and symbol.section != SEC_ABS:
                return symbol
            i += 1
        return None

    def symbol_name(self, symbol: Symbol) -> str:
        """``objdump_print_symname``: the name with ``@VERSION``/``@@VERSION`` if it has one."""
        name = symbol.name
        if self.demangle and name:
            name = demangle_symbol(name)
        name = sanitize(name)
        if symbol.version and not symbol.flags & (BSF_SECTION_SYM | BSF_SYNTHETIC):
            hidden = symbol.hidden or symbol.section == SEC_UNDEF
            name += ("@" if hidden else "@@") + symbol.version
        return name


class SectionSymbols:
    """Symbols sorted for one section, with objdump's lookup and address printing."""

    def __init__(self, table: SymbolTable, section: Section) -> None:
        self.table = table
        self.section = section
        name = section.name     # compare_symbols: by value, then this section's first, ...
        self.symbols = sorted(table.sorted_symbols(),
                              key=lambda s: (s.value, s.section_name != name))
        self.values = [s.value for s in self.symbols]
        self.printed: dict[int, str] = {}  # print_address texts: call sites of one function
        self._found: dict[int, tuple] = {}  # see find
        self._names: dict[int, str] = {}    # id(symbol), -C -> its printed name

    # -- lookup ----------------------------------------------------------------------------
    def _ok(self, symbol: Symbol, want_section: bool) -> bool:
        """``sym_ok``: with ``want_section``, only a symbol of this very section qualifies."""
        if not want_section:
            return True
        return symbol.section == self.section.index and symbol.section_name == self.section.name

    def find(self, vma: int, require_section: bool = False) -> tuple[Symbol | None, int]:
        """``find_symbol_for_address``: (symbol, its index in the sorted list) or (None, -1)."""
        values = self.values
        if not values:
            return None, -1
        # everything but the dynamic relocation check depends on where vma falls among the
        # values and whether only this section's symbols will do: memoised on that
        high = bisect.bisect_right(values, vma)
        section = self.section
        want_section = require_section or (
            self.table.relocatable and section.vma <= vma < section.vma + section.size
        )
        key = high + high + want_section
        hit = self._found.get(key)
        if hit is None:
            hit = self._found[key] = self._find(high, want_section)
        found, place, checked = hit
        if (
            checked
            and not want_section
            and self.table.dynamic_relocs
            and found.value - found.section_vma != vma
            and not found.flags & BSF_SYNTHETIC
            and self.table._reloc_addresses[0] <= vma <= self.table._reloc_addresses[-1]
        ):
            by_reloc = self.table.reloc_symbol_at(vma)
            if by_reloc is not None:
                return by_reloc, place
        return found, place

    def _find(self, high: int, want_section: bool) -> tuple[Symbol | None, int, bool]:
        """`find` for the addresses with ``high`` values at or below them: (symbol, index,
        whether a dynamic relocation at the address may name it instead)."""
        symbols, values = self.symbols, self.values
        count = len(symbols)
        # objdump's binary search over (low, high]: the first symbol of the highest value
        # not above vma, else the very first symbol (and then only it is probed)
        place = bisect.bisect_left(values, values[high - 1]) if high else 0
        high = max(high, 1)
        probe = place
        while probe < high and values[probe] == values[place]:
            if self._ok(symbols[probe], True):
                return symbols[probe], probe, False
            probe += 1

        if not self._ok(symbols[place], want_section):
            new_place = count
            for i in range(probe - 1, -1, -1):
                if self._ok(symbols[i], want_section):
                    if new_place == count:
                        new_place = i
                    if values[i] != values[new_place]:
                        break
                    new_place = i
            if new_place != count:
                place = new_place
            else:
                for i in range(place + 1, count):
                    if self._ok(symbols[i], want_section):
                        place = i
                        break
            if not self._ok(symbols[place], want_section):
                return None, -1, False
        return symbols[place], place, True

    # -- text ------------------------------------------------------------------------------
    def symbolic(self, symbol: Symbol | None, vma: int) -> str:
        """The ``<name+0xoff>`` part of ``objdump_print_addr_with_sym``."""
        if symbol is None:
            base = self.section.vma
            text = "<" + sanitize(self.section.name)
            if vma < base:
                text += f"-0x{base - vma:x}"
            elif vma > base:
                text += f"+0x{vma - base:x}"
            return text + ">"
        key = id(symbol) * 2 + self.table.demangle
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self.table.symbol_name(symbol)
        text = "<" + name
        value = symbol.value
        if value == vma or (self.table.exec_or_dynamic and symbol.section == SEC_UNDEF):
            pass
        elif value > vma:
            text += f"-0x{value - vma:x}"
        else:
            text += f"+0x{vma - value:x}"
        return text + ">"

    def value(self, vma: int) -> str:
        """``objdump_print_value``: hex, full width with ``--prefix-addresses``."""
        if self.table.prefix_addresses:
            digits = self.table.address_digits
            return f"{vma & ((1 << 4 * digits) - 1):0{digits}x}"
        return f"{vma:x}"

    def print_address(self, vma: int, require_section: bool = False) -> str:
        """objdump's ``print_address_func`` for this section: ``1139 <main+0x10>``
        (``--prefix-addresses``: full width; ``--no-addresses``: the ``<...>`` alone)."""
        text = self.printed.get(vma) if not require_section else None
        if text is None and not require_section and self.values and not (
                self.table.prefix_addresses or self.table.no_addresses):
            text = self.printed[vma] = self._plain_text(vma)
        if text is None:
            no_addresses = self.table.no_addresses
            if not self.symbols:
                text = "" if no_addresses else f"0x{self.value(vma)}"
            else:
                symbol, _ = self.find(vma, require_section)
                text = self.symbolic(symbol, vma)
                if not no_addresses:
                    text = f"{self.value(vma)} {text}"
            if not require_section:
                self.printed[vma] = text
        return text

    def _plain_text(self, vma: int) -> str:
        """`print_address` in the default layout: `find` and `symbolic` in one for a
        branch target's symbol of this section (most of them), else by them."""
        high = bisect.bisect_right(self.values, vma)
        table = self.table
        section = self.section
        want_section = table.relocatable and section.vma <= vma < section.vma + section.size
        key = high + high + want_section
        hit = self._found.get(key)
        if hit is None:
            hit = self._found[key] = self._find(high, want_section)
        found, _place, checked = hit
        if found is None:
            return f"{vma:x} {self.symbolic(None, vma)}"
        if checked and not want_section and table.dynamic_relocs:     # as `find` does
            by_reloc = None
            if found.value - found.section_vma != vma and \
                    not found.flags & BSF_SYNTHETIC and \
                    table._reloc_addresses[0] <= vma <= table._reloc_addresses[-1]:
                by_reloc = table.reloc_symbol_at(vma)
            found = by_reloc or found
        key = id(found) * 2 + table.demangle
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = table.symbol_name(found)
        value = found.value
        if value == vma or table.exec_or_dynamic and found.section == SEC_UNDEF:
            return f"{vma:x} <{name}>"
        if value > vma:
            return f"{vma:x} <{name}-0x{value - vma:x}>"
        return f"{vma:x} <{name}+0x{vma - value:x}>"

    def label(self, symbol: Symbol | None, vma: int) -> str:
        """A ``0000000000001139 <main>`` label (full-width address, no colon)."""
        if self.table.no_addresses:
            return self.symbolic(symbol, vma)
        digits = self.table.address_digits  # a 32-bit target prints the low 8 digits
        return f"{vma & ((1 << 4 * digits) - 1):0{digits}x} {self.symbolic(symbol, vma)}"
