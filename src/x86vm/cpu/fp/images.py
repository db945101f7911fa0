"""Memory images of x87 state: FSTENV/FLDENV and FSAVE/FRSTOR (SDM Vol. 1 §8.1.10, Figures
8-9..8-12), FXSAVE/FXRSTOR (SDM Vol. 1 §10.5.1, Vol. 2A FXSAVE Tables 3-53/3-56), packed BCD
(FBLD/FBSTP, SDM Vol. 1 §4.7). Functions take an :class:`x86vm.cpu.x87.X87` and bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from .core import F80, IE, INF, PE, QNAN, UNSUPPORTED, ZERO, round_pack, round_to_int, unpack

ENV_SIZE = {16: 14, 32: 28}
SAVE_SIZE = {16: 94, 32: 108}
FXSAVE_MXCSR_MASK = 0xFFFF


def fstenv(x: Any, opsize: int, real: bool) -> bytes:
    """The 14- or 28-byte environment image (``opsize`` 16/32; ``real``: real or virtual-8086
    mode layout). The reserved upper halves read as 1s, as on the host."""
    cw, sw, tw = x.cw, x.status_word, x.tag_word
    fip, fdp, fop = x.fip, x.fdp, x.fop & 0x7FF
    if opsize == 32:
        if real:
            return struct.pack("<7I", cw | 0xFFFF0000, sw | 0xFFFF0000, tw | 0xFFFF0000,
                               (fip & 0xFFFF) | 0xFFFF0000, fop | ((fip >> 16) & 0xFFFF) << 12,
                               (fdp & 0xFFFF) | 0xFFFF0000, ((fdp >> 16) & 0xFFFF) << 12)
        return struct.pack("<6IHH", cw | 0xFFFF0000, sw | 0xFFFF0000, tw | 0xFFFF0000,
                           fip & 0xFFFFFFFF, x.fcs & 0xFFFF | fop << 16, fdp & 0xFFFFFFFF,
                           x.fds & 0xFFFF, 0xFFFF)
    if real:
        return struct.pack("<7H", cw, sw, tw, fip & 0xFFFF, fop | (fip >> 16 & 0xF) << 12,
                           fdp & 0xFFFF, (fdp >> 16 & 0xF) << 12)
    return struct.pack("<7H", cw, sw, tw, fip & 0xFFFF, x.fcs & 0xFFFF, fdp & 0xFFFF,
                       x.fds & 0xFFFF)


def fldenv(x: Any, data: bytes, opsize: int, real: bool) -> None:
    """Load an environment image (the inverse of :func:`fstenv`). Tags other than 11 (empty)
    only mark a register in use; the full tags are recomputed from contents."""
    if opsize == 32:
        w = struct.unpack_from("<7I", data)
        cw, sw, tw = w[0] & 0xFFFF, w[1] & 0xFFFF, w[2] & 0xFFFF
        if real:
            x.fip = (w[3] & 0xFFFF) | (w[4] >> 12 & 0xFFFF) << 16
            x.fop = w[4] & 0x7FF
            x.fdp = (w[5] & 0xFFFF) | (w[6] >> 12 & 0xFFFF) << 16
            x.fcs = x.fds = 0
        else:
            x.fip, x.fcs, x.fop = w[3], w[4] & 0xFFFF, w[4] >> 16 & 0x7FF
            x.fdp, x.fds = w[5], w[6] & 0xFFFF
    else:
        cw, sw, tw, ip, cs_or_op, dp, ds = struct.unpack_from("<7H", data)
        if real:
            x.fip = ip | (cs_or_op >> 12) << 16
            x.fop = cs_or_op & 0x7FF
            x.fdp = dp | (ds >> 12) << 16
            x.fcs = x.fds = 0
        else:
            x.fip, x.fcs, x.fdp, x.fds = ip, cs_or_op, dp, ds
    x.cw = cw
    x.status_word = sw
    x.tag_word = tw
    x.update_es()  # ES follows the loaded flags and masks


def fsave(x: Any, opsize: int, real: bool) -> bytes:
    """FNSAVE image: the environment then ST(0)..ST(7), 10 bytes each. The caller then does
    FNINIT (``x.finit()``), as FSAVE does."""
    regs = b"".join(x.st(i).to_bytes(10, "little") for i in range(8))
    return fstenv(x, opsize, real) + regs


def frstor(x: Any, data: bytes, opsize: int, real: bool) -> None:
    """FRSTOR: the inverse of :func:`fsave`."""
    n = ENV_SIZE[opsize]
    fldenv(x, data, opsize, real)
    for i in range(8):
        x.regs[(x.top + i) & 7] = int.from_bytes(data[n + 10 * i:n + 10 * i + 10], "little")


def fxsave(x: Any, mxcsr: int, xmm: list[int], rex_w: bool = False) -> bytes:
    """The FXSAVE image up to the last XMM register given (160 + 16*len(xmm) bytes; the core
    writes only these, the rest of the 512-byte area is left alone). ``rex_w``: FXSAVE64's
    64-bit FIP/FDP instead of FCS/FDS."""
    ftw = sum(1 << i for i in range(8) if not x.empty >> i & 1)
    head = struct.pack("<HHBBH", x.cw, x.status_word, ftw, 0, x.fop & 0x7FF)
    if rex_w:
        head += struct.pack("<QQ", x.fip & (2**64 - 1), x.fdp & (2**64 - 1))
    else:
        head += struct.pack("<IHHIHH", x.fip & 0xFFFFFFFF, x.fcs & 0xFFFF, 0,
                            x.fdp & 0xFFFFFFFF, x.fds & 0xFFFF, 0)
    head += struct.pack("<II", mxcsr, FXSAVE_MXCSR_MASK)
    regs = b"".join(x.st(i).to_bytes(10, "little") + bytes(6) for i in range(8))
    return head + regs + b"".join(v.to_bytes(16, "little") for v in xmm)


def fxrstor_mxcsr(data: bytes) -> int:
    """The MXCSR an FXRSTOR image holds; the core raises #GP(0) when it has bits outside
    FXSAVE_MXCSR_MASK, before anything is loaded."""
    return struct.unpack_from("<I", data, 24)[0]


def fxrstor(x: Any, data: bytes, nxmm: int, rex_w: bool = False) -> tuple[int, list[int]]:
    """Load the x87 part of an FXSAVE image into ``x``; return ``(mxcsr, xmm registers)``."""
    cw, sw, ftw, _, fop = struct.unpack_from("<HHBBH", data, 0)
    if rex_w:
        x.fip, x.fdp = struct.unpack_from("<QQ", data, 8)
        x.fcs = x.fds = 0
    else:
        x.fip, x.fcs, _, x.fdp, x.fds, _ = struct.unpack_from("<IHHIHH", data, 8)
    x.cw = cw
    x.status_word = sw
    x.fop = fop & 0x7FF
    x.empty = ~ftw & 0xFF
    for i in range(8):
        x.regs[(x.top + i) & 7] = int.from_bytes(data[32 + 16 * i:42 + 16 * i], "little")
    x.update_es()
    xmm = [int.from_bytes(data[160 + 16 * i:176 + 16 * i], "little") for i in range(nxmm)]
    return fxrstor_mxcsr(data), xmm


# -- packed BCD (18 digits, sign in bit 79) -----------------------------------------------------
BCD_INDEFINITE = 0xFFFFC000000000000000


def bcd_to_f80(value: int) -> int:
    """FBLD: the 80-bit value of a packed BCD operand (exact). Nibbles above 9 are weighted as
    given (the SDM leaves them undefined)."""
    n = 0
    for i in range(17, -1, -1):
        n = n * 10 + (value >> (4 * i) & 0xF)
    sign = value >> 79 & 1
    if n == 0:
        return F80.zero(sign)
    return round_pack(F80, sign, 0, n)[0]


def f80_to_bcd(a: int, rc: int) -> tuple[int, int]:
    """FBSTP: ``(packed BCD, flags)``; rounds by ``rc``; NaN, infinity, unsupported or a
    magnitude of 10**18 or more give the BCD indefinite with IE."""
    c, s, e, m = unpack(F80, a)
    if c >= QNAN or c == INF or c == UNSUPPORTED:
        return BCD_INDEFINITE, IE
    if c == ZERO:
        return s << 79, 0
    mag, inexact, up = round_to_int(s, e, m, rc)
    if mag >= 10**18:
        return BCD_INDEFINITE, IE
    out = 0
    for i in range(18):
        mag, d = divmod(mag, 10)
        out |= d << (4 * i)
    return out | s << 79, (PE | (0x200 if up else 0)) if inexact else 0
