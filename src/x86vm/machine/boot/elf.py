"""Just enough ELF (System V gABI, "ELF Header", "Program Header", "Note Section") to boot:
the class, the entry point, the PT_LOAD segments and the notes, every field bounds-checked
against the image (an image is untrusted input).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.layout import Placement

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EM_386, EM_X86_64 = 3, 62
PT_LOAD, PT_NOTE = 1, 4
ET_EXEC, ET_DYN = 2, 3

# (e_ident is 16 bytes) e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize
# e_phentsize e_phnum ...
_EHDR = {ELFCLASS32: struct.Struct("<HHIIIIIHHH"), ELFCLASS64: struct.Struct("<HHIQQQIHHH")}
# p_type p_offset p_vaddr p_paddr p_filesz p_memsz p_flags p_align (field order differs)
_PHDR32 = struct.Struct("<IIIIIIII")
_PHDR64 = struct.Struct("<IIQQQQQQ")
MAX_PROGRAM_HEADERS = 256  # kernels have a handful; a bound keeps overlap checks cheap


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int
    align: int


@dataclass(frozen=True)
class Note:
    name: bytes
    type: int
    desc: bytes


@dataclass(frozen=True)
class ElfImage:
    elf_class: int
    type: int
    machine: int
    entry: int
    segments: tuple[ProgramHeader, ...]
    notes: tuple[Note, ...]

    @property
    def loads(self) -> tuple[ProgramHeader, ...]:
        return tuple(p for p in self.segments if p.type == PT_LOAD and p.memsz)

    def physical_entry(self) -> int:
        """e_entry as a physical address: translated through a PT_LOAD when it is a virtual
        address of a segment loaded elsewhere (higher-half kernels)."""
        loads = self.loads
        if any(p.paddr <= self.entry < p.paddr + p.memsz for p in loads):
            return self.entry
        for p in loads:
            if p.vaddr <= self.entry < p.vaddr + p.memsz:
                return self.entry - p.vaddr + p.paddr
        raise BootError(f"ELF entry point {self.entry:#x} is not inside any loadable segment")


def is_elf(image: bytes) -> bool:
    return image[:4] == ELF_MAGIC


def elf_class(image: bytes) -> int | None:
    return image[4] if is_elf(image) and len(image) > 4 else None


def parse_elf(image: bytes) -> ElfImage:
    """Parse an x86 ELF32/ELF64 executable; every offset and size is checked against the file."""
    if not is_elf(image):
        raise BootError("not an ELF file (no \\x7fELF magic)")
    if len(image) < 16:
        raise BootError(f"truncated ELF: {len(image)} bytes, the identification alone is 16")
    cls, data = image[4], image[5]
    if cls not in _EHDR:
        raise BootError(f"ELF class {cls} is neither ELFCLASS32 nor ELFCLASS64")
    if data != ELFDATA2LSB:
        raise BootError("ELF data encoding is not little-endian")
    ehdr = _EHDR[cls]
    if len(image) < 16 + ehdr.size:
        raise BootError(f"truncated ELF header: {len(image)} bytes, need {16 + ehdr.size}")
    (etype, machine, _ver, entry, phoff, _shoff, _flags, _ehsize, phentsize,
     phnum) = ehdr.unpack_from(image, 16)
    if machine not in (EM_386, EM_X86_64):
        raise BootError(f"ELF machine {machine} is not x86 (EM_386 or EM_X86_64)")
    phdr = _PHDR32 if cls == ELFCLASS32 else _PHDR64
    if phnum == 0:
        raise BootError("ELF has no program headers: nothing to load")
    if phnum > MAX_PROGRAM_HEADERS:
        raise BootError(f"ELF has {phnum} program headers; more than {MAX_PROGRAM_HEADERS} "
                        "is not a kernel")
    if phentsize < phdr.size:
        raise BootError(f"ELF program header size {phentsize} is smaller than {phdr.size}")
    if phoff + phnum * phentsize > len(image):
        raise BootError(f"truncated ELF: program headers end at {phoff + phnum * phentsize:#x}, "
                        f"the file is {len(image):#x} bytes")
    segments = []
    for i in range(phnum):
        fields = phdr.unpack_from(image, phoff + i * phentsize)
        if cls == ELFCLASS32:
            ptype, offset, vaddr, paddr, filesz, memsz, flags, align = fields
        else:
            ptype, flags, offset, vaddr, paddr, filesz, memsz, align = fields
        ph = ProgramHeader(ptype, offset, vaddr, paddr, filesz, memsz, flags, align)
        if ptype in (PT_LOAD, PT_NOTE) and offset + filesz > len(image):
            raise BootError(f"truncated ELF: segment {i} needs file bytes {offset:#x}-"
                            f"{offset + filesz:#x}, the file is {len(image):#x} bytes")
        if ptype == PT_LOAD and filesz > memsz:
            raise BootError(f"ELF segment {i}: file size {filesz:#x} exceeds memory size "
                            f"{memsz:#x}")
        segments.append(ph)
    notes = tuple(n for p in segments if p.type == PT_NOTE for n in _parse_notes(image, p))
    return ElfImage(cls, etype, machine, entry, tuple(segments), notes)


def _align_up(offset: int, align: int) -> int:
    return (offset + align - 1) // align * align


def _parse_notes(image: bytes, ph: ProgramHeader) -> list[Note]:
    """Notes in one PT_NOTE segment: namesz, descsz, type, then name and desc, each padded."""
    align = 8 if ph.align == 8 else 4
    pos, end = ph.offset, ph.offset + ph.filesz
    notes = []
    while pos + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from("<III", image, pos)
        name_at = pos + 12
        desc_at = _align_up(name_at + namesz, align)  # offsets, not sizes, are aligned
        next_at = _align_up(desc_at + descsz, align)
        if desc_at + descsz > end:
            raise BootError(f"truncated ELF note at file offset {pos:#x}")
        notes.append(Note(image[name_at : name_at + namesz].rstrip(b"\0"), ntype,
                          image[desc_at : desc_at + descsz]))
        pos = next_at
    return notes


def load_segments(placement: Placement, image: bytes, elf: ElfImage) -> tuple[int, int]:
    """Copy every PT_LOAD to its physical address (p_paddr), zero-filling to p_memsz.

    Each segment must lie in usable RAM and overlap nothing placed before. Returns the lowest
    and highest loaded addresses.
    """
    loads = elf.loads
    if not loads:
        raise BootError("ELF has no loadable (PT_LOAD) segment")
    for i, p in enumerate(loads):
        placement.claim(p.paddr, p.memsz, f"ELF segment {i}")
    mem = placement.memory
    for p in loads:
        mem.write(p.paddr, image[p.offset : p.offset + p.filesz])
        if p.memsz > p.filesz:
            mem.fill(p.paddr + p.filesz, p.memsz - p.filesz)
    return min(p.paddr for p in loads), max(p.paddr + p.memsz for p in loads)
