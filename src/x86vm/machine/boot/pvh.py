"""PVH boot (Xen "x86/HVM direct boot ABI", docs/misc/pvh.pandoc; structures from
xen/include/public/arch-x86/hvm/start_info.h).

The kernel is an ELF whose PT_NOTE carries a "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY (18):
the 32-bit physical entry point. The loader fills ``struct hvm_start_info`` (version 1:
command line, module list — the initrd is module 0 —, memory map) and enters in 32-bit flat
protected mode, paging off, with EBX = its address.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from x86vm.machine.boot.elf import ElfImage, load_segments, parse_elf
from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.layout import (
    FOUR_GIB,
    BootModule,
    Placement,
    Reservations,
    e820_map,
    join_cmdline,
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

XEN_ELFNOTE_PHYS32_ENTRY = 18
START_MAGIC = 0x336EC578
START_INFO_VERSION = 1
# magic version flags nr_modules modlist_paddr cmdline_paddr rsdp_paddr memmap_paddr
# memmap_entries reserved
START_INFO = struct.Struct("<IIIIQQQQII")
MODLIST_ENTRY = struct.Struct("<QQQQ")  # paddr size cmdline_paddr reserved
MEMMAP_ENTRY = struct.Struct("<QQII")  # addr size type reserved


def pvh_entry(elf: ElfImage) -> int | None:
    """The XEN_ELFNOTE_PHYS32_ENTRY value (4 or 8 bytes), or None if the note is absent."""
    for note in elf.notes:
        if note.name == b"Xen" and note.type == XEN_ELFNOTE_PHYS32_ENTRY:
            if len(note.desc) not in (4, 8):
                raise BootError(f"PVH entry note has a {len(note.desc)}-byte value; "
                                "expected 4 or 8")
            return int.from_bytes(note.desc, "little")
    return None


def load_pvh(memory: GuestMemory, image: bytes, *, cmdline: str = "",
             modules: list[BootModule] | None = None, cmdline_fragments: Sequence[str] = (),
             reserved: Reservations = (), rsdp: int = 0) -> EntryState:
    """Load a PVH ELF and build its ``hvm_start_info``; returns the entry state. As for
    Linux (PVH is one of its entry points), the board's ``cmdline_fragments`` are appended
    and ``reserved`` ranges are reported reserved and kept free; ``rsdp`` is
    ``hvm_start_info.rsdp_paddr``."""
    cmdline = join_cmdline(cmdline, cmdline_fragments)
    elf = parse_elf(image)
    entry = pvh_entry(elf)
    if entry is None:
        raise BootError("no PVH entry: the ELF has no Xen note XEN_ELFNOTE_PHYS32_ENTRY (18)")
    if entry >= FOUR_GIB:
        raise BootError(f"PVH entry point {entry:#x} is above 4 GiB")
    placement = Placement(memory, reserved)
    load_segments(placement, image, elf)
    if not any(p.paddr <= entry < p.paddr + p.memsz for p in elf.loads):
        raise BootError(f"PVH entry point {entry:#x} is not inside any loaded segment")

    mods = modules or []
    placed = place_modules(placement, mods)
    modlist = 0
    if mods:
        modlist = placement.allocate(MODLIST_ENTRY.size * len(mods), "PVH module list", align=8)
        for i, (m, (addr, size)) in enumerate(zip(mods, placed, strict=True)):
            string = write_cstring(placement, m.cmdline, f"module {i} string") if m.cmdline else 0
            entry_at = modlist + MODLIST_ENTRY.size * i
            memory.write(entry_at, MODLIST_ENTRY.pack(addr, size, string, 0))

    e820 = e820_map(memory, placement.reserved)
    memmap = placement.allocate(MEMMAP_ENTRY.size * len(e820), "PVH memory map", align=8)
    memory.write(memmap, b"".join(MEMMAP_ENTRY.pack(e.addr, e.size, e.type, 0) for e in e820))

    cmd = write_cstring(placement, cmdline, "kernel command line")
    info = placement.allocate(START_INFO.size, "hvm_start_info", align=8)
    memory.write(info, START_INFO.pack(START_MAGIC, START_INFO_VERSION, 0, len(mods), modlist,
                                       cmd, rsdp, memmap, len(e820), 0))
    gdt = write_gdt(placement, FLAT32_CODE, FLAT32_DATA, TSS_SEGMENT)
    return flat_protected32(entry, gdt, rbx=info)
