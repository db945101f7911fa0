"""The KVM vCPU backend (:class:`x86vm.machine.backend.Backend`).

Set-up order follows the KVM API doc: identity map and TSS pages before any vCPU exists
(api.rst §4.48, §4.57), in-kernel irqchip then PIT (§4.24, §4.67), RAM slots
(§4.35), then the vCPU with ``KVM_SET_CPUID2`` from ``KVM_GET_SUPPORTED_CPUID`` (§4.46, §4.20).

Stopping a vCPU that is inside ``KVM_RUN`` (api.rst §5 ``immediate_exit``): set
``kvm_run.immediate_exit`` (so a ``KVM_RUN`` about to start returns ``EINTR`` at once), then
send a signal to the thread running the vCPU (so one already running returns ``EINTR``). The
signal has a no-op handler, installed for the duration of a run.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from x86vm.cpu.state import RegisterState
from x86vm.cpu.system import check_vendor, vendor_regs
from x86vm.machine.backend import DebugControl
from x86vm.machine.irq import InterruptController, LocalApicPort
from x86vm.machine.kvm import abi
from x86vm.machine.kvm import state as kvm_state
from x86vm.machine.kvm.system import DEFAULT_KVM_PATH, Kvm, KvmError, KvmVm
from x86vm.machine.kvm.userirq import (
    UserIrqchip,
    route_apic_msrs,
    without_kernel_lapic_features,
)
from x86vm.machine.kvm.vcpu import KvmVcpu
from x86vm.machine.memory import GuestMemory
from x86vm.machine.timers import NEVER

log = logging.getLogger(__name__)

MSR_IA32_MISC_ENABLE = 0x1A0
MISC_ENABLE_FAST_STRING = 1 << 0  # "fast string operations enabled" (SDM Vol. 4 Table 2-2)
BOOT_MSRS = {MSR_IA32_MISC_ENABLE: MISC_ENABLE_FAST_STRING}  # reset values, as QEMU sets them

KICK_SIGNAL = signal.SIGRTMIN  # the first real-time signal, as Firecracker uses for kicks
HALT_POLL_SECONDS = 0.05


def _ignore_kick(signum: int, frame: object) -> None:
    """The kick only has to make KVM_RUN return EINTR; nothing to do here."""


class KvmIrqLine:
    """An ISA/IOAPIC interrupt line of the in-kernel irqchip (``KVM_IRQ_LINE``)."""

    __slots__ = ("_vm", "irq", "level", "_lock")

    def __init__(self, vm: KvmVm, irq: int) -> None:
        self._vm, self.irq, self.level = vm, irq, False
        self._lock = threading.Lock()  # devices may drive a line from a host I/O thread

    def set_level(self, level: bool) -> None:
        level = bool(level)
        with self._lock:
            if level != self.level:
                self._vm.irq_line(self.irq, level)
                self.level = level


def with_vendor(cpuid: ctypes.Structure, vendor: bytes) -> None:
    """Put ``vendor`` in CPUID leaves 0 and 0x80000000 (EBX, EDX, ECX): KVM's own emulator
    follows the guest's vendor too (e.g. SYSCALL outside 64-bit mode)."""
    b, d, c = vendor_regs(vendor)
    for entry in cpuid.entries[:cpuid.nent]:
        if entry.function in (0, 0x80000000):
            entry.ebx, entry.edx, entry.ecx = b, d, c


MCG_CTL_P, MCG_SER_P, MCG_BANKS_MASK = 1 << 8, 1 << 24, 0xFF  # IA32_MCG_CAP (SDM Vol. 3B §16.3.1.1)
MCE_BANKS = 10  # QEMU's default bank count; its IA32_MCG_CAP on this KVM reads 0x0100010a
CPUID1_EDX_MCE, CPUID1_EDX_MCA = 1 << 7, 1 << 14


def set_up_machine_check(kvm: Kvm, vcpu: KvmVcpu, cpuid: ctypes.Structure) -> int | None:
    """Give the vCPU QEMU's machine-check architecture: MCG_CTL_P and MCG_SER_P as far as KVM
    supports them, and 10 banks (KVM's own default is its maximum, 32 here), when KVM has
    ``KVM_CAP_MCE`` and CPUID offers MCE and MCA (api.rst §4.104 KVM_X86_SETUP_MCE).
    Returns the IA32_MCG_CAP set, or None."""
    banks = kvm.check_extension(abi.KVM_CAP_MCE)
    leaf1 = next((e for e in cpuid.entries[:cpuid.nent] if e.function == 1), None)
    wanted = CPUID1_EDX_MCE | CPUID1_EDX_MCA
    if banks <= 0 or leaf1 is None or leaf1.edx & wanted != wanted:
        return None
    mcg_cap = (MCG_CTL_P | MCG_SER_P) & kvm.mce_cap_supported() | min(banks, MCE_BANKS)
    vcpu.setup_mce(mcg_cap)
    return mcg_cap


