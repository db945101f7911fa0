"""An IRET to an outer privilege level nulls DS, ES, FS and GS holding a more privileged
data segment (SDM Vol. 2A "IRET": "SegmentSelector ← 0") — only the selector: in 64-bit mode
the hidden FS/GS base stays and still addresses memory through the null selector. QEMU's
model (target/i386/tcg/seg_helper.c validate_seg keeps base and limit and clears P, after
a check on a Coffee Lake) is the oracle; kvm-unit-tests' debug test returns to the kernel
through it and reads its per-CPU data with %gs. This host's KVM cannot run the IRET to
CPL 3 (tests/test_cpu_system.py), so the guest runs on emu."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cpu.asmguest import assemble, assembler_missing, run_guest

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))

GS_BASE = 0x345000
GUEST = f"""
        lgdt gdtr(%rip)
        lea 1f(%rip), %rax
        pushq $0x08
        push %rax
        lretq
    1:  mov $0x10, %ax
        mov %ax, %ss
        mov %ax, %gs                  /* a DPL-0 data segment in GS ... */
        mov $0xc0000101, %ecx         /* ... with a base of its own */
        mov ${GS_BASE:#x}, %eax
        xor %edx, %edx
        wrmsr
        movq $0x60000, 0x20004        /* TSS.RSP0 */
        mov $0x28, %ax
        ltr %ax
        lidt idtr(%rip)
        lea handler(%rip), %rax
        movw %ax, 0x30000 + 13 * 16
        movw $0x08, 0x30002 + 13 * 16
        movw $0x8e00, 0x30004 + 13 * 16
        shr $16, %rax
        movw %ax, 0x30006 + 13 * 16
        movl $0, 0x30008 + 13 * 16
        movl $0, 0x3000c + 13 * 16
        lea user(%rip), %rax
        pushq $0x1b                   /* SS: user data */
        pushq $0x50000
        pushq $0x2
        pushq $0x23                   /* CS: user code */
        push %rax
        iretq
    user:
        hlt                           /* #GP(0) at CPL 3: back to CPL 0 */
    handler:
        mov %gs, %eax
        out %eax, $0xe0
        mov %gs:0, %eax               /* the base still addresses memory */
        out %eax, $0xe0
        mov $0xc0000101, %ecx
        rdmsr
        out %eax, $0xe0
        cli
        hlt
        .align 8
    gdt:
        .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff, 0x00cff2000000ffff
        .quad 0x00affa000000ffff
        .quad 0x0000890200000067, 0   /* 64-bit TSS at 0x20000 */
    gdtr: .word 7 * 8 - 1
        .quad gdt
    idtr: .word 0xfff
        .quad 0x30000
"""


def _user_map(memory, entry):
    """8 MiB identity-mapped with user-accessible 2 MiB pages; a marker at the GS base."""
    memory.write_u64(0x100000, 0x101007)
    memory.write_u64(0x101000, 0x102007)
    for i in range(4):
        memory.write_u64(0x102000 + 8 * i, (i << 21) | 0x87)
    return replace(entry, cr3=0x100000)


def test_iret_to_cpl3_nulls_gs_but_keeps_its_base():
    code = assemble(GUEST, 64, 0x10000)

    def setup(memory, entry):
        entry = _user_map(memory, entry)
        memory.write_u32(GS_BASE, 0xFEEDF00D)
        return entry

    result, port, _, _ = run_guest("emu", code, 64, 0x10000, setup=setup)
    assert [v for _, _, _, v in port.log] == [0, 0xFEEDF00D, GS_BASE], result.reason
