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

The APIC MSRs go to the Python LAPIC where KVM lets userspace take them
(``KVM_CAP_X86_USER_SPACE_MSR``, api.rst §7.21, and ``KVM_X86_SET_MSR_FILTER``, §4.130):
IA32_APIC_BASE is filtered to userspace; the x2APIC MSRs 0x800-0x8FF cannot be filtered, but
without KVM's LAPIC they fail in KVM, and a failed access exits too
(``KVM_MSR_EXIT_REASON_INVAL``); every other failed access is answered with KVM's own #GP.
Then CPUID offers the x2APIC. Without those capabilities the x2APIC MSRs are KVM's (a #GP
without its LAPIC) and CPUID does not offer the x2APIC: a guest uses the xAPIC page.
IA32_TSC_DEADLINE stays KVM's (it reads 0 and ignores writes without its LAPIC; the Python
LAPIC's timer counts host nanoseconds, not this vCPU's TSC), so CPUID never offers the
TSC-deadline timer here. NMIs from the
LAPIC (an NMI IPI, LINT1, an IOAPIC entry in NMI mode) are queued with ``KVM_NMI`` (api.rst
§4.97): KVM itself holds one pending, waits for the guest to unblock NMIs (its IRET) and
opens an NMI window, as for the in-kernel LAPIC.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

from x86vm.machine.exits import Exit, Halt
from x86vm.machine.irq import InterruptController, LocalApicPort, RegisterFault
from x86vm.machine.kvm import abi
from x86vm.machine.kvm.system import ioctl

HALT_POLL_SECONDS = 0.05  # a halted vCPU re-checks its controller at least this often
CPUID1_ECX_X2APIC, CPUID1_ECX_TSC_DEADLINE = 1 << 21, 1 << 24


MSR_IA32_APIC_BASE, MSR_IA32_TSC_DEADLINE = 0x1B, 0x6E0


def without_kernel_lapic_features(cpuid: ctypes.Structure, *,
                                  user_x2apic: bool = False) -> ctypes.Structure:
    """KVM's supported CPUID advertises what its in-kernel LAPIC emulates; without it the
    TSC-deadline timer is not there, nor the x2APIC unless ``user_x2apic`` (its MSRs reach
    the Python LAPIC, see :func:`route_apic_msrs`); QEMU drops both with
    ``kernel-irqchip=off``: clear CPUID.1:ECX bits 24 and 21 (SDM Vol. 2A, CPUID)."""
    hidden = CPUID1_ECX_TSC_DEADLINE | (0 if user_x2apic else CPUID1_ECX_X2APIC)
    for entry in cpuid.entries[:cpuid.nent]:
        if entry.function == 1:
            entry.ecx &= ~hidden
    return cpuid


def route_apic_msrs(kvm, vm) -> bool:
    """Send the guest's IA32_APIC_BASE and (failing in KVM without its LAPIC) x2APIC MSR
    accesses to userspace, if this KVM can (module doc). True when it does."""
    if not (kvm.check_extension(abi.KVM_CAP_X86_USER_SPACE_MSR)
            and kvm.check_extension(abi.KVM_CAP_X86_MSR_FILTER)):
        return False
    vm.enable_cap(abi.KVM_CAP_X86_USER_SPACE_MSR,
                  abi.KVM_MSR_EXIT_REASON_INVAL | abi.KVM_MSR_EXIT_REASON_FILTER)
    vm.set_msr_filter([(MSR_IA32_APIC_BASE, 1)])
    return True

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

    def msr(self, index: int, value: int | None) -> int | None:
        """A RDMSR (``value`` None) or WRMSR KVM sent to userspace: the LAPIC's APIC MSRs;
        None (#GP) for the rest, which failed in KVM, and where the LAPIC faults."""
        apic = self.local_apic
        if apic is None or index == MSR_IA32_TSC_DEADLINE or not apic.handles_msr(index):
            return None
        try:
            if value is None:
                return apic.msr_read(index)
            apic.msr_write(index, value)
        except RegisterFault:
            return None
        # CR8 is TPR[7:4]: a TPR write here reaches KVM's CR8 at the next entry, and is not
        # undone by the CR8 that this run exits with
        self.vcpu.run_map[_CR8:_CR8 + 8] = apic.cr8.to_bytes(8, "little")
        return 0

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
