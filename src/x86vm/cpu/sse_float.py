"""SSE/SSE2/SSE3/SSE4.1 floating-point lane operations under MXCSR (SDM Vol. 1 §10.2.3, ch. 11).

Scalars are bit patterns (binary32 in 32 bits, binary64 in 64); vectors are ``int``s of 128
(or 256) bits, lane 0 in the low bits. Every operation returns ``(result, flags)`` with the
MXCSR exception flags raised (IE=1, DE=2, ZE=4, OE=8, UE=0x10, PE=0x20); the CPU core then
calls :func:`commit` which ORs them into MXCSR and says whether an *unmasked* exception
occurred — then the instruction must raise #XM (CR4.OSXMMEXCPT=1) or #UD, and the
destination is left unchanged (SDM Vol. 1 §11.5.1). Rounding (RC), FTZ and DAZ come from the
MXCSR value passed in.

NaN rules (SDM Vol. 1 Table 4-7): the first source operand's NaN, quieted; MIN/MAX return the
second operand when either is a NaN or both are zeros; comparisons never return a NaN.
RCPSS/RSQRTSS are approximations whose exact bits are implementation specific (AMD and Intel
differ); see :func:`rcp` for what x86vm returns.
"""

from __future__ import annotations

from .fp import ops
from .fp.core import (
    DE,
    DENORMAL,
    F32,
    F64,
    IE,
    OE,
    QNAN,
    SNAN,
    UE,
    WRAP_UNBOUNDED,
    ZE,
    ZERO,
    Fmt,
    round_pack,
    unpack,
)

MXCSR_FLAGS = 0x3F
MXCSR_DAZ = 0x40
MXCSR_MASK_SHIFT = 7
MXCSR_RC_SHIFT = 13
MXCSR_FTZ = 0x8000
MXCSR_RESET = 0x1F80
MXCSR_WRITABLE = 0xFFFF  # MXCSR_MASK reported by FXSAVE (DAZ supported)

ADD, SUB, MUL, DIV, MIN, MAX = range(6)


_PRE = IE | DE | ZE  # pre-computation exceptions (SDM Vol. 1 §11.5.1)
_STAGED = 0x10000  # internal: flags of a multi-stage operation (DPPS) already resolved


def commit(mxcsr: int, flags: int) -> tuple[int, bool]:
    """``(new MXCSR, fault)``: the flags of all lanes ORed into MXCSR, and whether one of them
    is unmasked (then raise #XM/#UD and do not write the destination). As on the host: an
    unmasked pre-computation exception (IE, DE, ZE) reports only those; an unmasked OE/UE
    reports PE only when the exponent-adjusted result is inexact (the lanes computed it with
    :func:`_unmasked_ou`)."""
    unmasked = ~(mxcsr >> MXCSR_MASK_SHIFT)
    if flags & _STAGED:  # a later stage's pre-computation fault keeps earlier stages' flags
        flags &= MXCSR_FLAGS
        return mxcsr | flags, bool(flags & unmasked)
    flags &= MXCSR_FLAGS
    if flags & _PRE & unmasked:
        return mxcsr | (flags & _PRE), True
    return mxcsr | flags, bool(flags & unmasked)


def _env(mxcsr: int) -> tuple[int, bool, bool]:
    return mxcsr >> MXCSR_RC_SHIFT & 3, bool(mxcsr & MXCSR_DAZ), bool(mxcsr & MXCSR_FTZ)


def _unmasked_ou(mxcsr: int) -> int:
    """OE/UE when unmasked: an exact tiny result must then still raise UE (and fault), and
    FTZ does not apply (SDM Vol. 1 §10.2.3.3); the returned value is not written anyway."""
    w = (OE | UE) & ~(mxcsr >> MXCSR_MASK_SHIFT)
    return w | WRAP_UNBOUNDED if w else 0


