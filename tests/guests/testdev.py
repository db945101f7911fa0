"""A Python model of QEMU's ``pc-testdev`` (hw/misc/pc-testdev.c), the device the long-mode
guest pokes: an I/O port at 0xe0 that reads back the last value written to it, and a 64 KiB
window at 0xff000000 that behaves like memory. The x86vm end-to-end tests attach it where
QEMU runs with ``-device pc-testdev``; both also log every access so a test can check that
each width really reached the device.
"""

from __future__ import annotations

IOPORT_BASE, IOPORT_SIZE = 0xE0, 4
IOMEM_BASE, IOMEM_SIZE = 0xFF000000, 0x10000


class PcTestDevPort:
    """Reads return the last value written (truncated to the access size)."""

    def __init__(self) -> None:
        self.value = 0
        self.log: list[tuple[str, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        self.log.append(("r", offset, size))
        return self.value & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size))
        self.value = value


class PcTestDevMemory:
    """Byte-addressed scratch memory, little endian."""

    def __init__(self) -> None:
        self.data = bytearray(IOMEM_SIZE)
        self.log: list[tuple[str, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        self.log.append(("r", offset, size))
        return int.from_bytes(self.data[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size))
        self.data[offset : offset + size] = value.to_bytes(size, "little")
