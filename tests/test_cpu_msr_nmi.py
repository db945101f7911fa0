"""What kvm-unit-tests' msr, emulator and eventinj check of the CPU, as small guests with
oracles: WRMSR of a non-canonical address to an address MSR, and a data access to a
non-canonical address, are #GP(0); the speculation-control
MSRs fault exactly when CPUID lacks them (KVM on this host runs the same guest); NMIs are
not masked by IF, block further NMIs until IRET and collapse into one pending NMI (QEMU TCG
runs the same Multiboot image: equal serial output)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from cpu.asmguest import assemble, assembler_missing, idt_gate, multiboot_serial, run_guest
from guests.oracle import qemu_available, qemu_serial
from support.backends import backend_fixture
from x86vm.machine.vm import Machine

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))


backend = backend_fixture()


_GP_GUEST = """
        lidt idtr(%rip)
""" + idt_gate(13, "handler", 64) + """
        {body}
        mov $0x600d, %eax             /* no fault */
        out %eax, $0xe0
        cli
        hlt
    handler:
        mov $0xbad, %eax              /* #GP, then its error code */
        out %eax, $0xe0
        pop %rax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0xfff
        .quad 0x30000
"""


def _identity_map(memory, entry):
    """4 MiB identity-mapped with 2 MiB pages (PML4 at 0x100000)."""
    memory.write_u64(0x100000, 0x101003)
    memory.write_u64(0x101000, 0x102003)
    memory.write_u64(0x102000, 0x000083)
    memory.write_u64(0x102008, 0x200083)
    return replace(entry, cr3=0x100000)


def _run64(backend, body):
    code = assemble(_GP_GUEST.format(body=body), 64, 0x10000)
    result, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=_identity_map)
    return [v for _, _, _, v in port.log], result.reason


CANONICAL_MSRS = {"FS_BASE": 0xC0000100, "GS_BASE": 0xC0000101,
                  "KERNEL_GS_BASE": 0xC0000102, "LSTAR": 0xC0000082, "CSTAR": 0xC0000083}


def _wrmsr(msr: int, value: int) -> str:
    return (f"mov ${msr:#x}, %ecx; mov ${value & 0xFFFFFFFF:#x}, %eax; "
            f"mov ${value >> 32:#x}, %edx; wrmsr")


@pytest.mark.parametrize("name", sorted(CANONICAL_MSRS))
def test_wrmsr_of_a_non_canonical_address_is_gp0(backend, name):
    # kvm-unit-tests msr.c "Expected #GP on WRMSR(MSR_FS_BASE, NONCANONICAL)"; QEMU 7.2 TCG
    # takes the value (and later triple faults), KVM here is the oracle
    msr = CANONICAL_MSRS[name]
    values, reason = _run64(backend, _wrmsr(msr, 0xAAAAAAAAAAAAAAAA))
    assert values == [0xBAD, 0], reason


@pytest.mark.parametrize("name", sorted(CANONICAL_MSRS))
def test_wrmsr_of_a_canonical_high_address_reads_back(backend, name):
    msr = CANONICAL_MSRS[name]
    body = _wrmsr(msr, 0xFFFF800012345678) + """
        rdmsr
        out %eax, $0xe0
        mov %edx, %eax
        out %eax, $0xe0"""
    values, reason = _run64(backend, body)
    assert values == [0x12345678, 0xFFFF8000, 0x600D], reason


def test_spec_ctrl_msr_faults_exactly_without_its_cpuid_bit(backend):
    # msr.c test_mitigation_msrs: IA32_SPEC_CTRL (0x48) is #GP unless CPUID.7:EDX[26]
    # (Intel SPEC_CTRL) or CPUID.80000008H:EBX[14] (AMD IBRS) says it exists (SDM Vol. 4
    # Table 2-2: an MSR the CPU does not have is #GP); QEMU 7.2 TCG reads any unknown MSR
    # as 0, so the SDM is the oracle here
    if backend == "kvm":
        pytest.skip("this host's KVM reads IA32_SPEC_CTRL without the CPUID bit (kvm-unit-"
                    "tests msr fails there the same way)")
    body = """
        mov $7, %eax
        xor %ecx, %ecx
        cpuid
        shr $26, %edx
        and $1, %edx
        mov %edx, %esi
        mov $0x80000008, %eax
        cpuid
        shr $14, %ebx
        and $1, %ebx
        or %ebx, %esi
        mov %esi, %eax
        out %eax, $0xe0
        mov $0x48, %ecx
        rdmsr"""
    values, reason = _run64(backend, body)
    assert values in ([0, 0xBAD, 0], [1, 0x600D]), reason


def test_mcg_cap_reads_without_fault(backend):
    # msr.c test_mce_msrs reads IA32_MCG_CAP unguarded; the bank count is the model's own
    values, reason = _run64(backend, "mov $0x179, %ecx; rdmsr")
    assert values == [0x600D], reason


def test_non_canonical_data_access_is_gp0(backend):
    # kvm-unit-tests emulator "non-canonical memory access, should #GP(0)" (SDM Vol. 3A
    # §3.3.7.1); KVM here runs the same guest
    values, reason = _run64(backend, "movabs $0xaaaaaaaaaaaaaaaa, %rax; mov (%rax), %eax")
    assert values == [0xBAD, 0], reason


NMI_GUEST = """
        mov $0x70000, %esp
        lidt idtr
        mov %cs, %bx
