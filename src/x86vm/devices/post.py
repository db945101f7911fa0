"""POST diagnostic port 0x80: firmware and kernels write progress codes here.

Writes are recorded (the last :data:`HISTORY` codes, like a POST card's display). Reads return
0xff: that is what QEMU 7.2's ``ioport80`` returns before and after a write (checked by the
QEMU probe in ``tests/test_dev_qemu.py``) and what a PC whose port-80 card does not drive the
bus reads. Linux also uses ``outb`` to 0x80 as an I/O delay (``io_delay``), so writes are cheap.
A wide write only reaches port 0x80 with its low byte (the other bytes go to the DMA page
registers at 0x81.., not here).
"""

from __future__ import annotations

from collections import deque

from x86vm.devices.ports import ByteRegisters

POST_PORT = 0x80
HISTORY = 64


class PostCodePort(ByteRegisters):
    span = 1

    def __init__(self) -> None:
        self.codes: deque[int] = deque(maxlen=HISTORY)
        self.writes = 0

    @property
    def last(self) -> int | None:
        return self.codes[-1] if self.codes else None

    def read_byte(self, offset: int) -> int:
        return 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        self.codes.append(value)
        self.writes += 1
