"""What a Multiboot kernel finds of the BIOS, on every backend and irqchip, against
``qemu -kernel`` (SeaBIOS) as the oracle: the 8259 masks and the LAPIC's LINT0 as firmware
leaves them, and a real-mode IVT whose IRQ 0 handler EOIs, so ``sti; hlt`` in real mode is
woken by the PIT again and again (kvm-unit-tests realmode's "sti inhibit" waits there).
machine/boot/bios.py writes the IVT; with KVM's in-kernel irqchip its stub programs the
controllers the way devices/chipset.py ``seabios_handoff`` does for the Python ones."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, serial_hex_report
from guests.oracle import QEMU_BASE, qemu_available
from support.backends import PLATFORMS
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

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
        t = Path(tmp)
        (t / "g.S").write_text(GUEST)
        for cmd in (["as", "--32", "-o", "g.o", "g.S"],
                    ["ld", "-m", "elf_i386", "-Ttext", "0x20000", "-e", "_start", "-o",
                     "k.elf", "g.o"]):
            proc = subprocess.run(cmd, cwd=t, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        proc = subprocess.run([*QEMU_BASE, "-kernel", "k.elf"], cwd=t, capture_output=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        expected = proc.returncode, (t / "serial.out").read_bytes().decode("latin-1")
        image = (t / "k.elf").read_bytes()
    # LINT0 ExtINT, level; IMR 0xB8 / 0x8E (SeaBIOS under QEMU 7.2); three ticks woke hlt
    assert expected == (33, "00008700\n000000b8\n0000008e\nok\n"), expected
    return image, expected


@pytest.mark.parametrize("backend", PLATFORMS)
def test_bios_ivt_and_controllers_as_seabios_leaves_them(image_and_expected, backend):
    image, expected = image_and_expected
    name, options = backend
    try:
        Machine(memory_size=2 << 20, backend=name, **options).close()
    except Exception as exc:
        pytest.skip(f"backend {name} is not usable here: {exc}")
    console = BufferConsole()
    with Machine(memory_size=128 << 20, backend=name, **options) as m:
        board = attach_pc_devices(m, console, debug_exit_port=0xF4)
        entry = load_image(m.memory, image, "multiboot", cmdline="k.elf",
                           **board.boot_options())
        result = m.run(entry, timeout=30)
        board.close()
    assert (result.status, bytes(console.output).decode("latin-1")) == expected, result.reason
