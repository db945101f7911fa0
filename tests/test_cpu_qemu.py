"""QEMU TCG as the oracle for what this host's KVM cannot run: the same Multiboot image,
built from a test's assembly, prints its results on COM1 under QEMU and under x86vm's emu;
the output and exit status must be equal."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, multiboot_elf, multiboot_serial, serial_hex_report
from guests.oracle import qemu_available, qemu_serial
from test_cpu_system import (
    _PAGING32,
    INSPECT_GUEST,
    PAGING_CASES,
    REAL_INT_GUEST,
    TRAP_GUEST,
    TSS_GUEST,
)
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

pytestmark = [
    pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing())),
    pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed"),
]

PRELUDE = """
    .text
    .align 4
    .long 0x1badb002, 0, -0x1badb002      /* Multiboot header, no flags */
    .globl _start
_start:
"""
REPORT = serial_hex_report(32) + """
done:
    mov $0x10, %al
    out %al, $0xf4
    hlt
"""


def build(body: str, tmp: Path) -> bytes:
    text = PRELUDE + body.replace("out %eax, $0xe0", "call report").replace(
        "cli\n        hlt", "jmp done") + REPORT
    return multiboot_elf(".code32\n" + text, tmp, 0x10000)


@pytest.mark.parametrize("guest, lines", [(TSS_GUEST, 7), (TRAP_GUEST, 1),
                                          (INSPECT_GUEST, 92)],
                         ids=["int-from-user-mode", "trap-flag", "lar-lsl-verr-verw-arpl"])
def test_protected_mode_guest_matches_qemu(guest, lines):
    with tempfile.TemporaryDirectory() as tmp:
        image = build(guest, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    assert expected[0] == 33 and expected[1].count("\n") == lines, expected
    assert multiboot_serial(image) == expected


@pytest.mark.parametrize("case", PAGING_CASES, ids=[c[0] for c in PAGING_CASES])
def test_paging_modes_match_qemu(case):
    mode, cr4, layout, alias, phys, entry, _ = case
    tables = "\n".join(f"        movl ${v & 0xFFFFFFFF:#x}, {at:#x}" for at, v in layout.items())
    body = "        mov $0x70000, %esp\n" + tables + _PAGING32.format(
        cr4=cr4, cr3=0x100000, alias=alias, phys=phys, entry=entry)
    with tempfile.TemporaryDirectory() as tmp:
        image = build(body, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    assert expected[0] == 33 and expected[1].count("\n") == 2, expected
    assert multiboot_serial(image) == expected


REPORT16 = serial_hex_report(16, "report16") + """
done16:
    mov $0x10, %al
    out %al, $0xf4
    hlt
    .org 510
    .byte 0x55, 0xaa
"""


def test_real_mode_int_through_the_ivt_matches_qemu():
    from cpu.asmguest import assemble

    body = REAL_INT_GUEST.replace("out %ax, $0xe0", "call report16").replace(
        "cli\n        hlt", "jmp done16")
    image = assemble(body + REPORT16, 16, 0x7C00)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "boot.bin").write_bytes(image)
        expected = qemu_serial(tmp, "-drive", "file=boot.bin,format=raw,if=floppy", "-boot", "a")
    assert expected[0] == 33 and expected[1].count("\n") == 4, expected
    console = BufferConsole()
    with Machine(memory_size=128 << 20, backend="emu") as m:
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        result = m.run(load_image(m.memory, image, "flat"), timeout=30)
    assert (result.status, bytes(console.output).decode("latin-1")) == expected
