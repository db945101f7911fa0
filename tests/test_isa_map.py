"""The opcode map is the single source of truth: loader errors and extension by data alone."""

from __future__ import annotations

import pytest

from x86vm.disasm.att import format_att
from x86vm.disasm.intel import format_intel
from x86vm.isa import cache, decode, decoder
from x86vm.isa.maploader import MapError, parse_map
from x86vm.isa.tables import MAP_PATH, load_tables

GOOD_HEADER = "[map one-byte]\n"


@pytest.mark.parametrize("text, message", [
    ("00: add Eb,Gb\n", "opcodes.map:1: entry before any [map]/[group] section"),
    (GOOD_HEADER + "00 add Eb,Gb\n", "opcodes.map:2: expected 'KEY: FORM'"),
    (GOOD_HEADER + "0g: add Eb,Gb\n", "opcodes.map:2: bad key '0g'"),
    (GOOD_HEADER + "00: add Eb,Qz9\n", "opcodes.map:2: unknown operand size 'z9' in 'Qz9'"),
    (GOOD_HEADER + "00: add Eb,Gb (x65)\n", "opcodes.map:2: unknown flag 'x65'"),
    (GOOD_HEADER + "00: add Eb,Gb\n00: sub Eb,Gb\n",
     "opcodes.map:3: opcode 00 already defined at line 2"),
    (GOOD_HEADER + "00: add Eb,Gb | F4: sub Eb,Gb\n",
     "opcodes.map:2: column 2 needs a prefix (66, F3 or F2)"),
    (GOOD_HEADER + "0f: escape 0f9\n", "opcodes.map:2: unknown map '0f9'"),
    (GOOD_HEADER + "80: group nosuch Eb,Ib\n", "opcodes.map:2: unknown group 'nosuch'"),
    ("[map two-byte]\n", "opcodes.map:1: unknown map 'two-byte' (expected one of "),
    (GOOD_HEADER + "00: Add Eb,Gb\n", "opcodes.map:2: bad mnemonic 'Add'"),
    (GOOD_HEADER + "00: cmp{nolist}ps Vps,Wps,Ib\n", "opcodes.map:2: unknown name list {nolist}"),
    (GOOD_HEADER + "00: a~b Ev\n", "opcodes.map:2: size alternatives need three names a~b~c"),
    (GOOD_HEADER + "c0-b0: nop\n", "opcodes.map:2: empty range 'c0-b0'"),
    ("[group g]\n/0: nop\n[group g]\n", "opcodes.map:3: duplicate section 'g'"),
    (GOOD_HEADER + "00: - | 66: - | F2: !\n",
     "opcodes.map:2: a '!' column needs a plain or 66 form to read"),
    (GOOD_HEADER + "00: add Eb,Gb (Wany)\n",
     "opcodes.map:2: Wlate/Wany need a W0 or W1 constraint"),
    (GOOD_HEADER + "00: vadds!s Vx,Wx\n", "opcodes.map:2: bad mnemonic 'vadds!s'"),
    ("@cpuid sse2 addpd\n", "opcodes.map:1: expected '@cpuid FEATURE name...'"),
    ("@cpuid SSE2 addpd\n@cpuid AVX addpd\n",
     "opcodes.map:2: 'addpd' already has CPUID feature SSE2"),
    (GOOD_HEADER + "00: add Eb,Gb (cpuid=x)\n", "opcodes.map:2: unknown flag 'cpuid=x'"),
])
def test_malformed_lines_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(MapError) as err:
        parse_map(text)
    assert str(err.value).startswith(message)


def test_shipped_map_loads_in_every_mode() -> None:
    tables = load_tables()
    assert set(tables) == {16, 32, 64}
    with open(MAP_PATH, encoding="utf-8") as f:
        assert parse_map(f.read()).maps["one-byte"]


def test_extension_map_adds_an_instruction_without_code_change() -> None:
    """D6 is unused in 64-bit mode; one map line gives it operands, suffix rule and text."""
    code = bytes.fromhex("d6 40 08 05")
    before = decode(code)
    assert (before.kind, before.length) == ("bad", 1)
    extension = "[map one-byte]\nd6: frob Eb,Ib (sfx o64)\n"
    saved = decoder._TABLES
    cache.use_tables(load_tables(extra=extension))
    try:
        insn = decode(code, address=0x1000)
        assert insn.length == 4 and insn.mnemonic == "frob"
        assert format_att(insn) == "frobb  $0x5,0x8(%rax)"
        assert format_intel(insn) == "frob   BYTE PTR [rax+0x8],0x5"
        assert decode(code, mode=32).mnemonic == "salc"   # o64: outside 64-bit mode D6 is SALC
    finally:
        cache.use_tables(saved)
    assert decode(code).kind == "bad"


def test_extension_cannot_silently_redefine_an_opcode() -> None:
    with pytest.raises(MapError, match=r"opcodes.map:\d+: opcode 90 already defined at line"):
        load_tables(extra="[map one-byte]\n90: frob\n")
