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

from x86vm.disasm.elfformat import (
    BAD_ALIGNMENT,
    CORRUPT_SHSTRNDX,
    DEBUG_PREFIXES,
    ELFCLASS32,
    ELFCLASS64,
    ELFDATA2LSB,
    ELFDATA2MSB,
    EM_X86_64,
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    EV_CURRENT,
    GRP_ENTRY_SIZE,
    PAST_END,
    PLAIN_TYPES,
    PN_XNUM,
    SHF_ALLOC,
    SHF_COMPRESSED,
    SHF_GROUP,
    SHF_INFO_LINK,
    SHF_LINK_ORDER,
    SHF_OS_NONCONFORMING,
    SHN_AFTER,
    SHN_BEFORE,
    SHN_LORESERVE,
    SHN_UNDEF,
    SHN_XINDEX,
    SHT_DYNAMIC,
    SHT_DYNSYM,
    SHT_GNU_ATTRIBUTES,
    SHT_GNU_VERDEF,
    SHT_GNU_VERNEED,
    SHT_GNU_VERSYM,
    SHT_GROUP,
    SHT_HIOS,
    SHT_HIUSER,
    SHT_LOOS,
    SHT_LOUSER,
    SHT_NOBITS,
    SHT_NOTE,
    SHT_NULL,
    SHT_REL,
    SHT_RELA,
    SHT_RELR,
    SHT_SHLIB,
    SHT_STRTAB,
    SHT_SYMTAB,
    SHT_SYMTAB_SHNDX,
    SHT_X86_64_UNWIND,
    UNKNOWN_ARCH,
    UNRECOGNIZED,
    X86_VECTORS,
    BfdView,
    ReadAt,
    Shdr,
    _File,
    _Layout,
)
from x86vm.disasm.elfnotes import NT_GNU_PROPERTY_TYPE_0, core_view, notes, property_problem

