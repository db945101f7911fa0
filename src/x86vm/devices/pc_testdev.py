"""QEMU's ``pc-testdev``, the test device kvm-unit-tests expects (QEMU ``hw/misc/pc-testdev.c``).

=========== ====== ==================================================================
port/addr   width  function
=========== ====== ==================================================================
0xE0-0xE3   1-4    a 32-bit scratch register, byte-addressed (``inb 0xe2`` = bits 23-16)
0xE4-0xE7   4      "flush page": a guest-physical address whose page QEMU re-protects;
                   recorded here (x86vm keeps no host-side page protection to flush)
0xE8-0xEB   1-4    the same scratch register, split into byte accesses
0x2000-0x2017 1    IRQ lines: writing ``v`` to 0x2000 + n drives ISA IRQ n (GSI n above
                   15) to ``v != 0`` — kvm-unit-tests' ``set_irq_line``
0xFF000000  any    64 KiB of scratch memory ("iomem"), an MMIO region
=========== ====== ==================================================================

Reads of the flush and IRQ ports return 0 (write-only regions), an access that runs past the end
of its 4-port window reads 0 and writes nothing, and the IRQ ports take byte writes only — all
as QEMU 7.2's memory core treats these regions (checked in ``tests/test_dev_testdev.py``).
The IRQ lines are what the board hands in: one :class:`~x86vm.machine.irq.IrqLine` per ISA
IRQ / GSI (see ``chipset.py``). Port 0xE9 (isa-debugcon) lies inside the 0xE8 window; QEMU 7.2
with both devices answers neither at 0xE9 (reads 0), so a board registers only one.
"""

from __future__ import annotations

from collections.abc import Sequence

from x86vm.devices.ports import ByteRegisters
from x86vm.machine.irq import IrqLine

SCRATCH_PORT = 0xE0
FLUSH_PORT = 0xE4
SCRATCH_BYTE_PORT = 0xE8
IRQ_PORT = 0x2000
IRQ_PORTS = 24
IOMEM_BASE = 0xFF000000
IOMEM_SIZE = 0x10000


class Scratch(ByteRegisters):
    """The 32-bit scratch register behind 0xE0 and 0xE8."""

    span = 4

    def __init__(self) -> None:
        self.data = 0

    def read_byte(self, offset: int) -> int:
        return self.data >> (8 * offset) & 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        shift = 8 * offset
        self.data = self.data & ~(0xFF << shift) | value << shift

    def read(self, offset: int, size: int) -> int:
        if offset < 0 or size <= 0 or offset + size > self.span:
            return 0
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 0 or size <= 0 or offset + size > self.span:
            return
        super().write(offset, size, value)


class ScratchView:
    """A second window on the same scratch register (the byte-split region at 0xE8)."""

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch

    def read(self, offset: int, size: int) -> int:
        return self.scratch.read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.scratch.write(offset, size, value)


class FlushPort:
    """0xE4: 32-bit writes only; the page address is recorded."""

    def __init__(self) -> None:
        self.flushed: list[int] = []

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0 and size == 4:
            if len(self.flushed) < 64:
                self.flushed.append(value & ~0xFFF)


class IrqPorts(ByteRegisters):
    """0x2000 + n: drive line n."""

    span = IRQ_PORTS

    def __init__(self, lines: Sequence[IrqLine | None]) -> None:
        self.lines = list(lines)[:IRQ_PORTS]

    def read_byte(self, offset: int) -> int:
        return 0

    def write_byte(self, offset: int, value: int) -> None:
        if offset < len(self.lines) and self.lines[offset] is not None:
            self.lines[offset].set_level(value != 0)

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 1:
            super().write(offset, size, value)


class IoMem:
    """64 KiB of guest-visible scratch memory at 0xFF000000."""

    def __init__(self) -> None:
        self.buf = bytearray(IOMEM_SIZE)

    def read(self, offset: int, size: int) -> int:
        if offset < 0 or size <= 0:
            return 0
        chunk = self.buf[offset : offset + size]
        return int.from_bytes(chunk.ljust(size, b"\0"), "little")

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 0 or size <= 0 or offset >= IOMEM_SIZE:
            return
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        end = min(offset + size, IOMEM_SIZE)
        self.buf[offset:end] = data[: end - offset]


class PcTestDev:
    """All of pc-testdev's regions; :meth:`register` claims them on the port and MMIO buses."""

    def __init__(self, irq_lines: Sequence[IrqLine | None]) -> None:
        self.scratch = Scratch()
        self.scratch_bytes = ScratchView(self.scratch)
        self.flush = FlushPort()
        self.irq = IrqPorts(irq_lines)
        self.iomem = IoMem()

    def register(self, pio, mmio=None) -> None:
        pio.register(SCRATCH_PORT, 4, self.scratch, "pc-testdev-ioport")
        pio.register(FLUSH_PORT, 4, self.flush, "pc-testdev-flush-page")
        pio.register(SCRATCH_BYTE_PORT, 4, self.scratch_bytes, "pc-testdev-ioport-byte")
        pio.register(IRQ_PORT, IRQ_PORTS, self.irq, "pc-testdev-irq-line")
        if mmio is not None:
            mmio.register(IOMEM_BASE, IOMEM_SIZE, self.iomem, "pc-testdev-iomem")
