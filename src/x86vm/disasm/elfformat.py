"""The ELF vocabulary BFD's checks are written in: constants, header layouts, the section
header as BFD keeps it, the file it reads and the verdict objdump reaches (used by
x86vm/disasm/elfcheck.py and x86vm/disasm/elfnotes.py)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

ReadAt = Callable[[int, int], bytes]  # (offset, size) -> the bytes there (short at the end)

EV_CURRENT = 1
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
EM_386, EM_486, EM_X86_64, EM_IAMCU = 3, 6, 62, 180
SHN_UNDEF, SHN_LORESERVE, SHN_XINDEX = 0, 0xFF00, 0xFFFF
SHN_BEFORE, SHN_AFTER = 0xFF00, 0xFF01
PN_XNUM = 0xFFFF
# gABI section types (and the GNU/x86-64 ones BFD knows)
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_HASH, SHT_DYNAMIC = range(7)
SHT_NOTE, SHT_NOBITS, SHT_REL, SHT_SHLIB, SHT_DYNSYM = 7, 8, 9, 10, 11
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY, SHT_GROUP, SHT_SYMTAB_SHNDX = 14, 15, 16, 17, 18
SHT_RELR = 19
SHT_LOOS, SHT_GNU_ATTRIBUTES, SHT_GNU_HASH, SHT_GNU_LIBLIST = 0x60000000, 0x6FFFFFF5, 0x6FFFFFF6, \
    0x6FFFFFF7
SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM, SHT_HIOS = 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF, \
    0x6FFFFFFF
SHT_LOPROC, SHT_X86_64_UNWIND, SHT_HIPROC = 0x70000000, 0x70000001, 0x7FFFFFFF
SHT_LOUSER, SHT_HIUSER = 0x80000000, 0xFFFFFFFF
SHF_ALLOC, SHF_INFO_LINK, SHF_LINK_ORDER, SHF_OS_NONCONFORMING, SHF_GROUP = 0x2, 0x40, 0x80, \
    0x100, 0x200
GRP_ENTRY_SIZE = 4
SHF_COMPRESSED = 0x800
# the sections BFD treats as debugging information, by name (SEC_DEBUGGING, SEC_ELF_OCTETS)
DEBUG_PREFIXES = (".debug", ".gnu.debuglto_.debug_", ".gnu.linkonce.wi.", ".zdebug")

UNRECOGNIZED = "file format not recognized"
UNKNOWN_ARCH = "can't disassemble for architecture UNKNOWN!"
CORRUPT_SHSTRNDX = "warning: {path} has a corrupt string table index"
PAST_END = "warning: {path} has a section extending past end of file"
BAD_ALIGNMENT = "warning: {path} has a program header with invalid alignment"

# Section types bfd_section_from_shdr makes a plain section of, whatever their fields.
PLAIN_TYPES = frozenset({SHT_PROGBITS, SHT_NOBITS, SHT_HASH, SHT_NOTE, SHT_INIT_ARRAY,
                         SHT_FINI_ARRAY, SHT_PREINIT_ARRAY, SHT_GNU_LIBLIST, SHT_GNU_HASH})
# (ELF class) -> {machine: x86 vector} of Debian's objdump: elf64-x86-64; elf32-i386 (which
# takes EM_486 too), elf32-iamcu, elf32-x86-64 (x32)
X86_VECTORS = {ELFCLASS64: {EM_X86_64: "elf64-x86-64"},
               ELFCLASS32: {EM_386: "elf32-i386", EM_486: "elf32-i386",
                            EM_IAMCU: "elf32-iamcu", EM_X86_64: "elf32-x86-64"}}
X86_MACHINES = {cls: tuple(vectors) for cls, vectors in X86_VECTORS.items()}


class _Layout:
    """Header layouts of one ELF class (gABI "ELF Header", "Sections", "Program Header")."""

    def __init__(self, is64: bool, big_endian: bool = False) -> None:
        self.is64 = is64
        self.e = e = ">" if big_endian else "<"
        self.ehdr = struct.Struct(e + ("16sHHIQQQIHHHHHH" if is64 else "16sHHIIIIIHHHHHH"))
        self.shdr = struct.Struct(e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII"))
        self.phdr_size = 56 if is64 else 32
        self.phdr_align = 48 if is64 else 28  # offset of p_align
        self.word = "Q" if is64 else "I"
        self.sym_size = 24 if is64 else 16
        self.reloc_sizes = {SHT_REL: 16 if is64 else 8, SHT_RELA: 24 if is64 else 12,
                            SHT_RELR: 8 if is64 else 4}


@dataclass
class Shdr:
    """One section header as BFD keeps it (``Elf_Internal_Shdr``)."""

    index: int
    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    contents: bytes | None = None  # a string table BFD has read
    section: str | None = None  # the name of the BFD section made of it
    group: list | None = None  # SHT_GROUP: [flags, member Shdr or None, ...]
    group_name: str | None = None
    next_in_group: bool = False


@dataclass
class BfdView:
    """objdump's verdict on one file: refused (``refusal``) or its format and sections."""

    refusal: str | None = None  # objdump's reason, printed as "FILE: reason"
    messages: list[str] = field(default_factory=list)  # BFD's lines for this file
    format_name: str = ""
    no_sections: bool = False  # e_shstrndx unusable: BFD makes no sections (PR 2257)
    sections: list[int] = field(default_factory=list)  # header indexes, in creation order
    symtab: int = 0
    dynsym: int = 0
    fatal: list[str] | None = None  # objdump's lines when reading the symbols fails
    shdrs: list[Shdr] = field(default_factory=list)
    ehdr: bytes = b""
    segments: list[Segment] | None = None  # a core file: BFD's sections are its segments
    group_names: dict[int, str] = field(default_factory=dict)  # section index -> group


@dataclass
class Segment:
    """A section BFD makes of a core file's program header (_bfd_elf_make_section_from_phdr):
    ``load3``, or ``load5a``/``load5b`` for the file and memory-only parts."""

    name: str
    vma: int
    size: int
    offset: int
    has_contents: bool
    is_code: bool



class _File:
    def __init__(self, path: str, read_at: ReadAt, size: int) -> None:
        self.path, self.read_at, self.size = path, read_at, size
        self.read_only = False  # set by BFD's first "warning: FILE has ..." (one per file)

    def read(self, offset: int, size: int) -> bytes | None:
        """``size`` bytes at ``offset``, or None past the end (a short bfd_bread)."""
        if offset < 0 or size < 0 or offset >= 1 << 63 or offset + size > self.size:
            return None
        data = self.read_at(offset, size)
        return data if len(data) == size else None
