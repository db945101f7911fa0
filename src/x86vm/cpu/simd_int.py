"""Integer SIMD lane operations of MMX, SSE2, SSSE3 and SSE4.1 as pure functions on ints.

A vector is an ``int`` of ``bits`` (64 for MMX, 128 for XMM), lane 0 in the low bits. Most
instructions are one line of data in :data:`LANEWISE`: lane width in bytes, whether lanes
are read signed, the per-lane function, and how the result is fitted back (wrap, signed or
unsigned saturation) — SDM Vol. 1 §9.4 and §11.4 describe the lane model; each mnemonic's
page in Vol. 2 defines its lane function. The rest (shifts, packs, unpacks, shuffles,
multiply-adds, horizontal and mask operations) are small functions keyed by mnemonic in the
tables at the end.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_FMT = {(1, False): "B", (2, False): "H", (4, False): "I", (8, False): "Q",
        (1, True): "b", (2, True): "h", (4, True): "i", (8, True): "q"}
_STRUCTS: dict[tuple[int, bool, int], struct.Struct] = {}


def _st(w: int, signed: bool, n: int) -> struct.Struct:
    key = (w, signed, n)
    s = _STRUCTS.get(key)
    if s is None:
        s = _STRUCTS[key] = struct.Struct(f"<{n}{_FMT[w, signed]}")
    return s


def split(v: int, w: int, bits: int, signed: bool = False) -> tuple[int, ...]:
    """The ``bits // (8 w)`` lanes of ``v``, each ``w`` bytes, lane 0 first."""
    n = bits // (8 * w)
    return _st(w, signed, n).unpack(v.to_bytes(n * w, "little"))


def join(values, w: int) -> int:
    """The vector of ``values`` (lane 0 first), each kept to ``w`` bytes (wrap-around)."""
    m = (1 << (8 * w)) - 1
    vals = [x & m for x in values]
    return int.from_bytes(_st(w, False, len(vals)).pack(*vals), "little")


def sat_signed(x: int, w: int) -> int:
    hi = (1 << (8 * w - 1)) - 1
    return hi if x > hi else (-hi - 1 if x < -hi - 1 else x)


def sat_unsigned(x: int, w: int) -> int:
    hi = (1 << (8 * w)) - 1
    return hi if x > hi else (0 if x < 0 else x)


# -- lane-wise binary operations: name → (width, signed, lane function, saturation) ----------

def _eq(a: int, b: int) -> int:
    return -1 if a == b else 0


def _gt(a: int, b: int) -> int:
    return -1 if a > b else 0


def _avg(a: int, b: int) -> int:
    return (a + b + 1) >> 1


def _sign(a: int, b: int) -> int:
    return -a if b < 0 else (0 if b == 0 else a)


def _mulhrs(a: int, b: int) -> int:
    return (((a * b) >> 14) + 1) >> 1


_ADD, _SUB, _MUL = int.__add__, int.__sub__, int.__mul__
WRAP, SSAT, USAT = 0, 1, 2
LANEWISE: dict[str, tuple[int, bool, Callable[[int, int], int], int]] = {}
for _sfx, _w in (("b", 1), ("w", 2), ("d", 4), ("q", 8)):
    LANEWISE["padd" + _sfx] = (_w, False, _ADD, WRAP)
    LANEWISE["psub" + _sfx] = (_w, False, _SUB, WRAP)
    LANEWISE["pcmpeq" + _sfx] = (_w, False, _eq, WRAP)      # pcmpeqq: SSE4.1
    LANEWISE["pcmpgt" + _sfx] = (_w, True, _gt, WRAP)       # pcmpgtq: SSE4.2
