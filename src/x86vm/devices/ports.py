"""Access-width rules shared by the 8-bit ISA devices of a PC.

The ISA devices here (UART, CMOS, i8042, POST, fw_cfg data) have 8-bit registers. When the CPU
issues a 16- or 32-bit ``IN``/``OUT`` to such a device, the bus splits it into byte cycles at
consecutive port addresses, least significant byte first (ISA byte-lane steering; QEMU's memory
core does the same for regions whose ``max_access_size`` is 1 — checked under QEMU in
``tests/test_dev_qemu.py``: ``inw`` at 0x3fe returns MSR | SCR << 8). A byte that falls past
the end of the device reads as a floating bus (0xff) and its write is dropped.
"""

from __future__ import annotations

MAX_ACCESS = 8


class ByteRegisters:
    """Base class: implement :meth:`read_byte`/:meth:`write_byte` for offsets ``< span``."""

    span: int = 1

    def read_byte(self, offset: int) -> int:
        raise NotImplementedError

    def write_byte(self, offset: int, value: int) -> None:
        raise NotImplementedError

    def read(self, offset: int, size: int) -> int:
        value = 0
        for i in range(max(0, min(size, MAX_ACCESS))):
            o = offset + i
            byte = self.read_byte(o) & 0xFF if 0 <= o < self.span else 0xFF
            value |= byte << (8 * i)
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(max(0, min(size, MAX_ACCESS))):
            o = offset + i
            if 0 <= o < self.span:
                self.write_byte(o, (value >> (8 * i)) & 0xFF)


def to_bcd(value: int) -> int:
    """Binary 0..99 → packed BCD."""
    return (value // 10) << 4 | value % 10


def from_bcd(value: int) -> int:
    """Packed BCD → binary (digits above 9 are taken at face value, as the RTC does)."""
    return (value >> 4) * 10 + (value & 0x0F)