__all__ = ["UNKNOWN_ARCH", "UNRECOGNIZED", "BfdView", "ReadAt", "Shdr", "bfd_view"]


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
        self.relocs_read: set[int] = set()
        self.reloc_error = self.symbol_error = ""
        self.verneed: Shdr | None = None
        self.versym: Shdr | None = None

    def say(self, text: str) -> None:
        # not str.format: the names in a message are the file's bytes, "{" and "}" included
        self.messages.append(text.replace("{path}", self.file.path))

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
        # others (elf32-i386, elf32-iamcu, generic) keep BFD's default, which makes a section;
        # when that fails, the type ranges below still decide (and a made section stays)
        if (kind == SHT_X86_64_UNWIND or not self.x86_64_backend) and self.make(hdr, name):
            return True
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
        if key in self.rel_targets:  # a secondary relocation section: RELA ones are kept
            if hdr.type == SHT_RELA:
                return self.make(hdr, name)
            target = self.shdrs[hdr.info]
            label = f"{target.section}[{target.group_name}]" if target.group_name \
                and target.type != SHT_GROUP else target.section
            self.say(f"{{path}}: warning: secondary relocation section '{name}' for section "
                     f"{label} found - ignoring")
            return True
        self.rel_targets.add(key)
        return True

    # -- _bfd_elf_make_section_from_shdr -----------------------------------------------------
    def make(self, hdr: Shdr, name: str) -> bool:
        if hdr.section is not None:
            return True
        hdr.section = name
        self.made.append(hdr)
        if hdr.flags & SHF_GROUP and not self._setup_group(hdr):
            return False
        if not self._decompressible(hdr, name):
            return False
        if hdr.type == SHT_NOTE and hdr.size != 0:
            if self._past_end(hdr):
                self.say(f"error: {{path}}({name}) is too large ({hdr.size:#x} bytes)")
                return False
            contents = self.file.read(hdr.offset, hdr.size)
            if contents is None:
                return False
            self._object_notes(contents, hdr.addralign)
        return True

    def _decompressible(self, hdr: Shdr, name: str) -> bool:
        """objdump opens files with BFD_DECOMPRESS: a compressed debugging section (by name,
        not SHF_ALLOC) whose compression header BFD cannot take fails the section (its
        type, a power-of-two alignment, both sizes below 4 GiB: measured with objdump 2.40)."""
        if not hdr.flags & SHF_COMPRESSED or hdr.type == SHT_NOBITS \
                or hdr.flags & SHF_ALLOC or not name.startswith(DEBUG_PREFIXES):
            return True
        chdr = struct.Struct(self.layout.e + ("IIQQ" if self.layout.is64 else "III"))
        raw = self.file.read(hdr.offset, chdr.size) if hdr.size >= chdr.size else None
        if raw is None:
            return True  # no header to read: BFD does not see it as compressed
        fields = chdr.unpack(raw)
        ch_type, ch_size, ch_align = (fields[0], fields[2], fields[3]) if self.layout.is64 \
            else fields
        if ch_type in (1, 2) and ch_align & (ch_align - 1) == 0 \
                and ch_size <= 0xFFFFFFFF and hdr.size <= 0xFFFFFFFF:
            return True
        self.say(f"{{path}}: unable to decompress section {name}")
        return False

    def _object_notes(self, buf: bytes, align: int) -> None:
        """elf_parse_notes on an object's SHT_NOTE section: the GNU property notes are
        parsed (elf-properties.c), their complaints said; its result is not used."""
        for name, note_type, desc in notes(buf, align, self.layout.e)[0]:
            if name == b"GNU\0" and note_type == NT_GNU_PROPERTY_TYPE_0:
                self._gnu_properties(desc)

    def _gnu_properties(self, desc: bytes) -> None:
        """_bfd_elf_parse_gnu_properties, with the x86 backend's sizes."""
        step = 8 if self.layout.is64 else 4
        if len(desc) < 8 or len(desc) % step:
            self.say(f"warning: {{path}}: corrupt GNU_PROPERTY_TYPE (5) size: {len(desc):#x}")
            return
        at = 0
        while at != len(desc):
            if len(desc) - at < 8:
                self.say(f"warning: {{path}}: corrupt GNU_PROPERTY_TYPE (5) size: "
                         f"{len(desc):#x}")
                return
            kind, datasz = struct.unpack_from(self.layout.e + "II", desc, at)
            at += 8
            if datasz > len(desc) - at:
                self.say(f"warning: {{path}}: corrupt GNU_PROPERTY_TYPE (5) type ({kind:#x}) "
                         f"datasz: {datasz:#x}")
                return
            problem = property_problem(kind, datasz, step, generic=not self.x86)
            if problem == "corrupt":
                return
            if problem is not None:
                self.say(problem.format(kind=kind, datasz=datasz, path="{path}"))
                if problem.startswith(("error", "warning: {path}: corrupt")):
                    return
            at += (datasz + step - 1) & -step

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
                # BFD keeps the translated group in the header's contents, where a string
                # lookup in this section would find it (its last byte is 0 on x86-64 hosts)
                shdr.contents = bytes(shdr.size + 1)
                self.groups.append(shdr)
            if self.num_group != -1 and not self.groups:
                self.num_group = -1
                self.say("{path}: no valid group sections found")
        for group in self.groups:
            if group.group is None or group.size < 4:
                self.say(f"{{path}}: group section '{group.section}' has no contents")
                return False
            if any(member is hdr for member in group.group[1:]):
                named = next((m for m in group.group[1:] if m is not None and m is not hdr
                              and m.group_name is not None), None)
                name = named.group_name if named is not None else self._signature(group)
                if name is None:
                    return False
                hdr.group_name = name
                group.next_in_group = True
                return True
        self.say(f"{{path}}: no group info for section '{hdr.section}'")
        return True

    def _signature(self, group: Shdr) -> str | None:
        """group_signature: the name of the symbol sh_info of the group's symbol table."""
        if group.link >= len(self.shdrs) or self.shdrs[group.link].type != SHT_SYMTAB \
                or not self.from_shdr(group.link):
            return None
        symtab = self.shdrs[self.onesymtab]
        size = self.layout.sym_size
        raw = self.file.read(symtab.offset + group.info * size, size)
        if raw is None:
            return None
        st_name, = struct.unpack_from(self.layout.e + "I", raw, 0)
        info_at, shndx_at = (4, 6) if self.layout.is64 else (12, 14)
        st_shndx, = struct.unpack_from(self.layout.e + "H", raw, shndx_at)
        if st_shndx == SHN_XINDEX and not any(entry.size for entry in self.shndx_list):
            self.say(f"{{path}} symbol number {group.info} references nonexistent "
                     "SHT_SYMTAB_SHNDX section")
            return None
        table = symtab.link
        if st_name == 0 and raw[info_at] & 0xF == 3 and st_shndx < len(self.shdrs):
            st_name, table = self.shdrs[st_shndx].name, self.e_shstrndx
        name = self.string(table, st_name)
        return "(null)" if name is None else name

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
                return [f"{path}: {self.symbol_error}"]
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
            return [f"{path}: {self.symbol_error}"]
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
        # elf_i386_get_synthetic_symtab reads the relocations whatever its PLTs hold (and
        # says nothing of a PLT it cannot read); the x86-64 one reads them after its PLTs
        synthetic = self.e_type in (ET_EXEC, ET_DYN) and dynsymcount > 0
        synthetic_reads = synthetic and not self.x86_64_backend
        if synthetic and self.x86_64_backend:
            for plt_name in self.PLT_NAMES:
                plt = next((h for h in self.made if h.section == plt_name), None)
                if plt is None or plt.size == 0 or plt.type == SHT_NOBITS:
                    continue
                if self._past_end(plt):
                    self.say(f"error: {{path}}({plt_name}) is too large ({plt.size:#x} bytes)")
                    break
                synthetic_reads = True
        if synthetic_reads and not self._read_relocs(relsecs, dynsymcount):
            pass  # the synthetic symbols are given up; disassemble_data reads them again
        if not self._read_relocs(relsecs, dynsymcount):
            return [f"{self.file.path}: {self.reloc_error}"]
        return None

    # R_X86_64_* and R_386_* types BFD has a howto for (elf_x86_64_rtype_to_howto,
    # elf_i386_rtype_to_howto); others are "unsupported relocation type"
    RELOC_TYPES = {True: frozenset([*range(0, 43), 250, 251]),
                   False: frozenset([*range(0, 12), *range(14, 44), 250, 251])}

    def _read_relocs(self, relsecs: list[Shdr], dynsymcount: int) -> bool:
        """elf_slurp_reloc_table on each dynamic relocation section; False when one fails
        (``self.reloc_error`` says why). Relocations read once are not read again."""
        is64 = self.layout.is64
        valid = self.RELOC_TYPES[self.x86_64_backend]
        for hdr in relsecs:
            if hdr.index in self.relocs_read:
                continue
            raw = self.file.read(hdr.offset, hdr.size)
            if raw is None:
                self.reloc_error = "file truncated"
                return False
            if hdr.entsize not in (self.layout.reloc_sizes[SHT_REL],
                                   self.layout.reloc_sizes[SHT_RELA]):
                continue
            for n in range(hdr.size // hdr.entsize):
                info, = struct.unpack_from(self.layout.e + self.layout.word, raw,
                                           n * hdr.entsize + (8 if is64 else 4))
                sym = info >> 32 if is64 else info >> 8
                rtype = info & 0xFF  # ELF32_R_TYPE, also for x86-64 (elf_x86_64_info_to_howto)
                if sym > dynsymcount:
                    self.say(f"{{path}}({hdr.section}): relocation {n} has invalid symbol "
                             f"index {sym}")
                if rtype not in valid:
                    self.say(f"{{path}}: unsupported relocation type {rtype:#x}")
                    self.reloc_error = "bad value"
                    return False
            self.relocs_read.add(hdr.index)
        return True

    def _symbols(self, hdr: Shdr, count: int, versym: Shdr | None) -> bool:
        """elf_slurp_symbol_table: False if the table cannot be read; names looked up."""
        size = self.layout.sym_size
        raw = self.file.read(hdr.offset, count * size)
        if raw is None:
            self.symbol_error = "file truncated"
            return False
        shndx_at = 6 if self.layout.is64 else 14
        if not any(entry.size for entry in self.shndx_list):  # elf_swap_symbol_in
            for n in range(count):
                if struct.unpack_from(self.layout.e + "H", raw, n * size + shndx_at)[0] \
                        == SHN_XINDEX:
                    self.say(f"{{path}} symbol number {n} references nonexistent "
                             "SHT_SYMTAB_SHNDX section")
                    # BFD sets no error here: objdump prints the last one, left by the
                    # format probing (the default vector elf64-x86-64 matches at once)
                    self.symbol_error = "file format not recognized" if self.layout.is64 \
                        and self.x86_64_backend else "file in wrong format"
                    return False
        if versym is not None and versym.size // 2 != count:
            self.say(f"{{path}}: version count ({_signed64(versym.size // 2)}) does not match "
                     f"symbol count ({count})")
            versym = None
        if versym is not None and versym.size and self.file.read(versym.offset,
                                                                 versym.size) is None:
            self.symbol_error = "file truncated"
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
            return self._verdef(self.verdef)
        return None

    def _verdef(self, hdr: Shdr) -> str | None:
        """The .gnu.version_d walk of _bfd_elf_slurp_version_tables: its error, or None."""
        bad = "{path}: .gnu.version_d invalid entry"
        if hdr.size < 20:
            self.say(bad)
            return "bad value"
        data = self.file.read(hdr.offset, hdr.size)
        if data is None:
            return "file truncated"
        end_def, end_aux = hdr.size - 20, hdr.size - 8
        verdef, verdaux = self.layout.e + "HHHHIII", self.layout.e + "II"
        at = 0
        for _i in range(hdr.info):  # first pass: the version indexes and the links
            _v, _f, ndx, _cnt, _hash, _aux, vd_next = struct.unpack_from(verdef, data, at)
            if ndx & 0x7FFF == 0:
                self.say(bad)
                return "bad value"
            if vd_next == 0:
                break
            if vd_next > end_def - at:
                self.say(bad)
                return "bad value"
            at += vd_next
        at = 0
        for _i in range(hdr.info):  # second pass: the names
            _v, _f, ndx, cnt, _hash, vd_aux, vd_next = struct.unpack_from(verdef, data, at)
            if ndx & 0x7FFF == 0 or vd_aux > end_aux - at:
                self.say(bad)
                return "bad value"
            aux = at + vd_aux
            for _j in range(cnt):
                vda_name, vda_next = struct.unpack_from(verdaux, data, aux)
                if self.string(hdr.link, vda_name) is None:
                    self.say(bad)
                    return "bad value"
                if vda_next == 0:
                    break
                if vda_next > end_aux - aux:
                    self.say(bad)
                    return "bad value"
                aux += vda_next
            if vd_next == 0:
                break
            at += vd_next
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
        return core_view(file, layout, header, data, ei_data)
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
    groups = {h.index: h.group_name for h in vector.made
              if h.group_name is not None and h.type != SHT_GROUP}
    fatal = vector.read_symbols()
    return BfdView(None, vector.messages, format_name, vector.no_sections, made,
                   vector.onesymtab, vector.dynsymtab, fatal, vector.shdrs, vector.ehdr,
                   group_names=groups)
