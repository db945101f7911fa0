"""Correctly rounded arithmetic, comparison and conversion on bit patterns.

Every function takes and returns bit patterns (``int``) and returns ``(result, flags)``,
flags in the status-word layout of :mod:`.core`. The knobs:

- ``rc``: rounding control; ``prec``: significand bits to round to (x87 precision control:
  24/53/64; 0 means the format's own);
- ``sse``: NaN operands follow the SSE rule (the first source operand, quieted) instead of the
  x87 rule (the larger significand; a QNaN beats an SNaN) — SDM Vol. 1 Table 4-7;
- ``daz`` / ``ftz``: MXCSR denormals-are-zero / flush-to-zero (SDM Vol. 1 §10.2.3.3, §10.2.3.4);
- ``wrap``: x87 unmasked overflow/underflow exponent adjustment (see :func:`.core.round_pack`).
"""

from __future__ import annotations

from math import isqrt

from .core import (
    DE,
    DENORMAL,
    F80,
    IE,
    INF,
    NORMAL,
    PE,
    QNAN,
    RC_DOWN,
    RC_NEAREST,
    RC_ZERO,
    SNAN,
    UNSUPPORTED,
    ZE,
    ZERO,
    Fmt,
    nan_convert,
    round_pack,
    round_to_int,
    unpack,
)

_NANLIKE = QNAN  # classes >= QNAN are NaN or unsupported


def propagate_nan(fmt: Fmt, a: int, ca: int, b: int, cb: int, sse: bool) -> tuple[int, int]:
    """The result of a two-operand operation when either operand is a NaN or unsupported."""
    if ca == UNSUPPORTED or cb == UNSUPPORTED:
        return fmt.indefinite, IE
    flags = IE if (ca == SNAN or cb == SNAN) else 0
    if sse:
        pick = a if ca >= QNAN else b
    elif ca >= QNAN and cb >= QNAN:
        if ca != cb:  # one signalling, one quiet: the quiet one
            pick = a if ca == QNAN else b
        else:
            fa = a & fmt.fmask
            fb = b & fmt.fmask
            if fa != fb:
                pick = a if fa > fb else b
            else:
                pick = a if a >> fmt.fbits < b >> fmt.fbits else b
    else:
        pick = a if ca >= QNAN else b
    return pick | fmt.qbit, flags


def _operand(c: int, m: int, daz: bool) -> tuple[int, int, int]:
    """(class, significand, flags) after DAZ / the denormal-operand check."""
    if c == DENORMAL:
        if daz:
            return ZERO, 0, 0
        return c, m, DE
    return c, m, 0


def add(fmt: Fmt, a: int, b: int, rc: int = RC_NEAREST, prec: int = 0, sse: bool = False,
        daz: bool = False, ftz: bool = False, wrap: int = 0, negate_b: bool = False
        ) -> tuple[int, int]:
    """``a + b`` (``a - b`` with ``negate_b``)."""
    ca, sa, ea, ma = unpack(fmt, a)
    cb, sb, eb, mb = unpack(fmt, b)
    if ca >= _NANLIKE or cb >= _NANLIKE:
        return propagate_nan(fmt, a, ca, b, cb, sse)
    if negate_b:
        sb ^= 1
    ca, ma, fa = _operand(ca, ma, daz)
    cb, mb, fb = _operand(cb, mb, daz)
    flags = fa | fb
    if ca == INF or cb == INF:
        if ca == INF and cb == INF and sa != sb:
            return fmt.indefinite, IE
        return fmt.inf(sa if ca == INF else sb), flags
    if ca == ZERO or cb == ZERO:
        if ca == ZERO and cb == ZERO:
            s = sa if sa == sb else (1 if rc == RC_DOWN else 0)
            return fmt.zero(s), flags
        if ca == ZERO:
            sa, ea, ma = sb, eb, mb
        bits, fl = round_pack(fmt, sa, ea, ma, rc, prec, ftz, wrap)
        return bits, flags | fl
    # exact sum; a far smaller operand only contributes a sticky bit
    if ea - eb > 200:
        mb, eb = 1, ea - 200
    elif eb - ea > 200:
        ma, ea = 1, eb - 200
    e = ea if ea < eb else eb
    va = ma << (ea - e)
    vb = mb << (eb - e)
    if sa:
        va = -va
    if sb:
        vb = -vb
    v = va + vb
    if v == 0:
        return fmt.zero(1 if rc == RC_DOWN else 0), flags
    s = 0
    if v < 0:
        s, v = 1, -v
    bits, fl = round_pack(fmt, s, e, v, rc, prec, ftz, wrap)
    return bits, flags | fl


def sub(fmt: Fmt, a: int, b: int, rc: int = RC_NEAREST, prec: int = 0, sse: bool = False,
        daz: bool = False, ftz: bool = False, wrap: int = 0) -> tuple[int, int]:
    """``a - b``."""
    return add(fmt, a, b, rc, prec, sse, daz, ftz, wrap, True)


