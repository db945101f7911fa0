"""QEMU's ``isa-debug-exit`` device: a guest ``OUT`` ends the run with a chosen status.

Semantics of QEMU ``hw/misc/debugexit.c``: a write of ``value`` stops the machine with exit
status ``(value << 1) | 1`` (so a guest can never produce status 0, and QEMU's own failures,
status 1, stay distinguishable); reads return 0. QEMU's defaults are ``iobase=0x501,
iosize=2``; x86vm's default is the common ``iobase=0xf4`` with ``iosize=1``.

Access width: QEMU accepts 1- to 4-byte writes, and its memory core clips an access to the
bytes that lie inside the device's ``iosize`` ports, so ``outl`` to a 1-port device delivers
only the low byte. The same clipping is applied here. (The process exit status is 8 bits
wide, so only ``value & 0x7f`` is visible in ``$?``; :class:`DebugExit` reports the full
status to the run loop.)
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_PORT = 0xF4
DEFAULT_IOSIZE = 1

StopRequest = Callable[[int, str], None]


class DebugExit:
    """Stops the machine: ``request_stop((value << 1) | 1, reason)`` on any write."""

    def __init__(self, request_stop: StopRequest, iosize: int = DEFAULT_IOSIZE) -> None:
        if not 1 <= iosize <= 4:
            raise ValueError(f"debug-exit iosize {iosize} is not 1..4")
        self.request_stop = request_stop
        self.iosize = iosize
        self.last_value: int | None = None

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        width = max(0, min(size, 4, self.iosize - offset))
        if width == 0:
            return
        value &= (1 << (8 * width)) - 1
        self.last_value = value
        self.request_stop((value << 1) | 1, f"debug-exit: guest wrote {value:#x}")
