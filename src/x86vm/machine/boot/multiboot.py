"""Multiboot v1 (Multiboot Specification 0.6.96).

§3.1 the header: a 4-byte aligned ``magic, flags, checksum`` triple within the first 8192
bytes, ``magic + flags + checksum == 0 (mod 2**32)``; with flag 16 the a.out-kludge address
fields say where to load the file, otherwise the image is an ELF loaded by its program headers.
§3.2 the machine state: EAX = 0x2BADB002, EBX = physical address of the ``multiboot_info``,
32-bit flat protected mode, paging off, interrupts off.
§3.3 the boot information: mem_lower/mem_upper, cmdline, modules, memory map, loader name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from x86vm.machine.boot.elf import is_elf, load_segments, parse_elf
from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.layout import (
    BootModule,
    Placement,
    Reservations,
    e820_map,
    lower_upper_kib,
    place_modules,
    write_cstring,
    write_gdt,
)
from x86vm.machine.boot.state import (
    FLAT32_CODE,
    FLAT32_DATA,
    TSS_SEGMENT,
    EntryState,
    flat_protected32,
)
from x86vm.machine.memory import GuestMemory

HEADER_MAGIC = 0x1BADB002
BOOTLOADER_MAGIC = 0x2BADB002
SEARCH_LIMIT = 8192

# multiboot_header.flags (§3.1.2): bits 0-15 are requirements a loader must meet or refuse.
PAGE_ALIGN = 1 << 0
MEMORY_INFO = 1 << 1
VIDEO_MODE = 1 << 2
AOUT_KLUDGE = 1 << 16
SUPPORTED_REQUIREMENTS = PAGE_ALIGN | MEMORY_INFO | VIDEO_MODE

# multiboot_info.flags (§3.3)
INFO_MEMORY = 1 << 0
INFO_CMDLINE = 1 << 2
INFO_MODS = 1 << 3
INFO_MEM_MAP = 1 << 6
INFO_LOADER_NAME = 1 << 9

INFO_SIZE = 120  # through the framebuffer fields; unused fields stay zero
LOADER_NAME = "x86vm"

# Offsets into multiboot_info (§3.3, the table "Boot information format").
OFF_FLAGS, OFF_MEM_LOWER, OFF_MEM_UPPER = 0, 4, 8
OFF_CMDLINE, OFF_MODS_COUNT, OFF_MODS_ADDR = 16, 20, 24
OFF_MMAP_LENGTH, OFF_MMAP_ADDR = 44, 48
OFF_BOOT_LOADER_NAME = 64


@dataclass(frozen=True)
class MultibootHeader:
    offset: int  # file offset of the magic
    flags: int
    header_addr: int = 0
    load_addr: int = 0
    load_end_addr: int = 0
    bss_end_addr: int = 0
    entry_addr: int = 0


def find_header(image: bytes) -> MultibootHeader | None:
    """The first valid header in the first 8192 bytes (§3.1.1), or None."""
    limit = min(len(image), SEARCH_LIMIT) - 12
    for off in range(0, limit + 1, 4):
        magic, flags, checksum = struct.unpack_from("<III", image, off)
        if magic != HEADER_MAGIC or (magic + flags + checksum) & 0xFFFFFFFF:
            continue
        if flags & AOUT_KLUDGE:
            if off + 32 > len(image):
                raise BootError(f"truncated Multiboot header at {off:#x}: the address fields "
                                "(flag 16) run past the end of the image")
            return MultibootHeader(off, flags, *struct.unpack_from("<IIIII", image, off + 12))
        return MultibootHeader(off, flags)
    return None


def bad_checksum_offset(image: bytes) -> int | None:
    """Where a Multiboot magic sits with a wrong checksum (for a helpful error)."""
    limit = min(len(image), SEARCH_LIMIT) - 12
    for off in range(0, limit + 1, 4):
        if struct.unpack_from("<I", image, off)[0] == HEADER_MAGIC:
            return off
    return None


def _load_aout_kludge(placement: Placement, image: bytes, h: MultibootHeader) -> int:
    """Load by the header's address fields (§3.1.3); returns the entry address."""
    if h.header_addr < h.load_addr:
        raise BootError(f"Multiboot header_addr {h.header_addr:#x} is below load_addr "
                        f"{h.load_addr:#x}")
    file_start = h.offset - (h.header_addr - h.load_addr)
    if file_start < 0:
        raise BootError("Multiboot load_addr lies before the start of the image")
    load_end = h.load_end_addr or h.load_addr + len(image) - file_start
    if load_end < h.load_addr:
        raise BootError(f"Multiboot load_end_addr {load_end:#x} is below load_addr")
    text_size = load_end - h.load_addr
    if file_start + text_size > len(image):
        raise BootError(f"truncated Multiboot image: load_end_addr {load_end:#x} needs "
                        f"{file_start + text_size:#x} bytes, the image has {len(image):#x}")
    bss_end = h.bss_end_addr or load_end
    if bss_end < load_end:
        raise BootError(f"Multiboot bss_end_addr {bss_end:#x} is below load_end_addr")
    placement.claim(h.load_addr, bss_end - h.load_addr, "Multiboot kernel")
    placement.memory.write(h.load_addr, image[file_start : file_start + text_size])
    if bss_end > load_end:
        placement.memory.fill(load_end, bss_end - load_end)
    if not h.load_addr <= h.entry_addr < bss_end:
        raise BootError(f"Multiboot entry_addr {h.entry_addr:#x} is outside the loaded image "
                        f"{h.load_addr:#x}-{bss_end:#x}")
    return h.entry_addr