def mul(fmt: Fmt, a: int, b: int, rc: int = RC_NEAREST, prec: int = 0, sse: bool = False,
        daz: bool = False, ftz: bool = False, wrap: int = 0) -> tuple[int, int]:
    """``a * b``."""
    ca, sa, ea, ma = unpack(fmt, a)
    cb, sb, eb, mb = unpack(fmt, b)
    if ca >= _NANLIKE or cb >= _NANLIKE:
        return propagate_nan(fmt, a, ca, b, cb, sse)
    ca, ma, fa = _operand(ca, ma, daz)
    cb, mb, fb = _operand(cb, mb, daz)
    flags = fa | fb
    s = sa ^ sb
    if ca == INF or cb == INF:
        if ca == ZERO or cb == ZERO:
            return fmt.indefinite, IE
        return fmt.inf(s), flags
    if ca == ZERO or cb == ZERO:
        return fmt.zero(s), flags
    bits, fl = round_pack(fmt, s, ea + eb, ma * mb, rc, prec, ftz, wrap)
    return bits, flags | fl


def div(fmt: Fmt, a: int, b: int, rc: int = RC_NEAREST, prec: int = 0, sse: bool = False,
        daz: bool = False, ftz: bool = False, wrap: int = 0) -> tuple[int, int]:
    """``a / b``."""
    ca, sa, ea, ma = unpack(fmt, a)
    cb, sb, eb, mb = unpack(fmt, b)
    if ca >= _NANLIKE or cb >= _NANLIKE:
        return propagate_nan(fmt, a, ca, b, cb, sse)
    ca, ma, fa = _operand(ca, ma, daz)
    cb, mb, fb = _operand(cb, mb, daz)
    flags = fa | fb
    s = sa ^ sb
    if ca == INF:
        if cb == INF:
            return fmt.indefinite, IE
        return fmt.inf(s), flags
    if cb == INF:
        return fmt.zero(s), flags
    if cb == ZERO:
        if ca == ZERO:
            return fmt.indefinite, IE
        # a denormal dividend is not reported with a zero divide (host, x87 and SSE)
        return fmt.inf(s), ZE
    if ca == ZERO:
        return fmt.zero(s), flags
    k = fmt.prec + 3 + mb.bit_length() - ma.bit_length()
    if k < 0:
        k = 0
    q, r = divmod(ma << k, mb)
    sig = (q << 1) | (1 if r else 0)
    bits, fl = round_pack(fmt, s, ea - eb - k - 1, sig, rc, prec, ftz, wrap)
    return bits, flags | fl


def sqrt(fmt: Fmt, a: int, rc: int = RC_NEAREST, prec: int = 0, daz: bool = False,
         ftz: bool = False) -> tuple[int, int]:
    """The square root of ``a``."""
    ca, sa, ea, ma = unpack(fmt, a)
    if ca >= _NANLIKE:
        if ca == UNSUPPORTED:
            return fmt.indefinite, IE
        return a | fmt.qbit, (IE if ca == SNAN else 0)
    ca, ma, flags = _operand(ca, ma, daz)
    if ca == ZERO:
        return fmt.zero(sa), flags
    if sa:
        return fmt.indefinite, IE  # a negative denormal reports no DE
    if ca == INF:
        return a, flags
    need = 2 * fmt.prec + 6
    sh = need - ma.bit_length()
    if sh < 0:
        sh = 0
    if (ea - sh) & 1:
        sh += 1
    m = ma << sh
    r = isqrt(m)
    sig = (r << 1) | (1 if r * r != m else 0)
    bits, fl = round_pack(fmt, 0, ((ea - sh) >> 1) - 1, sig, rc, prec, ftz)
    return bits, flags | fl


# -- comparisons ------------------------------------------------------------------------------
CMP_LT = 0
CMP_EQ = 1
CMP_GT = 2
CMP_UN = 3


def compare(fmt: Fmt, a: int, b: int, signaling: bool, daz: bool = False) -> tuple[int, int]:
    """``(relation, flags)``: relation of ``a`` to ``b`` (CMP_LT/EQ/GT/UN). ``signaling``: any
    NaN raises IE (FCOM, COMISS); otherwise only an SNaN does (FUCOM, UCOMISS)."""
    ca, sa, ea, ma = unpack(fmt, a)
    cb, sb, eb, mb = unpack(fmt, b)
    if ca >= _NANLIKE or cb >= _NANLIKE:
        if signaling or ca == SNAN or cb == SNAN or ca == UNSUPPORTED or cb == UNSUPPORTED:
            return CMP_UN, IE
        return CMP_UN, 0
    ca, ma, fa = _operand(ca, ma, daz)
    cb, mb, fb = _operand(cb, mb, daz)
    return _order(sa, ca, ea, ma, sb, cb, eb, mb), fa | fb


def _order(sa: int, ca: int, ea: int, ma: int, sb: int, cb: int, eb: int, mb: int) -> int:
    if ca == ZERO and cb == ZERO:
        return CMP_EQ
    va = _key(sa, ca, ea, ma)
    vb = _key(sb, cb, eb, mb)
    return CMP_LT if va < vb else CMP_GT if va > vb else CMP_EQ