for _sfx, _w in (("b", 1), ("w", 2), ("d", 4)):
    LANEWISE["pmins" + _sfx] = (_w, True, min, WRAP)        # pminsw SSE; b, d SSE4.1
    LANEWISE["pmaxs" + _sfx] = (_w, True, max, WRAP)
    LANEWISE["pminu" + _sfx] = (_w, False, min, WRAP)       # pminub SSE; w, d SSE4.1
    LANEWISE["pmaxu" + _sfx] = (_w, False, max, WRAP)
    LANEWISE["psign" + _sfx] = (_w, True, _sign, WRAP)      # SSSE3
for _sfx, _w in (("b", 1), ("w", 2)):
    LANEWISE["padds" + _sfx] = (_w, True, _ADD, SSAT)
    LANEWISE["psubs" + _sfx] = (_w, True, _SUB, SSAT)
    LANEWISE["paddus" + _sfx] = (_w, False, _ADD, USAT)
    LANEWISE["psubus" + _sfx] = (_w, False, _SUB, USAT)
    LANEWISE["pavg" + _sfx] = (_w, False, _avg, WRAP)
LANEWISE["pmullw"] = (2, False, _MUL, WRAP)
LANEWISE["pmulld"] = (4, False, _MUL, WRAP)                 # SSE4.1
LANEWISE["pmulhw"] = (2, True, lambda a, b: (a * b) >> 16, WRAP)
LANEWISE["pmulhuw"] = (2, False, lambda a, b: (a * b) >> 16, WRAP)
LANEWISE["pmulhrsw"] = (2, True, _mulhrs, WRAP)             # SSSE3

BITWISE: dict[str, Callable[[int, int, int], int]] = {}
for _p in ("p", ""):
    for _t in (("",) if _p == "p" else ("ps", "pd")):
        BITWISE[_p + "and" + _t] = lambda a, b, m: a & b
        BITWISE[_p + "andn" + _t] = lambda a, b, m: ~a & b & m
        BITWISE[_p + "or" + _t] = lambda a, b, m: a | b
        BITWISE[_p + "xor" + _t] = lambda a, b, m: a ^ b


