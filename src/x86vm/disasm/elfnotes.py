"""ELF notes and core files as BFD reads them: the note walk of ``elf_parse_notes``, the GNU
property notes of an object (``bfd/elf-properties.c``, with the x86 backend's sizes), and
``elf_core_file_p`` (``bfd/elfcore.h``), which makes a core file's segments its sections."""

from __future__ import annotations

import struct

from x86vm.disasm.elfformat import (
    ELFDATA2MSB,
    PN_XNUM,
    UNKNOWN_ARCH,
    UNRECOGNIZED,
    X86_VECTORS,
    BfdView,
    Segment,
    _File,
    _Layout,
)

# bfd_section_from_phdr: the name of a segment's section, by p_type ("proc" for the others)
PT_NAMES = {0: "null", 1: "load", 2: "dynamic", 3: "interp", 4: "note", 5: "shlib", 6: "phdr",
            7: "tls", 0x6474E550: "eh_frame_hdr", 0x6474E551: "stack", 0x6474E552: "relro",
            0x6474E554: "sframe"}
PT_LOAD, PT_NOTE, PF_X = 1, 4, 1
SEGMENT_PAST_END = "warning: {path} has a segment extending past end of file"


def core_view(file: _File, layout: _Layout, header: tuple, data: bytes, ei_data: int) -> BfdView:
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


NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_LOPROC, GNU_PROPERTY_LOUSER = 0xC0000000, 0xE0000000
X86_NUMBER_PROPERTIES = range(0xC0000000, 0xC0018000)  # x86 ISA/feature AND/OR words


def property_problem(kind: int, datasz: int, step: int, generic: bool) -> str | None:
    """What BFD says of one GNU property (None: nothing), ``{path}`` left to fill."""
    if kind >= GNU_PROPERTY_LOPROC:
        if generic or kind >= GNU_PROPERTY_LOUSER:
            return None if generic else ("warning: {path}: unsupported GNU_PROPERTY_TYPE (5) "
                                         "type: {kind:#x}")
        if kind in X86_NUMBER_PROPERTIES and datasz != 4:
            return "error: {path}: <corrupt x86 property ({kind:#x}) size: {datasz:#x}>"
        return None
    if kind == 1:  # GNU_PROPERTY_STACK_SIZE
        return None if datasz == step else "warning: {path}: corrupt stack size: {datasz:#x}"
    if kind == 2:  # GNU_PROPERTY_NO_COPY_ON_PROTECTED
        return None if datasz == 0 else ("warning: {path}: corrupt no copy on protected "
                                         "size: {datasz:#x}")
    if 0xB0000000 <= kind <= 0xB000FFFF:  # GNU_PROPERTY_UINT32_AND/OR ranges
        return None if datasz == 4 else ("error: {path}: <corrupt property ({kind:#x}) "
                                         "size: {datasz:#x}>")
    return "warning: {path}: unsupported GNU_PROPERTY_TYPE (5) type: {kind:#x}"


def notes(buf: bytes, align: int, endian: str) -> tuple[list[tuple[bytes, int, bytes]], bool]:
    """The (name, type, desc) of each note elf_parse_notes reaches in ``buf``, and whether it
    reached the end (False: a malformed note, or an alignment other than 4 or 8, stopped it)."""
    align = 4 if align < 4 else align
    if align not in (4, 8):
        return [], False
    found, at, size = [], 0, len(buf)
    while at < size:
        if 12 > size - at:
            return found, False
        namesz, descsz, note_type = struct.unpack_from(endian + "III", buf, at)
        if namesz > size - at - 12:
            return found, False
        desc_at = at + ((12 + namesz + align - 1) & -align)
        if descsz != 0 and (desc_at >= size or descsz > size - desc_at):
            return found, False
        found.append((buf[at + 12:at + 12 + namesz], note_type, buf[desc_at:desc_at + descsz]))
        at = desc_at + ((descsz + align - 1) & -align)
    return found, True


def _notes_parse(file: _File, layout: _Layout, offset: int, size: int, align: int) -> bool:
    """elf_read_notes and the structure checks of elf_parse_notes (a core file's notes)."""
    if size + 1 >= 1 << 64:
        return True
    buf = file.read(offset, size)
    return buf is not None and notes(buf, align, layout.e)[1]
