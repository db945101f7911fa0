"""The contract between the run loop and a vCPU backend (KVM, or the pure-Python CPU).

A backend runs the guest until something needs the monitor and returns an exit object of
:mod:`x86vm.machine.exits`; the run loop dispatches it to the buses and devices and calls
``run()`` again. The same loop, buses and devices serve every backend.

**An access in the middle of an instruction.** When an instruction reads a port or an
address no RAM backs (MMIO), the access stops the instruction *before any architectural
write*: ``run()`` returns the :class:`~x86vm.machine.exits.IoExit` or
:class:`~x86vm.machine.exits.MmioExit`; the loop has the device fill ``exit.data`` and calls
``complete_io(exit)``; the next ``run()`` completes the instruction with that value (RIP,
flags and any other destination are written then). A write exit carries its data and needs no
completion: the instruction has retired when ``run()`` returns it. An instruction that makes
several accesses (RMW ``add %eax,(mmio)``, ``movs`` between MMIO and RAM, an access
straddling RAM and MMIO) exits once per access, in the order the processor makes them. This is
what KVM's instruction emulator does after an EPT violation (``x86_emulate_insn`` → userspace
MMIO exit → ``complete_userspace_io`` → re-entry finishes the instruction).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from x86vm.cpu.state import RegisterState
from x86vm.machine.exits import Exit, IoExit, MmioExit
from x86vm.machine.irq import InterruptController, IrqLine, LocalApicPort

STATUS_TIMEOUT = 124  # like timeout(1); even, so never a debug-exit status ((v << 1) | 1)
STATUS_INTERNAL_ERROR = 126
HYPERCALL_ENOSYS = -1000  # KVM_ENOSYS (include/uapi/linux/kvm_para.h)


@dataclass(slots=True)
class RunResult:
    """How a run ended: ``status`` is the process exit status ``x86vm run`` uses."""

    status: int
    reason: str
    exits: int


@dataclass(frozen=True, slots=True)
class DebugControl:
    """What a debugger asks of a backend (``set_debug``); the default asks for nothing.

    ``single_step``: stop after each instruction. ``breakpoints``: stop before executing
    these guest-virtual (linear) addresses, without touching guest memory (debug-register
    breakpoints: at most :data:`HW_BREAKPOINT_SLOTS` together with the watchpoints).
    ``watchpoints``: (address, length 1/2/4/8 aligned, kind "w" or "rw") stop after the
    access. ``software_breakpoints``: an ``int3`` the guest executes stops the run
    (``DebugStop`` with RIP at the ``int3``) instead of raising #BP in the guest: for a
    debugger that patches ``0xCC`` into guest memory itself.
    """

    single_step: bool = False
    breakpoints: tuple[int, ...] = ()
    watchpoints: tuple[tuple[int, int, str], ...] = ()
    software_breakpoints: bool = False
    unpatched_breakpoints: tuple[int, ...] = ()
    """Stop before these addresses too, without a debug-register slot and without touching
    guest memory (``DebugStop`` with ``dr6`` 0, like an ``int3``): only for a backend whose
    ``unpatched_breakpoints`` attribute is True (emu); others refuse them (ValueError)."""


HW_BREAKPOINT_SLOTS = 4  # DR0-DR3 (SDM Vol. 3B §18.2)
DR_LENGTHS = (1, 2, 4, 8)


def debug_slots(control: DebugControl) -> list[tuple[int, int, str]]:
    """The debug-register slots ``control`` takes, DR0 first: (address, length, kind) with
    kind "x" for a breakpoint, then the watchpoints (SDM Vol. 3B §18.2.4: lengths 1, 2, 4,
    8, the address aligned to it; write or read/write). ValueError when they do not fit."""
    slots = [(address, 1, "x") for address in control.breakpoints]
    for address, length, kind in control.watchpoints:
        if length not in DR_LENGTHS or address % length:
            raise ValueError(f"watchpoint at {address:#x}: length {length} must be 1, 2, 4 "
                             "or 8 and the address aligned to it")
        if kind not in ("w", "rw"):
            raise ValueError(f"watchpoint kind {kind!r}: x86 debug registers watch writes "
                             "('w') or reads and writes ('rw')")
        slots.append((address, length, kind))
    if len(slots) > HW_BREAKPOINT_SLOTS:
        raise ValueError(f"{len(slots)} breakpoints and watchpoints: the debug registers "
                         f"hold {HW_BREAKPOINT_SLOTS}")
    return slots


class Backend(Protocol):
    """What the machine and the run loop need from a vCPU backend."""

    name: str
    buffered_writes: Callable[[], list[IoExit | MmioExit]] | None
    """Writes the backend buffered without exiting (coalesced MMIO/PIO), oldest first, or
    None if it never buffers; the loop delivers them before the next exit."""
    coalescing: WriteCoalescing | None
    """The optional write-coalescing capability, or None when the backend has none."""
    in_kernel: frozenset[str]
    """Platform devices the backend itself provides (KVM's in-kernel irqchip: "pic",
    "ioapic", "lapic", "pit"); the board adds Python models for the others. Empty on emu."""

    def run(self) -> Exit | None:
        """Run the guest until it exits; None when interrupted before any exit."""

    def complete_io(self, exit_: Exit) -> None:
        """Give the guest the data of a read exit (``exit_.data``), before the next run."""

    def interrupt(self) -> None:
        """Make the current (or next) ``run()`` return soon; callable from any thread."""

    def running(self) -> AbstractContextManager[None]:
        """Context around a run loop on the calling thread (signal set-up and so on)."""

    def irq_line(self, irq: int) -> IrqLine:
        """Input ``irq`` of the backend's own interrupt controller (in-kernel irqchip)."""

    def clock_ns(self) -> int:
        """Guest time: virtual (retired instructions) on emu, the host clock on KVM."""

    def wake_at(self, deadline_ns: int) -> None:
        """Make ``run()`` return (None, if nothing else exits first) once guest time reaches
        ``deadline_ns``; a call replaces the previous deadline, ``timers.NEVER`` clears it.
        Callable from any thread; the machine's timer queue (``machine/timers.py``) calls it
        when its earliest deadline changes."""

    def get_state(self) -> RegisterState:
        """A snapshot of the vCPU's registers (between runs)."""

    def set_state(self, state: RegisterState) -> None:
        """Load the vCPU's registers (between runs)."""

    def set_debug(self, control: DebugControl) -> None:
        """Breakpoints/single-step; hits come back from ``run()`` as ``DebugStop``."""

    def close(self) -> None:
        """Release the backend's resources."""


