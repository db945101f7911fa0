"""The emu backend: runs the guest on :class:`x86vm.cpu.core.Cpu` over the machine's RAM.

It produces the same exit objects as the KVM backend (machine/backend.py): an ``in`` or a
read of an address no RAM backs stops the instruction before any architectural write and
``run()`` returns an :class:`IoExit`/:class:`MmioExit`; ``complete_io`` hands the value back
and the next ``run()`` finishes the instruction with it. Writes (``out``, stores to MMIO)
retire the instruction and come out one exit per access, in order.

Guest time follows retired instructions at a fixed virtual frequency (20 MHz by default,
``mhz=``), so two runs of one guest are identical; time spent halted jumps to the next timer
deadline. Devices schedule work with :meth:`EmuBackend.at` (the TimerService of irq.py).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from x86vm.cpu.core import Cpu
from x86vm.cpu.cpuid import CpuFeatures
from x86vm.cpu.errors import GP, CpuFault
from x86vm.cpu.mmu import Ram
from x86vm.cpu.state import RFLAGS_IF, RegisterState
from x86vm.cpu.system import check_vendor
from x86vm.machine.backend import DebugControl, debug_slots
from x86vm.machine.exits import (
    DebugStop,
    Exit,
    Halt,
    Hypercall,
    InternalError,
    IoExit,
    MmioExit,
    Shutdown,
)
from x86vm.machine.irq import InterruptController, LocalApicPort, RegisterFault
from x86vm.machine.memory import GuestMemory
from x86vm.machine.timers import COMPACT_AT, NEVER

DEFAULT_MHZ = 20
SLICE = 1_000_000  # instructions per cpu.run call at most (between timer checks)


class EmuIrqLine:
    """An interrupt input; without a controller model it only records its level."""

    __slots__ = ("irq", "level", "edges", "_cpu")

    def __init__(self, irq: int, cpu: Cpu) -> None:
        self.irq, self.level, self.edges, self._cpu = irq, False, 0, cpu

    def set_level(self, level: bool) -> None:
        if level and not self.level:
            self.edges += 1
        self.level = bool(level)
        self._cpu.irq_check = self._cpu.attn = True


class _CpuApic:
    """The CPU's view of a :class:`LocalApicPort` (``cpu.apic``): ``read_msr`` gives None
    and ``write_msr`` False for MSRs that are not the APIC's; a RegisterFault is #GP(0)."""

    __slots__ = ("apic",)

    def __init__(self, apic: LocalApicPort) -> None:
        self.apic = apic

    @property
    def cr8(self) -> int:
        return self.apic.cr8

    @cr8.setter
    def cr8(self, value: int) -> None:
        self.apic.cr8 = value

    def read_msr(self, index: int) -> int | None:
        if not self.apic.handles_msr(index):
            return None
        try:
            return self.apic.msr_read(index)
        except RegisterFault as exc:
            raise CpuFault(GP, 0, str(exc)) from None

    def write_msr(self, index: int, value: int) -> bool:
        if not self.apic.handles_msr(index):
            return False
        try:
            self.apic.msr_write(index, value)
        except RegisterFault as exc:
            raise CpuFault(GP, 0, str(exc)) from None
        return True


