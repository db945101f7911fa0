"""LOCK and the HLE hints against objdump 2.40: every opcode of the one-byte and 0F maps, with
each ModRM.reg and a memory operand, after ``lock``, ``xacquire lock`` (F2 F0), ``xrelease
lock`` (F3 F0) and -- one-byte map only -- a lone F3 (``xrelease mov``).

objdump prints F2/F3 as ``xacquire``/``xrelease`` only where the SDM allows the hint (Vol. 1
16.3.1: the lockable read-modify-write forms, and XCHG / MOV-to-memory for XRELEASE), and as
``repnz``/``repz`` elsewhere: the map's ``hle`` flags decide which. Random bytes almost never
put these prefixes before those opcodes, so the grid lists them all. The mismatches are
exactly those listed in tests/oracle/known_mismatches.jsonl (suite ``prefixes``).
"""

from __future__ import annotations

import pytest

from isa_sweep import compare_batch
from oracle.known import assert_known

pytestmark = pytest.mark.oracle("objdump-2.40")

TAIL = bytes(range(0x11, 0x9A, 0x11))          # displacement / immediate bytes, if any
PREFIXES = {"lock": b"\xf0", "xacquire": b"\xf2\xf0", "xrelease": b"\xf3\xf0", "rep": b"\xf3"}
#: one-byte opcodes that are prefixes or escapes themselves
NOT_OPCODES = {0x0F, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x9B}


def prefixed_grid(mode: int) -> list[tuple[str, bytes]]:
    items = []
    for name, prefix in PREFIXES.items():
        for map_name, escape in (("1b", b""), ("0f", b"\x0f")):
            if name == "rep" and escape:
                continue             # F3 0F is a mandatory prefix: the sweep's ground
            for op in range(256):
                if not escape and (op in NOT_OPCODES or mode == 64 and 0x40 <= op <= 0x4F):
                    continue
                for reg in range(8):
                    items.append((f"{name} {map_name} {op:02x} /{reg}",
                                  prefix + escape + bytes([op, 0x03 | reg << 3]) + TAIL))
    return items


@pytest.mark.parametrize(("mode", "syntax"), [(64, "att"), (64, "intel"), (32, "att"),
                                              (16, "att")])
def test_lock_and_hle_prefixes_match_objdump(mode: int, syntax: str) -> None:
    items = prefixed_grid(mode)
    code = dict(items)
    wrong = compare_batch(items, mode, syntax)
    assert_known("prefixes", mode, syntax,
                 [(code[label].hex(), want, got) for label, want, got in wrong])