class WriteCoalescing(Protocol):
    """Optional capability: buffer guest writes to a range instead of exiting on each."""

    def coalesce(self, base: int, size: int, pio: bool = False) -> None:
        """Writes to ``[base, base + size)`` (MMIO, or ports with ``pio``) are buffered and
        come back through ``buffered_writes``, in order, at the next exit. Only for
        registers whose writes may arrive late (a doorbell, a framebuffer)."""


class InterruptSource(Protocol):
    """Optional capability: a backend that takes interrupts from a Python controller (the
    board's chipset, when the machine has no in-kernel irqchip)."""

    def set_interrupt_controller(self, controller: InterruptController,
                                 local_apic: LocalApicPort | None = None) -> None:
        """Take external interrupts from ``controller`` (emu: at instruction boundaries
        with IF=1; KVM: injected on an interrupt window); route the APIC MSRs and CR8 to
        ``local_apic``. Call ``interrupt_pending`` whenever one may have become pending."""

    def interrupt_pending(self) -> None:
        """Something may have made an interrupt deliverable (callable from the vCPU thread
        between runs, and from device callbacks)."""


class StopRequest:
    """The first stop asked for in a run (debug-exit, reset, timeout) wins."""

    __slots__ = ("status", "reason", "_lock")

    def __init__(self) -> None:
        self.status: int | None = None
        self.reason = ""
        self._lock = threading.Lock()

    def request(self, status: int, reason: str) -> bool:
        """Record a stop unless one is recorded already; True if this one counts."""
        with self._lock:
            if self.status is not None:
                return False
            self.reason, self.status = reason, status
            return True

    def clear(self) -> None:
        self.status, self.reason = None, ""
