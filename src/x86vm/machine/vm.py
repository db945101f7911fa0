"""The machine: guest memory, buses, one vCPU backend, and the run loop (docs/machine-api.md).

RAM starts at guest-physical 0. As on a PC, the 1 GiB below 4 GiB is left for MMIO (the
in-kernel IOAPIC at 0xfec00000, LAPIC at 0xfee00000, the KVM TSS pages), so RAM beyond
3 GiB continues at 4 GiB.

Devices get what they need from the machine as constructor arguments — an :class:`IrqLine`,
``request_stop``/``request_reset``, ``clock_ns``, the timer service ``at`` — never the
machine or the backend itself.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from x86vm.cpu.state import REAL_CODE, REAL_DATA, RegisterState
from x86vm.machine.backend import (
    STATUS_TIMEOUT,
    Backend,
    DebugControl,
    RunResult,
    StopRequest,
)
from x86vm.machine.bus import MmioBus, PortBus
from x86vm.machine.errors import MachineError
from x86vm.machine.irq import InterruptController, IrqLine, LocalApicPort, TimerHandle
from x86vm.machine.memory import PAGE_SIZE, GuestMemory, GuestMemoryError
from x86vm.machine.runloop import DebugHandler, run_loop
from x86vm.machine.timers import NEVER, GuestTimers

__all__ = ["Machine", "MachineError", "RunResult", "BACKENDS", "LOW_RAM_LIMIT", "HIGH_RAM_BASE"]

LOW_RAM_LIMIT = 3 << 30
HIGH_RAM_BASE = 4 << 30
MAX_MEMORY = 1 << 40
BACKENDS = {"kvm": "x86vm.machine.kvm:KvmBackend", "emu": "x86vm.machine.emu:EmuBackend"}


class Machine:
    """A one-vCPU PC-like machine; see docs/machine-api.md for the contract with devices
    and boot loaders."""

    num_cpus = 1

    def __init__(self, memory_size: int = 128 << 20, backend: str = "kvm",
                 rom: Sequence[tuple[int, bytes]] = (), **backend_options: object) -> None:
        """``rom``: read-only (address, bytes) copies mapped over RAM before the vCPU
        exists (``machine.boot.rom.rom_regions`` for a reset-vector boot): RAM leaves
        holes where they sit."""
        if memory_size <= 0 or memory_size % PAGE_SIZE or memory_size > MAX_MEMORY:
            raise MachineError(f"memory size {memory_size:#x} must be a positive multiple of "
                               f"4 KiB, at most {MAX_MEMORY >> 30} GiB")
        self.memory = GuestMemory()
        self.pio = PortBus()
        self.mmio: MmioBus = self.memory.mmio
        self._stop = StopRequest()
        self.backend: Backend | None = None
        self.on_debug_stop: DebugHandler | None = None
        """Called when the guest stops for the debugger (see ``runloop.DebugHandler``)."""
        try:
            low = min(memory_size, LOW_RAM_LIMIT)
            for start, end in _ram_pieces(0, low, rom):
                self.memory.add_ram(start, end - start)
            if memory_size > low:
                self.memory.add_ram(HIGH_RAM_BASE, memory_size - low)
            for gpa, data in rom:
                self.memory.add_rom(gpa, data)
        except GuestMemoryError as exc:
            self.memory.close()
            raise MachineError(str(exc)) from None
        except OSError as exc:
            self.memory.close()
            raise MachineError(f"cannot allocate {memory_size >> 20} MiB of guest RAM: "
                               f"{exc.strerror}") from None
        try:
            self.backend = _backend_class(backend)(self.memory, **backend_options)
        except BaseException:
            self.memory.close()
            raise
        self.timers = GuestTimers(self.backend.clock_ns, self.backend.wake_at)
        self._waking_vector: Callable[[], int] | None = None   # set while suspended (S3)
        self._woken = False

    # -- services for devices -----------------------------------------------------------------

    def irq_line(self, irq: int) -> IrqLine:
        """Interrupt input ``irq`` of the interrupt controller (ISA IRQ / IOAPIC GSI)."""
        return self.backend.irq_line(irq)

    def request_stop(self, status: int, reason: str) -> None:
        """End the current run with process status ``status`` (the first request wins)."""
        if self._stop.request(status, reason):
            self.backend.interrupt()

    def request_reset(self, reason: str) -> None:
        """A reset line (i8042 pulse, triple fault) ends the run cleanly: status 0."""
        self.request_stop(0, f"reset: {reason}")

    def request_suspend(self, waking_vector: Callable[[], int]) -> None:
        """ACPI S3 (suspend to RAM): the vCPU stops, RAM and the devices stay; guest time goes
        on until a device calls :meth:`wake` (the RTC alarm), then the vCPU starts again in
        real mode at ``waking_vector()`` (the FACS firmware waking vector, read at wake-up),
        as SeaBIOS resumes a QEMU guest (CS = vector >> 4, IP = vector & 0xF)."""
        if self._stop.request(0, "suspended to RAM (S3) with no wake event"):
            self._waking_vector, self._woken = waking_vector, False
            self.backend.interrupt()

    def wake(self) -> None:
        """A wake event (ACPI WAK_STS) for a suspended machine; ignored otherwise."""
        self._woken = True

    def clock_ns(self) -> int:
        """Guest time in ns (the backend's: host monotonic on KVM, virtual on emu)."""
        return self.backend.clock_ns()

    def at(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the vCPU thread once guest time reaches ``deadline_ns``;
        ``.cancel()`` on the handle withdraws it (the :class:`TimerService` for devices)."""
        return self.timers.at(deadline_ns, callback)

    def set_interrupt_controller(self, controller: InterruptController,
                                 local_apic: LocalApicPort | None = None) -> bool:
        """The board's Python chipset feeds the vCPU (the backend's optional
        ``InterruptSource`` capability); False when the backend cannot take it."""
        setter = getattr(self.backend, "set_interrupt_controller", None)
        if setter is None:
            return False
        setter(controller, local_apic)
        return True

    def interrupt_pending(self) -> None:
        """An interrupt may have become deliverable (the chipset's ``on_pending``)."""
        notify = getattr(self.backend, "interrupt_pending", None)
        if notify is not None:
            notify()

    @property
    def in_kernel(self) -> frozenset[str]:
        """Platform devices the backend provides itself ("pic", "ioapic", "lapic", "pit");
        the board models the others in Python."""
        return self.backend.in_kernel

    def coalesce_writes(self, base: int, size: int, pio: bool = False) -> bool:
        """Buffer guest writes to an MMIO (or port) range and deliver them at the next exit,
        in order (KVM coalesced MMIO). Only for registers whose writes may arrive late.
        False (and every write exits) when the backend cannot coalesce."""
        coalescing = self.backend.coalescing
        if coalescing is None:
            return False
        coalescing.coalesce(base, size, pio)
        return True

    def exit_stats(self) -> dict[str, dict[str, int]]:
        """Accesses dispatched per bus and kind since the machine was made (``--stats``)."""
        return {"pio": self.pio.stats(), "mmio": self.mmio.stats()}

    # -- the vCPU (between runs) ----------------------------------------------------------------

    def get_state(self) -> RegisterState:
        return self.backend.get_state()

    def set_state(self, state: RegisterState) -> None:
        self.backend.set_state(state)

    def set_debug(self, control: DebugControl) -> None:
        self.backend.set_debug(control)

    # -- running --------------------------------------------------------------------------------

    def run(self, entry: RegisterState | None = None,
            timeout: float | None = None) -> RunResult:
        """Load ``entry`` (unless None: go on from the vCPU's current state) and run until
        debug-exit, reset, shutdown, halt, an internal error, or ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            raise MachineError(f"timeout must be positive, not {timeout}")
        self._stop.clear()
        if entry is not None:
            self.backend.set_state(entry)
        total = timeout
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            result = run_loop(self.backend, self.pio, self.mmio, self._stop, timeout,
                              on_debug_stop=self.on_debug_stop, timers=self.timers)
            if self._waking_vector is None:
                return result
            woken = self._sleep_until_woken(end)
            vector = self._waking_vector() & 0xFFFFF
            self._waking_vector = None
            if end is not None:
                timeout = end - time.monotonic()
                if timeout <= 0:
                    return RunResult(STATUS_TIMEOUT, f"timeout after {total:g} s (in S3)",
                                     result.exits)
            if not woken:
                return result
            self._stop.clear()
            self.backend.set_state(resume_state(vector))

    def _sleep_until_woken(self, end: float | None) -> bool:
        """Let guest time pass with the vCPU stopped, running the device timers, until a
        wake event (True) or no timer is left or the run's time is up (False). The emu
        backend skips its virtual clock ahead (``idle_until``); on KVM guest time is the
        host's, so this sleeps."""
        idle_until = getattr(self.backend, "idle_until", None)
        while not self._woken:
            deadline = self.timers.next_deadline
            if deadline >= NEVER or (end is not None and time.monotonic() >= end):
                return False
            if idle_until is not None:
                idle_until(deadline)
            else:
                gap = (deadline - self.clock_ns()) / 1e9
                if end is not None:
                    gap = min(gap, end - time.monotonic())
                time.sleep(max(0.0, gap))
            self.timers.run_due()
        return True

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        self.memory.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resume_state(vector: int) -> RegisterState:
    """The vCPU after an S3 wake-up: RESET's real-mode state (SDM Vol. 3A Table 10-1) at
    ``vector >> 4``:``vector & 0xF`` (ACPI 6.4 §5.2.10 "Firmware Waking Vector")."""
    code = replace(REAL_CODE, selector=vector >> 4, base=vector & ~0xF)
    data = replace(REAL_DATA, selector=0, base=0)
    return RegisterState(rip=vector & 0xF, cs=code, ds=data, es=data, fs=data, gs=data,
                         ss=data)


def _backend_class(name: str) -> type:
    try:
        module_name, _, class_name = BACKENDS[name].partition(":")
    except KeyError:
        raise MachineError(f"unknown backend {name!r} (choose from "
                           f"{', '.join(BACKENDS)})") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise MachineError(f"the {name} backend is not available in this version") from None
    return getattr(module, class_name)


def _ram_pieces(start: int, end: int, holes: Sequence[tuple[int, bytes]]
                ) -> list[tuple[int, int]]:
    """``[start, end)`` minus the ranges of ``holes`` ((address, bytes) pairs)."""
    pieces = [(start, end)]
    for gpa, data in holes:
        hole_end = gpa + len(data)
        pieces = [p for lo, hi in pieces
                  for p in ((lo, min(hi, gpa)), (max(lo, hole_end), hi)) if p[0] < p[1]]
    return pieces