def arith(op: int, fmt: Fmt, mxcsr: int, a: int, b: int) -> tuple[int, int]:
    """One lane of ADD/SUB/MUL/DIV/MIN/MAX: ``a op b`` (``a`` = first source/destination)."""
    rc, daz, ftz = _env(mxcsr)
    w = _unmasked_ou(mxcsr)
    if op == ADD:
        return ops.add(fmt, a, b, rc, 0, True, daz, ftz, w)
    if op == SUB:
        return ops.sub(fmt, a, b, rc, 0, True, daz, ftz, w)
    if op == MUL:
        return ops.mul(fmt, a, b, rc, 0, True, daz, ftz, w)
    if op == DIV:
        return ops.div(fmt, a, b, rc, 0, True, daz, ftz, w)
    return minmax(fmt, mxcsr, a, b, op == MAX)


def minmax(fmt: Fmt, mxcsr: int, a: int, b: int, is_max: bool) -> tuple[int, int]:
    """MINSS/MAXSS...: ``a < b ? a : b`` (``>`` for max); the second operand when either is a
    NaN (IE, even for a QNaN) or both are zeros (SDM Vol. 2B MINSS)."""
    daz = bool(mxcsr & MXCSR_DAZ)
    ca, sa, ea, ma = unpack(fmt, a)
    cb, sb, eb, mb = unpack(fmt, b)
    flags = 0
    if ca == DENORMAL:
        if daz:  # the flushed zero is what MIN/MAX return (host)
            ca, ma, a = ZERO, 0, a & fmt.sign_bit
        else:
            flags |= DE
    if cb == DENORMAL:
        if daz:
            cb, mb, b = ZERO, 0, b & fmt.sign_bit
        else:
            flags |= DE
    if ca >= QNAN or cb >= QNAN:
        return b, IE
    rel = ops._order(sa, ca, ea, ma, sb, cb, eb, mb)
    if is_max:
        return (a if rel == ops.CMP_GT else b), flags
    return (a if rel == ops.CMP_LT else b), flags


def sqrt(fmt: Fmt, mxcsr: int, a: int) -> tuple[int, int]:
    rc, daz, ftz = _env(mxcsr)
    return ops.sqrt(fmt, a, rc, 0, daz, ftz)


# CMPPS/VCMPPS predicates 0-31 (SDM Vol. 2A CMPPS, Table 3-1): relations that make the
# predicate true (bit per ops.CMP_*: LT=1, EQ=2, GT=4, UN=8) and whether a QNaN signals.
_LT, _EQ, _GT, _UN = 1, 2, 4, 8
_PRED_BASE = (
    (_EQ, False), (_LT, True), (_LT | _EQ, True), (_UN, False),
    (_LT | _GT | _UN, False), (_EQ | _GT | _UN, True), (_GT | _UN, True), (_LT | _EQ | _GT, False),
    (_EQ | _UN, False), (_LT | _UN, True), (_LT | _EQ | _UN, True), (0, False),
    (_LT | _GT, False), (_GT | _EQ, True), (_GT, True), (_LT | _EQ | _GT | _UN, False),
)
PREDICATES = _PRED_BASE + tuple((m, not s) for m, s in _PRED_BASE)


def cmp(fmt: Fmt, mxcsr: int, a: int, b: int, predicate: int) -> tuple[int, int]:
    """One lane of CMPSS/CMPPS/VCMPxx: all ones when predicate(a, b) holds, else 0."""
    true_set, signaling = PREDICATES[predicate & 31]
    rel, flags = ops.compare(fmt, a, b, signaling, bool(mxcsr & MXCSR_DAZ))
    ones = (1 << fmt.width) - 1
    return (ones if true_set >> rel & 1 else 0), flags


# COMISS/UCOMISS → EFLAGS (ZF=0x40, PF=0x04, CF=0x01; OF, SF, AF cleared)
_COMI_EFLAGS = {ops.CMP_GT: 0, ops.CMP_LT: 0x01, ops.CMP_EQ: 0x40, ops.CMP_UN: 0x45}
COMI_EFLAGS_MASK = 0x8D5  # the flags COMISS writes: OF SF ZF AF PF CF


def comi(fmt: Fmt, mxcsr: int, a: int, b: int, signaling: bool) -> tuple[int, int]:
    """COMISS/COMISD (``signaling``) and UCOMISS/UCOMISD: ``(eflags bits, flags)``; the core
    replaces RFLAGS & COMI_EFLAGS_MASK with them."""
    rel, flags = ops.compare(fmt, a, b, signaling, bool(mxcsr & MXCSR_DAZ))
    return _COMI_EFLAGS[rel], flags