class HostClockWaker:
    """``wake_at`` on the host clock: a thread that calls ``kick`` once ``time.monotonic_ns``
    reaches the deadline (started at the first deadline, ended by :meth:`close`)."""

    def __init__(self, kick: Callable[[], None]) -> None:
        self._kick = kick
        self._cond = threading.Condition()
        self._deadline = NEVER
        self._closed = False
        self._thread: threading.Thread | None = None

    def wake_at(self, deadline_ns: int) -> None:
        with self._cond:
            if deadline_ns == self._deadline or self._closed:
                return
            self._deadline = deadline_ns
            if self._thread is None:
                if deadline_ns >= NEVER:
                    return
                self._thread = threading.Thread(target=self._wait, daemon=True,
                                                name="kvm-timer-kick")
                self._thread.start()
            self._cond.notify()

    def _wait(self) -> None:
        with self._cond:
            while not self._closed:
                delay = self._deadline - time.monotonic_ns()
                if delay > 0:
                    self._cond.wait(None if self._deadline >= NEVER else delay / 1e9)
                    continue
                self._deadline = NEVER
                self._kick()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1)


class KvmCoalescing:
    """The coalesced MMIO/PIO ring (api.rst §4.67), the backend's ``coalescing`` capability."""

    def __init__(self, backend: KvmBackend) -> None:
        self._backend = backend

    def coalesce(self, base: int, size: int, pio: bool = False) -> None:
        backend = self._backend
        backend.vm.register_coalesced(base, size, pio)
        backend.buffered_writes = backend.vcpu.drain_coalesced