def _key(s: int, c: int, e: int, m: int) -> tuple[int, int]:
    """A sort key for a non-NaN value: (signed exponent class, signed scaled significand)."""
    if c == ZERO:
        return (0, 0)
    if c == INF:
        return (-2, 0) if s else (2, 0)
    # normalise to a fixed 128-bit significand so (exponent, significand) order is value order
    n = m.bit_length()
    top = e + n
    mm = m << (128 - n)
    return (-1, -(top << 130 | mm)) if s else (1, top << 130 | mm)


# -- conversions ------------------------------------------------------------------------------
def convert(src: Fmt, dst: Fmt, a: int, rc: int = RC_NEAREST, prec: int = 0,
            daz: bool = False, ftz: bool = False, wrap: int = 0) -> tuple[int, int]:
    """``a`` (format ``src``) rounded to format ``dst``; an SNaN is quieted with IE."""
    c, s, e, m = unpack(src, a)
    if c >= _NANLIKE:
        if c == UNSUPPORTED:
            return dst.indefinite, IE
        return nan_convert(src, dst, a), (IE if c == SNAN else 0)
    c, m, flags = _operand(c, m, daz)
    if c == ZERO:
        return dst.zero(s), flags
    if c == INF:
        return dst.inf(s), flags
    bits, fl = round_pack(dst, s, e, m, rc, prec, ftz, wrap)
    return bits, flags | fl


def extend(src: Fmt, a: int) -> tuple[int, int]:
    """``a`` widened exactly to the 80-bit format, NaNs *not* quieted (an x87 memory operand
    taking part in an arithmetic instruction); flags: DE for a denormal."""
    c, s, e, m = unpack(src, a)
    if c == NORMAL or c == DENORMAL:
        bits, _ = round_pack(F80, s, e, m)
        return bits, (DE if c == DENORMAL else 0)
    if c == ZERO:
        return F80.zero(s), 0
    if c == INF:
        return F80.inf(s), 0
    frac = (a & src.fmask) << (F80.fbits - src.fbits) | (1 << 63)
    return F80.pack_fields(s, F80.emask, frac), 0


def int_indefinite(width: int) -> int:
    """The integer indefinite value (SDM Vol. 1 §4.8.3.7): only the sign bit set."""
    return 1 << (width - 1)


def to_int(fmt: Fmt, a: int, width: int, rc: int, daz: bool = False) -> tuple[int, int]:
    """``a`` rounded by ``rc`` (RC_ZERO for the truncating forms) to a two's-complement
    ``width``-bit integer (returned unsigned); NaN, infinity or out of range give the integer
    indefinite with IE. Flags PE, C1 (rounded up), DE (denormal operand, x87)."""
    c, s, e, m = unpack(fmt, a)
    if c >= _NANLIKE or c == INF:
        return int_indefinite(width), IE
    c, m, flags = _operand(c, m, daz)
    if c == ZERO:
        return 0, flags
    mag, inexact, up = round_to_int(s, e, m, rc)
    lim = 1 << (width - 1)
    if (mag > lim) or (mag == lim and not s):
        return int_indefinite(width), IE | flags
    if inexact:
        flags |= PE
        if up:
            flags |= 0x200
    v = -mag if s else mag
    return v & ((1 << width) - 1), flags


def from_int(dst: Fmt, value: int, width: int, rc: int = RC_NEAREST, prec: int = 0
             ) -> tuple[int, int]:
    """A ``width``-bit two's-complement integer (given unsigned or signed) rounded to ``dst``."""
    value &= (1 << width) - 1
    if value >> (width - 1):
        value -= 1 << width
    if value == 0:
        return dst.zero(0), 0
    s = 1 if value < 0 else 0
    return round_pack(dst, s, 0, -value if s else value, rc, prec)


def round_integral(fmt: Fmt, a: int, rc: int, daz: bool = False, inexact: bool = True
                   ) -> tuple[int, int]:
    """``a`` rounded to an integral value in its own format (FRNDINT, ROUNDSS/SD).
    ``inexact=False`` suppresses PE (ROUNDSS imm bit 3)."""
    c, s, e, m = unpack(fmt, a)
    if c >= _NANLIKE:
        if c == UNSUPPORTED:
            return fmt.indefinite, IE
        return a | fmt.qbit, (IE if c == SNAN else 0)
    c, m, flags = _operand(c, m, daz)
    if c == ZERO:
        return fmt.zero(s), flags
    if c == INF or e >= 0:
        return a, flags
    mag, inx, up = round_to_int(s, e, m, rc)
    if inx and inexact:
        flags |= PE | (0x200 if up else 0)
    if mag == 0:
        return fmt.zero(s), flags
    bits, _ = round_pack(fmt, s, 0, mag)
    return bits, flags


__all__ = [
    "CMP_EQ", "CMP_GT", "CMP_LT", "CMP_UN", "add", "compare", "convert", "div", "extend",
    "from_int", "int_indefinite", "mul", "propagate_nan", "round_integral", "sqrt", "sub",
    "to_int", "RC_ZERO",
]
