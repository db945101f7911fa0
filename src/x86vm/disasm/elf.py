"""ELF input for listings: sections, symbols, dynamic relocations, PLT stubs, as BFD sees them.

objdump does not look at an ELF file directly; it looks at the view the BFD library builds of it.
This module rebuilds the parts of that view a disassembly listing depends on:

* which section headers become *sections* (symbol and string tables, and relocations that belong
  to another section of a relocatable object, do not), in header order, with BFD's two flags that
  matter here: "has contents" (anything but ``SHT_NOBITS``) and "code" (``SHF_EXECINSTR``);
* the symbol table (``.symtab``, or ``.dynsym`` when there is none) with BFD's symbol flags
  (ELF gABI "Symbol Table": ``st_info`` binding and type) and, for dynamic symbols, their
  version (GNU ``.gnu.version``/``.gnu.version_d``/``.gnu.version_r``);
* the dynamic relocations (every ``SHT_RELA``/``SHT_REL`` section linked to ``.dynsym``), which
  objdump consults to name GOT slots;
* the synthetic ``name@plt`` symbols BFD derives from the x86-64 and i386 PLT layouts
  (psABI "Procedure Linkage Table") by matching each stub's GOT slot to a dynamic relocation.

Malformed input raises :class:`ElfFormatError` with a one-line reason, never anything else.
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from elftools.elf.elffile import ELFFile

from x86vm.disasm.elfcheck import UNKNOWN_ARCH, BfdView, bfd_view
from x86vm.disasm.elfformat import DEBUG_PREFIXES

__all__ = [
    "ElfFormatError",
    "SectionUnreadable",
    "ElfImage",
    "Section",
    "Symbol",
    "DynamicReloc",
    "load_elf",
]

# ELF constants (gABI).
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOBITS, SHT_REL, SHT_DYNSYM, SHT_SYMTAB_SHNDX = 8, 9, 11, 18
SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF
SHN_X86_64_LCOMMON = 0xFF02
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_COMMON, STT_GNU_IFUNC = 1, 2, 3, 4, 5, 10
ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
EM_386, EM_486, EM_X86_64, EM_IAMCU = 3, 6, 62, 180
VER_FLG_BASE = 1
VERSYM_HIDDEN, VERSYM_VERSION = 0x8000, 0x7FFF

# BFD symbol flags that objdump's symbol choice reads (bfd/syms.c).
BSF_LOCAL = 1 << 0
BSF_GLOBAL = 1 << 1
BSF_DEBUGGING = 1 << 2
BSF_FUNCTION = 1 << 3
BSF_WEAK = 1 << 7
BSF_SECTION_SYM = 1 << 8
BSF_FILE = 1 << 14
BSF_OBJECT = 1 << 16
BSF_SYNTHETIC = 1 << 21
BSF_GNU_UNIQUE = 1 << 23

# Pseudo section indexes for BFD's special sections.
SEC_UNDEF, SEC_ABS, SEC_COMMON = -1, -2, -3
SPECIAL_SECTION_NAMES = {SEC_UNDEF: "*UND*", SEC_ABS: "*ABS*", SEC_COMMON: "*COM*"}


MAX_NOBITS_LISTED = 1 << 28  # a NOBITS section is listed as zeros; its size is untrusted
NOBITS_MALLOC_FAILS = 1 << 35  # objdump 2.40 on this 24 GiB machine: 64 GiB fails, 4 GiB not
MAX_DECOMPRESSED = 1 << 30  # an SHF_COMPRESSED section's stated size is untrusted too
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD = 1, 2


class ElfFormatError(ValueError):
    """The file is not an ELF file objdump-style listings can be made of (one-line reason).

    ``messages``: BFD's lines printed before the error (path included); ``whole_line``: the
    reason is objdump's whole line, not prefixed by the path; ``lines``: objdump's exact
    lines for the error itself, when it prints more than one."""

    def __init__(self, reason: str, messages: list[str] | None = None, *,
                 whole_line: bool = False, lines: list[str] | None = None) -> None:
        super().__init__(reason)
        self.messages = list(messages or [])
        self.whole_line = whole_line
        self.lines = lines


class SectionUnreadable(ElfFormatError):
    """A section whose contents objdump cannot read — past the end of the file (two lines:
    ``bfd_get_full_section_contents``, then ``disassemble_section``), or compressed data that
    does not decompress ("bad value"): it says so, skips the section and goes on, status 0."""

    def __init__(self, path: str, name: str, size: int, group: str = "", *,
                 reason: str = "", lines: list[str] | None = None) -> None:
        label = f"{name}[{group}]" if group else name  # BFD's %pA
        super().__init__(reason or f"section {name} extends past the end of the file",
                         lines=lines or [
                             f"error: {path}({label}) is too large ({size:#x} bytes)",
                             f"Reading section {name} failed because: file truncated"])


@dataclass(slots=True)
class Section:
    """One BFD section: an ELF section header that BFD turns into a section."""

    index: int  # ELF section header index
    name: str
    vma: int
    size: int
    file_offset: int
    has_contents: bool  # SEC_HAS_CONTENTS: not SHT_NOBITS
    is_code: bool  # SEC_CODE: SHF_EXECINSTR
    _file: BinaryIO | None = field(default=None, repr=False)
    _data: bytes | None = field(default=None, repr=False)
    _file_size: int = field(default=0, repr=False)
    _stored_size: int = field(default=-1, repr=False)  # bytes in the file if compressed
    _compression: int = field(default=0, repr=False)  # ELFCOMPRESS_ZLIB / _ZSTD, 0: none
    _header_size: int = field(default=0, repr=False)  # Elf_Chdr before compressed data
    _path: str = field(default="", repr=False)  # the file's name, for objdump's messages
    _group: str = field(default="", repr=False)  # its section group's signature, if any

    def data(self) -> bytes:
        """The section's bytes (zeros for NOBITS, decompressed for SHF_COMPRESSED, as BFD
        gives them to objdump); raises ElfFormatError if the file is short or corrupt."""
        if self._data is None:
            if not self.has_contents or self._file is None:
                if self.size >= NOBITS_MALLOC_FAILS:  # objdump: malloc fails, section skipped
                    label = f"{self.name}[{self._group}]" if self._group else self.name
                    raise SectionUnreadable(self._path, self.name, self.size, lines=[
                        f"error: {self._path}({label}) is too large ({self.size:#x} bytes)",
                        f"Reading section {self.name} failed because: memory exhausted"])
                if self.size > MAX_NOBITS_LISTED:
                    raise ElfFormatError(f"section {self.name} is too large to list "
                                         f"({self.size} bytes of zeros)")
                return bytes(self.size)  # not kept: many large NOBITS sections add up
            stored = self.size if self._stored_size < 0 else self._stored_size
            if self.file_offset + stored > self._file_size:  # checked before allocating
                raise SectionUnreadable(self._path, self.name, self.size, self._group)
            self._file.seek(self.file_offset)
            raw = self._file.read(stored)
            if len(raw) != stored:
                raise SectionUnreadable(self._path, self.name, self.size, self._group)
            self._data = self._decompress(raw) if self._compression else raw
        return self._data

    def _decompress(self, raw: bytes) -> bytes:
        """gABI "Section Compression": an Elf_Chdr, then zlib (1) or zstd (2) data. As BFD's
        decompress_contents: zlib streams one after another, each to its end, filling
        exactly the stated size; anything else is "bad value" and the section is skipped."""
        payload = raw[self._header_size:]
        bad = SectionUnreadable(self._path, self.name, self.size,
                                reason=f"section {self.name}: bad compressed data",
                                lines=[f"Reading section {self.name} failed because: bad value"])
        if self._compression == ELFCOMPRESS_ZLIB:
            data = bytearray()
            try:
                while payload and len(data) < self.size:
                    inflater = zlib.decompressobj()
                    data += inflater.decompress(payload, self.size - len(data) + 1)
                    if not inflater.eof or len(data) > self.size:
                        raise bad
                    payload = inflater.unused_data
            except zlib.error:
                raise bad from None
            data = bytes(data)
        else:
            try:
                import zstandard
            except ImportError:
                raise ElfFormatError(f"section {self.name} is zstd-compressed; "
                                     "install the zstandard module to list it") from None
            try:
                data = zstandard.ZstdDecompressor().decompress(payload, self.size)
            except zstandard.ZstdError:
                raise bad from None
        if len(data) != self.size:
            raise bad
        return data


@dataclass(slots=True)
class Symbol:
    """A symbol as BFD presents it: absolute value, flags, section and version."""

    name: str
    value: int
    size: int
    flags: int
    section: int  # ELF section index, or SEC_UNDEF / SEC_ABS / SEC_COMMON
    section_name: str
    version: str = ""  # version name, "" if none
    hidden: bool = False  # printed as name@VER rather than name@@VER
    section_vma: int = 0  # BFD keeps value - section_vma as the symbol's own value
    elf: tuple[int, int, int, int] = (0, 0, 0, 0)  # st_info, st_other, st_shndx, st_value


@dataclass(slots=True)
class DynamicReloc:
    """One dynamic relocation: where it applies, its type, addend and symbol (None: absolute)."""

    address: int
    type: int
    addend: int
    symbol: Symbol | None
    symbol_name: str  # "*ABS*" when there is no symbol
    plt_used: bool = False  # matched to a PLT stub: BFD then drops its howto (objdump -R)


@dataclass
class ElfImage:
    """What a listing needs from one ELF file."""

    path: str
    format_name: str  # BFD target name: elf64-x86-64, elf32-i386, elf32-x86-64
    mode: int  # code size of the machine: 64 or 32
    address_digits: int  # bfd_sprintf_vma width: 16 for ELFCLASS64, 8 for ELFCLASS32
    elf_type: int
    sections: list[Section]
    symbols: list[Symbol]  # the static table, or the dynamic one when there is none
    dynamic_relocs: list[DynamicReloc]
    synthetic_symbols: list[Symbol]
    has_reloc: bool = False  # BFD's HAS_RELOC: some section carries its own relocations
    warnings: list[str] = field(default_factory=list)  # BFD's, for a file it still lists
    section_relocs: dict[int, list[DynamicReloc]] = field(default_factory=dict)
    has_dynsym: bool = False  # a .dynsym: BFD can read dynamic relocations (objdump -R)
    """A relocatable object's relocations by target section index (section-relative
    addresses, file order), as BFD gives them to ``objdump -r``."""

    @property
    def is_relocatable(self) -> bool:
        """HAS_RELOC, which makes objdump prefer same-section symbols inside a section."""
        return self.has_reloc

    @property
    def is_exec_or_dynamic(self) -> bool:
        return self.elf_type in (ET_EXEC, ET_DYN)


def load_elf(path: str, stream: BinaryIO) -> ElfImage:
    """Read ``stream`` (an open binary file) as an x86 ELF file; ElfFormatError if it is not one."""
    magic = stream.read(4)
    if magic != b"\x7fELF":
        raise ElfFormatError("file format not recognized (not an ELF file)")
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    def read_at(offset: int, count: int) -> bytes:
        stream.seek(offset)
        return stream.read(count)

    view = bfd_view(path, read_at, size)
    if view.refusal is not None:  # what objdump's BFD would refuse, refused the same way
        raise ElfFormatError(view.refusal, view.messages, lines=view.fatal,
                             whole_line=view.refusal == UNKNOWN_ARCH)
    if view.fatal:  # objdump: its header, then a fatal error reading the symbols
        raise ElfFormatError(view.fatal[-1], view.messages, lines=view.fatal)
    stream.seek(0)
    if view.segments is not None:  # a core file: BFD's sections are its segments
        image = _without_sections(path, view.ehdr, view.messages)
        image.sections = [
            Section(index=n, name=seg.name, vma=seg.vma, size=seg.size, file_offset=seg.offset,
                    has_contents=seg.has_contents, is_code=seg.is_code, _file=stream,
                    _file_size=size, _path=path)
            for n, seg in enumerate(view.segments, 1)]
        return image
    if view.no_sections:  # BFD makes no sections, objdump lists none
        return _without_sections(path, view.ehdr, view.messages)
    try:
        image = _Loader(path, stream).load()
    except ElfFormatError:
        image = None
    except Exception:  # pyelftools raises many types on malformed input
        image = None
    if image is None:  # BFD takes what pyelftools cannot parse: its sections, no symbols
        image = _from_view(path, stream, size, view)
    image.warnings = view.messages
    for section in image.sections:  # BFD's names (raw bytes kept), "name[group]" in messages
        shdr = view.shdrs[section.index] if section.index < len(view.shdrs) else None
        if shdr is not None and shdr.section is not None:
            section.name = shdr.section
        section._group = view.group_names.get(section.index, "")
    return image


def _without_sections(path: str, ehdr: bytes, warnings: list[str]) -> ElfImage:
    """The view BFD keeps of a file whose section-name table is unusable: its format, no
    sections, no symbols (binutils 2.40 elfcode.h, PR 2257)."""
    is64, machine = ehdr[4] == 2, int.from_bytes(ehdr[18:20], "little")
    if machine == EM_X86_64:
        format_name, mode = ("elf64-x86-64" if is64 else "elf32-x86-64"), 64
    else:
        format_name, mode = ("elf32-iamcu" if machine == EM_IAMCU else "elf32-i386"), 32
    return ElfImage(path=path, format_name=format_name, mode=mode,
                    address_digits=16 if is64 else 8,
                    elf_type=int.from_bytes(ehdr[16:18], "little"), sections=[], symbols=[],
                    dynamic_relocs=[], synthetic_symbols=[], warnings=warnings)


def _from_view(path: str, stream: BinaryIO, size: int, view: BfdView) -> ElfImage:
    """A listing of the sections BFD made (``view``), without symbols: for a file BFD
    accepts but whose symbol or relocation tables pyelftools refuses to parse."""
    image = _without_sections(path, view.ehdr, [])
    for index in view.sections:
        shdr = view.shdrs[index]
        image.sections.append(Section(
            index=index, name=shdr.section or "", vma=shdr.addr, size=shdr.size,
            file_offset=shdr.offset, has_contents=shdr.type != SHT_NOBITS,
            is_code=bool(shdr.flags & SHF_EXECINSTR), _file=stream, _file_size=size,
            _path=path))
        if shdr.flags & SHF_COMPRESSED and shdr.type != SHT_NOBITS \
                and _debugging(image.sections[-1].name, shdr.flags):
            _present_compressed(image.sections[-1], stream, view.ehdr[4] == 2, "<", size)
    return image


def _present_compressed(section: Section, stream: BinaryIO, is64: bool, endian: str,
                        file_size: int) -> None:
    """Present an SHF_COMPRESSED section by its uncompressed size, as BFD does (one too
    short for its Elf_Chdr, or of a type BFD does not know, stays as it is)."""
    header_size = 24 if is64 else 12
    if section.size < header_size or section.file_offset + header_size > file_size:
        return
    stream.seek(section.file_offset)
    raw = stream.read(header_size)
    if is64:
        ch_type, _reserved, ch_size, _align = struct.unpack(endian + "IIQQ", raw)
    else:
        ch_type, ch_size, _align = struct.unpack(endian + "III", raw)
    if ch_type not in (ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD) or ch_size > MAX_DECOMPRESSED:
        return
    section._stored_size = section.size
    section.size = ch_size
    section._compression = ch_type
    section._header_size = header_size


class _Loader:
    def __init__(self, path: str, stream: BinaryIO) -> None:
        self.path = path
        self.stream = stream
        self.file_size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        self.elf = ELFFile(stream)
        self.is64 = self.elf.elfclass == 64
        self.endian = "<" if self.elf.little_endian else ">"
        if not self.elf.little_endian:
            raise ElfFormatError("big-endian ELF files are not x86 code")

    # -- section headers -------------------------------------------------------------------
    def load(self) -> ElfImage:
        elf = self.elf
        machine = elf.header["e_machine"]
        machine_id = {"EM_X86_64": EM_X86_64, "EM_386": EM_386, "EM_486": EM_486,
                      "EM_IAMCU": EM_IAMCU}.get(machine, machine)
        if machine_id not in (EM_X86_64, EM_386, EM_486, EM_IAMCU):
            raise ElfFormatError(f"can't disassemble for architecture {machine}")
        if machine_id == EM_X86_64:
            format_name = "elf64-x86-64" if self.is64 else "elf32-x86-64"
            mode = 64
        else:  # elf32-i386 takes EM_486 too (its ELF_MACHINE_ALT1)
            format_name = "elf32-iamcu" if machine_id == EM_IAMCU else "elf32-i386"
            mode = 32
        etype = elf.header["e_type"]
        self.elf_type = {"ET_REL": ET_REL, "ET_EXEC": ET_EXEC, "ET_DYN": ET_DYN}.get(etype, 0)

        self.headers = [elf.get_section(i).header for i in range(elf.num_sections())]
        self.names = self._section_names()
        self.symtab_index = self._first_index(SHT_SYMTAB)
        self.dynsym_index = self._first_index(SHT_DYNSYM)
        sections = self._bfd_sections()
        self.section_by_index = {s.index: s for s in sections}

        static_syms = self._read_symbols(self.symtab_index, dynamic=False)
        dynamic_syms = self._read_symbols(self.dynsym_index, dynamic=True)
        relocs = self._dynamic_relocs(dynamic_syms) if self.dynsym_index else []
        synthetic = _synthetic_plt_symbols(self, sections, relocs, mode, bool(dynamic_syms))
        section_relocs = self._section_relocs(static_syms) if self.elf_type == ET_REL else {}
        return ElfImage(
            path=self.path,
            format_name=format_name,
            mode=mode,
            address_digits=16 if self.is64 else 8,
            elf_type=self.elf_type,
            sections=sections,
            symbols=static_syms if static_syms else dynamic_syms,
            dynamic_relocs=relocs,
            synthetic_symbols=synthetic,
            has_reloc=any(_sh_type(h) in (SHT_REL, SHT_RELA) and self._relocs_of_other_section(h)
                          for h in self.headers),
            section_relocs=section_relocs,
            has_dynsym=bool(self.dynsym_index),
        )

    def _section_names(self) -> list[str]:
        names = []
        for i in range(len(self.headers)):
            try:
                names.append(self.elf.get_section(i).name)
            except Exception:
                names.append("")
        return names

    def _first_index(self, sh_type: int) -> int:
        for i, hdr in enumerate(self.headers):
            if _sh_type(hdr) == sh_type:
                return i
        return 0

    def _bfd_sections(self) -> list[Section]:
        """The headers BFD makes sections of (bfd/elf.c bfd_section_from_shdr), in order."""
        shstrndx = self.elf.header["e_shstrndx"]
        symtab_strtab = self.headers[self.symtab_index]["sh_link"] if self.symtab_index else -1
        out = []
        for i, hdr in enumerate(self.headers):
            sh_type = _sh_type(hdr)
            if i == 0 or sh_type in (SHT_NULL, SHT_SYMTAB, SHT_SYMTAB_SHNDX):
                continue
            if sh_type == SHT_STRTAB and i in (shstrndx, symtab_strtab):
                continue
            if sh_type in (SHT_REL, SHT_RELA) and self._relocs_of_other_section(hdr):
                continue
            section = Section(
                index=i,
                name=self.names[i],
                vma=hdr["sh_addr"],
                size=hdr["sh_size"],
                file_offset=hdr["sh_offset"],
                has_contents=sh_type != SHT_NOBITS,
                is_code=bool(hdr["sh_flags"] & SHF_EXECINSTR),
                _file=self.stream,
                _file_size=self.file_size,
                _path=self.path,
            )
            if hdr["sh_flags"] & SHF_COMPRESSED and section.has_contents \
                    and _debugging(section.name, hdr["sh_flags"]):
                self._compressed(section)
            out.append(section)
        return out

    def _compressed(self, section: Section) -> None:
        _present_compressed(section, self.stream, self.is64, self.endian, self.file_size)

    def _relocs_of_other_section(self, hdr) -> bool:
        """A REL/RELA section that BFD attaches to its target instead of listing it."""
        if self.elf_type in (ET_EXEC, ET_DYN) and hdr["sh_flags"] & SHF_ALLOC:
            return False
        if not self.symtab_index or hdr["sh_link"] != self.symtab_index:
            return False
        target = hdr["sh_info"]
        if target == 0 or target >= len(self.headers):
            return False
        return _sh_type(self.headers[target]) not in (SHT_REL, SHT_RELA)

    def _raw(self, index: int) -> bytes:
        hdr = self.headers[index]
        if _sh_type(hdr) == SHT_NOBITS:
            return b""
        if hdr["sh_offset"] + hdr["sh_size"] > self.file_size:
            raise ElfFormatError(f"section {self.names[index]} extends past the end of the file")
        self.stream.seek(hdr["sh_offset"])
        raw = self.stream.read(hdr["sh_size"])
        if len(raw) != hdr["sh_size"]:
            raise ElfFormatError(f"section {self.names[index]} extends past the end of the file")
        return raw

    # -- symbols ---------------------------------------------------------------------------
    def _read_symbols(self, index: int, dynamic: bool) -> list[Symbol]:
        """Symbols of table ``index`` except the null one, flagged as elfcode.h does."""
        if not index:
            return []
        hdr = self.headers[index]
        strtab = self._raw(hdr["sh_link"]) if hdr["sh_link"] < len(self.headers) else b""
        raw = self._raw(index)
        if self.is64:
            fmt, entsize = self.endian + "IBBHQQ", 24
        else:
            fmt, entsize = self.endian + "IIIBBH", 16
        count = len(raw) // entsize
        versions = self._symbol_versions(count) if dynamic else None
        is_rel = self.elf_type == ET_REL
        out = []
        for n, entry in enumerate(struct.iter_unpack(fmt, raw[: count * entsize])):
            if n == 0:
                continue
            if self.is64:
                st_name, st_info, _other, st_shndx, st_value, st_size = entry
            else:
                st_name, st_value, st_size, st_info, _other, st_shndx = entry
            # bfd_elf_sym_name: a name past the string table is "(null)"
            name = _cstring(strtab, st_name) if st_name < len(strtab) or not st_name \
                else "(null)"
            bind, stype = st_info >> 4, st_info & 0xF
            flags = 0
            if st_shndx == SHN_UNDEF:
                section, section_name = SEC_UNDEF, "*UND*"
            elif st_shndx == SHN_ABS:
                section, section_name = SEC_ABS, "*ABS*"
            elif st_shndx in (SHN_COMMON, SHN_X86_64_LCOMMON):
                section, section_name = SEC_COMMON, "*COM*"
            elif st_shndx >= SHN_LORESERVE or st_shndx not in self.section_by_index:
                section, section_name = SEC_ABS, "*ABS*"
            else:
                section, section_name = st_shndx, self.names[st_shndx]
                if is_rel:
                    st_value += self.headers[st_shndx]["sh_addr"]
            if bind == STB_LOCAL:
                flags |= BSF_LOCAL
            elif bind == STB_GLOBAL:
                if st_shndx not in (SHN_UNDEF, SHN_COMMON):
                    flags |= BSF_GLOBAL
            elif bind == STB_WEAK:
                flags |= BSF_WEAK
            elif bind == STB_GNU_UNIQUE:
                flags |= BSF_GNU_UNIQUE
            if stype == STT_SECTION:
                flags |= BSF_SECTION_SYM | BSF_DEBUGGING
                if not name and section >= 0:
                    name = self.names[section]
            elif stype == STT_FILE:
                flags |= BSF_FILE | BSF_DEBUGGING
            elif stype == STT_FUNC:  # STT_GNU_IFUNC is BSF_GNU_INDIRECT_FUNCTION only
                flags |= BSF_FUNCTION
            elif stype in (STT_OBJECT, STT_COMMON):
                flags |= BSF_OBJECT
            base = self.headers[section]["sh_addr"] if section >= 0 else 0
            sym = Symbol(name, st_value, st_size, flags, section, section_name, section_vma=base,
                         elf=(st_info, _other, st_shndx, entry[4] if self.is64 else entry[1]))
            if versions is not None:
                sym.version, sym.hidden = versions(n)
            out.append(sym)
        return out

    def _symbol_versions(self, count: int):
        """A function symbol-index -> (version, hidden) per bfd_get_symbol_version_string."""
        versym_i = self._first_index(SHT_GNU_VERSYM)
        verdef_i = self._first_index(SHT_GNU_VERDEF)
        verneed_i = self._first_index(SHT_GNU_VERNEED)
        if not versym_i or not (verdef_i or verneed_i):
            return lambda n: ("", False)
        raw = self._raw(versym_i)
        versym = [v for (v,) in struct.iter_unpack(self.endian + "H", raw[: len(raw) // 2 * 2])]
        verdefs = self._verdefs(verdef_i) if verdef_i else {}
        cverdefs = max(verdefs) if verdefs else 0
        verneed = self._verneed_names(verneed_i) if verneed_i else {}
        base_flags = verdefs.get(1, (0, ""))[0]

        def version_of(n: int) -> tuple[str, bool]:
            if n >= len(versym):
                return "", False
            raw_ver = versym[n]
            hidden = bool(raw_ver & VERSYM_HIDDEN)
            vernum = raw_ver & VERSYM_VERSION
            if vernum == 0:
                return "", hidden
            if vernum == 1 and (vernum > cverdefs or base_flags == VER_FLG_BASE):
                return "Base", hidden
            if vernum <= cverdefs:
                return verdefs.get(vernum, (0, ""))[1], hidden
            if vernum in verneed:
                return verneed[vernum], True
            return "<corrupt>", hidden

        return version_of

    def _verdefs(self, index: int) -> dict[int, tuple[int, str]]:
        hdr = self.headers[index]
        strtab = self._raw(hdr["sh_link"])
        raw = self._raw(index)
        out: dict[int, tuple[int, str]] = {}
        offset = 0
        for _ in range(max(hdr["sh_info"], 0) or 1 << 16):
            if offset + 20 > len(raw):
                break
            _ver, flags, ndx, cnt, _hash, aux, nxt = struct.unpack_from(
                self.endian + "HHHHIII", raw, offset
            )
            name = ""
            if cnt and offset + aux + 8 <= len(raw):
                (vda_name,) = struct.unpack_from(self.endian + "I", raw, offset + aux)
                name = _cstring(strtab, vda_name)
            out[ndx & VERSYM_VERSION] = (flags, name)
            if not nxt:
                break
            offset += nxt
        return out

    def _verneed_names(self, index: int) -> dict[int, str]:
        hdr = self.headers[index]
        strtab = self._raw(hdr["sh_link"])
        raw = self._raw(index)
        out: dict[int, str] = {}
        offset = 0
        for _ in range(max(hdr["sh_info"], 0) or 1 << 16):
            if offset + 16 > len(raw):
                break
            _ver, cnt, _file, aux, nxt = struct.unpack_from(self.endian + "HHIII", raw, offset)
            aux_off = offset + aux
            for _ in range(cnt):
                if aux_off + 16 > len(raw):
                    break
                _hash, _flags, other, name, anext = struct.unpack_from(
                    self.endian + "IHHII", raw, aux_off
                )
                out.setdefault(other & VERSYM_VERSION, _cstring(strtab, name))
                if not anext:
                    break
                aux_off += anext
            if not nxt:
                break
            offset += nxt
        return out

    # -- relocations -------------------------------------------------------------------------
    def _section_relocs(self, syms: list[Symbol]) -> dict[int, list[DynamicReloc]]:
        """The REL/RELA sections BFD attaches to their target section, read per target."""
        out: dict[int, list[DynamicReloc]] = {}
        for i, hdr in enumerate(self.headers):
            if _sh_type(hdr) in (SHT_REL, SHT_RELA) and self._relocs_of_other_section(hdr):
                out.setdefault(hdr["sh_info"], []).extend(self._read_relocs(i, syms))
        for relocs in out.values():
            relocs.sort(key=lambda r: r.address)
        return out

    def _dynamic_relocs(self, dynsyms: list[Symbol]) -> list[DynamicReloc]:
        """Relocations of every REL/RELA section linked to .dynsym, sorted by address (stable)."""
        out = []
        for i, hdr in enumerate(self.headers):
            sh_type = _sh_type(hdr)
            if sh_type not in (SHT_REL, SHT_RELA) or hdr["sh_link"] != self.dynsym_index:
                continue
            if i not in self.section_by_index:
                continue
            out.extend(self._read_relocs(i, dynsyms))
        out.sort(key=lambda r: r.address)
        return out

    def _read_relocs(self, i: int, syms: list[Symbol]) -> list[DynamicReloc]:
        """The entries of REL/RELA section ``i``; symbol index 0 is BFD's ``*ABS*``."""
        hdr = self.headers[i]
        sh_type = _sh_type(hdr)
        out = []
        raw = self._raw(i)
        if self.is64:
            fmt, size = ("<QQq", 24) if sh_type == SHT_RELA else ("<QQ", 16)
        else:
            fmt, size = ("<IIi", 12) if sh_type == SHT_RELA else ("<II", 8)
        for entry in struct.iter_unpack(fmt, raw[: len(raw) // size * size]):
            offset, info = entry[0], entry[1]
            addend = entry[2] if len(entry) == 3 else 0
            if self.is64:
                sym_index, rtype = info >> 32, info & 0xFFFFFFFF
            else:
                sym_index, rtype = info >> 8, info & 0xFF
            sym = syms[sym_index - 1] if 0 < sym_index <= len(syms) else None
            out.append(
                DynamicReloc(offset, rtype, addend, sym, sym.name if sym else "*ABS*")
            )
        return out


def _debugging(name: str, flags: int) -> bool:
    """SEC_DEBUGGING with SEC_ELF_OCTETS: the only sections BFD decompresses
    (_bfd_elf_make_section_from_shdr: by name, and only when not SHF_ALLOC)."""
    return not flags & SHF_ALLOC and name.startswith(DEBUG_PREFIXES)


def _sh_type(hdr) -> int:
    value = hdr["sh_type"]
    if isinstance(value, int):
        return value
    return _SH_TYPE_BY_NAME.get(value, -1)


_SH_TYPE_BY_NAME = {
    "SHT_NULL": SHT_NULL,
    "SHT_PROGBITS": SHT_PROGBITS,
    "SHT_SYMTAB": SHT_SYMTAB,
    "SHT_STRTAB": SHT_STRTAB,
    "SHT_RELA": SHT_RELA,
    "SHT_NOBITS": SHT_NOBITS,
    "SHT_REL": SHT_REL,
    "SHT_DYNSYM": SHT_DYNSYM,
    "SHT_SYMTAB_SHNDX": SHT_SYMTAB_SHNDX,
    "SHT_GNU_verdef": SHT_GNU_VERDEF,
    "SHT_GNU_verneed": SHT_GNU_VERNEED,
    "SHT_GNU_versym": SHT_GNU_VERSYM,
}


def _cstring(table: bytes, offset: int) -> str:
    if offset >= len(table):
        return ""
    end = table.find(b"\0", offset)
    if end < 0:
        end = len(table)
    return table[offset:end].decode("utf-8", "surrogateescape")


# -- synthetic PLT symbols (bfd/elf64-x86-64.c, bfd/elfxx-x86.c) -------------------------------

@dataclass(frozen=True)
class _PltLayout:
    """One PLT entry layout: bytes that identify it and where its GOT reference sits."""

    entry: bytes  # identifying prefix of an entry (up to the GOT displacement)
    entry_size: int
    got_offset: int  # offset of the 32-bit GOT displacement within an entry
    got_insn_size: int  # x86-64: end of the RIP-relative instruction (displacement base)
    got_relative: bool = False  # i386 PIC: displacement from the GOT base (%ebx)


# x86-64 layouts as binutils 2.40 writes them (psABI §A.4 PLT, plus BND/IBT variants).
_LAZY = _PltLayout(b"\xff\x25", 16, 2, 6)
_NON_LAZY = _PltLayout(b"\xff\x25", 8, 2, 6)
_NON_LAZY_BND = _PltLayout(b"\xf2\xff\x25", 8, 3, 7)
_NON_LAZY_IBT = _PltLayout(b"\xf3\x0f\x1e\xfa\xff\x25", 16, 6, 10)
_LAZY_IBT_ENTRY = b"\xf3\x0f\x1e\xfa\x68\x00\x00"  # endbr64; push $0 (first stub)
# i386 layouts: the GOT displacement is relative to the GOT (.got.plt) base.
_I386_LAZY = _PltLayout(b"\xff\x25", 16, 2, 0)  # absolute (non-PIC) form: ff 25 addr
_I386_LAZY_PIC = _PltLayout(b"\xff\xa3", 16, 2, 0, True)
_I386_NON_LAZY = _PltLayout(b"\xff\x25", 8, 2, 0)
_I386_NON_LAZY_PIC = _PltLayout(b"\xff\xa3", 8, 2, 0, True)
_I386_NON_LAZY_IBT = _PltLayout(b"\xf3\x0f\x1e\xfb\xff\x25", 16, 6, 0)
_I386_NON_LAZY_IBT_PIC = _PltLayout(b"\xf3\x0f\x1e\xfb\xff\xa3", 16, 6, 0, True)

_R_X86_64_VALID_PLT = {6, 7, 37}  # GLOB_DAT, JUMP_SLOT, IRELATIVE
_R_386_VALID_PLT = {6, 7, 42}  # GLOB_DAT, JUMP_SLOT, IRELATIVE


def _synthetic_plt_symbols(
    loader: _Loader, sections: list[Section], relocs: list[DynamicReloc], mode: int, has_dyn: bool
) -> list[Symbol]:
    """``name@plt`` symbols for PLT stubs whose GOT slot has a dynamic relocation."""
    if loader.elf_type not in (ET_EXEC, ET_DYN) or not has_dyn or not relocs:
        return []
    by_name: dict[str, Section] = {}
    for sec in sections:
        by_name.setdefault(sec.name, sec)
    if mode == 64:
        plts = _x86_64_plts(by_name, loader.is64)
        valid = _R_X86_64_VALID_PLT
        got_base = 0
    else:
        plts = _i386_plts(by_name)
        valid = _R_386_VALID_PLT
        got = by_name.get(".got.plt") or by_name.get(".got")
        if got is None:
            return []
        got_base = got.vma
    addresses = [r.address for r in relocs]

    used: set[int] = set()
    out: list[Symbol] = []
    for sec, layout, first in plts:
        data = sec.data()
        count = sec.size // layout.entry_size
        for k in range(first, count):
            offset = k * layout.entry_size
            pos = offset + layout.got_offset
            if pos + 4 > len(data):
                break
            (disp,) = struct.unpack_from("<i", data, pos)
            if mode == 64:
                got_vma = (sec.vma + offset + disp + layout.got_insn_size) & (2**64 - 1)
            else:
                got_vma = ((got_base if layout.got_relative else 0) + disp) & 0xFFFFFFFF
            i = bisect.bisect_left(addresses, got_vma)
            if i == len(addresses) or addresses[i] != got_vma:
                continue
            # bfd's binary search settles on one of several relocs at one address; take the
            # first unused valid one.
            while i < len(addresses) and addresses[i] == got_vma and (
                i in used or relocs[i].type not in valid
            ):
                i += 1
            if i == len(addresses) or addresses[i] != got_vma:
                continue
            used.add(i)
            rel = relocs[i]
            rel.plt_used = True
            base = rel.symbol
            name = rel.symbol_name
            if rel.addend:
                name += f"+0x{rel.addend & (2**64 - 1 if mode == 64 else 0xFFFFFFFF):x}"
            flags = (base.flags if base else BSF_SECTION_SYM) & ~BSF_SECTION_SYM
            if not flags & BSF_LOCAL:
                flags |= BSF_GLOBAL
            flags |= BSF_SYNTHETIC
            out.append(
                Symbol(name + "@plt", sec.vma + offset, 0, flags, sec.index, sec.name,
                       section_vma=sec.vma)
            )
    return out


def _x86_64_plts(by_name: dict[str, Section], is64: bool):
    """(section, layout, first entry) for each recognised PLT (elf_x86_64_get_synthetic_symtab)."""
    non_lazy = _NON_LAZY
    ibt = _NON_LAZY_IBT
    out = []
    for name, kind in ((".plt", "unknown"), (".plt.got", "non-lazy"), (".plt.sec", "second"),
                       (".plt.bnd", "second")):
        sec = by_name.get(name)
        if sec is None or sec.size == 0 or not sec.has_contents:
            continue
        data = sec.data()
        plt_type = None
        if kind == "unknown" and sec.size >= 32 and data[:2] == b"\xff\x35":
            if data[6:8] == b"\xff\x25":
                # IBT: lazy stubs start endbr64 and the callable ones live in .plt.sec.
                plt_type = "lazy+second" if data[16:23] == _LAZY_IBT_ENTRY else "lazy"
            elif data[6:9] == b"\xf2\xff\x25":
                plt_type = "lazy+second"  # stubs live in .plt.sec; this one names nothing
        if plt_type is None and sec.size >= non_lazy.entry_size:
            if data[: non_lazy.got_offset] == non_lazy.entry[: non_lazy.got_offset]:
                plt_type = "non-lazy"
        if plt_type is None:
            for candidate in (_NON_LAZY_BND, ibt):
                if sec.size >= candidate.entry_size and data.startswith(candidate.entry):
                    plt_type = "second"
                    non_lazy = candidate
                    break
        if plt_type is None or plt_type == "lazy+second":
            continue
        if plt_type == "lazy":
            out.append((sec, _LAZY, 1))
        else:
            out.append((sec, non_lazy, 0))
    return out


def _i386_plts(by_name: dict[str, Section]):
    """(section, layout, first entry) per recognised i386 PLT (elf_i386_get_synthetic_symtab)."""
    out = []
    for name in (".plt", ".plt.got", ".plt.sec"):
        sec = by_name.get(name)
        if sec is None or sec.size == 0 or not sec.has_contents:
            continue
        data = sec.data()
        if name == ".plt" and sec.size >= 32:
            if data[:2] == b"\xff\x35":  # pushl GOT+4: non-PIC lazy PLT0
                if data[16:22].startswith(b"\xf3\x0f\x1e\xfb"):
                    continue  # IBT lazy PLT: stubs in .plt.sec
                out.append((sec, _I386_LAZY, 1))
                continue
            if data[:2] == b"\xff\xb3":  # pushl 4(%ebx): PIC lazy PLT0
                if data[16:22].startswith(b"\xf3\x0f\x1e\xfb"):
                    continue
                out.append((sec, _I386_LAZY_PIC, 1))
                continue
        for layout in (_I386_NON_LAZY, _I386_NON_LAZY_PIC, _I386_NON_LAZY_IBT,
                       _I386_NON_LAZY_IBT_PIC):
            if sec.size >= layout.entry_size and data.startswith(layout.entry):
                out.append((sec, layout, 0))
                break
    return out
