"""Interrupt lines: how a device asserts an IRQ without knowing the backend.

The KVM backend implements a line with ``KVM_IRQ_LINE`` on its in-kernel irqchip; the emulator
backend routes it to its emulated PIC/IOAPIC. Devices only call :meth:`IrqLine.set_level`.
"""

from __future__ import annotations

from typing import Protocol


class IrqLine(Protocol):
    def set_level(self, level: bool) -> None:
        """Drive the line high (asserted) or low."""


class NullIrqLine:
    """A line connected to nothing; records its level so tests can observe it."""

    def __init__(self) -> None:
        self.level = False
        self.edges = 0

    def set_level(self, level: bool) -> None:
        if level and not self.level:
            self.edges += 1
        self.level = bool(level)
