"""Which ELF files BFD recognises as x86 objects, and what it says about them.

objdump never reads an ELF file directly: ``bfd_check_format_matches`` (binutils 2.40
``bfd/format.c``) runs each target vector's ``elf_object_p`` (``bfd/elfcode.h``), which checks
the ELF header, reads every section header and turns each into a BFD section with
``bfd_section_from_shdr`` (``bfd/elf.c``). One failed check anywhere refuses the file for that
vector. The generic ``elf64-little``/``elf32-little`` vectors accept any machine but leave the
architecture unknown, so for a file no x86 vector takes objdump says "can't disassemble for
architecture UNKNOWN!". This module replays those checks on the raw bytes, before any parser
trusts a field, and returns objdump's verdict: the refusal, the messages BFD prints (its
per-vector message cache: the matching vector's messages on success, on failure only when a
single vector had any), the sections BFD made, and what objdump will fail on later (the symbol
table's size, sections that extend past the end of the file).
"""

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


# bfd_section_from_phdr: the name of a segment's section, by p_type ("proc" for the others)
PT_NAMES = {0: "null", 1: "load", 2: "dynamic", 3: "interp", 4: "note", 5: "shlib", 6: "phdr",
            7: "tls", 0x6474E550: "eh_frame_hdr", 0x6474E551: "stack", 0x6474E552: "relro",
            0x6474E554: "sframe"}
PT_LOAD, PT_NOTE, PF_X = 1, 4, 1
SEGMENT_PAST_END = "warning: {path} has a segment extending past end of file"


