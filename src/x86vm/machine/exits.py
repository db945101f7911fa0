"""Backend-neutral VM exits.

A backend's ``run()`` returns one of these. The KVM backend translates ``struct kvm_run``
(KVM API doc, section 5 "The kvm_run structure"); the emulator produces the same objects when
an instruction touches a port or an MMIO region. The run loop dispatches them to the buses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class IoExit:
    """Port I/O (``in``/``out``/``ins``/``outs``).

    ``data`` holds ``size * count`` bytes: for a write, what the guest wrote (little-endian,
    one element after another); for a read, the handler fills it in before the vCPU resumes.
    ``count`` > 1 only for string I/O with a REP prefix.
    """

    port: int
    size: int
    is_write: bool
    data: bytearray
    count: int = 1


@dataclass(slots=True)
class MmioExit:
    """A load or store to guest-physical memory that no RAM backs (KVM_EXIT_MMIO)."""

    gpa: int
    size: int
    is_write: bool
    data: bytearray


@dataclass(slots=True)
class Halt:
    """HLT with interrupts that cannot wake the vCPU (no in-kernel irqchip, or IF=0)."""


@dataclass(slots=True)
class Shutdown:
    """Triple fault or other shutdown condition (KVM_EXIT_SHUTDOWN)."""

    reason: str = "triple fault"


@dataclass(slots=True)
class Hypercall:
    """VMCALL/VMMCALL the backend hands to the monitor (KVM_EXIT_HYPERCALL)."""

    nr: int
    args: tuple[int, ...] = ()
    ret: int = 0


@dataclass(slots=True)
class DebugStop:
    """A breakpoint, watchpoint or single step requested by a debugger (KVM_EXIT_DEBUG).

    ``pc`` is RIP where the guest stopped; ``dr6`` says why as DR6 would (SDM Vol. 3B
    §18.2.3: B0-B3 = bits 0-3 for the hardware breakpoint slots, BS = bit 14 for a single
    step), 0 for a software breakpoint (``int3``)."""

    pc: int
    dr6: int = 0


@dataclass(slots=True)
class InternalError:
    """The backend could not continue: emulation failure, entry failure, unknown exit."""

    reason: str


Exit = IoExit | MmioExit | Halt | Shutdown | Hypercall | DebugStop | InternalError
