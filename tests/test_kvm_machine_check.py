"""The KVM backend's machine-check architecture is QEMU's (kvm-unit-tests msr64 probes
MC0..MC31 and expects #GP past the model's banks): IA32_MCG_CAP and a #GP on the first bank
past it, with QEMU on this host's KVM (``-cpu qemu64``) running the same Multiboot guest as
the oracle, on the in-kernel irqchip and on ``--irqchip user``."""

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
        Machine(memory_size=2 << 20, backend="kvm").close()
    except Exception as exc:
        pytest.skip(f"KVM is not usable here: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        image = build(MCE_GUEST, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf", "-enable-kvm", "-cpu", "qemu64")
    # measured here: MCG_CTL_P | MCG_SER_P | 10 banks, MC9 there, MC10 a #GP
    assert expected == (33, "0100010a\n00000000\n0000609d\n00000bad\n"), expected
    return image, expected


@pytest.mark.parametrize("irqchip", [True, False], ids=["kvm", "kvm-user"])
def test_machine_check_banks_match_qemu_on_kvm(qemu_kvm, irqchip):
    image, expected = qemu_kvm
    assert multiboot_serial(image, "kvm", irqchip=irqchip) == expected