def convert(src: Fmt, dst: Fmt, mxcsr: int, a: int) -> tuple[int, int]:
    """CVTSS2SD / CVTSD2SS (and the packed forms, per lane)."""
    rc, daz, ftz = _env(mxcsr)
    return ops.convert(src, dst, a, rc, 0, daz, ftz, _unmasked_ou(mxcsr))


def to_int(fmt: Fmt, mxcsr: int, a: int, width: int, truncate: bool) -> tuple[int, int]:
    """CVTSS2SI/CVTTSS2SI/CVTPS2DQ/CVTTPD2DQ...: the integer (unsigned bits) or the integer
    indefinite 0x80000000[00000000] with IE."""
    rc, daz, _ = _env(mxcsr)
    value, flags = ops.to_int(fmt, a, width, 3 if truncate else rc, daz)
    return value, flags & ~(DE | 0x200)


def from_int(dst: Fmt, mxcsr: int, value: int, width: int) -> tuple[int, int]:
    """CVTSI2SS/CVTDQ2PS...: a ``width``-bit signed integer rounded by MXCSR.RC."""
    bits, flags = ops.from_int(dst, value, width, mxcsr >> MXCSR_RC_SHIFT & 3)
    return bits, flags & ~0x200


def round_integral(fmt: Fmt, mxcsr: int, a: int, imm: int) -> tuple[int, int]:
    """ROUNDSS/ROUNDPS...: imm[1:0] the rounding mode unless imm[2] (then MXCSR.RC); imm[3]
    suppresses PE (SDM Vol. 2B ROUNDPD Table 4-18)."""
    rc = (mxcsr >> MXCSR_RC_SHIFT & 3) if imm & 4 else imm & 3
    bits, flags = ops.round_integral(fmt, a, rc, bool(mxcsr & MXCSR_DAZ), not imm & 8)
    return bits, flags & ~(0x200 | DE)  # ROUNDSS reports no DE


