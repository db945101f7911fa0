"""The KVM backend's model-specific registers as QEMU on this host's KVM (``-cpu qemu64``)
presents them, the same Multiboot guest run by both, on the in-kernel irqchip and on
``--irqchip user``:

- machine check (kvm-unit-tests msr64 probes MC0..MC31 and expects #GP past the model's
  banks): IA32_MCG_CAP and a #GP on the first bank past it (machine/kvm/system.py);
- the x2APIC under ``--irqchip user`` when KVM sends the APIC MSRs to userspace
  (machine/kvm/userirq.py): CPUID.1:ECX.x2APIC, IA32_APIC_BASE with EXTD set, then the
  x2APIC ID, version, TPR (written), PPR and a #GP on APR (no x2APIC register), as the
  Python LAPIC answers them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, idt_gate, multiboot_serial
from guests.oracle import qemu_serial
from support import oracles
from x86vm.machine.vm import Machine

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))]

# 0x600d when the guest got to its end, 0xbad from the #GP handler; the IDT at 0x30000
GUEST_END = """
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

# IA32_MCG_CAP (0x179) low and high halves, then RDMSR of MC9_CTL (0x424) and MC10_CTL
# (0x428): 0x609d after the first when it does not fault, 0x600d after the second, 0xbad on #GP
MCE_GUEST = """
        mov $0x70000, %esp
        lidt idtr
        mov %cs, %bx
""" + idt_gate(13, "gp", 32, selector="%bx") + """
        mov $0x179, %ecx
        rdmsr
        out %eax, $0xe0
        mov %edx, %eax
        out %eax, $0xe0
        mov $0x424, %ecx
        rdmsr
        mov $0x609d, %eax
        out %eax, $0xe0
        mov $0x428, %ecx
        rdmsr
""" + GUEST_END


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
""" + GUEST_END


#: guest -> the lines of its report (the guest ran to its end on both)
GUESTS = {"machine-check": (MCE_GUEST, 4), "x2apic": (X2APIC_GUEST, 7)}


@pytest.fixture(scope="module", params=list(GUESTS))
def qemu_kvm(request):
    """(guest name, its image, QEMU-on-KVM's exit status and serial output)."""
    from test_cpu_qemu import build

    oracles.require("qemu")
    source, lines = GUESTS[request.param]
    with tempfile.TemporaryDirectory() as tmp:
        image = build(source, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf", "-enable-kvm", "-cpu", "qemu64")
    assert expected[0] == 33 and expected[1].count("\n") == lines, expected
    return request.param, image, expected


@pytest.mark.parametrize("irqchip", [True, False], ids=["kvm", "kvm-user"])
def test_msrs_match_qemu_on_kvm(qemu_kvm, irqchip):
    name, image, expected = qemu_kvm
    if name == "x2apic" and not irqchip:
        with Machine(memory_size=2 << 20, backend="kvm", irqchip=False) as m:
            if not m.backend.user_apic_msrs:
                pytest.skip("this KVM cannot send MSR accesses to userspace")
    assert multiboot_serial(image, "kvm", irqchip=irqchip) == expected
