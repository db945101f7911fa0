"""An x87 guest under QEMU TCG and on the emu backend (this host's KVM cannot run x87 code:
it stops with an emulation failure at the first FLDPI, so QEMU is the oracle, issue 10 §11c).

A 32-bit protected-mode Multiboot guest sets CR0.NE and CR4.OSFXSR, computes with the x87
(loads, arithmetic, integer and BCD stores, FCOMI), takes #NM with CR0.TS set (its handler does
CLTS and returns: the instruction runs again) and #MF for a pending zero divide at FWAIT (its
handler does FNCLEX), then stores FNSTENV (pointers included: the guest's own offsets and
selectors), FNSAVE and FXSAVE images and prints them on COM1, dword by dword. The output must
be the same on both, except in the two environment images: QEMU writes their reserved upper
halves as 0 (this AMD host, which the host differential follows, writes 1s) and records no
FOP, and the two Multiboot loaders enter with different CS/DS selectors — so CW, SW and TW
are compared in their low 16 bits, FIP and FDP in full, FCS|FOP and FDS not at all.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cpu.asmguest import multiboot_serial
from guests.oracle import qemu_serial
from test_cpu_qemu import build, pytestmark  # noqa: F401 (skips)

GUEST = r"""
        mov $0x70000, %esp
        movw %cs, %bx
        lidt idtr
    movl $nm_handler, %eax
    movl $0x30000 + 7 * 8, %edi
    call set_gate
    movl $mf_handler, %eax
    movl $0x30000 + 16 * 8, %edi
    call set_gate
    movl %cr0, %eax
    orl $0x22, %eax              /* NE, MP */
    andl $~0xC, %eax             /* EM, TS clear */
    movl %eax, %cr0
    movl %cr4, %eax
    orl $0x600, %eax             /* OSFXSR, OSXMMEXCPT */
    movl %eax, %cr4
    fninit
    fldpi
    fsqrt
    fld1
    fadd %st(1), %st
    fldl val64
    fmulp %st, %st(1)
    fstpt out + 0
    fists out + 12
    fldl val64
    fbstp out + 16
    fildl val32
    fdivr %st(1), %st
    fstpl out + 28
    fcomi %st(0), %st
    setz out + 36
    /* #NM: CR0.TS set, the handler clears it and the FLD1 runs again */
    movl %cr0, %eax
    orl $8, %eax
    movl %eax, %cr0
    fld1
    /* #MF: a zero divide with ZE unmasked is pending until FWAIT */
    fldcw cw_ze
    fldz
    fdivr %st(1), %st
    fwait
    fstp %st(0)                  /* QEMU writes inf there; the host leaves ST(0) alone, */
    fldz                         /* so that register is overwritten before FNSAVE shows it */
    fstp %st(0)
    fnstenv out + 40
    fldcw cw_all
    fnsave out + 68
    frstor out + 68
    fxsave fx
    movl fx + 0, %eax
    movl %eax, out + 176
    movzwl fx + 4, %eax          /* FTW (abridged); AMD writes FOP only with ES set */
    movl %eax, out + 180
    movl fx + 24, %eax           /* MXCSR */
    movl %eax, out + 184
    movl $out, %esi
    movl $47, %ecx
next:
    lodsl
        out %eax, $0xe0
    loop next
        cli
        hlt

set_gate:
    movw %ax, (%edi)
    movw %bx, 2(%edi)
    movw $0x8e00, 4(%edi)
    shrl $16, %eax
    movw %ax, 6(%edi)
    ret

nm_handler:
    movl $0x7007, %eax
        out %eax, $0xe0
    clts
    iret

mf_handler:
    movl $0x1616, %eax
        out %eax, $0xe0
    fnclex
    iret

    .align 8
val64: .double -1234.5678
val32: .long 7
cw_ze: .word 0x037b
cw_all: .word 0x037f
idtr: .word 0x7ff
    .long 0x30000
    .align 16
out: .fill 192, 1, 0
    .align 16
fx: .fill 512, 1, 0
"""


def test_x87_guest_prints_the_same_on_emu_as_under_qemu():
    with tempfile.TemporaryDirectory() as tmp:
        image = build(GUEST, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    lines = expected[1].split("\n")
    assert expected[0] == 33 and len(lines) == 50, expected
    assert lines[:2] == ["00007007", "00001616"], lines   # #NM, then #MF at the FWAIT
    status, text = multiboot_serial(image)
    got = text.split("\n")
    assert status == expected[0] and len(got) == len(lines)
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(lines, got, strict=True))
              if _comparable(i, a) != _comparable(i, b)]
    assert not differ, differ


ENV_LINES = (12, 19)    # first line of the FNSTENV and FNSAVE environments


def _comparable(i: int, line: str) -> str | None:
    for first in ENV_LINES:
        field = i - first
        if 0 <= field < 3:          # CW, SW, TW
            return line[4:]
        if field in (4, 6):         # FCS|FOP, FDS
            return None
    return line
