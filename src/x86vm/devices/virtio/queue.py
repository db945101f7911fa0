"""Split virtqueues (virtio 1.2 §2.7): descriptor table, available ring, used ring.

The device side of one queue. Every guest-supplied address, length, index and flag is checked
before it is used, and guest memory is reached only through :class:`GuestMemory`'s
bounds-checked accessors (``read_u16``, ``view``…): a hostile driver can make a request fail or
the device need a reset, never make the monitor touch host memory outside guest RAM.

A check that fails raises :class:`VirtqueueError` naming the check (a key of
:data:`QUEUE_CHECKS`); the transport counts it and sets DEVICE_NEEDS_RESET (§2.1.2), as QEMU's
``virtio_error`` does. Layout (§2.7, "Virtqueue Part Sizes")::

    descriptor table  16 * size   align 16  {le64 addr; le32 len; le16 flags; le16 next}
    available ring     6 + 2*size align 2   flags, idx, ring[size], used_event
    used ring          6 + 8*size align 4   flags, idx, ring[size] {le32 id; le32 len}, avail_event
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from x86vm.machine.memory import GuestMemory, GuestMemoryError

VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
VIRTQ_AVAIL_F_NO_INTERRUPT = 1
VIRTQ_USED_F_NO_NOTIFY = 1

DESC_SIZE = 16
MAX_QUEUE_SIZE = 32768  # §2.7: "Queue Size value is always a power of 2. The maximum ... 32768"
MAX_CHAIN_BYTES = 1 << 32  # §2.7.4.1: "MUST NOT add a descriptor chain longer than 2^32 bytes"

QUEUE_CHECKS: dict[str, str] = {
    # queue set-up (checked when the driver writes QueueReady = 1)
    "queue_size_zero": "QueueSize is 0",
    "queue_size_not_power_of_2": "QueueSize is not a power of 2 (§2.7)",
    "queue_size_above_max": "QueueSize is above QueueSizeMax (§4.2.2.2)",
    "ring_misaligned": "a ring is not aligned as §2.7 'Virtqueue Part Sizes' requires",
    "ring_not_ram": "a ring is not entirely in guest RAM (outside RAM or at MMIO)",
    # the available ring
    "avail_idx_jump": "avail idx moved by more than the queue size (§2.7.13.3)",
    "head_out_of_range": "a head index in the available ring is >= QueueSize",
    # descriptor chains
    "desc_index_out_of_range": "a descriptor's next is >= the table size",
    "desc_loop": "a descriptor chain visits a descriptor twice (§2.7.4.1)",
    "chain_too_long": "a chain, or an indirect table, has more descriptors than QueueSize "
                      "(§2.7.5.3.1)",
    "chain_too_big": "a chain is 2^32 bytes or more (§2.7.4.1)",
    "desc_not_ram": "a buffer is not entirely in guest RAM",
    "desc_mmio": "a buffer points at an MMIO range",
    "readable_after_writable": "a device-readable descriptor after a device-writable one "
                               "(§2.7.4.2)",
    "indirect_not_negotiated": "VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC (§2.7.5.3.1)",
    "indirect_with_next": "VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT (§2.7.5.3.1)",
    "indirect_bad_length": "an indirect table's length is 0 or not a multiple of 16",
    "indirect_nested": "VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1)",
    "indirect_not_ram": "an indirect table is not entirely in guest RAM",
    "ring_access": "a ring access left guest RAM",
}


class VirtqueueError(Exception):
    """A driver error found in a queue; ``check`` is a key of :data:`QUEUE_CHECKS`."""

    def __init__(self, check: str, detail: str = "") -> None:
        assert check in QUEUE_CHECKS, check
        super().__init__(f"{check}: {detail or QUEUE_CHECKS[check]}")
        self.check = check


@dataclass(slots=True)
class DescriptorChain:
    """One available buffer: its head index and its device-readable then device-writable
    segments, each ``(gpa, length)``, already checked to lie in guest RAM."""

    head: int
    readable: list[tuple[int, int]] = field(default_factory=list)
    writable: list[tuple[int, int]] = field(default_factory=list)

    @property
    def readable_len(self) -> int:
        return sum(n for _, n in self.readable)

    @property
    def writable_len(self) -> int:
        return sum(n for _, n in self.writable)


def read_segments(memory: GuestMemory, segments: list[tuple[int, int]], offset: int,
                  length: int) -> bytes:
    """``length`` bytes starting ``offset`` bytes into the concatenated segments (fewer if
    the segments end first)."""
    out = bytearray()
    for gpa, n in segments:
        if offset >= n:
            offset -= n
            continue
        take = min(n - offset, length - len(out))
        out += memory.read(gpa + offset, take)
        offset = 0
        if len(out) >= length:
            break
    return bytes(out)


def segment_views(memory: GuestMemory, segments: list[tuple[int, int]], offset: int,
                  length: int) -> list[memoryview]:
    """Writable views of ``length`` bytes starting ``offset`` bytes into the segments."""
    views: list[memoryview] = []
    for gpa, n in segments:
        if length <= 0:
            break
        if offset >= n:
            offset -= n
            continue
        take = min(n - offset, length)
        views.append(memory.view(gpa + offset, take))
        length -= take
        offset = 0
    return views


def write_segments(memory: GuestMemory, segments: list[tuple[int, int]], offset: int,
                   data: bytes) -> int:
    """Copy ``data`` into the segments from ``offset``; returns the bytes written."""
    done = 0
    for view in segment_views(memory, segments, offset, len(data)):
        view[:] = data[done : done + len(view)]
        done += len(view)
    return done


class Virtqueue:
    """The device side of one split virtqueue (§2.7).

    The transport writes :attr:`size`, the three ring addresses and :attr:`ready`; the
    device calls :meth:`pop` for each available chain, :meth:`push` to return it, and
    :meth:`should_notify` once per batch (§2.7.7.2, §2.7.10)."""

    def __init__(self, memory: GuestMemory, index: int, max_size: int) -> None:
        if not (0 < max_size <= MAX_QUEUE_SIZE and max_size & (max_size - 1) == 0):
            raise ValueError(f"queue max size {max_size} is not a power of 2 <= 32768")
        self.memory = memory
        self.index = index
        self.max_size = max_size
        self.event_idx = False
        self.indirect = False
        self.reset()

    def reset(self) -> None:
        """The state after a device reset (§2.4): not ready, size = max, addresses 0."""
        self.ready = False
        self.size = self.max_size
        self.desc_addr = 0
        self.driver_addr = 0
        self.device_addr = 0
        self.last_avail_idx = 0
        self.used_idx = 0
        self.signalled_used = 0

    # -- set-up ---------------------------------------------------------------------------

    def check_layout(self) -> None:
        """The checks made when the driver sets QueueReady (raises VirtqueueError)."""
        size = self.size
        if size == 0:
            raise VirtqueueError("queue_size_zero")
        if size & (size - 1):
            raise VirtqueueError("queue_size_not_power_of_2", f"QueueSize {size}")
        if size > self.max_size:
            raise VirtqueueError("queue_size_above_max", f"QueueSize {size} > {self.max_size}")
        rings = (("descriptor table", self.desc_addr, DESC_SIZE * size, 16),
                 ("available ring", self.driver_addr, 6 + 2 * size, 2),
                 ("used ring", self.device_addr, 6 + 8 * size, 4))
        for name, addr, length, align in rings:
            if addr % align:
                raise VirtqueueError("ring_misaligned", f"{name} at {addr:#x}")
            if not self.memory.is_ram(addr, length):
                raise VirtqueueError("ring_not_ram", f"{name} at {addr:#x}+{length:#x}")

    def enable(self, indirect: bool, event_idx: bool) -> None:
        """QueueReady = 1: check the layout, then start from index 0 (§2.7.13)."""
        self.check_layout()
        self.indirect = indirect
        self.event_idx = event_idx
        self.last_avail_idx = 0
        self.used_idx = 0
        self.signalled_used = 0
        self.ready = True

    # -- ring fields ----------------------------------------------------------------------

    def _ring_u16(self, gpa: int) -> int:
        try:
            return self.memory.read_u16(gpa)
        except GuestMemoryError as exc:
            raise VirtqueueError("ring_access", str(exc)) from None

    def avail_idx(self) -> int:
        return self._ring_u16(self.driver_addr + 2)

    def avail_flags(self) -> int:
        return self._ring_u16(self.driver_addr)

    def used_event(self) -> int:
        """``used_event`` at the end of the available ring (VIRTIO_F_EVENT_IDX, §2.7.10)."""
        return self._ring_u16(self.driver_addr + 4 + 2 * self.size)

    def has_available(self) -> bool:
        return self.avail_idx() != self.last_avail_idx

    # -- taking and returning buffers -------------------------------------------------------

    def pop(self) -> DescriptorChain | None:
        """The next available descriptor chain, checked, or None when the ring is empty."""
        avail = self.avail_idx()
        pending = (avail - self.last_avail_idx) & 0xFFFF
        if pending == 0:
            return None
        if pending > self.size:
            raise VirtqueueError("avail_idx_jump",
                                 f"avail idx {avail}, last seen {self.last_avail_idx}")
        slot = self.last_avail_idx % self.size
        head = self._ring_u16(self.driver_addr + 4 + 2 * slot)
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        if self.event_idx:  # ask for a kick as soon as the next buffer is made available
            self._write_u16(self.device_addr + 4 + 8 * self.size, self.last_avail_idx)
        if head >= self.size:
            raise VirtqueueError("head_out_of_range", f"head {head} >= {self.size}")
        return self._walk(head)

    def _walk(self, head: int) -> DescriptorChain:
        chain = DescriptorChain(head)
        table, table_len = self.desc_addr, self.size
        index, seen, count, total = head, set(), 0, 0
        in_indirect = False
        while True:
            if index >= table_len:
                raise VirtqueueError("desc_index_out_of_range", f"descriptor {index}")
            if index in seen:
                raise VirtqueueError("desc_loop", f"descriptor {index} again")
            seen.add(index)
            count += 1
            if count > self.size:
                raise VirtqueueError("chain_too_long", f"chain at head {head}")
            addr, length, flags, next_index = self._descriptor(table + DESC_SIZE * index)
            if flags & VIRTQ_DESC_F_INDIRECT:
                if in_indirect:
                    raise VirtqueueError("indirect_nested")
                if not self.indirect:
                    raise VirtqueueError("indirect_not_negotiated")
                if flags & VIRTQ_DESC_F_NEXT:
                    raise VirtqueueError("indirect_with_next")
                if length == 0 or length % DESC_SIZE:
                    raise VirtqueueError("indirect_bad_length", f"length {length}")
                if not self.memory.is_ram(addr, length):
                    raise VirtqueueError("indirect_not_ram", f"table at {addr:#x}+{length:#x}")
                # the table's entries count on their own: a full-size table (Linux: header,
                # seg_max segments, status) after the descriptor pointing at it is allowed
                table, table_len, index, seen, count = addr, length // DESC_SIZE, 0, set(), 0
                in_indirect = True
                continue
            total += length
            if total >= MAX_CHAIN_BYTES:
                raise VirtqueueError("chain_too_big")
            if length:
                self._check_buffer(addr, length)
                if flags & VIRTQ_DESC_F_WRITE:
                    chain.writable.append((addr, length))
                elif chain.writable:
                    raise VirtqueueError("readable_after_writable", f"descriptor {index}")
                else:
                    chain.readable.append((addr, length))
            if not flags & VIRTQ_DESC_F_NEXT:
                return chain
            index = next_index

    def _descriptor(self, gpa: int) -> tuple[int, int, int, int]:
        try:
            raw = self.memory.read(gpa, DESC_SIZE)
        except GuestMemoryError as exc:
            raise VirtqueueError("ring_access", str(exc)) from None
        return (int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:12], "little"),
                int.from_bytes(raw[12:14], "little"), int.from_bytes(raw[14:16], "little"))

    def _check_buffer(self, addr: int, length: int) -> None:
        if self.memory.is_ram(addr, length):
            return
        end = min(addr + length, 1 << 64)
        mappings = self.memory.mmio.mappings
        if any(addr < m.end and m.base < end for m in mappings):
            raise VirtqueueError("desc_mmio", f"buffer {addr:#x}+{length:#x}")
        raise VirtqueueError("desc_not_ram", f"buffer {addr:#x}+{length:#x}")

    def push(self, head: int, written: int) -> None:
        """Return chain ``head`` with ``written`` bytes written into it: the used element
        first, then the used idx (§2.7.8, "MUST set len prior to updating the used idx")."""
        slot = self.used_idx % self.size
        elem = self.device_addr + 4 + 8 * slot
        try:
            self.memory.write_u32(elem, head)
            self.memory.write_u32(elem + 4, written)
        except GuestMemoryError as exc:
            raise VirtqueueError("ring_access", str(exc)) from None
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self._write_u16(self.device_addr + 2, self.used_idx)

    def _write_u16(self, gpa: int, value: int) -> None:
        try:
            self.memory.write_u16(gpa, value)
        except GuestMemoryError as exc:
            raise VirtqueueError("ring_access", str(exc)) from None

    def should_notify(self) -> bool:
        """Whether the buffers used since the last call need a used-buffer notification:
        VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7.2) or, with VIRTIO_F_EVENT_IDX, ``used_event``
        crossed (§2.7.10, ``vring_need_event``)."""
        old, new = self.signalled_used, self.used_idx
        self.signalled_used = new
        if old == new:
            return False
        if self.event_idx:
            event = self.used_event()
            return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF
        return not self.avail_flags() & VIRTQ_AVAIL_F_NO_INTERRUPT


ErrorCounters = Counter[str]
"""Per-device counts of failed checks, by check name."""