class _Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: int, callback: Callable[[], None]) -> None:
        self.deadline, self.callback, self.cancelled = deadline, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class EmuBackend:
    """One vCPU emulated in Python over ``memory``'s RAM buffers."""

    name = "emu"
    coalescing = None  # Backend capability: every write exits at once
    unpatched_breakpoints = True  # DebugControl.unpatched_breakpoints: as many as asked
    in_kernel: frozenset[str] = frozenset()  # the board's Python chipset interrupts the CPU

    def __init__(self, memory: GuestMemory, *, mhz: float = DEFAULT_MHZ,
                 cpu_vendor: str | None = None, cpu_features: str | None = None) -> None:
        self.memory = memory
        self.cpu = Cpu(Ram(memory.regions))   # the live list: RAM added later is seen
        if cpu_vendor is not None:  # CPUID's vendor and the vendor-specific semantics
            self.cpu.vendor = check_vendor(cpu_vendor)
        if cpu_features:            # optional features: +svm, -rdtscp, ... (cpu/cpuid.py)
            self.cpu.set_features(CpuFeatures.parse(cpu_features))
        observers = getattr(memory, "write_observers", None)
        if observers is not None:      # device writes into RAM drop the code they overwrite
            observers.append(self.cpu.ram_written)
        self.cpu.ns_per_insn = max(1, round(1000 / mhz))
        self.buffered_writes = None
        self._queued: list[Exit] = []
        self._timers: list[tuple[int, int, _Timer]] = []
        self._seq = itertools.count()
        self._live_after_sweep = 0
        self._lines: dict[int, EmuIrqLine] = {}
        self.debug = DebugControl()
        self.exits = 0
        self._wake: _Timer | None = None  # the machine's earliest timer deadline (wake_at)
        self._woken = False

    # -- the Backend protocol -------------------------------------------------------------

    def get_state(self) -> RegisterState:
        return self.cpu.get_state()

    def set_state(self, state: RegisterState) -> None:
        self.cpu.set_state(state)
        self._queued.clear()
        self.cpu.pending.clear()
        self.cpu.replay.clear()

    def run(self) -> Exit | None:
        cpu = self.cpu
        if self._queued:
            return self._queued.pop(0)
        cpu.irq_check = True  # an exit or a timer since the last run may have raised one
        while True:
            if cpu.stop_flag:
                cpu.stop_flag = False
                return None
            budget = self._fire_timers()
            if self._woken:  # the machine's timers are due: run() returns for them
                self._woken = False
                return None
            try:
                reason = cpu.run(budget)
            except Exception as exc:  # an emulator defect: end the run, never the monitor
                return InternalError(f"emulator error at rip {cpu.rip:#x}: {exc!r}")
            if reason == "io":
                ex = self._exit_from_cpu()
                if ex is not None:
                    return ex
            elif reason == "halt":  # with IF=0 only an NMI could wake it: none is modelled
                if not cpu.flags() & RFLAGS_IF or not self._skip_to_next_timer():
                    return Halt()
            elif reason == "debug":
                return DebugStop(cpu.rip, cpu.debug_dr6)
            elif reason == "shutdown":
                return Shutdown(cpu.stop_reason or "triple fault")
            elif reason == "stop":
                cpu.stop_flag = False
                if cpu.stop_reason == "triple fault":
                    return Shutdown("triple fault")
                return None

    def _exit_from_cpu(self) -> Exit | None:
        cpu = self.cpu
        read = getattr(cpu, "needs_read", None)
        if read is not None:
            cpu.needs_read = None
            data = bytearray(read.size * read.count)
            ex = IoExit(read.address, read.size, False, data, read.count) if read.port else \
                MmioExit(read.address, read.size, False, data)
            self._queued_writes_first(ex)
            return self._queued.pop(0)
        if cpu.pending:
            self._queued_writes_first(None)
            return self._queued.pop(0) if self._queued else None
        return None

    def _queued_writes_first(self, read: Exit | None) -> None:
        stop = None
        for kind, address, size, value in self.cpu.pending:
            if kind == "smc" or kind == "watch":   # the block stopped: nothing to hand out
                continue
            if kind == "int3":   # DebugControl.software_breakpoints: stop at the int3
                stop = DebugStop(self.cpu.rip)
                self.cpu.icount -= 1   # the block counted the int3 as retired: it is not
                continue
            if kind == "hypercall":
                self._queued.append(Hypercall(address, value))
                continue
            data = bytearray(value.to_bytes(size, "little"))
            if kind == "io":
                self._queued.append(IoExit(address, size, True, data))
            else:
                self._queued.append(MmioExit(address, size, True, data))
        self.cpu.pending.clear()
        if read is not None:
            self._queued.append(read)
        elif stop is None and self.cpu.debugging and self.cpu.stop_after_io():
            stop = DebugStop(self.cpu.rip, self.cpu.debug_dr6)   # a watchpoint hit, a step
        if stop is not None:
            self._queued.append(stop)

    def complete_io(self, exit_: Exit) -> None:
        if isinstance(exit_, (IoExit, MmioExit)) and not exit_.is_write:
            self.cpu.replay.append(int.from_bytes(exit_.data, "little"))
        elif isinstance(exit_, Hypercall):   # the VMCALL has retired: its result to RAX
            mask = (1 << 64) - 1 if self.cpu.code_bits == 64 else 0xFFFFFFFF
            self.cpu.r[0] = exit_.ret & mask

    def interrupt(self) -> None:
        self.cpu.stop_flag = self.cpu.attn = True

    @contextmanager
    def running(self) -> Iterator[None]:
        yield

    def irq_line(self, irq: int) -> EmuIrqLine:
        line = self._lines.get(irq)
        if line is None:
            line = self._lines[irq] = EmuIrqLine(irq, self.cpu)
        return line

    def set_interrupt_controller(self, controller: InterruptController,
                                 local_apic: LocalApicPort | None = None) -> None:
        """InterruptSource: the CPU asks ``controller`` at instruction boundaries; RDMSR/
        WRMSR of the APIC MSRs and MOV CR8 reach ``local_apic`` (cpu/system.py ``cpu.apic``)."""
        self.cpu.controller = controller
        self.cpu.apic = None if local_apic is None else _CpuApic(local_apic)
        self.cpu.irq_check = self.cpu.attn = True

    def interrupt_pending(self) -> None:
        self.cpu.irq_check = self.cpu.attn = True

    def clock_ns(self) -> int:
        return self.cpu.clock_ns()

    def set_debug(self, control: DebugControl) -> None:
        """Breakpoints, watchpoints (DR0-DR3 semantics, slots in order: ``breakpoints`` then
        ``watchpoints``, as KVM's debug registers), single step, ``int3`` interception and the
        breakpoints no slot limits (``unpatched_breakpoints``); cpu/debug.py does the work,
        without touching guest memory. Raises ValueError as KVM's ``set_debug`` does."""
        slots = debug_slots(control)
        breakpoints = dict.fromkeys(control.unpatched_breakpoints, 0)
        watches = []
        for slot, (address, length, kind) in enumerate(slots):
            if kind == "x":
                breakpoints[address] = breakpoints.get(address, 0) | 1 << slot
            else:
                watches.append((address, length, slot, kind == "rw"))
        self.debug = control
        self.cpu.set_debug(breakpoints, control.single_step, tuple(watches),
                           control.software_breakpoints)

    def set_trace(self, recorder: Callable[[str], Callable[..., None] | None]) -> None:
        """Trace hooks: the CPU records ``irq:inject``, ``exception``, ``mode:cr``,
        ``emu:block`` and ``insn`` through ``recorder(name)`` (None: the event is off)."""
        cpu = self.cpu
        cpu.trace_irq = recorder("irq:inject")
        cpu.trace_exception = recorder("exception")
        cpu.trace_cr = recorder("mode:cr")
        cpu.trace_block = recorder("emu:block")
        cpu.set_trace_insn(recorder("insn"))

    def close(self) -> None:
        self._timers.clear()

    # -- guest time --------------------------------------------------------------------------

    def at(self, deadline_ns: int, callback: Callable[[], None]) -> _Timer:
        """Run ``callback`` once guest time reaches ``deadline_ns`` (TimerService)."""
        timer = _Timer(deadline_ns, callback)
        timers = self._timers
        if len(timers) >= COMPACT_AT and len(timers) >= 2 * self._live_after_sweep:
            # cancelled timers linger until due: sweep them (machine/timers.py COMPACT_AT)
            timers[:] = [entry for entry in timers if not entry[2].cancelled]
            heapq.heapify(timers)
            self._live_after_sweep = len(timers)
        heapq.heappush(timers, (deadline_ns, next(self._seq), timer))
        return timer

    def wake_at(self, deadline_ns: int) -> None:
        """Backend protocol: return from ``run()`` once guest time reaches ``deadline_ns``
        (``timers.NEVER`` clears it); HLT lets guest time pass up to it."""
        if self._wake is not None:
            self._wake.cancel()
        self._wake = None if deadline_ns >= NEVER else self.at(deadline_ns, self._wake_up)

    def idle_until(self, deadline_ns: int) -> None:
        """Let guest time pass to ``deadline_ns`` with the vCPU stopped (a suspended
        machine, ``Machine.request_suspend``): the virtual clock skips ahead."""
        gap = deadline_ns - self.cpu.clock_ns()
        if gap > 0:
            self.cpu.idle_ns += gap
        self._fire_timers()

    def _wake_up(self) -> None:
        self._woken = True

    def _fire_timers(self) -> int:
        """Run due callbacks; the instruction budget until the next deadline."""
        cpu = self.cpu
        timers = self._timers
        now = cpu.clock_ns()
        while timers and (timers[0][2].cancelled or timers[0][0] <= now):
            _, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
                cpu.irq_check = cpu.attn = True
        if not timers:
            return SLICE
        return max(1, min(SLICE, (timers[0][0] - now) // cpu.ns_per_insn + 1))

    def _skip_to_next_timer(self) -> bool:
        """HLT: let guest time pass to the next timer deadline; False if there is none."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        if not timers:
            return False
        cpu = self.cpu
        gap = timers[0][0] - cpu.clock_ns()
        if gap > 0:
            cpu.idle_ns += gap
        return True

    # -- statistics ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        cpu = self.cpu
        return {"instructions": cpu.icount, "undefined": cpu.ud_count,
                "blocks": cpu.translator.translated}
