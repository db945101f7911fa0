"""What every loader needs from a PC's physical memory: the e820 map, free-space placement,
a boot GDT and identity-mapped page tables.

The map follows what a PC BIOS reports (ACPI 6.4 §15 "System Address Map Interfaces"), and
exactly what SeaBIOS reports under QEMU for the same RAM, so that kernels written for QEMU see
the same memory sizes: low RAM up to the Extended BIOS Data Area at 0x9FC00 is usable; the
EBDA and the BIOS ROM at 0xF0000–0xFFFFF are reserved; the VGA window and option-ROM area
0xA0000–0xEFFFF are a gap; RAM from 1 MiB up is usable except its top 128 KiB below 4 GiB,
which firmware keeps for its tables (SeaBIOS puts ACPI/SMBIOS there; x86vm keeps the window
reserved for the same use). Descriptors are encoded from the same :class:`Segment` values the
:class:`EntryState` carries (SDM Vol. 3A §3.4.5), so the GDT in memory and the hidden segment
state handed to the vCPU agree.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.state import Segment, TableRegister
from x86vm.machine.memory import GuestMemory

E820_RAM = 1
E820_RESERVED = 2

Reservations = Sequence[tuple[int, int]]
"""``(address, size)`` ranges a board keeps out of RAM and reports as reserved."""

EBDA_START = 0x9FC00
VGA_START = 0xA0000
BIOS_ROM_START = 0xF0000
HIGH_MEMORY = 0x100000  # 1 MiB: where "upper memory" starts
FOUR_GIB = 1 << 32
PAGE = 0x1000

# Reserved windows a PC reports below 1 MiB (SeaBIOS does the same for QEMU).
LEGACY_RESERVED = ((EBDA_START, VGA_START), (BIOS_ROM_START, HIGH_MEMORY))
# Never usable as RAM below 1 MiB: EBDA, VGA, option ROMs, BIOS.
LEGACY_HOLE = (EBDA_START, HIGH_MEMORY)
# Reserved at the top of RAM below 4 GiB for firmware tables, as SeaBIOS does.
FIRMWARE_RESERVED = 0x20000
# Boot data is never placed in page 0 (real-mode IVT and BIOS data area).
LOWEST_BOOT_DATA = 0x1000


@dataclass(frozen=True)
class E820Entry:
    addr: int
    size: int
    type: int

    @property
    def end(self) -> int:
        return self.addr + self.size


def firmware_window(memory: GuestMemory) -> tuple[int, int] | None:
    """The reserved top of the highest RAM region below 4 GiB (SeaBIOS's table area)."""
    ends = [r.end for r in memory.regions
            if r.end <= FOUR_GIB and r.end - FIRMWARE_RESERVED >= max(r.gpa, HIGH_MEMORY)]
    return (max(ends) - FIRMWARE_RESERVED, max(ends)) if ends else None


def e820_map(memory: GuestMemory, reserved: Reservations = ()) -> list[E820Entry]:
    """The guest's memory map, sorted: RAM minus the reserved windows, plus the windows.

    ``reserved`` are ``(address, size)`` ranges the board's devices keep for themselves
    (reported as reserved wherever they lie, and never RAM); overlapping reserved windows are
    reported once."""
    extra = [(addr, addr + size) for addr, size in reserved if size > 0]
    holes = [LEGACY_HOLE, *extra]
    fw = firmware_window(memory)
    windows = list(LEGACY_RESERVED)
    if fw is not None:
        windows.append(fw)
        holes.append(fw)
    entries: list[E820Entry] = []
    kept: list[tuple[int, int]] = list(extra)
    for r in memory.regions:
        pieces = [(r.gpa, r.end)]
        for h_lo, h_hi in holes:
            pieces = [p for lo, hi in pieces
                      for p in ((lo, min(hi, h_lo)), (max(lo, h_hi), hi)) if p[0] < p[1]]
        entries += [E820Entry(lo, hi - lo, E820_RAM) for lo, hi in pieces]
        for lo, hi in windows:
            lo, hi = max(lo, r.gpa), min(hi, r.end)
            if lo < hi:
                kept.append((lo, hi))
    kept.sort()
    merged: list[list[int]] = []
    for lo, hi in kept:
        if merged and lo < merged[-1][1]:  # overlapping, not merely adjacent
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    entries += [E820Entry(lo, hi - lo, E820_RESERVED) for lo, hi in merged]
    entries.sort(key=lambda e: e.addr)
    return entries


def usable_ranges(memory: GuestMemory, reserved: Reservations = ()) -> list[tuple[int, int]]:
    """``[start, end)`` of every usable (E820_RAM) range, merged where adjacent."""
    out: list[tuple[int, int]] = []
    for e in e820_map(memory, reserved):
        if e.type != E820_RAM:
            continue
        if out and out[-1][1] == e.addr:
            out[-1] = (out[-1][0], e.end)
        else:
            out.append((e.addr, e.end))
    return out


def lower_upper_kib(memory: GuestMemory, reserved: Reservations = ()) -> tuple[int, int]:
    """Multiboot's mem_lower/mem_upper: usable KiB from 0, and from 1 MiB to the first hole."""
    lower = upper = 0
    for lo, hi in usable_ranges(memory, reserved):
        if lo == 0:
            lower = min(hi, VGA_START) // 1024
        if lo <= HIGH_MEMORY < hi:
            upper = (min(hi, FOUR_GIB) - HIGH_MEMORY) // 1024
    return lower, upper


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def _align_down(value: int, align: int) -> int:
    return value // align * align


class Placement:
    """Usable RAM with the ranges already taken by the image and by boot data.

    ``claim`` checks that a range the image asks for lies in usable RAM and overlaps nothing
    placed before; ``allocate`` finds room for boot data (first fit from the bottom, or from
    the top for an initrd).
    """

    def __init__(self, memory: GuestMemory, reserved: Reservations = ()) -> None:
        self.memory = memory
        self.reserved = tuple(reserved)
        self.usable = usable_ranges(memory, self.reserved)
        self.taken: list[tuple[int, int, str]] = []

    def _collision(self, start: int, end: int) -> tuple[int, int, str] | None:
        for t in self.taken:
            if start < t[1] and t[0] < end:
                return t
        return None

    def fits(self, start: int, size: int) -> bool:
        end = start + size
        return any(lo <= start and end <= hi for lo, hi in self.usable) and \
            self._collision(start, end) is None

    def claim(self, start: int, size: int, what: str) -> None:
        """Take ``[start, start + size)`` for ``what`` or raise a :class:`BootError`."""
        end = start + size
        if size < 0 or start < 0:
            raise BootError(f"{what} has a negative address or size")
        if not any(lo <= start and end <= hi for lo, hi in self.usable):
            raise BootError(f"{what} at {start:#x}-{end:#x} is outside usable RAM "
                            f"({self._describe_usable()})")
        hit = self._collision(start, end)
        if hit is not None:
            raise BootError(f"{what} at {start:#x}-{end:#x} overlaps {hit[2]} at "
                            f"{hit[0]:#x}-{hit[1]:#x}")
        self.taken.append((start, end, what))

    def allocate(self, size: int, what: str, *, align: int = 16, low: int = LOWEST_BOOT_DATA,
                 high: int = FOUR_GIB, top_down: bool = False) -> int:
        """Place ``size`` bytes in free usable RAM within ``[low, high)``; return the address."""
        size = max(size, 1)
        ranges = [(max(lo, low), min(hi, high)) for lo, hi in self.usable]
        for lo, hi in (reversed(ranges) if top_down else ranges):
            start = _align_down(hi - size, align) if top_down else _align_up(lo, align)
            while lo <= start and start + size <= hi:
                hit = self._collision(start, start + size)
                if hit is None:
                    self.taken.append((start, start + size, what))
                    return start
                start = _align_down(hit[0] - size, align) if top_down else \
                    _align_up(hit[1], align)
        raise BootError(f"no room for {what} ({size} bytes) in usable RAM between {low:#x} and "
                        f"{high:#x} ({self._describe_usable()})")

    def _describe_usable(self) -> str:
        return "usable: " + ", ".join(f"{lo:#x}-{hi:#x}" for lo, hi in self.usable) \
            if self.usable else "no usable RAM"


# -- descriptor tables (SDM Vol. 3A §3.4.5, §7.2.3) -------------------------------------------

def encode_descriptor(seg: Segment) -> bytes:
    """The 8-byte GDT descriptor for ``seg`` (16 bytes for a 64-bit system descriptor)."""
    limit = seg.limit >> 12 if seg.g else seg.limit
    if limit > 0xFFFFF:
        raise ValueError(f"segment limit {seg.limit:#x} does not fit a descriptor")
    access = seg.type | seg.s << 4 | seg.dpl << 5 | seg.present << 7
    flags = seg.avl | seg.l << 1 | seg.db << 2 | seg.g << 3
    low = struct.pack("<HHBBBB", limit & 0xFFFF, seg.base & 0xFFFF, (seg.base >> 16) & 0xFF,
                      access, flags << 4 | limit >> 16, (seg.base >> 24) & 0xFF)
    if seg.s == 0:  # system descriptors (TSS, LDT) take 16 bytes in IA-32e mode
        low += struct.pack("<II", seg.base >> 32, 0)
    return low


def write_gdt(placement: Placement, *segments: Segment) -> TableRegister:
    """Allocate and write a GDT holding ``segments`` at their selectors; return the GDTR."""
    size = max((s.selector & ~7) + len(encode_descriptor(s)) for s in segments)
    table = bytearray(size)
    for s in segments:
        d = encode_descriptor(s)
        index = s.selector & ~7
        table[index : index + len(d)] = d
    base = placement.allocate(size, "boot GDT", align=16)
    placement.memory.write(base, table)
    return TableRegister(base=base, limit=size - 1)


PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PTE_LARGE = 1 << 7


def write_identity_page_tables(placement: Placement, gib: int = 4) -> int:
    """4-level tables identity-mapping the first ``gib`` GiB with 2 MiB pages; returns CR3.

    One PML4, one PDPT and ``gib`` page directories (SDM Vol. 3A §4.5, Figure 4-9).
    """
    base = placement.allocate((2 + gib) * PAGE, "identity page tables", align=PAGE)
    mem = placement.memory
    pml4, pdpt, pds = base, base + PAGE, base + 2 * PAGE
    mem.fill(base, (2 + gib) * PAGE)
    mem.write_u64(pml4, pdpt | PTE_PRESENT | PTE_WRITABLE)
    for i in range(gib):
        mem.write_u64(pdpt + 8 * i, (pds + i * PAGE) | PTE_PRESENT | PTE_WRITABLE)
        entries = b"".join(
            struct.pack("<Q", ((i << 30) | (j << 21)) | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE)
            for j in range(512))
        mem.write(pds + i * PAGE, entries)
    return pml4


def write_cstring(placement: Placement, text: str | bytes, what: str, *,
                  max_len: int | None = None) -> int:
    """Allocate and write a NUL-terminated string; ``max_len`` bounds it (without the NUL)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    if b"\0" in data:
        raise BootError(f"{what} contains a NUL byte")
    if max_len is not None and len(data) > max_len:
        raise BootError(f"{what} is {len(data)} bytes; the limit is {max_len}")
    addr = placement.allocate(len(data) + 1, what, align=16)
    placement.memory.write(addr, data + b"\0")
    return addr


@dataclass(frozen=True)
class BootModule:
    """A file handed to the kernel next to it (Multiboot module, PVH modlist entry)."""

    data: bytes
    cmdline: str = ""


ModuleSpec = bytes | tuple[bytes, str] | BootModule


def as_modules(modules: tuple[ModuleSpec, ...] | list[ModuleSpec],
               initrd: bytes | None, initrd_name: str = "initrd") -> list[BootModule]:
    """Modules as given (bytes, (bytes, cmdline) or BootModule), the initrd first if any."""
    out = [BootModule(bytes(initrd), initrd_name)] if initrd is not None else []
    for m in modules:
        if isinstance(m, BootModule):
            out.append(m)
        elif isinstance(m, tuple):
            out.append(BootModule(bytes(m[0]), str(m[1])))
        else:
            out.append(BootModule(bytes(m)))
    return out


def place_modules(placement: Placement, modules: list[BootModule]) -> list[tuple[int, int]]:
    """Copy modules page-aligned above 1 MiB; returns (address, size) for each."""
    out = []
    for i, m in enumerate(modules):
        addr = placement.allocate(len(m.data), f"module {i} ({m.cmdline or 'unnamed'})",
                                  align=PAGE, low=HIGH_MEMORY)
        placement.memory.write(addr, m.data)
        out.append((addr, len(m.data)))
    return out


def join_cmdline(cmdline: str, fragments: Sequence[str]) -> str:
    """The user's command line with the board's fragments appended (space-separated)."""
    return " ".join(part for part in (cmdline, *fragments) if part)