# -- approximations ---------------------------------------------------------------------------
def _approx(fmt: Fmt, mxcsr: int, a: int, rsqrt: bool) -> tuple[int, int]:
    """x86vm's RCPSS/RSQRTSS: the exact 1/a (1/sqrt a) rounded to nearest at 12 significant
    bits, which meets the SDM bound |relative error| <= 1.5 * 2**-12 but is not bit-equal to
    either vendor's table. Specials as on hardware: ±0 → ±inf, ±inf → ±0, NaN quieted, negative
    (rsqrt) → the QNaN indefinite; no flags are raised; denormal inputs are treated as zero
    and tiny results flushed to zero."""
    c, s, e, m = unpack(fmt, a)
    if c >= QNAN:
        return (a | fmt.qbit if c in (QNAN, SNAN) else fmt.indefinite), 0
    if c == ZERO or c == DENORMAL:
        return fmt.inf(s), 0
    if rsqrt and s:  # negative, -inf included
        return fmt.indefinite, 0
    if c == 3:  # infinity
        return fmt.zero(s), 0
    if rsqrt:
        if s:
            return fmt.indefinite, 0
        # 1/sqrt(m * 2**e) with 40 extra bits, exponent made even
        if e & 1:
            m <<= 1
            e -= 1
        k = 2 * (fmt.prec + 40) + m.bit_length()
        k += k & 1
        from math import isqrt

        r = isqrt((1 << k) // m)
        sig, exp = r, -(k >> 1) - (e >> 1)
    else:
        k = fmt.prec + 40 + m.bit_length()
        sig, exp = (1 << k) // m, -k - e
    bits, _ = round_pack(fmt, s, exp, sig | 1, 0, 12, True)
    return bits, 0


def rcp(fmt: Fmt, mxcsr: int, a: int) -> tuple[int, int]:
    """RCPSS/RCPPS (binary32 only on SSE); see :func:`_approx`."""
    return _approx(fmt, mxcsr, a, False)


def rsqrt(fmt: Fmt, mxcsr: int, a: int) -> tuple[int, int]:
    """RSQRTSS/RSQRTPS; see :func:`_approx`."""
    return _approx(fmt, mxcsr, a, True)


# -- packed helpers ---------------------------------------------------------------------------
def lanes(value: int, fmt: Fmt, count: int) -> list[int]:
    w = fmt.width
    mask = (1 << w) - 1
    return [(value >> (i * w)) & mask for i in range(count)]


def join(values: list[int], fmt: Fmt) -> int:
    w = fmt.width
    out = 0
    for i, v in enumerate(values):
        out |= v << (i * w)
    return out


def packed(op: int, fmt: Fmt, mxcsr: int, a: int, b: int, width: int = 128
           ) -> tuple[int, int]:
    """ADDPS/SUBPD/MULPS/DIVPD/MINPS/MAXPD over ``width`` bits; flags ORed over lanes."""
    n = width // fmt.width
    out = []
    flags = 0
    for x, y in zip(lanes(a, fmt, n), lanes(b, fmt, n), strict=True):
        r, f = arith(op, fmt, mxcsr, x, y)
        out.append(r)
        flags |= f
    return join(out, fmt), flags


def horizontal(op: int, fmt: Fmt, mxcsr: int, a: int, b: int) -> tuple[int, int]:
    """HADDPS/HSUBPS/HADDPD/HSUBPD (128-bit): pairs of ``a`` then pairs of ``b``."""
    n = 128 // fmt.width
    src = lanes(a, fmt, n) + lanes(b, fmt, n)
    out = []
    flags = 0
    for i in range(0, 2 * n, 2):
        r, f = arith(op, fmt, mxcsr, src[i], src[i + 1])
        out.append(r)
        flags |= f
    return join(out, fmt), flags


def addsub(fmt: Fmt, mxcsr: int, a: int, b: int) -> tuple[int, int]:
    """ADDSUBPS/ADDSUBPD: even lanes subtract, odd lanes add."""
    n = 128 // fmt.width
    out = []
    flags = 0
    for i, (x, y) in enumerate(zip(lanes(a, fmt, n), lanes(b, fmt, n), strict=True)):
        r, f = arith(ADD if i & 1 else SUB, fmt, mxcsr, x, y)
        out.append(r)
        flags |= f
    return join(out, fmt), flags


def dp(fmt: Fmt, mxcsr: int, a: int, b: int, imm: int) -> tuple[int, int]:
    """DPPS/DPPD (128-bit): products of the lanes selected by imm[7:4] (imm[5:4] for DPPD),
    summed pairwise ((p0+p1)+(p2+p3)), each step rounded by MXCSR; the sum is written to the
    lanes selected by imm[3:0] (imm[1:0]), zero elsewhere (SDM Vol. 2A DPPS)."""
    n = 128 // fmt.width
    xa = lanes(a, fmt, n)
    xb = lanes(b, fmt, n)
    flags = 0
    prods = []
    for i in range(n):
        if imm >> (4 + i) & 1:
            p, f = arith(MUL, fmt, mxcsr, xa[i], xb[i])
            flags |= f
        else:
            p = 0
        prods.append(p)
    if commit(mxcsr, flags)[1]:  # an unmasked exception in the products ends it (host)
        return 0, flags
    unmasked = ~(mxcsr >> MXCSR_MASK_SHIFT)
    if n == 4:
        s0, f0 = arith(ADD, fmt, mxcsr, prods[0], prods[1])
        s1, f1 = arith(ADD, fmt, mxcsr, prods[2], prods[3])
        f = f0 | f1
        if f & _PRE & unmasked:  # the first sums fault before rounding
            return 0, flags | (f & _PRE) | _STAGED
        flags |= f
        if commit(mxcsr, flags)[1]:
            return 0, flags
        prods = [s0, s1]
    total, f = arith(ADD, fmt, mxcsr, prods[0], prods[1])
    if f & _PRE & unmasked:
        return 0, flags | (f & _PRE) | _STAGED
    flags |= f
    out = [total if imm >> i & 1 else 0 for i in range(n)]
    return join(out, fmt), flags


__all__ = [
    "ADD", "DIV", "F32", "F64", "MAX", "MIN", "MUL", "SUB", "MXCSR_RESET", "addsub", "arith",
    "cmp", "comi", "commit", "convert", "dp", "from_int", "horizontal", "minmax", "packed",
    "rcp", "round_integral", "rsqrt", "sqrt", "to_int",
]