""" + idt_gate(2, "nmi", 32, selector="%bx") + """
        movl $0, 0x20000
        cli                           /* IF does not mask an NMI */
        movl $0, 0xfee00310
        movl $0x4400, 0xfee00300      /* ICR: NMI, physical, to APIC 0 (this CPU) */
        mov $1000, %ecx               /* QEMU takes it at the end of its translation block */
    2:  loop 2b
        mov 0x20000, %eax             /* 2: one more after the handler's IRET, not 3 */
        out %eax, $0xe0
        mov 0x20008, %eax             /* the second NMI interrupted where the first returned */
        sub 0x20004, %eax
        out %eax, $0xe0
        cli
        hlt
    nmi:
        push %eax
        incl 0x20000
        cmpl $1, 0x20000
        jne 1f
        mov 4(%esp), %eax
        mov %eax, 0x20004
        movl $0x4400, 0xfee00300      /* two NMIs while one is in service: one is held */
        movl $0x4400, 0xfee00300
        nop
        nop
        mov 0x20000, %eax             /* 1: still blocked */
        out %eax, $0xe0
        pop %eax
        iret
    1:  mov 4(%esp), %eax
        mov %eax, 0x20008
        pop %eax
        iret
    idtr: .word 0x7ff
        .long 0x30000
"""


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
def test_nmi_blocking_and_latching_match_qemu():
    from test_cpu_qemu import build

    with tempfile.TemporaryDirectory() as tmp:
        image = build(NMI_GUEST, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    assert expected == (33, "00000001\n00000002\n00000000\n"), expected
    assert multiboot_serial(image) == expected


@pytest.mark.kvm
@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
def test_nmi_injection_under_user_irqchip_matches_qemu():
    # --irqchip user: the Python LAPIC's NMI reaches the vCPU through KVM_NMI
    from test_cpu_qemu import build
    from x86vm.devices.console import BufferConsole
    from x86vm.devices.pc import attach_pc_devices
    from x86vm.machine.boot import load_image

    try:
        Machine(memory_size=2 << 20, backend="kvm", irqchip=False).close()
    except Exception as exc:
        pytest.skip(f"KVM is not usable here: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        image = build(NMI_GUEST, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    console = BufferConsole()
    with Machine(memory_size=128 << 20, backend="kvm", irqchip=False) as m:
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        result = m.run(load_image(m.memory, image, "multiboot", cmdline="k.elf"), timeout=30)
    output = bytes(console.output).decode("latin-1")
    if result.status == 126 and "emulation failure" in result.reason:
        # this host's software KVM cannot emulate the handler's IRET (as in
        # test_cpu_system's trap-flag guest): up to it, the NMI was taken with IF=0 and the
        # two sent from its handler were held
        assert output == expected[1].splitlines(keepends=True)[0], result.reason
        return
    assert (result.status, output) == expected, result.reason
