"""SSE4.2: the packed string comparisons PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM and CRC32
(SDM Vol. 2B §4.1 "Imm8 Control Byte Operation for PCMPESTRI / PCMPESTRM / PCMPISTRI /
PCMPISTRM", and "CRC32"). PCMPGTQ is a lane operation in :mod:`x86vm.cpu.simd_int`.

The control byte selects, as data: the element format (imm[1:0]: unsigned/signed bytes or
words), the aggregation (imm[3:2]: equal any, ranges, equal each, equal ordered), the
polarity (imm[5:4]) and the output selection (imm[6]). The memory operand needs no alignment.
"""

from __future__ import annotations

from x86vm.cpu import simd_int as S
from x86vm.cpu.operand import read, write_reg
from x86vm.cpu.sse_exec import enter, get

EQUAL_ANY, RANGES, EQUAL_EACH, EQUAL_ORDERED = range(4)
CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800


def _elements(v: int, imm: int) -> list[int]:
    w = 2 if imm & 1 else 1
    return list(S.split(v, w, 128, bool(imm & 2)))


def _implicit_length(elems: list[int]) -> int:
    return elems.index(0) if 0 in elems else len(elems)


def _explicit_length(value: int, bits: int, n: int) -> int:
    v = value - (1 << bits) if value >> (bits - 1) else value
    return min(abs(v), n)


def compare(a: list[int], la: int, b: list[int], lb: int, imm: int) -> int:
    """IntRes2 of ``a`` (the register operand, ``la`` valid elements) against ``b`` (the
    register/memory operand, ``lb`` valid), bit i for element i of ``b``."""
    n = len(a)
    agg = (imm >> 2) & 3
    res = 0
    if agg == EQUAL_ANY:
        needles = set(a[:la])
        for i in range(lb):
            if b[i] in needles:
                res |= 1 << i
    elif agg == RANGES:
        pairs = [(a[k], a[k + 1]) for k in range(0, la - 1, 2)]
        for i in range(lb):
            if any(lo <= b[i] <= hi for lo, hi in pairs):
                res |= 1 << i
    elif agg == EQUAL_EACH:
        for i in range(n):
            va, vb = i < la, i < lb
            if (va and vb and a[i] == b[i]) or (not va and not vb):
                res |= 1 << i
    else:  # equal ordered: the needle a[:la] starts at element i of b
        for i in range(n):
            ok = True
            for j in range(n - i):
                if j >= la:
                    break                    # needle exhausted: true from here on
                if i + j >= lb or a[j] != b[i + j]:
                    ok = False
                    break
            if ok:
                res |= 1 << i
    pol = (imm >> 4) & 3
    if pol == 1:
        res ^= (1 << n) - 1
    elif pol == 3:
        res ^= (1 << lb) - 1
    return res


def h_pcmpstr(cpu, c) -> None:
    insn, (dst, src, imm_op) = c
    enter(cpu, c[1])
    name = insn.mnemonic
    imm = imm_op.value
    a = _elements(cpu.xmm[dst.num], imm)
    b = _elements(get(cpu, src, 16), imm)
    n = len(a)
    if name.startswith("pcmpe"):
        bits = 64 if insn.operand_size == 64 else 32
        la = _explicit_length(cpu.r[0] & ((1 << bits) - 1), bits, n)
        lb = _explicit_length(cpu.r[2] & ((1 << bits) - 1), bits, n)
    else:
        la, lb = _implicit_length(a), _implicit_length(b)
    res = compare(a, la, b, lb, imm)
    if "stri" in name:
        if res == 0:
            index = n
        elif imm & 0x40:
            index = res.bit_length() - 1
        else:
            index = (res & -res).bit_length() - 1
        cpu.r[1] = index
    elif imm & 0x40:
        w = 16 // n
        cpu.xmm[0] = S.join([-(res >> i & 1) for i in range(n)], w)
    else:
        cpu.xmm[0] = res
    fl = cpu.flags() & ~(CF | PF | AF | ZF | SF | OF)
    cpu.fl = fl | (CF if res else 0) | (ZF if lb < n else 0) | (SF if la < n else 0) | \
        (OF if res & 1 else 0)


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


CRC32C = _crc_table()   # the reflected Castagnoli polynomial 0x1EDC6F41


def h_crc32(cpu, c) -> None:
    """CRC32 r32/r64, r/m8/16/32/64: CRC-32C of the source bytes, least significant first,
    continued from the low 32 bits of the destination (no pre- or post-inversion)."""
    dst, src = c[1]
    v = read(cpu, src)
    crc = cpu.r[dst.num] & 0xFFFFFFFF
    for _ in range(src.size):
        crc = CRC32C[(crc ^ v) & 0xFF] ^ (crc >> 8)
        v >>= 8
    write_reg(cpu, dst, crc)


HELPERS = {"pcmpestri": h_pcmpstr, "pcmpestrm": h_pcmpstr, "pcmpistri": h_pcmpstr,
           "pcmpistrm": h_pcmpstr, "pcmpestriq": h_pcmpstr, "pcmpestrmq": h_pcmpstr,
           "crc32": h_crc32}
