"""A small virtio driver in Python for the tests: it builds split rings in a real GuestMemory
and talks to a device only through its MMIO window on the bus, as a guest does (virtio 1.2
§3.1.1 initialization, §2.7.13 supplying buffers, §4.2.3 MMIO operation)."""

from __future__ import annotations

import struct

from x86vm.devices.virtio import mmio as R
from x86vm.devices.virtio.device import VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC
from x86vm.devices.virtio.queue import (
    VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)
from x86vm.machine.memory import GuestMemory

RAM_SIZE = 4 << 20
WINDOW = 0xD000_0000


class Allocator:
    """Bump allocation of guest RAM for rings and buffers."""

    def __init__(self, start: int, end: int) -> None:
        self.next, self.end = start, end

    def alloc(self, size: int, align: int = 16) -> int:
        addr = (self.next + align - 1) & -align
        if addr + size > self.end:
            raise MemoryError("test allocator exhausted")
        self.next = addr + size
        return addr


class DriverQueue:
    """The driver side of one split queue."""

    def __init__(self, driver: Driver, index: int, size: int) -> None:
        self.driver, self.mem, self.index, self.size = driver, driver.mem, index, size
        a = driver.heap
        self.desc = a.alloc(16 * size, 16)
        self.avail = a.alloc(6 + 2 * size, 2)
        self.used = a.alloc(6 + 8 * size, 4)
        self.mem.fill(self.desc, 16 * size)
        self.mem.fill(self.avail, 6 + 2 * size)
        self.mem.fill(self.used, 6 + 8 * size)
        self.free = list(range(size))
        self.avail_idx = 0
        self.last_used = 0

    def write_desc(self, table: int, i: int, addr: int, length: int, flags: int,
                   nxt: int) -> None:
        self.mem.write(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def add(self, buffers: list[tuple[int, int, bool]], indirect: bool = False) -> int:
        """Make a chain of (gpa, length, device_writable) available; returns its head."""
        if indirect:
            table = self.driver.heap.alloc(16 * len(buffers), 16)
            for i, (addr, length, w) in enumerate(buffers):
                flags = (VIRTQ_DESC_F_WRITE if w else 0) | (
                    VIRTQ_DESC_F_NEXT if i + 1 < len(buffers) else 0)
                self.write_desc(table, i, addr, length, flags, i + 1)
            head = self.free.pop(0)
            self.write_desc(self.desc, head, table, 16 * len(buffers), VIRTQ_DESC_F_INDIRECT, 0)
        else:
            ids = [self.free.pop(0) for _ in buffers]
            for k, (addr, length, w) in enumerate(buffers):
                flags = (VIRTQ_DESC_F_WRITE if w else 0) | (
                    VIRTQ_DESC_F_NEXT if k + 1 < len(ids) else 0)
                self.write_desc(self.desc, ids[k], addr, length, flags,
                                ids[k + 1] if k + 1 < len(ids) else 0)
            head = ids[0]
        self.publish(head)
        return head

    def publish(self, head: int) -> None:
        self.mem.write_u16(self.avail + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write_u16(self.avail + 2, self.avail_idx)

    def kick(self) -> None:
        self.driver.write(R.QUEUE_NOTIFY, self.index)

    def take_used(self) -> list[tuple[int, int]]:
        """New used elements (id, len); their descriptors go back on the free list."""
        out = []
        while self.last_used != self.mem.read_u16(self.used + 2):
            slot = self.used + 4 + 8 * (self.last_used % self.size)
            out.append((self.mem.read_u32(slot), self.mem.read_u32(slot + 4)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        for head, _ in out:
            self._free_chain(head)
        return out

    def _free_chain(self, head: int) -> None:
        i = head
        while True:
            flags = self.mem.read_u16(self.desc + 16 * i + 12)
            self.free.append(i)
            if not flags & VIRTQ_DESC_F_NEXT:
                return
            i = self.mem.read_u16(self.desc + 16 * i + 14)

    def set_used_event(self, value: int) -> None:
        self.mem.write_u16(self.avail + 4 + 2 * self.size, value)

    def avail_event(self) -> int:
        return self.mem.read_u16(self.used + 4 + 8 * self.size)

    def suppress_interrupts(self, on: bool) -> None:
        self.mem.write_u16(self.avail, VIRTQ_AVAIL_F_NO_INTERRUPT if on else 0)


class Driver:
    """Drives one virtio-mmio window through ``mem.mmio`` (the bus an MMIO exit reaches)."""

    def __init__(self, mem: GuestMemory, base: int = WINDOW, heap_start: int = 0x10000) -> None:
        self.mem, self.base = mem, base
        self.heap = Allocator(heap_start, mem.ram_size)
        self.queues: list[DriverQueue] = []

    def read(self, offset: int, size: int = 4) -> int:
        return self.mem.mmio.read(self.base + offset, size)

    def write(self, offset: int, value: int, size: int = 4) -> None:
        self.mem.mmio.write(self.base + offset, size, value)

    def device_features(self) -> int:
        self.write(R.DEVICE_FEATURES_SEL, 0)
        low = self.read(R.DEVICE_FEATURES)
        self.write(R.DEVICE_FEATURES_SEL, 1)
        return low | self.read(R.DEVICE_FEATURES) << 32

    def negotiate(self, accept: int | None = None) -> int:
        """§3.1.1 steps 1-6; returns the status read back after FEATURES_OK."""
        assert self.read(R.MAGIC) == R.MAGIC_VALUE and self.read(R.VERSION_REG) == 2
        self.write(R.STATUS, 0)
        self.write(R.STATUS, R.ACKNOWLEDGE)
        self.write(R.STATUS, R.ACKNOWLEDGE | R.DRIVER)
        features = self.device_features() if accept is None else accept
        for sel in (0, 1):
            self.write(R.DRIVER_FEATURES_SEL, sel)
            self.write(R.DRIVER_FEATURES, (features >> (32 * sel)) & 0xFFFFFFFF)
        self.write(R.STATUS, R.ACKNOWLEDGE | R.DRIVER | R.FEATURES_OK)
        self.features = features
        return self.read(R.STATUS)

    def setup_queue(self, index: int, size: int | None = None) -> DriverQueue:
        self.write(R.QUEUE_SEL, index)
        assert self.read(R.QUEUE_READY) == 0
        size = size or self.read(R.QUEUE_SIZE_MAX)
        q = DriverQueue(self, index, size)
        self.write(R.QUEUE_SIZE, size)
        for reg, addr in ((R.QUEUE_DESC_LOW, q.desc), (R.QUEUE_DRIVER_LOW, q.avail),
                          (R.QUEUE_DEVICE_LOW, q.used)):
            self.write(reg, addr & 0xFFFFFFFF)
            self.write(reg + 4, addr >> 32)
        self.write(R.QUEUE_READY, 1)
        self.queues.append(q)
        return q

    def start(self, accept: int | None = None, queue_size: int | None = None,
              event_idx: bool = True, indirect: bool = True) -> DriverQueue:
        """Full initialization with one queue; returns it."""
        features = self.device_features() if accept is None else accept
        if not event_idx:
            features &= ~(1 << VIRTIO_F_EVENT_IDX)
        if not indirect:
            features &= ~(1 << VIRTIO_F_INDIRECT_DESC)
        status = self.negotiate(features)
        assert status & R.FEATURES_OK, status
        q = self.setup_queue(0, queue_size)
        self.write(R.STATUS, status | R.DRIVER_OK)
        return q

    def ack_interrupt(self) -> int:
        status = self.read(R.INTERRUPT_STATUS)
        self.write(R.INTERRUPT_ACK, status)
        return status

    def config(self, offset: int, size: int) -> int:
        return self.read(R.CONFIG_OFFSET + offset, size)


def new_memory(size: int = RAM_SIZE) -> GuestMemory:
    mem = GuestMemory()
    mem.add_ram(0, size)
    return mem
