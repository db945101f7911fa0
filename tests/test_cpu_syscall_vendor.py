"""Vendor-specific 64-bit behaviour (``--cpu-vendor``). SYSCALL outside 64-bit mode: AMD enters the
kernel from compatibility mode at CSTAR (APM Vol. 3 "SYSCALL"), Intel raises #UD (SDM Vol. 2B
"SYSCALL": "IF (CS.L ≠ 1) or (IA32_EFER.LMA ≠ 1) ... THEN #UD"). kvm-unit-tests' syscall test
runs its compatibility-mode SYSCALL under ``-cpu Opteron_G1,vendor=AuthenticAMD``.

Oracles: QEMU TCG with ``vendor=AuthenticAMD`` runs the same Multiboot guest (equal serial
output); for Intel's #UD the SDM's pseudo-code (QEMU 7.2 TCG allows the instruction for any
vendor in compatibility mode, and this host's KVM cannot run a user-mode SYSCALL).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import (
    assembler_missing,
    idt_gate,
    multiboot_elf,
    multiboot_serial,
    serial_hex_report,
)
from guests.oracle import qemu_available, qemu_serial

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))

# Multiboot -> long mode at CPL 0 with #UD and #GP reported; a body, then EPILOGUE
PROLOGUE = r"""
    .text
    .code32
    .align 4
    .long 0x1badb002, 0, -0x1badb002          /* Multiboot header, no flags */
    .globl _start
_start:
    mov $0x70000, %esp
    movl $0x201007, 0x200000                  /* PML4 -> PDPT -> PD: 4 MiB identity, user */
    movl $0x202007, 0x201000
    movl $0x000087, 0x202000
    movl $0x200087, 0x202008
    mov %cr4, %eax
    or $0x20, %eax                            /* PAE */
    mov %eax, %cr4
    mov $0x200000, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx                     /* EFER: LME | SCE */
    rdmsr
    or $0x101, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $long64
    .code64
long64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    lea tss(%rip), %rax                       /* TSS at 0x30: RSP0 for the #UD from CPL 3 */
    mov %ax, gdt + 0x30 + 2
    shr $16, %rax
    mov %al, gdt + 0x30 + 4
    mov %ah, gdt + 0x30 + 7
    movw $103, gdt + 0x30
    movb $0x89, gdt + 0x30 + 5
    movq $0x70000, tss + 4
    mov $0x30, %ax
    ltr %ax
    lidt idt_ptr
""" + idt_gate(6, "ud_handler", 64, idt="idt", selector="$0x08") \
    + idt_gate(13, "gp_handler", 64, idt="idt", selector="$0x08")
SYSCALL_BODY = r"""
    mov $0xc0000081, %ecx                     /* STAR: SYSCALL CS 0x08, SYSRET base 0x18 */
    xor %eax, %eax
    mov $0x00180008, %edx
    wrmsr
    mov $0xc0000083, %ecx                     /* CSTAR */
    lea compat_target(%rip), %rax
    xor %edx, %edx
    wrmsr
    mov $0xc0000082, %ecx                     /* LSTAR: must not be used */
    lea wrong_target(%rip), %rax
    wrmsr
    mov $0xc0000084, %ecx                     /* SFMASK: DF */
    mov $0x400, %eax
    wrmsr
    lea user32(%rip), %rcx
    mov $0x2, %r11d
    sysretl                                   /* to CPL 3, 32-bit code 0x1b */
    .code32
user32:
    mov %cs, %edi
    mov %ss, %esi
    std
    syscall
after32:
    jmp after32
    .code64
compat_target:
    pushfq
    pop %rbx
    mov %edi, %eax                            /* CS, SS in compatibility mode */
    call report
    mov %esi, %eax
    call report
    mov %cs, %eax                             /* CS, SS now */
    call report
    mov %ss, %eax
    call report
    lea after32(%rip), %rax                   /* RCX: the return address */
    sub %rcx, %rax
    call report
    mov %rcx, %rax
    shr $32, %rax
    call report
    mov %r11d, %eax                           /* R11: RFLAGS before (DF set) */
    and $0xfd5, %eax
    call report
    mov %ebx, %eax                            /* RFLAGS now: DF masked */
    and $0xfd5, %eax
    call report
    jmp done
"""
EPILOGUE = r"""
wrong_target:
    mov $0x0bad0001, %eax
    call report
    jmp done
gp_handler:
    mov $0x0bad000d, %eax
    call report
    mov (%rsp), %eax                          /* the error code */
    call report
    jmp done
ud_handler:
    mov $0x0bad0006, %eax
    call report
    mov 8(%rsp), %eax                         /* the faulting CS */
    call report
done:
    mov $0x10, %al
    out %al, $0xf4
    hlt
""" + serial_hex_report(64) + r"""
    .align 8
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF                  /* 0x08 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF                  /* 0x10 data, DPL 0 */
    .quad 0x00CFFA000000FFFF                  /* 0x18 32-bit code, DPL 3 */
    .quad 0x00CFF2000000FFFF                  /* 0x20 data, DPL 3 */
    .quad 0x00AFFA000000FFFF                  /* 0x28 64-bit code, DPL 3 */
    .quad 0, 0                                /* 0x30 the TSS (filled in) */
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
idt_ptr:
    .word 16 * 32 - 1
    .quad idt
    .align 16
idt: .skip 16 * 32
tss: .skip 104
"""
GUEST = PROLOGUE + SYSCALL_BODY + EPILOGUE
# CS, SS at CPL 3; CS, SS after SYSCALL; RCX - after32, RCX >> 32; R11 & mask; RFLAGS & mask
AMD_EXPECTED = "0000001b\n00000023\n00000008\n00000010\n00000000\n00000000\n00000400\n" \
    "00000000\n"


def build(tmp: Path, guest: str = GUEST) -> bytes:
    return multiboot_elf(guest, tmp, 0x100000, bits=64)


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
def test_amd_compatibility_mode_syscall_matches_qemu():
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp))
        expected = qemu_serial(tmp, "-cpu", "qemu64,vendor=AuthenticAMD", "-kernel", "k.elf")
    assert expected == (33, AMD_EXPECTED), expected
    assert multiboot_serial(image, cpu_vendor="AuthenticAMD") == expected


def test_intel_compatibility_mode_syscall_is_ud():
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp))
    # #UD at CPL 3 in the 32-bit code segment, delivered to the 64-bit handler
    assert multiboot_serial(image, cpu_vendor="GenuineIntel") == (33, "0bad0006\n0000001b\n")


FAR_JMP_BODY = r"""
    lea target(%rip), %rax                    /* m16:64: an 8-byte offset, then CS */
    mov %rax, farptr(%rip)
    movw $0x08, farptr + 8(%rip)
    rex.W ljmp *farptr(%rip)                  /* FF /5 with REX.W (Intel: m16:64) */
    mov $0x0bad0000, %eax
    call report
    jmp done
target:
    mov $0x600d, %eax
    call report
    jmp done
    .align 8
farptr: .quad 0, 0
"""


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
def test_intel_rex_w_far_jump_takes_a_64_bit_offset_as_qemu():
    # kvm-unit-tests emulator "ljmp"; AMD ignores REX.W there (m16:32), so the oracle is
    # QEMU TCG with vendor=GenuineIntel, not this AMD host
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp), PROLOGUE + FAR_JMP_BODY + EPILOGUE)
        expected = qemu_serial(tmp, "-cpu", "qemu64,vendor=GenuineIntel", "-kernel", "k.elf")
    assert expected == (33, "0000600d\n"), expected
    assert multiboot_serial(image, cpu_vendor="GenuineIntel") == expected
