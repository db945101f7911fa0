"""KVM without an in-kernel irqchip (``--irqchip user``): the board's Python controllers
interrupt the vCPU through ``KVM_INTERRUPT``.

api.rst §4.16 KVM_INTERRUPT and §5 ``kvm_run``: without ``KVM_CREATE_IRQCHIP`` the monitor
injects an external interrupt when ``ready_for_interrupt_injection`` (and ``if_flag``) say the
guest can take one; otherwise it sets ``request_interrupt_window`` and KVM exits with
``KVM_EXIT_IRQ_WINDOW_OPEN`` as soon as the guest can. ``hlt`` exits to userspace
(``KVM_EXIT_HLT``): the vCPU then stays out of ``KVM_RUN`` (it is halted) until an interrupt
is pending, guest time (the host clock) passing through the machine's timers meanwhile. The
LAPIC page is ordinary MMIO (the Python LAPIC on the MMIO bus) and CR8 is exchanged through
``kvm_run.cr8`` (in before, out after each run) with the LAPIC's TPR.

Limits: the x2APIC MSRs and IA32_TSC_DEADLINE are KVM's (a #GP without its LAPIC), so CPUID
does not offer x2APIC or TSC-deadline here and a guest uses the xAPIC page; NMIs from the
LAPIC (an NMI IPI, LINT1, an IOAPIC entry in NMI mode) are queued with ``KVM_NMI`` (api.rst
§4.97): KVM itself holds one pending, waits for the guest to unblock NMIs (its IRET) and
opens an NMI window, as for the in-kernel LAPIC.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

from x86vm.machine.exits import Exit, Halt
from x86vm.machine.irq import InterruptController, LocalApicPort
from x86vm.machine.kvm import abi
from x86vm.machine.kvm.system import ioctl

HALT_POLL_SECONDS = 0.05
CPUID1_ECX_X2APIC, CPUID1_ECX_TSC_DEADLINE = 1 << 21, 1 << 24


def without_kernel_lapic_features(cpuid: ctypes.Structure) -> ctypes.Structure:
    """KVM's supported CPUID advertises what its in-kernel LAPIC emulates; without it the
    x2APIC and the TSC-deadline timer are not there (QEMU drops them the same way with
    ``kernel-irqchip=off``): clear CPUID.1:ECX bits 21 and 24 (SDM Vol. 2A, CPUID)."""
    for entry in cpuid.entries[:cpuid.nent]:
        if entry.function == 1:
            entry.ecx &= ~(CPUID1_ECX_X2APIC | CPUID1_ECX_TSC_DEADLINE)
    return cpuid  # a halted vCPU re-checks its controller at least this often

_REQUEST_WINDOW = abi.KvmRun.request_interrupt_window.offset
_READY = abi.KvmRun.ready_for_interrupt_injection.offset
_IF_FLAG = abi.KvmRun.if_flag.offset
_CR8 = abi.KvmRun.cr8.offset


class KvmInterrupt(ctypes.Structure):
    _fields_ = [("irq", ctypes.c_uint32)]


KVM_INTERRUPT = abi._IOW(abi.KVMIO, 0x86, KvmInterrupt)
KVM_NMI = abi._IO(abi.KVMIO, 0x9A)


class UserIrqchip:
    """Wraps a vCPU's ``run`` to take interrupts from ``controller`` (see module doc)."""

    def __init__(self, vcpu, controller: InterruptController,
                 local_apic: LocalApicPort | None) -> None:
        self.vcpu = vcpu
        self.controller = controller
        self.local_apic = local_apic
        self.raw_run: Callable[[], Exit | None] = vcpu.run
        self.wake = threading.Event()
        self.halted = False
        self.injected = 0
        self.nmis = 0
        self.trace_inject: Callable[[int], None] | None = None  # irq:inject, when traced
        self._irq = KvmInterrupt()
        self._take_nmi: Callable[[], bool] | None = getattr(controller, "take_nmi", None)

    def notify(self) -> None:
        """Something may be pending (the chipset's ``on_pending``, or a kick)."""
        self.wake.set()

    def run(self) -> Exit | None:
        run_map = self.vcpu.run_map
        controller = self.controller
        take_nmi = self._take_nmi
        if take_nmi is not None and take_nmi():
            ioctl(self.vcpu.fd, KVM_NMI, 0, "KVM_NMI")  # an NMI also wakes a halted vCPU
            self.nmis += 1
            self.halted = False
        if self.halted:
            if controller.pending_vector() is None:
                self.wake.wait(HALT_POLL_SECONDS)
                self.wake.clear()
                return None  # the loop runs due timers, checks stops, and comes back
            self.halted = False
        if controller.pending_vector() is not None:
            if run_map[_READY] and run_map[_IF_FLAG]:
                vector = controller.acknowledge()
                if vector is not None:
                    self._irq.irq = vector
                    ioctl(self.vcpu.fd, KVM_INTERRUPT, self._irq, "KVM_INTERRUPT")
                    self.injected += 1
                    if self.trace_inject is not None:
                        self.trace_inject(vector)
                run_map[_REQUEST_WINDOW] = int(controller.pending_vector() is not None)
            else:
                run_map[_REQUEST_WINDOW] = 1
        else:
            run_map[_REQUEST_WINDOW] = 0
        apic = self.local_apic
        if apic is not None:
            run_map[_CR8:_CR8 + 8] = apic.cr8.to_bytes(8, "little")
        exit_ = self.raw_run()
        if apic is not None:
            cr8 = int.from_bytes(run_map[_CR8:_CR8 + 8], "little") & 0xF
            if cr8 != apic.cr8:
                apic.cr8 = cr8
        if exit_.__class__ is Halt:
            if not run_map[_IF_FLAG]:
                return exit_  # cli; hlt: nothing but an NMI wakes it
            self.halted = True
            self.wake.clear()
            return None
        return exit_

    def reset(self) -> None:
        """New registers were loaded: the vCPU is not halted any more."""
        self.halted = False
