"""objdump's header dumps of an ELF file: ``-f`` (file header), ``-h`` (section headers),
``-t`` (symbol table) and ``-T`` (dynamic symbol table), as binutils 2.40 prints them.

Sources of each field (binutils 2.40):

* ``-f``: objdump.c ``dump_bfd_header``; the flags from elfcode.h ``elf_object_p`` (EXEC_P
  for ET_EXEC, DYNAMIC for ET_DYN, D_PAGED when there are program headers), HAS_SYMS for a
  symbol table, HAS_RELOC for relocations BFD attaches to a section; the start address is
  e_entry.
* ``-h``: objdump.c ``dump_headers``/``dump_section_header``; the flags from elf.c
  ``_bfd_elf_make_section_from_shdr`` (SHF_* and names: debugging sections, OCTETS), RELOC on
  the target of a relocation section, the LMA from the PT_LOAD/PT_TLS segment holding the
  section (``ELF_SECTION_IN_SEGMENT``), the alignment as a power of two.
* ``-t``/``-T``: objdump.c ``dump_symbols`` and elf.c ``bfd_elf_print_symbol`` (value, the
  seven flag letters of syms.c ``bfd_print_symbol_vandf``, section, size -- the alignment
  for common symbols --, the version column when the file has version sections, visibility,
  name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from x86vm.disasm import elf as elfmod
from x86vm.disasm.symbols import sanitize

# bfd.h file flags
HAS_RELOC, EXEC_P, HAS_SYMS, DYNAMIC, D_PAGED = 0x1, 0x2, 0x10, 0x40, 0x100
_FILE_FLAGS = ((HAS_RELOC, "HAS_RELOC"), (EXEC_P, "EXEC_P"), (0x4, "HAS_LINENO"),
               (0x8, "HAS_DEBUG"), (HAS_SYMS, "HAS_SYMS"), (0x20, "HAS_LOCALS"),
               (DYNAMIC, "DYNAMIC"), (0x80, "WP_TEXT"), (D_PAGED, "D_PAGED"),
               (0x200, "BFD_IS_RELAXABLE"))
ARCHITECTURES = {"elf64-x86-64": "i386:x86-64", "elf32-x86-64": "i386:x64-32",
                 "elf32-i386": "i386", "elf32-iamcu": "iamcu"}

# SHF_* (gABI) and the section types that matter here
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_MERGE, SHF_STRINGS = 0x1, 0x2, 0x4, 0x10, 0x20
SHF_TLS, SHF_EXCLUDE = 0x400, 0x80000000
SHF_GROUP, GRP_COMDAT = 0x200, 0x1
SHT_NOBITS, SHT_GROUP = 8, 17
PT_LOAD, PT_DYNAMIC, PT_NOTE, PT_PHDR, PT_TLS = 1, 2, 4, 6, 7

# The section flags objdump prints, in its order (dump_section_header; ELF flavour).
_SECTION_FLAGS = ("CONTENTS", "ALLOC", "LOAD", "RELOC", "READONLY", "CODE", "DATA",
                  "DEBUGGING", "EXCLUDE", "MERGE_UNUSED", "OCTETS", "THREAD_LOCAL", "GROUP")
_DEBUG_PREFIXES = (".debug", ".gnu.debuglto_.debug_", ".gnu.linkonce.wi.", ".zdebug")


@dataclass
class SectionHeader:
    """One BFD section as ``objdump -h`` shows it."""

    index: int
    name: str
    size: int
    vma: int
    lma: int
    file_offset: int
    align_power: int
    flags: list[str]


@dataclass
class FileHeaders:
    """What the header dumps need from one ELF file (read once with `read_headers`)."""

    path: str
    format_name: str
    address_digits: int
    start_address: int
    file_flags: int
    sections: list[SectionHeader]
    symbols: list[elfmod.Symbol]          # the static table (index 1 on)
    dynamic_symbols: list[elfmod.Symbol]
    has_symtab: bool
    has_dynsym: bool
    has_versions: bool                    # versym with verdef/verneed: a version column


def read_headers(path: str, stream: BinaryIO) -> FileHeaders:
    """Read the ELF headers, section headers, program headers and both symbol tables."""
    try:
        loader = elfmod._Loader(path, stream)
        image = loader.load()
    except elfmod.ElfFormatError:
        raise
    except Exception as exc:  # pyelftools raises many types on malformed input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise elfmod.ElfFormatError(f"malformed ELF file, headers not listed ({reason})") \
            from None
    ehdr = loader.elf.header
    phdrs = [seg.header for seg in loader.elf.iter_segments()] if ehdr["e_phnum"] else []
    reloc_targets = {hdr["sh_info"] for hdr in loader.headers
                     if elfmod._sh_type(hdr) in (elfmod.SHT_REL, elfmod.SHT_RELA)
                     and loader._relocs_of_other_section(hdr)}
    sections = [_section_header(n, s, loader.headers[s.index], phdrs, s.index in reloc_targets)
                for n, s in enumerate(image.sections)]
    flags = 0
    if image.elf_type == elfmod.ET_EXEC:
        flags |= EXEC_P
    elif image.elf_type == elfmod.ET_DYN:
        flags |= DYNAMIC
    if ehdr["e_phnum"]:
        flags |= D_PAGED
    if loader.symtab_index or loader.dynsym_index:
        flags |= HAS_SYMS
    if image.has_reloc:
        flags |= HAS_RELOC
    types = {elfmod._sh_type(h) for h in loader.headers}
    has_versions = elfmod.SHT_GNU_VERSYM in types and bool(
        types & {elfmod.SHT_GNU_VERDEF, elfmod.SHT_GNU_VERNEED})
    return FileHeaders(
        path=path, format_name=image.format_name, address_digits=image.address_digits,
        start_address=ehdr["e_entry"], file_flags=flags, sections=sections,
        symbols=loader._read_symbols(loader.symtab_index, dynamic=False),
        dynamic_symbols=loader._read_symbols(loader.dynsym_index, dynamic=True),
        has_symtab=bool(loader.symtab_index), has_dynsym=bool(loader.dynsym_index),
        has_versions=has_versions)


def _log2(value: int) -> int:
    """bfd_log2: the smallest n with 2**n >= value."""
    return max(0, (value - 1).bit_length()) if value > 1 else 0


def _section_header(index: int, section: elfmod.Section, hdr, phdrs: Sequence,
                    has_relocs: bool) -> SectionHeader:
    sh_flags, sh_type = hdr["sh_flags"], _shtype(hdr)
    name = section.name
    flags = set()
    if sh_type != SHT_NOBITS:
        flags.add("CONTENTS")
    if sh_type == SHT_GROUP:
        flags.add("GROUP")
    if sh_flags & SHF_ALLOC:
        flags.add("ALLOC")
        if sh_type != SHT_NOBITS:
            flags.add("LOAD")
    if not sh_flags & SHF_WRITE:
        flags.add("READONLY")
    if sh_flags & SHF_EXECINSTR:
        flags.add("CODE")
    elif "LOAD" in flags:
        flags.add("DATA")
    if sh_flags & SHF_TLS:
        flags.add("THREAD_LOCAL")
    if sh_flags & SHF_EXCLUDE:
        flags.add("EXCLUDE")
    if not sh_flags & SHF_ALLOC and name.startswith("."):
        if name.startswith(_DEBUG_PREFIXES):
            flags.update(("DEBUGGING", "OCTETS"))
        elif name.startswith((".gnu.build.attributes", ".note.gnu")):
            flags.add("OCTETS")
        elif name.startswith((".line", ".stab")) or name == ".gdb_index":
            flags.add("DEBUGGING")
    if has_relocs:
        flags.add("RELOC")
    align = hdr["sh_addralign"]
    shown = [f for f in _SECTION_FLAGS if f in flags]
    if sh_type == SHT_GROUP and section.size >= 4:
        if int.from_bytes(section.data()[:4], "little") & GRP_COMDAT:
            shown.append("LINK_ONCE_DISCARD")       # elf.c setup_group: a COMDAT group
    elif name.startswith(".gnu.linkonce") and not sh_flags & SHF_GROUP:
        shown.append("LINK_ONCE_DISCARD")
    lma = section.vma
    if sh_flags & SHF_ALLOC:
        lma = _lma(hdr, sh_type, "LOAD" in flags, phdrs, lma)
    return SectionHeader(index, name, section.size, section.vma, lma, hdr["sh_offset"],
                         _log2(align & -align), shown)


def _lma(hdr, sh_type: int, loaded: bool, phdrs: Sequence, vma: int) -> int:
    """elf.c: the LMA from the segment that holds the section (else the VMA)."""
    nload = 0
    for ph in phdrs:
        if ph["p_paddr"] != 0:
            break
        if _ptype(ph) == PT_LOAD and ph["p_memsz"] != 0:
            nload += 1
    else:
        if nload > 1:
            return vma
    lma = vma
    tls = hdr["sh_flags"] & SHF_TLS
    for ph in phdrs:
        ptype = _ptype(ph)
        if not ((ptype == PT_LOAD and not tls) or ptype == PT_TLS):
            continue
        if not _in_segment(hdr, sh_type, ph, ptype):
            continue
        if not loaded:
            lma = ph["p_paddr"] + hdr["sh_addr"] - ph["p_vaddr"]
        else:
            lma = ph["p_paddr"] + hdr["sh_offset"] - ph["p_offset"]
        if hdr["sh_addr"] >= ph["p_vaddr"] and \
                hdr["sh_addr"] + hdr["sh_size"] <= ph["p_vaddr"] + ph["p_memsz"]:
            break
    return lma & ((1 << 64) - 1)


def _shtype(hdr) -> int:
    value = hdr["sh_type"]
    if isinstance(value, int):
        return value
    return {"SHT_NOBITS": SHT_NOBITS, "SHT_GROUP": SHT_GROUP}.get(value, elfmod._sh_type(hdr))


def _ptype(ph) -> int:
    value = ph["p_type"]
    if isinstance(value, int):
        return value
    return {"PT_LOAD": PT_LOAD, "PT_DYNAMIC": PT_DYNAMIC, "PT_NOTE": PT_NOTE,
            "PT_PHDR": PT_PHDR, "PT_TLS": PT_TLS}.get(value, -1)


def _in_segment(hdr, sh_type: int, ph, ptype: int) -> bool:
    """ELF_SECTION_IN_SEGMENT (include/elf/internal.h) for a PT_LOAD or PT_TLS segment."""
    tls = hdr["sh_flags"] & SHF_TLS
    if tls and ptype not in (PT_TLS, PT_LOAD):
        return False
    if not tls and ptype in (PT_TLS, PT_PHDR):
        return False
    size = hdr["sh_size"] if not (tls and sh_type == SHT_NOBITS) or ptype == PT_TLS else 0
    if sh_type != SHT_NOBITS:
        if hdr["sh_offset"] < ph["p_offset"] or \
                hdr["sh_offset"] - ph["p_offset"] + size > ph["p_filesz"]:
            return False
    if hdr["sh_flags"] & SHF_ALLOC:
        if hdr["sh_addr"] < ph["p_vaddr"] or \
                hdr["sh_addr"] - ph["p_vaddr"] + size > ph["p_memsz"]:
            return False
    return True


def file_header_text(info: FileHeaders) -> str:
    """``-f``: architecture, flags and start address (after the file format line)."""
    names = [name for bit, name in _FILE_FLAGS if info.file_flags & bit]
    return (f"architecture: {ARCHITECTURES.get(info.format_name, 'i386')}, "
            f"flags 0x{info.file_flags:08x}:\n{', '.join(names)}\n"
            f"start address 0x{info.start_address:0{info.address_digits}x}\n")


def section_headers_text(info: FileHeaders, wide: bool = False,
                         only: Sequence[str] | None = None) -> str:
    """``-h``: the "Sections:" table (``-w``: one line each, name column as wide as needed)."""
    shown = [s for s in info.sections if only is None or s.name in only]
    digits = info.address_digits
    width = 13
    if wide:
        width = max([width, *(len(s.name) for s in shown)])
    vma_width = 18 if digits == 16 else 10
    out = [f"Sections:\nIdx {'Name':<{width}} Size      {'VMA':<{vma_width}}"
           f"{'LMA':<{vma_width}}File off  Algn" + ("  Flags" if wide else "") + "\n"]
    mask = (1 << 4 * digits) - 1
    for s in shown:
        out.append(f"{s.index:3d} {sanitize(s.name):<{width}} {s.size & 0xFFFFFFFFFFFFFFFF:08x}"
                   f"  {s.vma & mask:0{digits}x}  {s.lma & mask:0{digits}x}"
                   f"  {s.file_offset:08x}  2**{s.align_power}")
        out.append("  " if wide else "\n                  ")
        out.append(", ".join(s.flags) + "\n")
    return "".join(out)


def symbols_text(info: FileHeaders, dynamic: bool,
                 demangle: Callable[[str], str] | None = None,
                 only: Sequence[str] | None = None) -> str:
    """``-t`` (``dynamic`` False) or ``-T``: the symbol table as ``dump_symbols`` prints it."""
    symbols = info.dynamic_symbols if dynamic else info.symbols
    out = ["DYNAMIC SYMBOL TABLE:\n" if dynamic else "SYMBOL TABLE:\n"]
    if not symbols:
        out.append("no symbols\n")
    digits = info.address_digits
    mask = (1 << 4 * digits) - 1
    for sym in symbols:
        section_name = sym.section_name
        if only is not None and section_name not in only:
            continue
        st_info, st_other, st_shndx, st_value = sym.elf
        flags = sym.flags
        bind, stype = st_info >> 4, st_info & 0xF
        common = sym.section == elfmod.SEC_COMMON
        value = sym.size if common else sym.value
        size = st_value if common else sym.size
        scope = ("!" if flags & elfmod.BSF_GLOBAL else "l") if flags & elfmod.BSF_LOCAL else \
            "g" if flags & elfmod.BSF_GLOBAL else "u" if bind == elfmod.STB_GNU_UNIQUE else " "
        letters = (scope + ("w" if flags & elfmod.BSF_WEAK else " ") + "  "
                   + ("i" if stype == elfmod.STT_GNU_IFUNC else " ")
                   + ("d" if flags & elfmod.BSF_DEBUGGING else "D" if dynamic else " ")
                   + ("F" if flags & elfmod.BSF_FUNCTION else "f" if flags & elfmod.BSF_FILE
                      else "O" if flags & elfmod.BSF_OBJECT else " "))
        name = sym.name
        if demangle is not None and name:
            name = demangle(name)
        line = f"{value & mask:0{digits}x} {letters} {section_name}\t{size & mask:0{digits}x}"
        if info.has_versions:
            version = sym.version if dynamic else ""
            if dynamic and sym.hidden:
                line += f" ({version})" + " " * max(0, 10 - len(version))
            else:
                line += f"  {version:<11}"
        visibility = st_other
        if visibility:
            line += {1: " .internal", 2: " .hidden", 3: " .protected"}.get(
                visibility, f" 0x{visibility:02x}")
        out.append(f"{line} {name}\n")
    out.append("\n\n")
    return "".join(out)
