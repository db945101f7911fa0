"""What a Multiboot kernel finds of the BIOS, on every backend and irqchip, against
``qemu -kernel`` (SeaBIOS) as the oracle: the 8259 masks and the LAPIC's LINT0 as firmware
leaves them, and a real-mode IVT whose IRQ 0 handler EOIs, so ``sti; hlt`` in real mode is
woken by the PIT again and again (kvm-unit-tests realmode's "sti inhibit" waits there).
machine/boot/bios.py writes the IVT; with KVM's in-kernel irqchip its stub programs the
controllers the way devices/chipset.py ``seabios_handoff`` does for the Python ones."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, multiboot_elf, multiboot_serial, serial_hex_report
from guests.oracle import qemu_available, qemu_serial
from support.backends import PLATFORMS

pytestmark = [
    pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing())),
    pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed"),
]

GUEST = r"""
    .text
    .code32
    .align 4
base:                                         /* linked at 0x20000: real-mode CS 0x2000 */
    .long 0x1badb002, 0, -0x1badb002          /* Multiboot header, no flags */
    .globl _start
_start:
    mov $0x70000, %esp
    mov 0xfee00350, %eax                      /* LAPIC LVT LINT0 */
    call report
    xor %eax, %eax
    in $0x21, %al                             /* 8259 masks */
    call report
    in $0xa1, %al
    call report
    lgdt gdt_ptr
    ljmp $0x08, $pm16 - base
    .code16
pm16:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr0, %eax
    and $0xfe, %al
    mov %eax, %cr0
    ljmp $0x2000, $real - base
real:
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7000, %sp
    lidt %cs:ivt_ptr - base
    mov $3, %cx                               /* three timer interrupts */
1:  sti
    hlt
    cli
    loop 1b
    mov $0x3f8, %dx
    mov $'o', %al
    out %al, %dx
    mov $'k', %al
    out %al, %dx
    mov $10, %al
    out %al, %dx
    mov $0x10, %al
    out %al, $0xf4
2:  hlt
    jmp 2b
    .code32
""" + serial_hex_report(32) + r"""
    .align 8
gdt:
    .quad 0
    .quad 0x00009A020000FFFF                  /* 0x08 16-bit code, base 0x20000 */
    .quad 0x000092000000FFFF                  /* 0x10 16-bit data, base 0 */
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
ivt_ptr:
    .word 0x3ff
    .long 0
"""


@pytest.fixture(scope="module")
def image_and_expected():
    with tempfile.TemporaryDirectory() as tmp:
        image = multiboot_elf(GUEST, Path(tmp), 0x20000)
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    # LINT0 ExtINT, level; IMR 0xB8 / 0x8E (SeaBIOS under QEMU 7.2); three ticks woke hlt
    assert expected == (33, "00008700\n000000b8\n0000008e\nok\n"), expected
    return image, expected


@pytest.mark.parametrize("backend", PLATFORMS)
def test_bios_ivt_and_controllers_as_seabios_leaves_them(image_and_expected, backend):
    image, expected = image_and_expected
    name, options = backend
    assert multiboot_serial(image, name, firmware=True, **options) == expected
