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


_DB_GUEST = """
        lidt idtr(%rip)
        lea db(%rip), %rax
        movw %ax, 0x30000 + 16
        movw $0x10, 0x30002 + 16
        movw $0x8e00, 0x30004 + 16
        shr $16, %rax
        movw %ax, 0x30006 + 16
        movl $0, 0x30008 + 16
        movl $0, 0x3000c + 16
        movl $0, 0x5000
        xor %eax, %eax
        mov %rax, %dr6
        {body}
        mov 0x5000, %eax              /* the #DBs taken */
        out %eax, $0xe0
        mov 0x5004, %eax              /* DR6 and DR7 in the first */
        out %eax, $0xe0
        mov 0x5008, %eax
        out %eax, $0xe0
        mov 0x500c, %eax              /* its return RIP minus %rbx */
        out %eax, $0xe0
        cli
        hlt
    db: cmpl $0, 0x5000
        jne 1f
        mov %dr6, %rax
        mov %eax, 0x5004
        mov %dr7, %rax
        mov %eax, 0x5008
        mov (%rsp), %rax
        sub %rbx, %rax
        mov %eax, 0x500c
    1:  incl 0x5000
        andq $~0x100, 16(%rsp)        /* no more single steps */
        orq $0x10000, 16(%rsp)        /* RF: pass an instruction breakpoint once */
        iretq
    idtr: .word 0xfff
        .quad 0x30000
"""
_TF_ON = "pushf; pop %rax; or $0x100, %rax; push %rax; mov %ss, %cx;"


def _db(backend: str, body: str) -> list[int]:
    code = assemble(_DB_GUEST.format(body=body), 64, 0x10000)
    _, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=_identity_map)
    return [v for _, _, _, v in port.log]


def _no_kvm(backend: str) -> None:
    if backend == "kvm":
        pytest.skip("this host's software KVM single-steps MOV SS without the blocking and "
                    "stops at ICEBP under TF; the SDM and QEMU TCG (which passes kvm-unit-"
                    "tests debug's MOVSS-blocking subtests here) are the oracle")


def test_single_step_after_mov_ss_waits_one_more_instruction(backend):
    # SDM Vol. 3A §6.8.3: MOV SS holds back the debug exceptions of its instruction; the
    # single-step trap comes after the next one (kvm-unit-tests debug "MOVSS blocking")
    _no_kvm(backend)
    body = _TF_ON + "lea 1f(%rip), %rbx; popf; mov %cx, %ss; nop; 1: nop"
    assert _db(backend, body) == [1, 0xFFFF4FF0, 0x400, 0]


def test_icebp_under_single_step_is_one_db_without_bs(backend):
    # ICEBP's #DB is a trap of its own: no single-step #DB after it, DR6.BS clear
    _no_kvm(backend)
    body = _TF_ON + "lea 1f(%rip), %rbx; popf; .byte 0xf1; 1: nop"
    assert _db(backend, body) == [1, 0xFFFF0FF0, 0x400, 0]


def test_general_detect_faults_the_mov_dr_and_clears_gd(backend):
    # DR7.GD: the next MOV DR is a #DB fault (RIP of the MOV), DR6.BD set, GD cleared for
    # the handler; the MOV then runs (SDM Vol. 3B §18.2.4, §18.3.1.2)
    body = ("mov $0x2400, %eax; mov %rax, %dr7; lea 1f(%rip), %rbx;"
            "1: mov %dr0, %rax")
    assert _db(backend, body) == [1, 0xFFFF2FF0, 0x400, 0]


def _no_data_breakpoints(backend: str) -> None:
    if backend == "kvm":
        pytest.skip("this host's software KVM raises no #DB for data breakpoints; the SDM "
                    "and kvm-unit-tests debug's watchpoint subtests are the oracle")


def _arm(slot: int, address: str, dr7: int) -> str:
    return f"lea {address}(%rip), %rax; mov %rax, %dr{slot}; mov ${dr7:#x}, %eax; mov %rax, %dr7;"


def test_instruction_breakpoint_faults_before_the_instruction_once_with_rf(backend):
    # DR0 execute breakpoint (DR7 L0, R/W0 = LEN0 = 0): #DB before the instruction, DR6 B0;
    # RF in the IRET image lets it run (SDM Vol. 3B §18.2.4, §18.3.1.1)
    body = _arm(0, "1f", 0x401) + "lea 1f(%rip), %rbx; nop; 1: movl $7, 0x5100"
    assert _db(backend, body) == [1, 0xFFFF0FF1, 0x401, 0]


def test_write_breakpoint_traps_after_the_write(backend):
    # DR1 data write breakpoint, 4 bytes (R/W1 = 01, LEN1 = 11): a trap, RIP after the
    # writing instruction, DR6 B1
    _no_data_breakpoints(backend)
    body = ("mov $0x5100, %eax; mov %rax, %dr1; mov $0x00d00408, %eax; mov %rax, %dr7;"
            "lea 1f(%rip), %rbx; movl $1, 0x5100; 1: nop")
    assert _db(backend, body) == [1, 0xFFFF0FF2, 0x00D00408, 0]


def test_read_write_breakpoint_traps_on_a_read_and_a_write_breakpoint_does_not(backend):
    # R/W 11 traps on a read; R/W 01 on the same address does not
    _no_data_breakpoints(backend)
    body = ("mov $0x5100, %eax; mov %rax, %dr2; mov %rax, %dr3; mov $0xdf0004a0, %eax;"
            "mov %rax, %dr7; lea 1f(%rip), %rbx; mov 0x5100, %ecx; 1: nop")
    assert _db(backend, body) == [1, 0xFFFF0FF4, 0xDF0004A0, 0]


@pytest.mark.parametrize(("vendor", "taken"), [("GenuineIntel", 0), ("AuthenticAMD", 1)])
def test_execute_breakpoint_after_mov_ss_is_inhibited_on_intel_only(vendor, taken):
    # kvm-unit-tests emulator test_mov_pop_ss_code_db: "On Intel, code #DBs are inhibited
    # when MOV/POP SS blocking is active"; AMD takes it (QEMU TCG's qemu64, an AMD model,
    # passes its "#DB occurred after MOV SS" here)
    from cpu.asmguest import REPORT_PORT, Recorder, entry_for
    from x86vm.machine.vm import Machine
    body = _arm(0, "1f", 0x402) + "lea 1f(%rip), %rbx; mov %ss, %ax; mov %ax, %ss; 1: nop"
    code = assemble(_DB_GUEST.format(body=body), 64, 0x10000)
    port = Recorder(())
    with Machine(memory_size=16 << 20, backend="emu", cpu_vendor=vendor) as m:
        m.pio.register(REPORT_PORT, 4, port, "report")
        m.memory.write(0x10000, code)
        m.run(_identity_map(m.memory, entry_for(m.memory, 64, 0x10000)), timeout=20)
    assert [v for _, _, _, v in port.log][0] == taken
