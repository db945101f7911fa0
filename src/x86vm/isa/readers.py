"""Basic field readers the decoder's phases share: bytes, registers by number, sizes.

Nothing here knows an opcode; all of it is plain functions and constant tables (SDM Vol. 2
§2.1: little-endian fields; Table 2-2/2-3 register numbers; §2.3.11 the 15-byte limit).
"""

from __future__ import annotations

from .operands import GPR, GPR8_LEGACY, XMM, YMM, ZMM, Reg

MAX_LENGTH = 15                 # SDM §2.3.11: an instruction is at most 15 bytes
OSI = {16: 0, 32: 1, 64: 2}     # operand size -> index into a form's per-size tables
ROUNDING = ("rn-sae", "rd-sae", "ru-sae", "rz-sae")     # EVEX.L'L with EVEX.b (§2.7.1)
#: vector registers by operand size in bytes (the size tables give 16/32/64 for xmm/ymm/zmm;
#: smaller sizes are parts of an xmm register)
VEC = {4: XMM, 8: XMM, 16: XMM, 1: XMM, 2: XMM, 32: YMM, 64: ZMM}


class Truncated(Exception):
    """The instruction runs past the end of the buffer (objdump: ".byte 0x.." or a prefix)."""


def read(data, pos: int, n: int, end: int) -> int:
    """The unsigned little-endian `n`-byte field at `pos` (Truncated past `end`)."""
    if pos + n > end:
        raise Truncated
    return int.from_bytes(data[pos:pos + n], "little")


def gpr(size: int, num: int, rex: int) -> Reg:
    """General register `num` of `size` bytes; without a REX prefix byte registers 4-7 are
    AH CH DH BH (SDM Table 3-1)."""
    if size == 1 and not rex:
        return GPR8_LEGACY[num]
    return GPR[size][num]


def sib_missing(data, pos: int, end: int, mode: int, asz_i: int) -> bool:
    """The ModRM at `pos` names a SIB byte (32/64-bit addressing) that the buffer lacks;
    objdump fetches it before deciding on an opcode, so the instruction is truncated."""
    if pos >= end:
        return True
    m = data[pos]
    return m < 0xC0 and m & 7 == 4 and pos + 1 >= end and (
        mode == 64 or (mode == 32) == (asz_i < 0))

