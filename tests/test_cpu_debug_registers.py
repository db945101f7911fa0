"""MOV to and from the debug registers (kvm-unit-tests debug "DR4 ..." and the DR6 values
its single-step checks read): DR6 and DR7 keep their fixed bits whatever is written,
bits 63:32 of either are #GP(0), and DR4/DR5 alias DR6/DR7 unless CR4.DE = 1, where they
are #UD (SDM Vol. 3B §18.2.2-18.2.4). This host's KVM runs the same guests as the oracle."""

# ruff: noqa: F811  (the tests take the imported ``backend`` fixture by its name)
from __future__ import annotations

import pytest

from cpu.asmguest import assemble, run_guest
from test_cpu_msr_nmi import _identity_map, backend  # noqa: F401

_GUEST = """
        lidt idtr(%rip)
        lea gp(%rip), %rax
        mov $0x30000 + 13 * 16, %rbx
        call gate
        lea ud(%rip), %rax
        mov $0x30000 + 6 * 16, %rbx
        call gate
        {body}
        mov $0x600d, %eax
        out %eax, $0xe0
        cli
        hlt
    gate:
        movw %ax, (%rbx)
        movw $0x10, 2(%rbx)
        movw $0x8e00, 4(%rbx)
        shr $16, %rax
        movw %ax, 6(%rbx)
        movl $0, 8(%rbx)
        movl $0, 12(%rbx)
        ret
    gp: mov $0x13, %eax
        out %eax, $0xe0
        cli
        hlt
    ud: mov $0x6, %eax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0xfff
        .quad 0x30000
"""


def _run(backend: str, body: str) -> list[int]:
    code = assemble(_GUEST.format(body=body), 64, 0x10000)
    _, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=_identity_map)
    return [v for _, _, _, v in port.log]


def _report(reg: str) -> str:
    return f"mov %{reg}, %rax; out %eax, $0xe0; shr $32, %rax; out %eax, $0xe0;"


CR4_DE_OFF = "mov %cr4, %rax; and $~8, %rax; mov %rax, %cr4;"
CR4_DE_ON = "mov %cr4, %rax; or $8, %rax; mov %rax, %cr4;"


@pytest.mark.parametrize(("body", "expected"), [
    ("xor %eax, %eax; mov %rax, %dr6;" + _report("dr6"), [0xFFFF0FF0, 0, 0x600D]),
    ("mov $-1, %eax; mov %rax, %dr6;" + _report("dr6"), [0xFFFFEFFF, 0, 0x600D]),
    ("xor %eax, %eax; mov %rax, %dr7;" + _report("dr7"), [0x400, 0, 0x600D]),
    ("mov $0xffffd7ff, %eax; mov %rax, %dr7; mov $0x400, %eax; mov %rax, %dr7;"
     + _report("dr7"), [0x400, 0, 0x600D]),
    ("mov $1, %rax; shl $32, %rax; mov %rax, %dr6", [0x13]),
    ("mov $1, %rax; shl $32, %rax; mov %rax, %dr7", [0x13]),
    (CR4_DE_OFF + "mov $0x4001, %eax; mov %rax, %dr6;" + _report("dr4"),
     [0xFFFF4FF1, 0, 0x600D]),
    (CR4_DE_ON + "mov %dr4, %rax", [0x6]),
    (CR4_DE_ON + "mov %rax, %dr5", [0x6]),
])
def test_debug_register_moves(backend, body, expected):
    assert _run(backend, body) == expected
