"""Interrupt lines, the interrupt-controller seam, and the guest-time timer service.

Three narrow interfaces keep devices, controllers and CPUs apart (ARCHITECTURE.md, "Devices
see offsets, not backends"):

* :class:`IrqLine` — what a device drives. The KVM backend with an in-kernel irqchip
  implements a line with ``KVM_IRQ_LINE``; otherwise the line is an input of a Python
  interrupt controller (PIC/IOAPIC in ``x86vm.devices``).
* :class:`InterruptController` — what a CPU that takes interrupts itself asks: "is an
  interrupt pending for me, and which vector?" and "I took it" (the INTA cycle of the
  8259A datasheet, or the LAPIC's IRR→ISR move, SDM Vol. 3A §11.8.4). The emu backend asks it
  at instruction boundaries when RFLAGS.IF=1; KVM without an in-kernel irqchip asks it on an
  interrupt-window exit and injects with ``KVM_INTERRUPT``.
* :class:`TimerService` — guest-time callbacks, ``at(deadline_ns, callback)``: the virtual
  clock on emu (deterministic), the host clock on KVM. Every timed device uses it.
"""

from __future__ import annotations

from collections.abc import Callable
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


class InterruptController(Protocol):
    """The controller a vCPU takes external interrupts from (its INTR pin)."""

    def pending_vector(self) -> int | None:
        """The vector the CPU would take now, or None; does not change state."""

    def acknowledge(self) -> int | None:
        """The CPU takes the interrupt (INTA): returns its vector and moves it in service
        (None when it went away since ``pending_vector``; an 8259A then gives IRQ 7's
        spurious vector, which the controller returns itself)."""


class RegisterFault(Exception):
    """A guest register access the architecture answers with #GP(0) (an x2APIC MSR outside
    x2APIC mode, a reserved IA32_APIC_BASE bit…): the CPU side turns it into the fault."""


class LocalApicPort(Protocol):
    """What a CPU that takes interrupts itself needs of its local APIC besides the
    :class:`InterruptController`: the APIC MSRs (IA32_APIC_BASE 0x1B, IA32_TSC_DEADLINE
    0x6E0, x2APIC 0x800-0x8FF) and CR8, which is TPR bits 7-4 (SDM Vol. 3A §11.8.6).
    ``msr_read``/``msr_write`` raise :class:`RegisterFault` where the SDM gives #GP(0)."""

    cr8: int

    def handles_msr(self, msr: int) -> bool: ...

    def msr_read(self, msr: int) -> int: ...

    def msr_write(self, msr: int, value: int) -> None: ...


class TimerHandle(Protocol):
    def cancel(self) -> None:
        """The callback will not run (a no-op if it ran already)."""


class TimerService(Protocol):
    """Guest-time timers for devices (the PIT, the RTC, the APIC timer, UART timing)."""

    def clock_ns(self) -> int:
        """Guest time now, in nanoseconds."""

    def at(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the vCPU's thread once guest time reaches ``deadline_ns``
        (at once, at the next chance, if it has already passed)."""


class PendingInterrupt:
    """A stand-in controller for tests: ``raise_vector(v)`` makes ``v`` pending until taken."""

    def __init__(self) -> None:
        self.vectors: list[int] = []
        self.taken: list[int] = []

    def raise_vector(self, vector: int) -> None:
        self.vectors.append(vector)

    def pending_vector(self) -> int | None:
        return self.vectors[0] if self.vectors else None

    def acknowledge(self) -> int | None:
        if not self.vectors:
            return None
        vector = self.vectors.pop(0)
        self.taken.append(vector)
        return vector
