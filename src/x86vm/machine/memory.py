"""Guest physical memory: RAM regions backed by anonymous mmap, and MMIO ranges.

RAM is one set of host buffers: the KVM backend hands each region to the kernel with
``KVM_SET_USER_MEMORY_REGION`` (its host address is :attr:`RamRegion.host_address`), the
emulator reads the same buffers directly. Every accessor checks guest-supplied addresses and
lengths: an access outside RAM raises :class:`GuestMemoryError`, never touches host memory.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import struct
from dataclasses import dataclass, field

from x86vm.machine.bus import Device, MmioBus

PAGE_SIZE = 4096


class GuestMemoryError(ValueError):
    """A guest-physical access outside RAM, or an overlapping set-up."""


@dataclass(eq=False)
class RamRegion:
    gpa: int
    size: int
    slot: int
    buffer: mmap.mmap = field(repr=False)
    readonly: bool = False
    """ROM: the guest reads it like RAM; its writes leave as MMIO writes no device claims
    (dropped and counted by the bus). The monitor itself may still write it."""

    @property
    def end(self) -> int:
        return self.gpa + self.size

    @property
    def host_address(self) -> int:
        """Host virtual address of the first byte (for KVM_SET_USER_MEMORY_REGION)."""
        return ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))


class GuestMemory:
    """The guest-physical address space: RAM regions plus an MMIO bus for the holes."""

    def __init__(self) -> None:
        self.regions: list[RamRegion] = []
        self._bases: list[int] = []
        self.mmio = MmioBus()
        self.write_observers: list = []
        """Callables ``(gpa, length)`` told after :meth:`write`, :meth:`fill` and
        :meth:`write_int` change RAM (a CPU that caches translated code drops it); writes
        through a :meth:`view` are not seen."""

    # -- set-up ---------------------------------------------------------------------------

    def add_ram(self, gpa: int, size: int) -> RamRegion:
        """Back ``[gpa, gpa + size)`` with zeroed anonymous memory (page aligned)."""
        if gpa % PAGE_SIZE or size <= 0 or size % PAGE_SIZE:
            raise GuestMemoryError(f"RAM region {gpa:#x}+{size:#x} is not page aligned")
        if self._overlapping_ram(gpa, size) or self._overlapping_mmio(gpa, size):
            raise GuestMemoryError(f"RAM region {gpa:#x}+{size:#x} overlaps another region")
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region = RamRegion(gpa, size, len(self.regions), buf)
        i = bisect.bisect_right(self._bases, gpa)
        self._bases.insert(i, gpa)
        self.regions.insert(i, region)
        return region

    def add_rom(self, gpa: int, data: bytes) -> RamRegion:
        """Map ``data`` read-only at ``[gpa, gpa + len(data))`` (page aligned), as a
        chipset maps a firmware ROM."""
        if not data or len(data) % PAGE_SIZE:
            raise GuestMemoryError(f"ROM of {len(data):#x} bytes is not a multiple of 4 KiB")
        region = self.add_ram(gpa, len(data))
        region.buffer[:] = data
        region.readonly = True
        return region

    def add_mmio(self, gpa: int, size: int, device: Device, name: str | None = None) -> None:
        """Hand ``[gpa, gpa + size)`` to ``device``: accesses there exit to the monitor."""
        if self._overlapping_ram(gpa, size):
            raise GuestMemoryError(f"MMIO range {gpa:#x}+{size:#x} overlaps RAM")
        self.mmio.register(gpa, size, device, name)

    def _overlapping_ram(self, gpa: int, size: int) -> bool:
        return any(gpa < r.end and r.gpa < gpa + size for r in self.regions)

    def _overlapping_mmio(self, gpa: int, size: int) -> bool:
        return any(gpa < m.end and m.base < gpa + size for m in self.mmio.mappings)

    @property
    def ram_size(self) -> int:
        return sum(r.size for r in self.regions)

    # -- checked access ---------------------------------------------------------------------

    def region_of(self, gpa: int, length: int = 1) -> RamRegion:
        """The RAM region holding all of ``[gpa, gpa + length)``, or GuestMemoryError."""
        i = bisect.bisect_right(self._bases, gpa) - 1
        if i >= 0 and length >= 0:
            r = self.regions[i]
            if gpa + length <= r.end:
                return r
        raise GuestMemoryError(f"guest-physical {gpa:#x}+{length:#x} is not RAM")

    def is_ram(self, gpa: int, length: int = 1) -> bool:
        try:
            self.region_of(gpa, length)
        except GuestMemoryError:
            return False
        return True

    def view(self, gpa: int, length: int) -> memoryview:
        """A writable view of ``length`` bytes of RAM at ``gpa`` (one region, checked)."""
        r = self.region_of(gpa, length)
        off = gpa - r.gpa
        return memoryview(r.buffer)[off : off + length]

    def read(self, gpa: int, length: int) -> bytes:
        return bytes(self.view(gpa, length))

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        self.view(gpa, len(data))[:] = data
        for observer in self.write_observers:
            observer(gpa, len(data))

    def fill(self, gpa: int, length: int, value: int = 0) -> None:
        self.view(gpa, length)[:] = bytes([value]) * length
        for observer in self.write_observers:
            observer(gpa, length)

    def read_cstring(self, gpa: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string of at most ``limit`` bytes (bounded: guests lie)."""
        out = bytearray()
        while len(out) < limit:
            b = self.read(gpa + len(out), 1)
            if b == b"\0":
                return bytes(out)
            out += b
        raise GuestMemoryError(f"string at {gpa:#x} longer than {limit} bytes")

    def read_int(self, gpa: int, size: int) -> int:
        return int.from_bytes(self.view(gpa, size), "little")

    def write_int(self, gpa: int, size: int, value: int) -> None:
        self.view(gpa, size)[:] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        for observer in self.write_observers:
            observer(gpa, size)

    def read_u8(self, gpa: int) -> int:
        return self.read_int(gpa, 1)

    def read_u16(self, gpa: int) -> int:
        return self.read_int(gpa, 2)

    def read_u32(self, gpa: int) -> int:
        return self.read_int(gpa, 4)

    def read_u64(self, gpa: int) -> int:
        return self.read_int(gpa, 8)

    def write_u8(self, gpa: int, value: int) -> None:
        self.write_int(gpa, 1, value)

    def write_u16(self, gpa: int, value: int) -> None:
        self.write_int(gpa, 2, value)

    def write_u32(self, gpa: int, value: int) -> None:
        self.write_int(gpa, 4, value)

    def write_u64(self, gpa: int, value: int) -> None:
        self.write_int(gpa, 8, value)

    def write_struct(self, gpa: int, fmt: str, *values: int) -> None:
        self.write(gpa, struct.pack(fmt, *values))

    def close(self) -> None:
        for r in self.regions:
            r.buffer.close()
        self.regions.clear()
        self._bases.clear()
