"""machine/kvm/userirq.py without /dev/kvm: which CPUID.1:ECX bits ``--irqchip user`` hides,
and how a RDMSR/WRMSR that KVM sent to userspace is answered (the Python LAPIC's MSRs, #GP
for everything else)."""

from __future__ import annotations

import mmap

from support.fake_timers import FakeTimers
from x86vm.devices.lapic import LocalApic
from x86vm.machine.kvm import abi
from x86vm.machine.kvm.userirq import (
    CPUID1_ECX_TSC_DEADLINE,
    CPUID1_ECX_X2APIC,
    UserIrqchip,
    without_kernel_lapic_features,
)


def _cpuid():
    cpuid = abi.cpuid2_type(1)()
    cpuid.nent = 1
    cpuid.entries[0].function = 1
    cpuid.entries[0].ecx = CPUID1_ECX_X2APIC | CPUID1_ECX_TSC_DEADLINE | 1
    return cpuid


def test_tsc_deadline_is_always_hidden_and_x2apic_only_without_user_msrs():
    assert without_kernel_lapic_features(_cpuid()).entries[0].ecx == 1
    ecx = without_kernel_lapic_features(_cpuid(), user_x2apic=True).entries[0].ecx
    assert ecx == 1 | CPUID1_ECX_X2APIC


class _Vcpu:
    def __init__(self):
        self.run_map = mmap.mmap(-1, 4096)
        self.run = lambda: None


def test_user_msrs_reach_the_lapic_and_the_rest_is_gp():
    apic = LocalApic(FakeTimers())
    chip = UserIrqchip(_Vcpu(), apic, apic)
    assert chip.msr(0x802, None) is None          # x2APIC ID outside x2APIC mode: #GP
    assert chip.msr(0x1B, apic.apic_base | 0xC00) == 0
    assert chip.msr(0x802, None) == 0             # APIC ID 0
    assert chip.msr(0x808, 0x20) == 0 and apic.cr8 == 2
    assert chip.vcpu.run_map[abi.KvmRun.cr8.offset] == 2  # the next entry's CR8
    assert chip.msr(0x809, None) is None          # APR: no x2APIC register
    assert chip.msr(0x6E0, None) is None          # TSC deadline stays KVM's
    assert chip.msr(0x10, None) is None           # not an APIC MSR: KVM's #GP