def load_multiboot(memory: GuestMemory, image: bytes, *, cmdline: str = "",
                   modules: list[BootModule] | None = None,
                   reserved: Reservations = ()) -> EntryState:
    """Load a Multiboot kernel and build its boot information; returns the entry state.
    ``reserved`` ranges are reported reserved in the memory map and kept free."""
    h = find_header(image)
    if h is None:
        off = bad_checksum_offset(image)
        if off is not None:
            raise BootError(f"Multiboot header at {off:#x} has a bad checksum")
        raise BootError("no Multiboot header (magic 0x1BADB002) in the first 8192 bytes")
    unsupported = h.flags & 0xFFFF & ~SUPPORTED_REQUIREMENTS
    if unsupported:
        raise BootError(f"Multiboot header requires features {unsupported:#x} this loader "
                        "does not provide")
    placement = Placement(memory, reserved)
    if h.flags & AOUT_KLUDGE:
        entry = _load_aout_kludge(placement, image, h)
    elif is_elf(image):
        elf = parse_elf(image)
        load_segments(placement, image, elf)
        entry = elf.physical_entry()
    else:
        raise BootError("Multiboot image is neither ELF nor has the address fields (flag 16)")
    if entry >= 1 << 32:
        raise BootError(f"Multiboot entry point {entry:#x} is above 4 GiB")

    info = placement.allocate(INFO_SIZE, "multiboot_info", align=8)
    memory.fill(info, INFO_SIZE)
    flags = INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MEM_MAP | INFO_LOADER_NAME
    lower, upper = lower_upper_kib(memory, placement.reserved)
    memory.write_struct(info + OFF_MEM_LOWER, "<II", lower, upper)
    memory.write_u32(info + OFF_CMDLINE, write_cstring(placement, cmdline, "kernel command line"))
    memory.write_u32(info + OFF_BOOT_LOADER_NAME,
                     write_cstring(placement, LOADER_NAME, "boot loader name"))

    mods = modules or []
    placed = place_modules(placement, mods)
    mods_addr = placement.allocate(16 * max(len(mods), 1), "module list", align=16)
    for i, (m, (addr, size)) in enumerate(zip(mods, placed, strict=True)):
        string = write_cstring(placement, m.cmdline, f"module {i} string")
        memory.write_struct(mods_addr + 16 * i, "<IIII", addr, addr + size, string, 0)
    memory.write_struct(info + OFF_MODS_COUNT, "<II", len(mods), mods_addr)

    # Memory map entries: size (of the rest, 20), base_addr, length, type (§3.3).
    table = b"".join(struct.pack("<IQQI", 20, e.addr, e.size, e.type)
                     for e in e820_map(memory, placement.reserved))
    mmap_addr = placement.allocate(len(table), "memory map", align=8)
    memory.write(mmap_addr, table)
    memory.write_struct(info + OFF_MMAP_LENGTH, "<II", len(table), mmap_addr)
    memory.write_u32(info + OFF_FLAGS, flags)

    gdt = write_gdt(placement, FLAT32_CODE, FLAT32_DATA, TSS_SEGMENT)
    return flat_protected32(entry, gdt, rax=BOOTLOADER_MAGIC, rbx=info)
