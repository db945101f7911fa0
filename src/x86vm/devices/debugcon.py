"""QEMU's ``isa-debugcon``: a one-port debug console (Bochs' port 0xE9 hack).

Semantics of QEMU ``hw/char/debugcon.c``: a byte written to the port goes to a host stream;
a read returns the ``readback`` value (0xE9 by default), which lets a guest detect the
device. The port is 8 bits wide; the other bytes of a wider access fall on other ports.
"""

from __future__ import annotations

from collections.abc import Callable

from x86vm.devices.ports import ByteRegisters

DEBUGCON_PORT = 0xE9
DEFAULT_READBACK = 0xE9
OUTPUT_LIMIT = 64 * 1024
"""Bytes :attr:`DebugCon.output` keeps when no ``write`` is given; later bytes are counted in
:attr:`DebugCon.dropped` (a guest writing the port forever cannot grow the monitor)."""


class DebugCon(ByteRegisters):
    """Bytes written go to ``write`` (any ``bytes -> None`` callable, e.g. a console's write);
    when none is given the first :data:`OUTPUT_LIMIT` are kept in :attr:`output`."""

    span = 1

    def __init__(self, write: Callable[[bytes], object] | None = None,
                 readback: int = DEFAULT_READBACK) -> None:
        self.output = bytearray()
        self.dropped = 0
        self._write = write if write is not None else self._keep
        self.readback = readback & 0xFF

    def _keep(self, data: bytes) -> None:
        if len(self.output) < OUTPUT_LIMIT:
            self.output += data
        else:
            self.dropped += len(data)

    def read_byte(self, offset: int) -> int:
        return self.readback

    def write_byte(self, offset: int, value: int) -> None:
        self._write(bytes((value,)))
