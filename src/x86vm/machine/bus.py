"""Port-I/O and MMIO buses: address ranges → device models.

A device implements :class:`Device`: ``read(offset, size) -> int`` and
``write(offset, size, value)``, where ``offset`` is relative to the base it was registered at.
Devices never see which backend runs the guest. An access nobody claims reads as all ones and
is counted per address (a floating ISA bus reads 0xff), never an error.

:meth:`Bus.read` and :meth:`Bus.write` are the one dispatch of every access, claimed or not:
the run loop calls nothing past them. They count accesses per kind (:attr:`Bus.reads`,
:attr:`Bus.writes`; ``--stats``), and they are the hook for tracing: a tracer wraps them on
the instance, so that tracing costs nothing while it is off.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

MAX_UNCLAIMED_ADDRESSES = 4096
OTHER_ADDRESSES = -1
"""Key under which unclaimed accesses are counted once MAX_UNCLAIMED_ADDRESSES are known."""


class Device(Protocol):
    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


class BusError(ValueError):
    """A set-up error: overlapping or empty ranges."""


@dataclass(frozen=True, slots=True)
class Mapping:
    base: int
    size: int
    device: Device
    name: str

    @property
    def end(self) -> int:
        return self.base + self.size


class Bus:
    """Ranges of an address space (ports or guest-physical addresses) mapped to devices."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._bases: list[int] = []
        self._maps: list[Mapping] = []
        self.unclaimed: Counter[tuple[int, bool]] = Counter()
        self.reads = 0
        """Accesses dispatched, claimed or not (a string I/O element counts as one)."""
        self.writes = 0

    def register(self, base: int, size: int, device: Device, name: str | None = None) -> None:
        """Claim ``[base, base + size)`` for ``device``; overlapping claims are refused."""
        if size <= 0 or base < 0 or base + size > self.limit:
            raise BusError(f"{self.name}: bad range {base:#x}+{size:#x}")
        i = bisect.bisect_right(self._bases, base)
        for m in self._maps[max(i - 1, 0) : i + 1]:
            if base < m.end and m.base < base + size:
                raise BusError(
                    f"{self.name}: {name or type(device).__name__} at {base:#x}+{size:#x} "
                    f"overlaps {m.name} at {m.base:#x}+{m.size:#x}"
                )
        self._bases.insert(i, base)
        self._maps.insert(i, Mapping(base, size, device, name or type(device).__name__))

    def find(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            m = self._maps[i]
            if addr < m.end:
                return m
        return None

    @property
    def mappings(self) -> tuple[Mapping, ...]:
        return tuple(self._maps)

    def read(self, addr: int, size: int) -> int:
        """Dispatch a read: the claiming device's value, all ones when nobody claims it."""
        self.reads += 1
        m = self.find(addr)
        if m is None:
            self._unclaimed(addr, size, False)
            return (1 << (8 * size)) - 1
        return m.device.read(addr - m.base, size)

    def write(self, addr: int, size: int, value: int) -> None:
        """Dispatch a write to the claiming device; dropped (and counted) when unclaimed."""
        self.writes += 1
        m = self.find(addr)
        if m is None:
            self._unclaimed(addr, size, True)
            return
        m.device.write(addr - m.base, size, value)

    def stats(self) -> dict[str, int]:
        """The access counters: reads, writes, and how many of them nobody claimed."""
        return {"reads": self.reads, "writes": self.writes,
                "unclaimed": sum(self.unclaimed.values())}

    def _unclaimed(self, addr: int, size: int, is_write: bool) -> None:
        key = (addr, is_write)
        if key not in self.unclaimed and len(self.unclaimed) >= MAX_UNCLAIMED_ADDRESSES:
            key = (OTHER_ADDRESSES, is_write)  # a guest scanning the bus cannot grow this
        self.unclaimed[key] += 1
        log.debug("%s: unclaimed %s of %d bytes at %#x", self.name,
                  "write" if is_write else "read", size, addr)


class PortBus(Bus):
    """The 64 KiB x86 I/O port space, with a per-port cache for the hot exit path."""

    def __init__(self) -> None:
        super().__init__("pio", 0x10000)
        self._by_port: dict[int, Mapping | None] = {}

    def register(self, base: int, size: int, device: Device, name: str | None = None) -> None:
        super().register(base, size, device, name)
        self._by_port.clear()

    def find(self, addr: int) -> Mapping | None:
        try:
            return self._by_port[addr]
        except KeyError:
            m = self._by_port[addr] = super().find(addr)
            return m

    # The exit hot path: Bus.read/write with the per-port cache inlined.

    def read(self, addr: int, size: int) -> int:
        self.reads += 1
        try:
            m = self._by_port[addr]
        except KeyError:
            m = self.find(addr)
        if m is None:
            self._unclaimed(addr, size, False)
            return (1 << (8 * size)) - 1
        return m.device.read(addr - m.base, size)

    def write(self, addr: int, size: int, value: int) -> None:
        self.writes += 1
        try:
            m = self._by_port[addr]
        except KeyError:
            m = self.find(addr)
        if m is None:
            self._unclaimed(addr, size, True)
            return
        m.device.write(addr - m.base, size, value)


class MmioBus(Bus):
    """Guest-physical MMIO ranges (the 52-bit physical address space)."""

    def __init__(self) -> None:
        super().__init__("mmio", 1 << 52)