class KvmBackend:
    """One VM with one vCPU on /dev/kvm, running ``memory`` (all RAM regions are mapped).

    With ``irqchip`` (the default) KVM emulates the PIC pair, IOAPIC, LAPIC and PIT
    in the kernel (:attr:`in_kernel`); without it (``--irqchip user``) the board's Python
    chipset interrupts the vCPU through :meth:`set_interrupt_controller`.
    """

    name = "kvm"
    IRQCHIP_DEVICES = frozenset({"pic", "ioapic", "lapic", "pit"})

    def __init__(self, memory: GuestMemory, *, kvm_path: str = DEFAULT_KVM_PATH,
                 irqchip: bool = True, cpu_vendor: str | None = None) -> None:
        self.kvm = Kvm(kvm_path)
        self.vm: KvmVm | None = None
        self.vcpu: KvmVcpu | None = None
        try:
            self.vm = self.kvm.create_vm()
            self.vm.set_identity_map_addr()
            self.vm.set_tss_addr()
            self.irqchip = irqchip
            if irqchip:
                self.vm.create_irqchip()
                self.vm.create_pit2()
            for region in memory.regions:
                flags = 0
                if region.readonly:
                    if not self.kvm.check_extension(abi.KVM_CAP_READONLY_MEM):
                        raise KvmError("this KVM cannot map read-only memory (no "
                                           "KVM_CAP_READONLY_MEM) for the ROM")
                    flags = abi.KVM_MEM_READONLY
                self.vm.set_user_memory_region(region.slot, region.gpa, region.size,
                                               region.host_address, flags)
            self.vcpu = KvmVcpu(self.kvm, self.vm, 0)
            cpuid = self.kvm.supported_cpuid()
            if cpu_vendor is not None:
                with_vendor(cpuid, check_vendor(cpu_vendor))
            # without KVM's LAPIC, the x2APIC MSRs reach the Python LAPIC if KVM can send them
            self.user_apic_msrs = not irqchip and route_apic_msrs(self.kvm, self.vm)
            self.vcpu.set_cpuid2(cpuid if irqchip else without_kernel_lapic_features(
                cpuid, user_x2apic=self.user_apic_msrs))
            self.mcg_cap = set_up_machine_check(self.kvm, self.vcpu, cpuid)
            self.vcpu.set_msrs(BOOT_MSRS)
        except BaseException:
            self.close()
            raise
        self.run = self.vcpu.run
        self.complete_io = self.vcpu.complete_io
        self.clock_ns = time.monotonic_ns  # guest time is host time (a C call, no wrapper)
        self.buffered_writes = None
        self.coalescing = KvmCoalescing(self) if self.vcpu.ring_offset is not None else None
        self.in_kernel = self.IRQCHIP_DEVICES if irqchip else frozenset()
        self.user_irqchip: UserIrqchip | None = None
        self._lines: dict[int, KvmIrqLine] = {}
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(KICK_SIGNAL) == signal.SIG_DFL):
            # so that a vCPU later run on another thread can still be kicked
            signal.signal(KICK_SIGNAL, _ignore_kick)
        self._kick_lock = threading.Lock()
        self._vcpu_thread: int | None = None
        self._can_kick = False
        self._waker = HostClockWaker(self.interrupt)
        self.wake_at = self._waker.wake_at

    # -- the Backend protocol ---------------------------------------------------------------

    def get_state(self) -> RegisterState:
        return self.vcpu.get_state()

    def set_state(self, state: RegisterState) -> None:
        self.vcpu.set_state(state)
        if self.user_irqchip is not None:
            self.user_irqchip.reset()

    def set_debug(self, control: DebugControl) -> None:
        """Single step, debug-register breakpoints/watchpoints and ``int3`` interception
        through ``KVM_SET_GUEST_DEBUG``; a hit comes back from :meth:`run` as ``DebugStop``.
        This host's software KVM: see docs/vmm.md "This machine's software KVM"."""
        self.vcpu.set_guest_debug(*kvm_state.guest_debug(control))

    @contextmanager
    def running(self) -> Iterator[None]:
        """Bind the vCPU to the calling thread and make it kickable by :meth:`interrupt`."""
        self.vcpu.set_immediate_exit(False)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(KICK_SIGNAL, _ignore_kick)
            can_kick = True
        else:  # only the main thread may install handlers; use one if it is there
            can_kick = callable(signal.getsignal(KICK_SIGNAL))
            if not can_kick:
                log.warning("vCPU on a thread without a handler for signal %d: a timeout "
                            "takes effect at the next guest exit only", KICK_SIGNAL)
        with self._kick_lock:
            self._vcpu_thread, self._can_kick = threading.get_ident(), can_kick
        watch_done = threading.Event()
        if self.irqchip and can_kick:
            threading.Thread(target=self._watch_halt, args=(watch_done,), daemon=True,
                             name="kvm-halt-watch").start()
        try:
            yield
        finally:
            watch_done.set()
            with self._kick_lock:
                self._vcpu_thread = None
            if previous is not None:
                signal.signal(KICK_SIGNAL, previous)

    def _watch_halt(self, done: threading.Event) -> None:
        """Kick the vCPU now and then so that a ``cli; hlt`` (which the in-kernel LAPIC keeps
        inside KVM_RUN) is noticed: :meth:`KvmVcpu.run` checks the MP state on EINTR."""
        while not done.wait(HALT_POLL_SECONDS):
            with self._kick_lock:
                if self._vcpu_thread is not None:
                    signal.pthread_kill(self._vcpu_thread, KICK_SIGNAL)

    def interrupt(self) -> None:
        if self.user_irqchip is not None:
            self.user_irqchip.notify()  # a vCPU halted in userspace wakes too
        self.vcpu.set_immediate_exit(True)
        with self._kick_lock:
            thread = self._vcpu_thread
            if thread is not None and self._can_kick and thread != threading.get_ident():
                signal.pthread_kill(thread, KICK_SIGNAL)

    # -- machine services -------------------------------------------------------------------

    def set_interrupt_controller(self, controller: InterruptController,
                                 local_apic: LocalApicPort | None = None) -> None:
        """InterruptSource (without the in-kernel irqchip only): ``KVM_INTERRUPT`` injection
        on interrupt windows, ``hlt`` waits in userspace (machine/kvm/userirq.py)."""
        if self.irqchip:
            raise KvmError("the in-kernel irqchip interrupts this vCPU; no Python controller")
        self.user_irqchip = UserIrqchip(self.vcpu, controller, local_apic)
        self.vcpu.msr_handler = self.user_irqchip.msr
        self.run = self.user_irqchip.run

    def set_trace(self, recorder: Callable[[str], Callable[..., None] | None]) -> None:
        """Trace hooks: ``irq:inject`` when the user irqchip injects (``KVM_INTERRUPT``);
        ``recorder(name)`` is None for an event that is off. Call it after
        :meth:`set_interrupt_controller`; with the in-kernel irqchip there is nothing to hook."""
        if self.user_irqchip is not None:
            self.user_irqchip.trace_inject = recorder("irq:inject")

    def interrupt_pending(self) -> None:
        if self.user_irqchip is not None:
            self.user_irqchip.notify()

    def irq_line(self, irq: int) -> KvmIrqLine:
        if not self.irqchip:
            raise KvmError("interrupt lines need the in-kernel irqchip")
        if not 0 <= irq < 24:
            raise ValueError(f"IRQ {irq} is not an IOAPIC input (0-23)")
        line = self._lines.get(irq)
        if line is None:
            line = self._lines[irq] = KvmIrqLine(self.vm, irq)
        return line

    def close(self) -> None:
        waker = getattr(self, "_waker", None)  # absent when __init__ failed early
        if waker is not None:
            waker.close()
        for part in (self.vcpu, self.vm, self.kvm):
            if part is not None:
                part.close()
