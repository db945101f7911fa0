"""The decoded Instruction is true to the SDM: immediates are operands, operation ids,
effective segments, LOCK and flag vocabularies; disasm uses only what x86vm.isa exports.

`test_every_form_keeps_its_immediates` walks every form of the compiled map (each opcode,
ModRM cell, mandatory prefix / VEX.pp, W and L alternative, in each mode), encodes it, and
checks that the decoder picks that form and that every immediate the encoding carries is an
Imm operand with the encoded value (SDM Vol. 2 §2.1.4: the immediate is the last field).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import x86vm.isa as isa
from x86vm.disasm.att import format_att
from x86vm.disasm.intel import format_intel
from x86vm.isa import Imm, Mem, Op, Spec, decode, decoder
from x86vm.isa.decoder import decode_uncached
from x86vm.isa.tables import K_IMM, K_IMM4

TAIL = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA])
LEGACY_ESCAPES = {"one-byte": b"", "0f": b"\x0f", "0f38": b"\x0f\x38", "0f3a": b"\x0f\x3a"}
VEX_MAPS = {"vex0f": 1, "vex0f38": 2, "vex0f3a": 3}
EVEX_MAPS = {"evex0f": 1, "evex0f38": 2, "evex0f3a": 3, "evex-map5": 5, "evex-map6": 6}
XOP_MAPS = {"xop8": 8, "xop9": 9, "xopa": 10}
PP_PREFIX = {0: b"", 1: b"\x66", 2: b"\xf3", 3: b"\xf2"}


def encode(mode: int, map_name: str, opcode: int, pp: int, spec: Spec, modrm: int | None,
           rexb: bool) -> bytes:
    w = spec.vex_w or 0
    vl = 0 if spec.vex_l is None else (1 if spec.vex_l < 0 else spec.vex_l)
    tail = (bytes([modrm]) if modrm is not None else b"") + TAIL
    vvvv = 0 if spec.uses_vvvv else 0xF
    if map_name in LEGACY_ESCAPES:
        rex = b"\x41" if rexb else b""
        return PP_PREFIX[pp] + rex + LEGACY_ESCAPES[map_name] + bytes([opcode]) + tail
    if map_name in VEX_MAPS or map_name in XOP_MAPS:
        escape, mmmmm = (0xC4, VEX_MAPS[map_name]) if map_name in VEX_MAPS else \
            (0x8F, XOP_MAPS[map_name])
        return bytes([escape, 0xE0 | mmmmm, w << 7 | vvvv << 3 | vl << 2 | pp, opcode]) + tail
    p2 = vl << 5 | 8                    # V'=1, no mask, no broadcast
    return bytes([0x62, 0xF0 | EVEX_MAPS[map_name], w << 7 | vvvv << 3 | 4 | pp, p2,
                  opcode]) + tail


def every_form(mode: int):
    """(map name, encoding, form) for each form of the compiled map in `mode`."""
    tables = decoder._TABLES[mode]
    for map_name, table in tables.maps.items():
        for opcode, slot in enumerate(table):
            if slot is None or slot.escape is not None:
                continue
            cells: dict[int, tuple] = {}
            if slot.modrm:
                for modrm in range(256):
                    choice = slot.by_modrm[modrm]
                    cells.setdefault(id(choice), (choice, modrm, False))
            else:
                cells[id(slot.choice)] = (slot.choice, None, False)
            if slot.rexb_choice is not None and mode == 64:
                cells[id(slot.rexb_choice)] = (slot.rexb_choice, None, True)
            for choice, modrm, rexb in cells.values():
                if choice is None:
                    continue
                columns = (choice.plain, choice.p66, choice.pf3, choice.pf2) \
                    if choice.columns else (choice.plain,)
                for pp, column in enumerate(columns):
                    for spec in column if type(column) is tuple else (column,):
                        if isinstance(spec, Spec):
                            yield map_name, encode(mode, map_name, opcode, pp, spec, modrm,
                                                   rexb), spec


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_every_form_keeps_its_immediates(mode: int) -> None:
    reached = checked = 0
    wrong = []
    with_imm = unreached = 0
    for map_name, code, spec in every_form(mode):
        plans = [op for op in spec.ops if op[0] in (K_IMM, K_IMM4)]
        core = decode_uncached(code, 0, 0, mode)
        if core.spec is not spec:
            unreached += bool(plans)
            continue
        reached += 1
        if not plans:
            continue
        with_imm += 1
        imms = [op for op in core.operands if type(op) is Imm]
        if spec.imm_opcode:         # 3DNow!: the suffix byte is an opcode, not an operand
            continue
        checked += 1
        last = imms[-1] if imms else None
        ok = len(imms) == len(plans) and last is not None and any(
            last.value & ((1 << 8 * n) - 1) == int.from_bytes(core.bytes[-n:], "little")
            for n in (1, 2, 4))
        if plans[-1][0] == K_IMM4:              # imm8[3:0] of the /is4 byte
            ok = len(imms) == len(plans) and last.value == core.bytes[-1] & 0xF
        if not ok:
            wrong.append(f"{map_name} {code.hex()} {core.mnemonic} {core.operands}")
    assert not wrong, f"{len(wrong)} forms lose an immediate, e.g. {wrong[:5]}"
    assert checked > {16: 150, 32: 150, 64: 300}[mode], (checked, unreached, with_imm)
    assert unreached <= with_imm // 20, f"{unreached} forms with immediates not reached"


def test_cmpps_predicate_is_an_immediate_operand() -> None:
    insn = decode(bytes.fromhex("0fc2c100"))
    assert insn.mnemonic == "cmpps" and insn.op is Op.CMPPS
    assert type(insn.operands[2]) is Imm and insn.operands[2].value == 0
    assert format_att(insn) == "cmpeqps %xmm1,%xmm0"      # objdump's name (oracle: 2.40)
    insn = decode(bytes.fromhex("660f3a44c111"))
    assert insn.op is Op.PCLMULQDQ and insn.operands[2].value == 0x11
    assert format_intel(insn) == "pclmulhqhqdq xmm0,xmm1"


def test_fwait_pair_is_the_no_wait_form_with_a_wait() -> None:
    insn = decode(bytes.fromhex("9bdfe0"))
    assert (insn.mnemonic, insn.op, insn.wait, insn.length) == ("fnstsw", Op.FNSTSW, True, 3)
    assert format_att(insn) == "fstsw  %ax"
    assert not decode(bytes.fromhex("dfe0")).wait


def test_one_operation_id_for_all_encodings() -> None:
    adds = ["00c8", "01c8", "0401", "0501000000", "80c001", "83c001", "4801c8"]
    assert {decode(bytes.fromhex(h)).op for h in adds} == {Op.ADD}
    assert decode(bytes.fromhex("48b80100000000000000")).op is Op.MOV      # objdump's movabs
    assert decode(bytes.fromhex("0f0fc1b4")).op is Op.PFMUL                # 3DNow! suffix
    assert decode(bytes.fromhex("0f0b")).op is Op.UD2
    assert decode(bytes.fromhex("c4")).op is Op.INVALID                    # truncated
    assert decode(bytes.fromhex("8dc0")).op is Op.INVALID      # lea with a register: #UD


@pytest.mark.parametrize(("mode", "hexa", "segment", "override"), [
    (64, "8b4500", "ss", False), (64, "8b0424", "ss", False), (64, "418b4500", "ds", False),
    (64, "8b00", "ds", False), (64, "648b00", "fs", True), (64, "2e8b00", "ds", False),
    (32, "2e8b00", "cs", True), (16, "8b46fe", "ss", False), (16, "8b00", "ds", False),
    (64, "8b0500000000", "ds", False), (32, "a10000000000", "ds", False),
])
def test_memory_operand_has_the_effective_segment(mode, hexa, segment, override) -> None:
    mem = decode(bytes.fromhex(hexa), mode=mode).memory_operand
    assert (mem.segment, mem.override) == (segment, override)


def test_string_operands_are_implicit() -> None:
    src, dst = decode(bytes.fromhex("2ea4"), mode=32).operands[::-1]
    assert (src.segment, src.override, src.implicit) == ("cs", True, True)
    assert (dst.segment, dst.override, dst.implicit) == ("es", False, True)


def test_lock_allowed_by_the_map() -> None:
    assert decode(bytes.fromhex("f00100")).spec.lock          # lock add %eax,(%rax)
    assert decode(bytes.fromhex("0fb100")).spec.lock          # cmpxchg
    assert not decode(bytes.fromhex("8900")).spec.lock        # mov
    assert decode(bytes.fromhex("f00100")).lock_allowed
    assert not decode(bytes.fromhex("01c0")).lock_allowed     # register destination


def test_flag_vocabularies_partition_the_map_flags() -> None:
    vocabularies = (isa.ARCHITECTURE_FLAGS, isa.EXECUTION_FLAGS, isa.OBJDUMP_FLAGS)
    assert not any(a & b for i, a in enumerate(vocabularies) for b in vocabularies[i + 1:])
    spec = decode(bytes.fromhex("f00100")).spec
    assert spec.execution_flags == {"hle", "lock"} and spec.objdump_flags == {"sfx"}


def test_disasm_imports_only_what_isa_exports() -> None:
    disasm = Path(isa.__file__).parent.parent / "disasm"
    for name in ("att.py", "intel.py", "common.py", "__init__.py"):
        tree = ast.parse((disasm / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and "isa" in node.module:
                assert node.module == "x86vm.isa", f"{name} imports {node.module}"
                assert all(a.name in isa.__all__ for a in node.names), name


def test_one_address_mask_table() -> None:
    from x86vm.disasm import common
    from x86vm.isa import cache, decoder, instruction
    assert common.MASK is isa.ADDRESS_MASK and instruction.ADDRESS_MASK is isa.ADDRESS_MASK
    assert not hasattr(decoder, "_ADDR_MASK") and not hasattr(cache, "_MASK")


def test_no_per_decode_module_state() -> None:
    assert not any(hasattr(decoder, n) for n in ("SHAPE", "FIELDS", "_REX_REPLACED"))
    assert not any(s.startswith("memo") for s in isa.Decoded.__slots__)


def test_mem_reads_like_a_cpu_wants() -> None:
    insn = decode(bytes.fromhex("8b448d08"))        # mov 0x8(%rbp,%rcx,4),%eax
    mem = insn.operands[1]
    assert type(mem) is Mem and (mem.base.name, mem.index.name, mem.scale, mem.disp) == (
        "rbp", "rcx", 4, 8)
    assert mem.segment == "ss"


@pytest.mark.parametrize(("hexa", "feature"), [
    ("01c0", ""), ("0fc2c100", "SSE"), ("0ffcc1", "MMX"), ("660ffcc1", "SSE2"),
    ("0fd4c1", "SSE2"), ("d8c1", "FPU"), ("0f0fc1b4", "3DNOW"), ("0f44c1", "CMOV"),
    ("0fc708", "CX8"), ("480fc708", "CX16"), ("f30fb8c1", "POPCNT"), ("c5f858c1", "AVX"),
    ("c5f9fcc1", "AVX"), ("c5fdfcc1", "AVX2"), ("c4e2f9a8c1", "FMA"),
    ("62f17c4858c1", "AVX512F"), ("660f3a44c100", "PCLMULQDQ"), ("0f05", "SYSCALL"),
])
def test_cpuid_feature_from_the_map(hexa: str, feature: str) -> None:
    assert decode(bytes.fromhex(hexa)).cpuid_feature == feature


def test_cpuid_lines_name_real_operations() -> None:
    from x86vm.isa.tables import _shipped_map
    omap = _shipped_map()
    names = {op.name.lower() for op in Op}
    assert not sorted(set(omap.cpuid_names) - names)
    sections = set(omap.maps) | set(omap.groups)
    assert not sorted(set(omap.cpuid_sections) - sections)


@pytest.mark.parametrize("hexa, mode", [
    ("c3", 64), ("488b4510", 64), ("8b0425e0ff0000", 64), ("f3a4", 32), ("e8aabbccdd", 64),
    ("c5f877", 64), ("62f17c48580c91", 64), ("26", 16), ("0f0b", 32), ("c4", 64),
    ("f30f1c00", 64), ("678b00", 16),
])
def test_decoder_sets_every_field(hexa: str, mode: int) -> None:
    """The decoder builds `Decoded` and `Mem` without their __init__ (the hot path): every
    slot must still be set, whatever the kind of result."""
    insn = decode_uncached(bytes.fromhex(hexa), 0, 0x1000, mode)
    for obj in (insn, *(o for o in insn.operands if isinstance(o, Mem))):
        for name in type(obj).__slots__:
            assert hasattr(obj, name), f"{hexa}: {type(obj).__name__}.{name} not set"
