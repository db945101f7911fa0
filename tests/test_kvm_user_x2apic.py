"""``--irqchip user`` offers the x2APIC when KVM sends the APIC MSRs to userspace
(machine/kvm/userirq.py): CPUID.1:ECX.x2APIC, IA32_APIC_BASE with EXTD set, then the x2APIC
ID, version, TPR (written), PPR and a #GP on APR (no x2APIC register), as the Python LAPIC
answers them; QEMU on this host's KVM (``-cpu qemu64``, KVM's LAPIC) runs the same Multiboot
guest as the oracle, as does x86vm's in-kernel irqchip."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, idt_gate, multiboot_serial
from guests.oracle import qemu_available, qemu_serial
from x86vm.machine.vm import Machine

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing())),
              pytest.mark.skipif(not qemu_available(), reason="no qemu-system-x86_64")]

# reports: CPUID x2APIC bit, IA32_APIC_BASE after setting EN|EXTD, x2APIC ID, version, TPR
# after writing 0x20, PPR, then 0x600d if RDMSR(APR 0x809) did not fault, 0xbad on #GP
X2APIC_GUEST = """
        mov $0x70000, %esp
        lidt idtr
        mov %cs, %bx
""" + idt_gate(13, "gp", 32, selector="%bx") + """
        mov $1, %eax
        cpuid
        mov %ecx, %eax
        shr $21, %eax
        and $1, %eax
        out %eax, $0xe0
        mov $0x1b, %ecx
        rdmsr
        or $0xc00, %eax
        wrmsr
        rdmsr
        out %eax, $0xe0
        mov $0x802, %ecx
        rdmsr
        out %eax, $0xe0
        mov $0x803, %ecx
        rdmsr
        out %eax, $0xe0
        mov $0x808, %ecx
        mov $0x20, %eax
        xor %edx, %edx
        wrmsr
        rdmsr
        out %eax, $0xe0
        mov $0x80a, %ecx
        rdmsr
        out %eax, $0xe0
        mov $0x809, %ecx
        rdmsr
        mov $0x600d, %eax
        out %eax, $0xe0
        cli
        hlt
    gp:
        mov $0xbad, %eax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0x7ff
        .long 0x30000
"""


@pytest.fixture(scope="module")
def qemu_kvm():
    from test_cpu_qemu import build

    try:
        Machine(memory_size=2 << 20, backend="kvm", irqchip=False).close()
    except Exception as exc:
        pytest.skip(f"KVM is not usable here: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        image = build(X2APIC_GUEST, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf", "-enable-kvm", "-cpu", "qemu64")
    assert expected == (33, "00000001\nfee00d00\n00000000\n00050014\n00000020\n"
                            "00000020\n00000bad\n"), expected
    return image, expected


@pytest.mark.parametrize("irqchip", [True, False], ids=["kvm", "kvm-user"])
def test_x2apic_msrs_match_qemu_on_kvm(qemu_kvm, irqchip):
    image, expected = qemu_kvm
    with Machine(memory_size=2 << 20, backend="kvm", irqchip=irqchip) as m:
        if not irqchip and not m.backend.user_apic_msrs:
            pytest.skip("this KVM cannot send MSR accesses to userspace")
    assert multiboot_serial(image, "kvm", irqchip=irqchip) == expected
