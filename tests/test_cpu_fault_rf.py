"""RFLAGS.RF in the image an exception pushes (kvm-unit-tests idt_test "rflags.rf"): set for
every fault-class exception, so the IRET back does not re-trigger an instruction breakpoint,
and clear for traps and interrupts (SDM Vol. 3B §17.3.1.1, Vol. 3A Table 6-1). This host's
KVM runs the same guests (QEMU on KVM passes idt_test)."""

# ruff: noqa: F811  (the tests take the imported ``backend`` fixture by its name)
from __future__ import annotations

import pytest

from cpu.asmguest import assemble, idt_gate, run_guest
from test_cpu_msr_nmi import _identity_map, backend  # noqa: F401

_GUEST = """
        lidt idtr(%rip)
{gate}        {body}
        mov $0x600d, %eax
        out %eax, $0xe0
        cli
        hlt
    handler:                          /* report RF of the pushed RFLAGS */
        mov {flags_at}(%rsp), %rax
        shr $16, %eax
        and $1, %eax
        out %eax, $0xe0
        pushf                         /* and RF in the handler: clear */
        pop %rax
        shr $16, %eax
        and $1, %eax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0xfff
        .quad 0x30000
"""


def _rf(backend: str, vector: int, body: str, error_code: bool) -> list[int]:
    source = _GUEST.format(gate=idt_gate(vector, "handler", 64), body=body,
                           flags_at=24 if error_code else 16)
    code = assemble(source, 64, 0x10000)
    _, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=_identity_map)
    return [v for _, _, _, v in port.log]


@pytest.mark.parametrize(("name", "vector", "body", "error_code"), [
    ("#UD", 6, "ud2", False),
    ("#GP", 13, "mov $0xffffffff, %eax; mov %rax, %cr4", True),
    ("#DE", 0, "xor %ecx, %ecx; div %ecx", False),
    ("#PF", 14, "mov 0x800000, %eax", True),
])
def test_a_fault_pushes_rf_set(backend, name, vector, body, error_code):
    assert _rf(backend, vector, body, error_code) == [1, 0], name


@pytest.mark.parametrize(("name", "vector", "body"), [
    ("#BP (trap)", 3, "int3"),
    ("INT n", 0x40, "int $0x40"),
])
def test_a_trap_or_software_interrupt_pushes_rf_clear(backend, name, vector, body):
    if backend == "kvm" and body.startswith("int $"):
        pytest.skip("this host's KVM cannot run INT n in long mode (KVM internal error)")
    assert _rf(backend, vector, body, False) == [0, 0], name
