"""SALC (D6): executed outside 64-bit mode (kvm-unit-tests realmode "salc"), printed as
objdump 2.40 prints it, ``(bad)`` (map flag ``objdump-bad``). Oracles: objdump for the text,
QEMU TCG for the execution (the same Multiboot image, equal serial output)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, multiboot_serial
from guests.oracle import qemu_available, qemu_serial
from x86vm.disasm.att import format_att
from x86vm.disasm.intel import format_intel
from x86vm.isa import decode

CASES = ["d6", "66d6", "f0d6", "2ed6", "f3d6", "67d6"]


@pytest.mark.oracle("binutils")
@pytest.mark.parametrize("mode, machine", [(16, "i8086"), (32, "i386"), (64, "i386:x86-64")])
def test_d6_prints_as_objdump(tmp_path, mode, machine):
    data = bytes.fromhex("".join(c + "90" for c in CASES))
    (tmp_path / "d6.bin").write_bytes(data)
    expected = {}
    for syntax in ("att", "intel"):
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", machine,
                              *(["-M", "intel"] if syntax == "intel" else []),
                              str(tmp_path / "d6.bin")], capture_output=True, text=True,
                             check=True).stdout
        expected[syntax] = [line.split("\t")[-1] for line in out.splitlines()
                            if "\t" in line and "nop" not in line]
    offset, att, intel = 0, [], []
    for case in CASES:
        insn = decode(data, offset, offset, mode)
        assert len(insn.bytes) == len(case) // 2
        att.append(format_att(insn))
        intel.append(format_intel(insn))
        offset += len(insn.bytes) + 1
    assert att == expected["att"] and intel == expected["intel"]


@pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))
@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
def test_salc_sets_al_from_carry_as_qemu():
    from test_cpu_qemu import build

    body = """
        mov $0x70000, %esp
        mov $0x12345678, %eax
        stc
        .byte 0xd6                    /* salc: AL = 0xff */
        out %eax, $0xe0
        clc
        .byte 0xd6                    /* AL = 0 */
        out %eax, $0xe0
        pushf
        pop %eax
        and $0x8d5, %eax             /* the flags it leaves */
        out %eax, $0xe0
        cli
        hlt"""
    with tempfile.TemporaryDirectory() as tmp:
        image = build(body, Path(tmp))
        expected = qemu_serial(tmp, "-kernel", "k.elf")
    assert expected[0] == 33 and expected[1].startswith("123456ff\n12345600\n"), expected
    assert multiboot_serial(image) == expected
