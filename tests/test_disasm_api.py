"""``x86vm.disasm.listing()``: the library face of the listing.

The records must be objdump's listing: objdump 2.40's own ``-dw`` text (with the same
options) parsed by the same parser gives the same records; each record's fields agree with
each other (bytes decode to the instruction, offsets from the label); raw images with runs
of zeros give "skip" records; bad options raise ValueError.
"""

from __future__ import annotations

import subprocess

import pytest

import x86vm.disasm
from support.oracles import require_file
from test_disasm_options import cxx_inputs, inputs  # noqa: F401 (fixtures)
from x86vm.disasm.api import Line, Relocation, parse_wide_listing

pytestmark = pytest.mark.oracle("objdump-2.40")


def _objdump_records(args: list[str], path: str, mode: int = 64, syntax: str = "att"):
    text = subprocess.run(["objdump", "-dw", *args, path], capture_output=True, text=True,
                          errors="surrogateescape", check=True).stdout
    return list(parse_wide_listing(text, mode, syntax))


@pytest.mark.parametrize("kwargs, args", [
    ({}, []),
    ({"syntax": "intel", "reloc": True, "demangle": True}, ["-M", "intel", "-r", "-C"]),
    ({"disassemble_all": True, "reloc": True}, ["-D", "-r"]),
    ({"sections": [".text", ".text.startup"], "symbol": "main"},
     ["-j", ".text", "-j", ".text.startup", "--disassemble=main"]),
], ids=["plain", "intel-r-C", "D-r", "j-symbol"])
def test_records_are_objdumps_listing(inputs, cxx_inputs, kwargs, args):  # noqa: F811
    listed = 0
    for path in [*inputs, *cxx_inputs]:
        if "disassemble_all" in kwargs and not path.endswith(".o"):
            continue
        mode = 32 if "prog32" in path else 64
        ours = list(x86vm.disasm.listing(path, **kwargs))
        assert ours == _objdump_records(args, path, mode, kwargs.get("syntax", "att")), path
        insns = [line for line in ours if line.kind == "insn"]
        listed += len(insns)
        for line in [line for line in insns if "(bad)" not in line.text][:400]:
            assert line.instruction().length == len(line.bytes)
            assert line.instruction().address == line.address
        if kwargs.get("reloc") and path.endswith("prog.o"):
            relocs = [r for line in ours for r in line.relocations]
            assert any(r.type == "R_X86_64_PLT32" for r in relocs)
            for line in ours:
                for reloc in line.relocations:   # under the instruction it applies to
                    assert line.address <= reloc.address < line.address + len(line.bytes) \
                        or line.kind != "insn"
    assert listed > 20


def test_dynamic_relocations_and_symbols_of_a_library():
    path = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    require_file(path)
    ours = list(x86vm.disasm.listing(path, sections=[".plt"], dynamic_reloc=True))
    assert ours == _objdump_records(["-j", ".plt", "-R"], path)
    assert all(line.section == ".plt" for line in ours)
    assert len(ours) > 100 and any(line.symbol.endswith("@plt") for line in ours)


def test_raw_image_with_zeros_gives_skip_records(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes(bytes.fromhex("5589e5") + bytes(32) + bytes.fromhex("c9c3"))
    ours = list(x86vm.disasm.listing(str(path), binary=True, mode=32))
    assert [(line.kind, line.address, line.text) for line in ours] == [
        ("insn", 0, "push   %ebp"), ("insn", 1, "mov    %esp,%ebp"), ("skip", 3, "..."),
        ("insn", 0x23, "leave"), ("insn", 0x24, "ret")]
    assert ours[0].mnemonic == "push" and ours[0].symbol == ".data" and ours[0].section == ".data"


def test_bad_options_raise_value_error(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes(b"\x90")
    with pytest.raises(ValueError, match="syntax"):
        next(x86vm.disasm.listing(str(path), syntax="masm"))
    with pytest.raises(ValueError, match="mode"):
        next(x86vm.disasm.listing(str(path), mode=8))
    with pytest.raises(ValueError, match="needs mode"):
        next(x86vm.disasm.listing(str(path), binary=True))


def test_package_exports():
    assert x86vm.disasm.Line is Line and x86vm.disasm.Relocation is Relocation
    assert callable(x86vm.disasm.listing)
    assert x86vm.disasm.listing.write_listing is not None      # still the layout module