def _core_view(file: _File, layout: _Layout, header: tuple, data: bytes, ei_data: int) -> BfdView:
    """elf_core_file_p (bfd/elfcore.h) with the x86 vector, else the generic one."""
    e_machine, e_phoff, e_shoff, e_phentsize, e_phnum = (header[i] for i in (2, 5, 6, 9, 10))
    if e_phoff == 0 or e_phentsize != layout.phdr_size:
        return BfdView(UNRECOGNIZED)
    if e_shoff != 0 and e_phnum == PN_XNUM:
        first = file.read(e_shoff, layout.shdr.size)
        if first is None:
            return BfdView(UNRECOGNIZED)
        e_phnum = layout.shdr.unpack(first)[7]
    if file.size and e_phnum > file.size // layout.phdr_size:
        return BfdView(UNRECOGNIZED)
    phdr = struct.Struct(layout.e + ("IIQQQQQQ" if layout.is64 else "IIIIIIII"))
    phdrs = []
    for index in range(e_phnum):
        raw = file.read(e_phoff + index * layout.phdr_size, layout.phdr_size)
        if raw is None:
            return BfdView(UNRECOGNIZED)
        fields = phdr.unpack(raw)
        if layout.is64:
            p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = fields
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_flags, _align = fields
        phdrs.append((p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
    segments = []
    for index, (p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz) in enumerate(phdrs):
        kind = PT_NAMES.get(p_type, "proc")
        split = p_memsz > 0 and p_filesz > 0 and p_memsz > p_filesz
        code = p_type == PT_LOAD and bool(p_flags & PF_X)
        if p_filesz > 0:
            segments.append(Segment(f"{kind}{index}{'a' if split else ''}", p_vaddr, p_filesz,
                                    p_offset, True, code))
        if p_memsz > p_filesz:
            segments.append(Segment(f"{kind}{index}{'b' if split else ''}",
                                    (p_vaddr + p_filesz) & ((1 << 64) - 1),
                                    p_memsz - p_filesz, p_offset + p_filesz, False, code))
        if p_type == PT_NOTE and p_filesz and not _notes_parse(file, layout, p_offset,
                                                               p_filesz, _align):
            return BfdView(UNRECOGNIZED)
    messages = []
    for _type, _flags, p_offset, _vaddr, p_filesz, _memsz in phdrs:
        if p_filesz and file.size and (p_offset >= file.size
                                       or p_filesz > file.size - p_offset):
            messages.append(SEGMENT_PAST_END.format(path=file.path))
            break
    x86_name = None if ei_data == ELFDATA2MSB else X86_VECTORS[layout.is64 + 1].get(e_machine)
    if x86_name is None:
        return BfdView(UNKNOWN_ARCH, messages)
    return BfdView(None, messages, x86_name, ehdr=bytes(data[:layout.ehdr.size]),
                   segments=segments)


def _notes_parse(file: _File, layout: _Layout, offset: int, size: int, align: int) -> bool:
    """elf_read_notes and the structure checks of elf_parse_notes (a core file's notes)."""
    if size + 1 >= 1 << 64:
        return True
    buf = file.read(offset, size)
    if buf is None:
        return False
    align = 4 if align < 4 else align
    if align not in (4, 8):
        return False
    at = 0
    while at < size:
        if 12 > size - at:
            return False
        namesz, descsz, _type = struct.unpack_from(layout.e + "III", buf, at)
        if namesz > size - at - 12:
            return False
        desc_at = at + ((12 + namesz + align - 1) & -align)
        if descsz != 0 and (desc_at >= size or descsz > size - desc_at):
            return False
        at = desc_at + ((descsz + align - 1) & -align)
    return True


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


class _Refused(Exception):
    pass


class _Vector:
    """One target vector's ``elf_object_p`` on the file (x86 or the generic one)."""

    def __init__(self, file: _File, layout: _Layout, header: tuple, x86: bool) -> None:
        self.file, self.layout, self.x86 = file, layout, x86
        self.x86_64_backend = x86 and header[2] == EM_X86_64
        (_ident, self.e_type, self.e_machine, _v, _entry, self.e_phoff, self.e_shoff, _flags,
         _ehsize, _phentsize, self.e_phnum, self.e_shentsize, self.e_shnum,
         self.e_shstrndx) = header
        self.ehdr = b""
        self.messages: list[str] = []
        self.shdrs: list[Shdr] = []
        self.onesymtab = self.dynsymtab = 0
        self.being_created: set[int] = set()
        self.made: list[Shdr] = []
        self.shndx_list: list[Shdr] = []
        self.rel_targets: set[tuple[int, int]] = set()
        self.num_group: int | None = None  # None: not counted yet; -1: none
        self.groups: list[Shdr | None] = []
        self.no_sections = False
        self.verdef: Shdr | None = None
        self.verneed: Shdr | None = None
        self.versym: Shdr | None = None

    def say(self, text: str) -> None:
        self.messages.append(text.format(path=self.file.path))

    def warn_once(self, text: str) -> None:
        if not self.file.read_only:
            self.say(text)
            self.file.read_only = True

    # -- elf_object_p ------------------------------------------------------------------------
    def object_p(self) -> bool:
        try:
            self._headers()
            if self.e_shstrndx != 0 and self.e_shoff >= self.layout.ehdr.size:
                for index in range(1, len(self.shdrs)):
                    if not self.from_shdr(index):
                        return False
                if not self._setup_sections():
                    return False
        except _Refused:
            return False
        return True

    def _swap_in(self, index: int, raw: bytes) -> Shdr:
        shdr = Shdr(index, *self.layout.shdr.unpack(raw))
        size = self.file.size
        if shdr.type != SHT_NOBITS and size and (shdr.offset > size
                                                 or shdr.size > size - shdr.offset):
            self.warn_once(PAST_END)
        return shdr

    def _headers(self) -> None:
        layout, file = self.layout, self.file
        shdr_size, ehdr_size = layout.shdr.size, layout.ehdr.size
        e_shnum, first = self.e_shnum, None
        if self.e_shoff >= ehdr_size:
            raw = file.read(self.e_shoff, shdr_size)
            if raw is None:
                raise _Refused
            first = self._swap_in(0, raw)
            if e_shnum == SHN_UNDEF:
                e_shnum = first.size
                if e_shnum >= SHN_LORESERVE or e_shnum == 0:
                    raise _Refused
            if self.e_shstrndx == SHN_XINDEX:
                self.e_shstrndx = first.link
            if self.e_phnum == PN_XNUM and first.info != 0:
                self.e_phnum = first.info
            if e_shnum != 1:
                if e_shnum > 0xFFFFFFFF // shdr_size:
                    raise _Refused
                last = (self.e_shoff + (e_shnum - 1) * shdr_size) & ((1 << 64) - 1)
                if last <= self.e_shoff or file.read(last, shdr_size) is None:
                    raise _Refused
        if e_shnum != 0:
            if first is None:  # e_shoff < the header and e_shnum != 0 was refused before
                raise _Refused
            self.shdrs = [first]
            for index in range(1, e_shnum):
                raw = file.read(self.e_shoff + index * shdr_size, shdr_size)
                if raw is None:
                    raise _Refused
                shdr = self._swap_in(index, raw)
                self.shdrs.append(shdr)
                if shdr.link >= e_shnum and not (self.x86 and shdr.link in (SHN_BEFORE,
                                                                            SHN_AFTER)):
                    raise _Refused
                if (shdr.flags & SHF_INFO_LINK or shdr.type in (SHT_RELA, SHT_REL)) \
                        and shdr.info >= e_shnum:
                    raise _Refused
            if self.e_shstrndx >= e_shnum or self.shdrs[self.e_shstrndx].type != SHT_STRTAB:
                self.e_shstrndx = SHN_UNDEF
                self.no_sections = True
                self.warn_once(CORRUPT_SHSTRNDX)
        elif self.e_shstrndx != SHN_UNDEF:
            raise _Refused
        if self.e_phnum:
            if file.size and self.e_phnum > file.size // layout.phdr_size:
                raise _Refused
            for index in range(self.e_phnum):
                raw = file.read(self.e_phoff + index * layout.phdr_size, layout.phdr_size)
                if raw is None:
                    raise _Refused
                align, = struct.unpack_from(layout.e + layout.word, raw, layout.phdr_align)
                if align != align & -align:
                    self.warn_once(BAD_ALIGNMENT)

    # -- strings -----------------------------------------------------------------------------
    def string(self, shindex: int, strindex: int) -> str | None:
        """bfd_elf_string_from_elf_section."""
        if strindex == 0:
            return ""
        if shindex >= len(self.shdrs):
            return None
        hdr = self.shdrs[shindex]
        if hdr.contents is None:
            if hdr.type != SHT_STRTAB and hdr.type < SHT_LOOS:
                self.say("{path}: attempt to load strings from a non-string section "
                         f"(number {shindex})")
                return None
            if hdr.size + 1 <= 1 or hdr.size + 1 >= 1 << 64:
                hdr.size = 0
                return None
            data = self.file.read(hdr.offset, hdr.size)
            if data is None:
                hdr.size = 0
                return None
            hdr.contents = data + b"\0"
        elif hdr.size == 0 or hdr.contents[hdr.size - 1] != 0:
            return None
        if strindex >= hdr.size:
            if shindex == self.e_shstrndx and strindex == hdr.name:
                what = ".shstrtab"
            else:
                what = self.string(self.e_shstrndx, hdr.name)
            self.say(f"{{path}}: invalid string offset {strindex} >= {hdr.size} for section "
                     f"`{'(null)' if what is None else what}'")
            return None
        end = hdr.contents.index(b"\0", strindex)
        return hdr.contents[strindex:end].decode("utf-8", "surrogateescape")

    # -- bfd_section_from_shdr ---------------------------------------------------------------
    def from_shdr(self, shindex: int) -> bool:
        if shindex >= len(self.shdrs):
            return False
        if shindex in self.being_created:
            self.say("{path}: warning: loop in section dependencies detected")
            return False
        self.being_created.add(shindex)
        try:
            return self._from_shdr(shindex)
        finally:
            self.being_created.discard(shindex)

    def _from_shdr(self, shindex: int) -> bool:  # noqa: C901 - one case per section type
        hdr = self.shdrs[shindex]
        name = self.string(self.e_shstrndx, hdr.name)
        if name is None:
            return False
        kind, num = hdr.type, len(self.shdrs)
        if kind == SHT_NULL or kind == SHT_SHLIB:
            return True
        if kind in PLAIN_TYPES:
            return self.make(hdr, name)
        if kind == SHT_DYNAMIC:
            if not self.make(hdr, name):
                return False
            if hdr.link > num:
                return self.x86 and hdr.link in (SHN_BEFORE, SHN_AFTER)
            return True
        if kind in (SHT_SYMTAB, SHT_DYNSYM):
            dynamic = kind == SHT_DYNSYM
            if (self.dynsymtab if dynamic else self.onesymtab) == shindex:
                return True
            if hdr.entsize != self.layout.sym_size:
                return False
            if (hdr.info * hdr.entsize) & ((1 << 64) - 1) > hdr.size:
                if hdr.size != 0:
                    return False
                hdr.info = 0
                return True
            if (self.dynsymtab if dynamic else self.onesymtab) != 0:
                what = "dynamic symbol tables" if dynamic else "symbol tables"
                self.say(f"{{path}}: warning: multiple {what} detected - ignoring the table "
                         f"in section {shindex}")
                return True
            if dynamic:
                self.dynsymtab = shindex
                return self.make(hdr, name)
            self.onesymtab = shindex
            if hdr.flags & SHF_ALLOC and self.e_type == ET_DYN and not self.make(hdr, name):
                return False
            if any(entry.link == shindex for entry in self.shndx_list):
                return True
            order = [*range(shindex + 1, num), *range(1, shindex)]
            for i in order:
                if self.shdrs[i].type == SHT_SYMTAB_SHNDX and self.shdrs[i].link == shindex:
                    return self.from_shdr(i)
            return True
        if kind == SHT_SYMTAB_SHNDX:
            if hdr not in self.shndx_list:
                self.shndx_list.append(hdr)
            return True
        if kind == SHT_STRTAB:
            return self._strtab(hdr, shindex, name)
        if kind in (SHT_REL, SHT_RELA, SHT_RELR):
            return self._relocs(hdr, shindex, name)
        if kind in (SHT_GNU_VERDEF, SHT_GNU_VERNEED):  # the last one's header is kept
            if kind == SHT_GNU_VERDEF:
                self.verdef = _copy(hdr) if hdr.info or self.verdef is None else self.verdef
            else:
                self.verneed = _copy(hdr) if hdr.info or self.verneed is None else self.verneed
            return self.make(hdr, name)
        if kind == SHT_GNU_VERSYM:
            if hdr.entsize != 2:
                return False
            self.versym = _copy(hdr)
            return self.make(hdr, name)
        if kind == SHT_GROUP:
            return _valid_group(hdr, GRP_ENTRY_SIZE) and self.make(hdr, name)
        if kind == SHT_GNU_ATTRIBUTES:
            return self.make(hdr, name)
        # elf_backend_section_from_shdr: the x86-64 vectors take SHT_X86_64_UNWIND only; the
        # others (elf32-i386, elf32-iamcu, generic) keep BFD's default, which makes a section
        if not self.x86_64_backend or kind == SHT_X86_64_UNWIND:
            return self.make(hdr, name)
        if SHT_LOUSER <= kind <= SHT_HIUSER and not hdr.flags & SHF_ALLOC:
            return self.make(hdr, name)
        if SHT_LOOS <= kind <= SHT_HIOS and not hdr.flags & SHF_OS_NONCONFORMING:
            return self.make(hdr, name)
        self.say(f"{{path}}: unknown type [{kind:#x}] section `{name}'")
        return False

    def _strtab(self, hdr: Shdr, shindex: int, name: str) -> bool:
        if hdr.section is not None or self.e_shstrndx == shindex:
            return True
        if self.shdrs[self.onesymtab].link == shindex:
            return True
        if self.shdrs[self.dynsymtab].link == shindex:
            return self.make(hdr, name)
        if self.onesymtab == 0 or self.dynsymtab == 0:
            for i in range(1, len(self.shdrs)):
                if self.shdrs[i].link != shindex:
                    continue
                if i == shindex or not self.from_shdr(i):
                    return False
                if self.onesymtab == i:
                    return True
                if self.dynsymtab == i:
                    return self.make(hdr, name)
        return self.make(hdr, name)

    def _relocs(self, hdr: Shdr, shindex: int, name: str) -> bool:
        num = len(self.shdrs)
        if hdr.entsize != self.layout.reloc_sizes[hdr.type]:
            return False
        if hdr.link >= num:
            self.say(f"{{path}}: invalid link {hdr.link} for reloc section {name} "
                     f"(index {shindex})")
            return self.make(hdr, name)
        if self.shdrs[hdr.link].type in (SHT_SYMTAB, SHT_DYNSYM) \
                and not self.from_shdr(hdr.link):
            return False
        if (self.e_type in (ET_EXEC, ET_DYN) and hdr.flags & SHF_ALLOC) \
                or hdr.type == SHT_RELR or hdr.link == SHN_UNDEF \
                or hdr.link != self.onesymtab or hdr.info == SHN_UNDEF or hdr.info >= num \
                or self.shdrs[hdr.info].type in (SHT_REL, SHT_RELA):
            return self.make(hdr, name)
        if not self.from_shdr(hdr.info):
            return False
        if self.shdrs[hdr.info].section is None:
            return False
        key = (hdr.info, hdr.type)
        self.rel_targets.add(key)  # a second one is a secondary reloc section: kept aside
        return True

    # -- _bfd_elf_make_section_from_shdr -----------------------------------------------------
    def make(self, hdr: Shdr, name: str) -> bool:
        if hdr.section is not None:
            return True
        hdr.section = name
        self.made.append(hdr)
        if hdr.flags & SHF_GROUP and not self._setup_group(hdr):
            return False
        if hdr.type == SHT_NOTE and hdr.size != 0:
            if self._past_end(hdr):
                self.say(f"error: {{path}}({name}) is too large ({hdr.size:#x} bytes)")
                return False
            if self.file.read(hdr.offset, hdr.size) is None:
                return False
        return True

    def _past_end(self, hdr: Shdr) -> bool:
        """_bfd_section_size_insane: contents that extend past the end of the file."""
        size = self.file.size
        return bool(hdr.type != SHT_NOBITS and hdr.size and size
                    and (hdr.offset > size or hdr.size > size - hdr.offset))

    def _setup_group(self, hdr: Shdr) -> bool:
        """setup_group: find the SHT_GROUP section that lists ``hdr``."""
        if self.num_group is None:
            valid = [s for s in self.shdrs if _valid_group(s, 2 * GRP_ENTRY_SIZE)]
            self.num_group = len(valid) or -1
            for index, shdr in enumerate(self.shdrs):
                if not _valid_group(shdr, 2 * GRP_ENTRY_SIZE):
                    continue
                if not self.from_shdr(index):
                    return False
                raw = self.file.read(shdr.offset, shdr.size)
                if raw is None:
                    self.say(f"{{path}}: invalid size field in group section header: "
                             f"{shdr.size:#x}")
                    continue
                words = struct.unpack(f"{self.layout.e}{shdr.size // 4}I", raw)
                members: list = [words[0]]
                for idx in words[1:]:
                    member = self.shdrs[idx] if idx < len(self.shdrs) else None
                    if member is not None:
                        member.flags |= SHF_GROUP
                    if member is None or member.type == SHT_GROUP:
                        self.say(f"{{path}}: invalid entry in SHT_GROUP section [{index}]")
                        member = None
                    members.append(member)
                shdr.group = members
                self.groups.append(shdr)
            if self.num_group != -1 and not self.groups:
                self.num_group = -1
                self.say("{path}: no valid group sections found")
        for group in self.groups:
            if group.group is None or group.size < 4:
                self.say(f"{{path}}: group section '{group.section}' has no contents")
                return False
            if any(member is hdr for member in group.group[1:]):
                hdr.group_name = "?"
                group.next_in_group = True
                return True
        self.say(f"{{path}}: no group info for section '{hdr.section}'")
        return True

    def _setup_sections(self) -> bool:
        """_bfd_elf_setup_sections: SHF_LINK_ORDER links and group membership."""
        result = True
        for hdr in self.made:
            if hdr.flags & SHF_LINK_ORDER and hdr.link != 0:
                target = self.shdrs[hdr.link] if hdr.link < len(self.shdrs) else None
                if target is None or target.section is None:
                    self.say(f"{{path}}: sh_link [{hdr.link}] in section `{hdr.section}' "
                             "is incorrect")
                    result = False
            elif hdr.type == SHT_GROUP and not hdr.next_in_group:
                self.say(f"{{path}}: SHT_GROUP section [index {hdr.index}] has no SHF_GROUP "
                         "sections")
                result = False
        for number, group in enumerate(self.groups):
            if group.section is None or group.group is None:
                self.say(f"{{path}}: section group entry number {number} is corrupt")
                result = False
                continue
            for member in group.group[1:]:
                if member is None or member.section is not None \
                        or member.type in (SHT_RELA, SHT_REL):
                    continue
                member_name = self.string(self.e_shstrndx, member.name)
                self.say(f"{{path}}: unknown type [{member.type:#x}] section "
                         f"`{'(null)' if member_name is None else member_name}' "
                         f"in group [{group.section}]")
                result = False
        return result

    # -- what objdump reads next -------------------------------------------------------------
    def read_symbols(self) -> list[str] | None:
        """What objdump -d does with the symbol tables (slurp_symtab, slurp_dynamic_symtab in
        binutils/objdump.c): BFD's messages go to ``self.messages``; returns objdump's fatal
        lines, or None."""
        path = self.file.path
        if self.onesymtab or self.dynsymtab:  # HAS_SYMS
            count = self.shdrs[self.onesymtab].size // self.layout.sym_size \
                if self.onesymtab else 0
            if count and self.file.size and count * 8 > self.file.size:
                return [f"failed to read symbol table from: {path}",
                        "error message was: file truncated"]
            if count and not self._symbols(self.shdrs[self.onesymtab], count, None):
                return [f"{path}: file truncated"]
        if not self.dynsymtab:
            return None
        dynsym = self.shdrs[self.dynsymtab]
        count = dynsym.size // self.layout.sym_size
        if count and self.file.size and count * 8 > self.file.size:
            return self._dynamic_relocs(0)  # upper bound < 0: objdump reads no symbols
        error = self._version_tables()
        if error is not None:
            return [f"{path}: {error}"]
        if count and not self._symbols(dynsym, count, self.versym):
            return [f"{path}: file truncated"]
        return self._dynamic_relocs(max(count - 1, 0))

    PLT_NAMES = (".plt", ".plt.got", ".plt.sec", ".plt.bnd")  # elf_x86_64_get_synthetic_symtab

    def _dynamic_relocs(self, dynsymcount: int) -> list[str] | None:
        """bfd_get_synthetic_symtab (which reads the PLTs), then disassemble_data's
        bfd_canonicalize_dynamic_reloc: BFD's messages, objdump's fatal lines or None."""
        relsecs = [h for h in self.made if h.type in (SHT_REL, SHT_RELA)
                   and h.link == self.dynsymtab]
        total = sum(h.size for h in relsecs)
        count = sum(h.size // h.entsize for h in relsecs if h.entsize)
        if count == 0 or (count > 1 and self.file.size and total > self.file.size):
            return None  # the upper bound is not positive: objdump reads none
        if not self.x86:  # objdump stops at "can't disassemble" before it reads them
            return None
        if self.e_type in (ET_EXEC, ET_DYN) and dynsymcount > 0 and self.x86_64_backend:
            for plt_name in self.PLT_NAMES:
                plt = next((h for h in self.made if h.section == plt_name), None)
                if plt is None or plt.size == 0 or plt.type == SHT_NOBITS:
                    continue
                if self._past_end(plt):
                    self.say(f"error: {{path}}({plt_name}) is too large ({plt.size:#x} bytes)")
                    break
        is64 = self.layout.is64
        for hdr in relsecs:
            raw = self.file.read(hdr.offset, hdr.size)
            if raw is None:
                return [f"{self.file.path}: file truncated"]
            if hdr.entsize not in (self.layout.reloc_sizes[SHT_REL],
                                   self.layout.reloc_sizes[SHT_RELA]):
                continue
            for n in range(hdr.size // hdr.entsize):
                info, = struct.unpack_from(self.layout.e + self.layout.word, raw,
                                           n * hdr.entsize + (8 if is64 else 4))
                sym = info >> 32 if is64 else info >> 8
                if sym > dynsymcount:
                    self.say(f"{{path}}({hdr.section}): relocation {n} has invalid symbol "
                             f"index {sym}")
        return None

    def _symbols(self, hdr: Shdr, count: int, versym: Shdr | None) -> bool:
        """elf_slurp_symbol_table: False if the table cannot be read; names looked up."""
        size = self.layout.sym_size
        raw = self.file.read(hdr.offset, count * size)
        if raw is None:
            return False
        if versym is not None and versym.size // 2 != count:
            self.say(f"{{path}}: version count ({_signed64(versym.size // 2)}) does not match "
                     f"symbol count ({count})")
            versym = None
        if versym is not None and versym.size and self.file.read(versym.offset,
                                                                 versym.size) is None:
            return False
        info_at, shndx_at = (4, 6) if self.layout.is64 else (12, 14)
        for n in range(1, count):
            entry = raw[n * size:(n + 1) * size]
            st_name, = struct.unpack_from(self.layout.e + "I", entry, 0)
            st_info = entry[info_at]
            st_shndx, = struct.unpack_from(self.layout.e + "H", entry, shndx_at)
            table = hdr.link
            if st_name == 0 and st_info & 0xF == 3 and st_shndx < len(self.shdrs):
                st_name, table = self.shdrs[st_shndx].name, self.e_shstrndx
            self.string(table, st_name)
        return True

    def _version_tables(self) -> str | None:
        """_bfd_elf_slurp_version_tables (.gnu.version_r, .gnu.version_d): its error."""
        if self.verneed is not None and self.verneed.info:
            error = self._verneed(self.verneed)
            if error is not None:
                return error
        if self.verdef is not None and self.verdef.info:
            hdr = self.verdef
            if hdr.size < 20:
                self.say("{path}: .gnu.version_d invalid entry")
                return "bad value"
            if self.file.read(hdr.offset, hdr.size) is None:
                return "file truncated"
        return None

    def _verneed(self, hdr: Shdr) -> str | None:
        bad = "{path}: .gnu.version_r invalid entry"
        if hdr.info > hdr.size // 16:
            self.say(bad)
            return "bad value"
        data = self.file.read(hdr.offset, hdr.size)
        if data is None:
            return "file truncated"
        end = hdr.size - 16  # contents_end: the last place an entry may start
        at, verneed, vernaux = 0, self.layout.e + "HHIII", self.layout.e + "IHHII"
        for i in range(hdr.info):
            _version, cnt, vn_file, vn_aux, vn_next = struct.unpack_from(verneed, data, at)
            if self.string(hdr.link, vn_file) is None:
                self.say(bad)
                return "bad value"
            if vn_aux > end - at:
                self.say(bad)
                return "bad value"
            aux = at + vn_aux
            for _j in range(cnt):
                _hash, _flags, _other, vna_name, vna_next = struct.unpack_from(vernaux, data, aux)
                if self.string(hdr.link, vna_name) is None:
                    self.say(bad)
                    return "bad value"
                if vna_next == 0:
                    break
                if vna_next > end - aux:
                    self.say(bad)
                    return "bad value"
                aux += vna_next
            if vn_next == 0:
                break
            if vn_next > end - at:
                self.say(bad)
                return "bad value"
            at += vn_next
            del i
        return None


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _copy(hdr: Shdr) -> Shdr:
    return Shdr(hdr.index, hdr.name, hdr.type, hdr.flags, hdr.addr, hdr.offset, hdr.size,
                hdr.link, hdr.info, hdr.addralign, hdr.entsize, hdr.contents)


def _valid_group(shdr: Shdr, minsize: int) -> bool:
    return (shdr.type == SHT_GROUP and shdr.size >= minsize and shdr.entsize == GRP_ENTRY_SIZE
            and shdr.size % GRP_ENTRY_SIZE == 0)


def bfd_view(path: str, read_at: ReadAt, file_size: int) -> BfdView:
    """objdump's verdict on the file ``read_at`` reads (``file_size`` bytes), named ``path``
    in its messages."""
    data = read_at(0, 64)
    if len(data) < 16 or bytes(data[:4]) != b"\x7fELF":
        return BfdView(UNRECOGNIZED)
    ei_class, ei_data, ei_version = data[4], data[5], data[6]
    if ei_class not in (ELFCLASS32, ELFCLASS64) or ei_data not in (ELFDATA2LSB, ELFDATA2MSB):
        return BfdView(UNRECOGNIZED)
    layout = _Layout(ei_class == ELFCLASS64, big_endian=ei_data == ELFDATA2MSB)
    if len(data) < layout.ehdr.size:
        return BfdView(UNRECOGNIZED)
    header = layout.ehdr.unpack_from(data, 0)
    e_type, e_machine, e_shoff, e_shentsize, e_shnum = (header[i] for i in (1, 2, 6, 11, 12))
    ehdr_size = layout.ehdr.size
    file = _File(path, read_at, file_size)
    if ei_version != EV_CURRENT and e_type != ET_CORE:  # elf_core_file_p does not check it
        return BfdView(UNRECOGNIZED)
    if e_type == ET_CORE:  # not an object: objdump then tries the core-file formats
        return _core_view(file, layout, header, data, ei_data)
    if (e_shoff < ehdr_size and (e_type == ET_REL or e_shnum != 0)) \
            or (e_shentsize != layout.shdr.size and e_shnum != 0):
        return BfdView(UNRECOGNIZED)
    vectors = []
    # only elf64-big/elf32-big take a big-endian file: no x86 vector
    x86_name = None if ei_data == ELFDATA2MSB else X86_VECTORS[ei_class].get(e_machine)
    if x86_name is not None:
        vector = _Vector(file, layout, header, x86=True)
        vector.ehdr = bytes(data[:layout.ehdr.size])
        vectors.append(vector)
        if vector.object_p():
            return _accepted(vector, x86_name)
    generic = _Vector(file, layout, header, x86=False)
    vectors.append(generic)
    if generic.object_p():  # objdump reads its symbols, then cannot disassemble
        fatal = generic.read_symbols()
        if fatal:
            return BfdView(fatal[-1], generic.messages, fatal=fatal)
        return BfdView(UNKNOWN_ARCH, messages=generic.messages)
    talking = [v for v in vectors if v.messages]
    return BfdView(UNRECOGNIZED, messages=talking[0].messages if len(talking) == 1 else [])


def _accepted(vector: _Vector, format_name: str) -> BfdView:
    made = [] if vector.no_sections else [h.index for h in vector.made]
    fatal = vector.read_symbols()
    return BfdView(None, vector.messages, format_name, vector.no_sections, made,
                   vector.onesymtab, vector.dynsymtab, fatal, vector.shdrs, vector.ehdr)


def bfd_refusal(read_at: ReadAt, file_size: int, warnings: list[str] | None = None) -> str | None:
    """Why objdump would not list the file as an x86 ELF object, in objdump's words; None if
    it would (BFD's messages for it appended to ``warnings``, with the path left as FILE)."""
    view = bfd_view("FILE", read_at, file_size)
    if warnings is not None:
        warnings += view.messages
    return view.refusal
