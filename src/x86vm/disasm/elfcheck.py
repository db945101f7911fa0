"""Which ELF files BFD recognises as x86 objects: the checks of ``elf_object_p``.

objdump lists an ELF file only if one of its x86 target vectors accepts it (binutils 2.40
``bfd/elfcode.h`` ``elf_object_p``, run by ``bfd_check_format_matches``). The generic
``elf64-little``/``elf32-little`` vectors accept any machine but leave the architecture
unknown, so for a file no x86 vector takes objdump says "can't disassemble for architecture
UNKNOWN!". This module applies the same header checks to the raw bytes, before any parser
trusts a field, and says which of the two refusals objdump would give (or none).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

ReadAt = Callable[[int, int], bytes]  # (offset, size) -> the bytes there (short at the end)

EV_CURRENT = 1
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
ET_REL, ET_CORE = 1, 4
EM_386, EM_486, EM_X86_64, EM_IAMCU = 3, 6, 62, 180
SHN_UNDEF, SHN_LORESERVE, SHN_XINDEX = 0, 0xFF00, 0xFFFF
SHN_BEFORE, SHN_AFTER = 0xFF00, 0xFF01
PN_XNUM = 0xFFFF
SHT_RELA, SHT_REL, SHT_STRTAB = 4, 9, 3
SHF_INFO_LINK = 0x40
UNRECOGNIZED = "file format not recognized"
UNKNOWN_ARCH = "can't disassemble for architecture UNKNOWN!"

# (ELF class) -> x86 machine codes some x86 vector of Debian's objdump accepts:
# elf64-x86-64 (EM_X86_64); elf32-i386 (EM_386, alt EM_486), elf32-iamcu, elf32-x86-64 (x32)
X86_MACHINES = {ELFCLASS64: (EM_X86_64,), ELFCLASS32: (EM_386, EM_486, EM_IAMCU, EM_X86_64)}


class _Layout:
    """Header layouts of one ELF class (gABI "ELF Header", "Sections", "Program Header")."""

    def __init__(self, is64: bool) -> None:
        self.ehdr = struct.Struct("<16sHHIQQQIHHHHHH" if is64 else "<16sHHIIIIIHHHHHH")
        self.shdr = struct.Struct("<IIQQQQIIQQ" if is64 else "<IIIIIIIIII")
        self.phdr_size = 56 if is64 else 32
        self.phdr_align = 48 if is64 else 28  # offset of p_align
        self.word = "Q" if is64 else "I"


CORRUPT_SHSTRNDX = "has a corrupt string table index"


def bfd_refusal(read_at: ReadAt, file_size: int, warnings: list[str] | None = None) -> str | None:
    """Why objdump would not list the file ``read_at`` reads (``file_size`` bytes) as an
    x86 ELF object, in objdump's words; None if it would. BFD's warnings for a file it
    still takes are appended to ``warnings``: :data:`CORRUPT_SHSTRNDX` (an ``e_shstrndx``
    that is no string table: BFD then makes no sections at all, PR 2257)."""
    warnings = [] if warnings is None else warnings
    data = read_at(0, 64)
    if len(data) < 16 or bytes(data[:4]) != b"\x7fELF":
        return UNRECOGNIZED
    ei_class, ei_data, ei_version = data[4], data[5], data[6]
    if ei_class not in (ELFCLASS32, ELFCLASS64) or ei_version != EV_CURRENT:
        return UNRECOGNIZED
    if ei_data not in (ELFDATA2LSB, ELFDATA2MSB):
        return UNRECOGNIZED
    layout = _Layout(ei_class == ELFCLASS64)
    if len(data) < layout.ehdr.size:
        return UNRECOGNIZED
    generic_only = ei_data == ELFDATA2MSB  # only elf64-big/elf32-big: no x86 vector
    (_ident, e_type, e_machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize,
     e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = layout.ehdr.unpack_from(
        data if ei_data == ELFDATA2LSB else _swapped(data, layout), 0)
    del e_phentsize
    if e_type == ET_CORE:
        return UNRECOGNIZED
    ehdr_size = layout.ehdr.size
    if e_shoff < ehdr_size and e_type == ET_REL:
        return UNRECOGNIZED
    if e_shentsize != layout.shdr.size and e_shnum != 0:
        return UNRECOGNIZED
    if e_shoff < ehdr_size and e_shnum != 0:
        return UNRECOGNIZED
    if generic_only:
        return _structure(read_at, file_size, layout, e_phoff, e_shoff, e_shnum, e_shstrndx,
                          e_phnum, [], x86=False) or UNKNOWN_ARCH
    x86 = e_machine in X86_MACHINES[ei_class]
    found: list[str] = []
    refusal = _structure(read_at, file_size, layout, e_phoff, e_shoff, e_shnum, e_shstrndx,
                         e_phnum, found, x86=x86)
    if refusal is None and x86:
        warnings += found
    if refusal is None and not x86:
        return UNKNOWN_ARCH
    return refusal


def _swapped(data, layout):  # big-endian files only reach the generic vectors
    return bytes(data)  # their fields are never trusted beyond the class/data checks


def _structure(read_at: ReadAt, file_size: int, layout, e_phoff, e_shoff, e_shnum, e_shstrndx,
               e_phnum, warnings: list[str], *, x86: bool) -> str | None:
    """The section- and program-header checks of elf_object_p (same for every vector, but
    SHN_BEFORE/SHN_AFTER links are accepted by the x86 vectors only)."""
    ehdr_size = layout.ehdr.size
    shdr = layout.shdr
    if e_shoff >= ehdr_size:
        first = _read(read_at, file_size, e_shoff, shdr.size)
        if first is None:
            return UNRECOGNIZED
        _name, _type, _flags, _addr, _off, sh_size, sh_link, sh_info, _al, _es = \
            shdr.unpack(first)
        if e_shnum == SHN_UNDEF:
            e_shnum = sh_size
            if e_shnum >= SHN_LORESERVE or e_shnum == 0:
                return UNRECOGNIZED
        if e_shstrndx == SHN_XINDEX:
            e_shstrndx = sh_link
        if e_phnum == PN_XNUM and sh_info != 0:
            e_phnum = sh_info
        if e_shnum != 1:
            if e_shnum > 0xFFFFFFFF // shdr.size:
                return UNRECOGNIZED
            last = (e_shoff + (e_shnum - 1) * shdr.size) & ((1 << 64) - 1)
            if last <= e_shoff:
                return UNRECOGNIZED
            if _read(read_at, file_size, last, shdr.size) is None:
                return UNRECOGNIZED
    if e_shnum != 0:
        types = []
        for index in range(1, e_shnum):
            raw = _read(read_at, file_size, e_shoff + index * shdr.size, shdr.size)
            if raw is None:
                return UNRECOGNIZED
            _name, sh_type, sh_flags, _addr, _off, _size, sh_link, sh_info, _al, _es = \
                shdr.unpack(raw)
            types.append(sh_type)
            if sh_link >= e_shnum and not (x86 and sh_link in (SHN_BEFORE, SHN_AFTER)):
                return UNRECOGNIZED
            if (sh_flags & SHF_INFO_LINK or sh_type in (SHT_RELA, SHT_REL)) \
                    and sh_info >= e_shnum:
                return UNRECOGNIZED
        if e_shstrndx >= e_shnum or (e_shstrndx == 0 or types[e_shstrndx - 1] != SHT_STRTAB):
            warnings.append(CORRUPT_SHSTRNDX)
    elif e_shstrndx != SHN_UNDEF:
        return UNRECOGNIZED
    if e_phnum:
        if file_size and e_phnum > file_size // layout.phdr_size:
            return UNRECOGNIZED
        if _read(read_at, file_size, e_phoff, e_phnum * layout.phdr_size) is None:
            return UNRECOGNIZED
    return None


def _read(read_at: ReadAt, file_size: int, offset: int, size: int) -> bytes | None:
    """``size`` bytes at ``offset`` of the file, or None past its end."""
    if offset < 0 or offset + size > file_size:
        return None
    data = read_at(offset, size)
    return data if len(data) == size else None