def _repeat(lane: int, w: int) -> int:
    return int.from_bytes(lane.to_bytes(w, "little") * (16 // w), "little")


# SWAR forms (whole-register integer arithmetic, no lane split) of the hottest lane ops:
# lane-wise add/sub without carries across lanes, and equality as "a ^ b has a zero lane".
_LOW = {w: _repeat((1 << (8 * w - 1)) - 1, w) for w in (1, 2, 4, 8)}   # 0x7F7F…
_HIGH = {w: _repeat(1 << (8 * w - 1), w) for w in (1, 2, 4, 8)}       # 0x8080…
_SWAR = {"padd": 0, "psub": 1, "pcmpeq": 2, "pminu": 3, "pmaxu": 4, "pmins": 5, "pmaxs": 6,
         "pcmpgt": 7}


def _below(a: int, b: int, lo: int, hi: int) -> int:
    """The top bit of each lane where a < b (unsigned): the borrow out of a - b, from the
    borrow-free difference of the low bits and the top bits themselves."""
    low_ge = (a | hi) - (b & lo)              # top bit: low(a) >= low(b)
    return ((~a & b) | (~(a ^ b) & ~low_ge)) & hi


def _swar(kind: int, w: int, a: int, b: int, bits: int) -> int:
    m = (1 << bits) - 1
    lo, hi = _LOW[w] & m, _HIGH[w] & m
    ones = (1 << (8 * w)) - 1
    if kind == 0:
        return ((a & lo) + (b & lo)) ^ ((a ^ b) & hi)
    if kind == 1:
        return ((a | hi) - (b & lo)) ^ ((a ^ ~b) & hi)
    if kind == 2:
        v = a ^ b
        t = ~(((v & lo) + lo) | v | lo) & hi       # the top bit of each zero lane
        return (t >> (8 * w - 1)) * ones
    flip = hi if kind >= 5 else 0                  # signed: compare with the sign flipped
    if kind == 7:                                  # a > b  ⇔  b < a
        return (_below(b ^ flip, a ^ flip, lo, hi) >> (8 * w - 1)) * ones
    lt = (_below(a ^ flip, b ^ flip, lo, hi) >> (8 * w - 1)) * ones
    if kind in (3, 5):                             # min: a where a < b
        return (a & lt) | (b & ~lt & m)
    return (b & lt) | (a & ~lt & m)


def lanewise(name: str, a: int, b: int, bits: int) -> int:
    kind = _SWAR.get(name[:-1])
    if kind is not None:
        return _swar(kind, LANEWISE[name][0], a, b, bits)
    return lanewise_by_lanes(name, a, b, bits)


def lanewise_by_lanes(name: str, a: int, b: int, bits: int) -> int:
    """The :data:`LANEWISE` row applied lane by lane (the reference the SWAR forms match)."""
    w, signed, fn, sat = LANEWISE[name]
    la, lb = split(a, w, bits, signed), split(b, w, bits, signed)
    if sat == WRAP:
        return join(map(fn, la, lb), w)
    fit = sat_signed if sat == SSAT else sat_unsigned
    return join([fit(fn(x, y), w) for x, y in zip(la, lb, strict=True)], w)


def unary(name: str, b: int, bits: int) -> int:
    """PABSB/W/D (SSSE3): absolute value of each signed lane of the source."""
    w = {"pabsb": 1, "pabsw": 2, "pabsd": 4}[name]
    return join([abs(x) for x in split(b, w, bits, True)], w)


# -- shifts ---------------------------------------------------------------------------------

SHIFTS = {"psllw": (2, "l"), "pslld": (4, "l"), "psllq": (8, "l"), "psrlw": (2, "r"),
          "psrld": (4, "r"), "psrlq": (8, "r"), "psraw": (2, "a"), "psrad": (4, "a")}


def shift(name: str, a: int, count: int, bits: int) -> int:
    """PSLLx/PSRLx/PSRAx by ``count`` (an immediate or the low 64 bits of the source): a
    count above the lane width clears the lanes (arithmetic: fills them with the sign)."""
    w, kind = SHIFTS[name]
    lb = 8 * w
    if kind == "a":
        return join([x >> min(count, lb - 1) for x in split(a, w, bits, True)], w)
    if count >= lb:
        return 0
    if kind == "l":
        return join([x << count for x in split(a, w, bits)], w)
    return join([x >> count for x in split(a, w, bits)], w)


def byte_shift(name: str, a: int, count: int) -> int:
    """PSLLDQ/PSRLDQ: the whole 128-bit register by ``count`` bytes (more than 15: zero)."""
    if count > 15:
        return 0
    if name == "pslldq":
        return (a << (8 * count)) & ((1 << 128) - 1)
    return a >> (8 * count)


# -- packs and unpacks ----------------------------------------------------------------------

PACKS = {"packsswb": (2, sat_signed), "packssdw": (4, sat_signed),
         "packuswb": (2, sat_unsigned), "packusdw": (4, sat_unsigned)}


def pack(name: str, a: int, b: int, bits: int) -> int:
    """PACKSSWB/PACKSSDW/PACKUSWB/PACKUSDW: signed lanes of ``a`` then ``b``, saturated to
    half width."""
    w, fit = PACKS[name]
    h = w // 2
    return join([fit(x, h) for x in split(a, w, bits, True) + split(b, w, bits, True)], h)


UNPACKS = {"punpcklbw": (1, 0), "punpcklwd": (2, 0), "punpckldq": (4, 0),
           "punpcklqdq": (8, 0), "punpckhbw": (1, 1), "punpckhwd": (2, 1),
           "punpckhdq": (4, 1), "punpckhqdq": (8, 1), "unpcklps": (4, 0), "unpckhps": (4, 1),
           "unpcklpd": (8, 0), "unpckhpd": (8, 1)}


def unpack(name: str, a: int, b: int, bits: int) -> int:
    """PUNPCKLxx/PUNPCKHxx, UNPCKLPS…: interleave the low (high) halves of ``a`` and ``b``."""
    w, high = UNPACKS[name]
    la, lb = split(a, w, bits), split(b, w, bits)
    half = len(la) // 2
    start = half if high else 0
    out = []
    for i in range(start, start + half):
        out += (la[i], lb[i])
    return join(out, w)


# -- shuffles -------------------------------------------------------------------------------

def pshufd(b: int, imm: int) -> int:
    d = split(b, 4, 128)
    return join([d[(imm >> (2 * i)) & 3] for i in range(4)], 4)


def pshufw(b: int, imm: int, bits: int = 64, base: int = 0) -> int:
    """PSHUFW (MMX) and the half of PSHUFLW (base 0) / PSHUFHW (base 4) that is shuffled."""
    w = list(split(b, 2, bits))
    src = w[base:base + 4]
    w[base:base + 4] = [src[(imm >> (2 * i)) & 3] for i in range(4)]
    return join(w, 2)


def pshufb(a: int, b: int, bits: int) -> int:
    la, lb = split(a, 1, bits), split(b, 1, bits)
    m = len(la) - 1
    return join([0 if s & 0x80 else la[s & m] for s in lb], 1)


def palignr(a: int, b: int, imm: int, bits: int) -> int:
    """PALIGNR: (a:b) >> 8·imm, low ``bits`` bits."""
    if imm >= 2 * bits // 8:
        return 0
    return (((a << bits) | b) >> (8 * imm)) & ((1 << bits) - 1)


def shufps(a: int, b: int, imm: int) -> int:
    la, lb = split(a, 4, 128), split(b, 4, 128)
    return join([la[imm & 3], la[(imm >> 2) & 3], lb[(imm >> 4) & 3], lb[(imm >> 6) & 3]], 4)


def shufpd(a: int, b: int, imm: int) -> int:
    la, lb = split(a, 8, 128), split(b, 8, 128)
    return join([la[imm & 1], lb[(imm >> 1) & 1]], 8)


# -- multiply-add, sums of differences, horizontal ------------------------------------------

def pmaddwd(a: int, b: int, bits: int) -> int:
    la, lb = split(a, 2, bits, True), split(b, 2, bits, True)
    return join([la[i] * lb[i] + la[i + 1] * lb[i + 1] for i in range(0, len(la), 2)], 4)


def pmaddubsw(a: int, b: int, bits: int) -> int:
    """PMADDUBSW (SSSE3): unsigned bytes of ``a`` times signed bytes of ``b``, pairs summed
    with signed saturation."""
    la, lb = split(a, 1, bits), split(b, 1, bits, True)
    return join([sat_signed(la[i] * lb[i] + la[i + 1] * lb[i + 1], 2)
                 for i in range(0, len(la), 2)], 2)


def pmuludq(a: int, b: int, bits: int, signed: bool = False) -> int:
    """PMULUDQ (PMULDQ, SSE4.1, with ``signed``): even dwords multiplied into qwords."""
    la, lb = split(a, 4, bits, signed), split(b, 4, bits, signed)
    return join([la[i] * lb[i] for i in range(0, len(la), 2)], 8)


def psadbw(a: int, b: int, bits: int) -> int:
    la, lb = split(a, 1, bits), split(b, 1, bits)
    return join([sum(abs(la[i] - lb[i]) for i in range(q, q + 8))
                 for q in range(0, len(la), 8)], 8)


HORIZONTAL = {"phaddw": (2, _ADD, False), "phaddd": (4, _ADD, False),
              "phaddsw": (2, _ADD, True), "phsubw": (2, _SUB, False),
              "phsubd": (4, _SUB, False), "phsubsw": (2, _SUB, True)}


def horizontal(name: str, a: int, b: int, bits: int) -> int:
    """PHADDx/PHSUBx (SSSE3): adjacent pairs of ``a``, then of ``b``."""
    w, fn, sat = HORIZONTAL[name]
    x = split(a, w, bits, True) + split(b, w, bits, True)
    out = [fn(x[i], x[i + 1]) for i in range(0, len(x), 2)]
    return join([sat_signed(v, w) for v in out] if sat else out, w)


# -- masks, blends, extraction --------------------------------------------------------------

def movmsk(v: int, w: int, bits: int) -> int:
    """PMOVMSKB (w=1), MOVMSKPS (4), MOVMSKPD (8): the top bit of each lane."""
    out = 0
    if w == 1:   # gather the eight top bits of each quadword with one multiply
        for q in range(bits // 64):
            x = (v >> (64 * q)) & 0x8080808080808080
            out |= ((x * 0x0002040810204081) >> 56 & 0xFF) << (8 * q)
        return out
    for i in range(bits // (8 * w)):
        out |= ((v >> (8 * w * (i + 1) - 1)) & 1) << i
    return out


def blend_imm(a: int, b: int, imm: int, w: int) -> int:
    """PBLENDW/BLENDPS/BLENDPD (SSE4.1): lane i from ``b`` where imm bit i is set."""
    la, lb = split(a, w, 128), split(b, w, 128)
    return join([lb[i] if imm >> i & 1 else la[i] for i in range(len(la))], w)


def blend_var(a: int, b: int, mask: int, w: int) -> int:
    """PBLENDVB/BLENDVPS/BLENDVPD (SSE4.1): lane from ``b`` where the mask lane's top bit is
    set (the mask is XMM0)."""
    la, lb, lm = split(a, w, 128), split(b, w, 128), split(mask, w, 128, True)
    return join([y if m < 0 else x for x, y, m in zip(la, lb, lm, strict=True)], w)


PMOVX = {"pmovsxbw": (1, 2, True), "pmovsxbd": (1, 4, True), "pmovsxbq": (1, 8, True),
         "pmovsxwd": (2, 4, True), "pmovsxwq": (2, 8, True), "pmovsxdq": (4, 8, True),
         "pmovzxbw": (1, 2, False), "pmovzxbd": (1, 4, False), "pmovzxbq": (1, 8, False),
         "pmovzxwd": (2, 4, False), "pmovzxwq": (2, 8, False), "pmovzxdq": (4, 8, False)}


def pmovx(name: str, b: int) -> int:
    """PMOVSX/PMOVZX (SSE4.1): the low lanes of ``b`` widened to fill 128 bits."""
    w, to, signed = PMOVX[name]
    n = 16 // to
    return join(split(b & ((1 << (8 * w * n)) - 1), w, 8 * w * n, signed), to)


def pmovx_source_bytes(name: str) -> int:
    w, to, _ = PMOVX[name]
    return w * (16 // to)


def minposuw(b: int) -> int:
    """PHMINPOSUW (SSE4.1): the least unsigned word and its index (the lowest on ties)."""
    words = split(b, 2, 128)
    m = min(words)
    return m | (words.index(m) << 16)


def mpsadbw(a: int, b: int, imm: int) -> int:
    """MPSADBW (SSE4.1): eight sums of absolute differences of 4-byte blocks."""
    la, lb = split(a, 1, 128), split(b, 1, 128)
    ao = 4 * ((imm >> 2) & 1)
    bo = 4 * (imm & 3)
    blk = lb[bo:bo + 4]
    return join([sum(abs(la[ao + i + j] - blk[j]) for j in range(4)) for i in range(8)], 2)


def ptest(a: int, b: int) -> int:
    """PTEST (SSE4.1): RFLAGS bits: ZF if a AND b is 0, CF if (NOT a) AND b is 0."""
    zf = 0x40 if a & b == 0 else 0
    cf = 1 if ~a & b & ((1 << 128) - 1) == 0 else 0
    return zf | cf
