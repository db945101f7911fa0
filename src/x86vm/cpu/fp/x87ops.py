"""The x87's transcendental-free helpers on 80-bit patterns: FSCALE, FXTRACT, FPREM, FPREM1.

Same conventions as :mod:`.ops` (bit patterns in, ``(result, flags)`` out); NaNs follow the x87
rule. SDM Vol. 2A/2B, the instructions' pages.
"""

from __future__ import annotations

from .core import (
    DE,
    DENORMAL,
    F80,
    IE,
    INF,
    QNAN,
    RC_NEAREST,
    SNAN,
    UNSUPPORTED,
    ZE,
    ZERO,
    round_pack,
    unpack,
)
from .ops import propagate_nan

# quotient bits of FPREM/FPREM1 in the status word (SDM Vol. 2A FPREM: C0=Q2, C3=Q1, C1=Q0)
SW_C0 = 0x100
SW_C1 = 0x200
SW_C2 = 0x400
SW_C3 = 0x4000


def fscale(a: int, b: int, rc: int = RC_NEAREST, prec: int = 0, wrap: int = 0
           ) -> tuple[int, int]:
    """``a * 2**trunc(b)``."""
    ca, sa, ea, ma = unpack(F80, a)
    cb, sb, eb, mb = unpack(F80, b)
    if ca >= QNAN or cb >= QNAN:
        return propagate_nan(F80, a, ca, b, cb, False)
    flags = (DE if ca == DENORMAL else 0) | (DE if cb == DENORMAL else 0)
    if cb == INF:
        if sb:  # scale by 2**-inf
            if ca == INF:
                return F80.indefinite, IE
            return F80.zero(sa), flags
        if ca == ZERO:
            return F80.indefinite, IE
        return F80.inf(sa), flags
    if ca == ZERO or ca == INF:
        return a, flags
    if cb == ZERO:
        n = 0
    elif eb >= 0:
        n = mb << eb
    else:
        n = mb >> -eb
    if n > 1 << 17:
        n = 1 << 17
    if sb:
        n = -n
    bits, fl = round_pack(F80, sa, ea + n, ma, rc, prec, False, wrap)
    return bits, flags | fl


def fxtract(a: int) -> tuple[int, int, int]:
    """``(exponent, significand, flags)``: the unbiased exponent of ``a`` as a value and its
    significand scaled into [1, 2); FXTRACT leaves the significand in ST(0), the exponent in
    ST(1). A zero gives ZE and an exponent of -infinity."""
    ca, sa, ea, ma = unpack(F80, a)
    if ca >= QNAN:
        if ca == UNSUPPORTED:
            return F80.indefinite, F80.indefinite, IE
        q = a | F80.qbit
        return q, q, (IE if ca == SNAN else 0)
    if ca == ZERO:
        return F80.inf(1), a, ZE
    if ca == INF:
        return F80.inf(0), a, 0
    flags = DE if ca == DENORMAL else 0
    n = ma.bit_length()
    e = ea + n - 1
    sig, _ = round_pack(F80, sa, 1 - n, ma)
    if e == 0:
        ex = F80.zero(0)
    else:
        ex, _ = round_pack(F80, 1 if e < 0 else 0, 0, abs(e))
    return ex, sig, flags


def fprem(a: int, b: int, ieee: bool, wrap: int = 0) -> tuple[int, int, int]:
    """``(remainder, flags, cbits)``: one FPREM (``ieee=False``, truncating quotient) or FPREM1
    (``ieee=True``, quotient rounded to nearest even) step of ``a`` by ``b``. ``cbits`` are the
    C0/C1/C2/C3 status bits: C2 set when the reduction is partial (exponent difference 64 or
    more: the result is reduced by a multiple of ``b * 2**(D-32..63)`` and the instruction
    must be repeated), else the low three quotient bits in C0, C3, C1. The remainder is exact;
    ``wrap`` as in :func:`.core.round_pack` (an unmasked underflow on a tiny remainder)."""
    ca, sa, ea, ma = unpack(F80, a)
    cb, sb, eb, mb = unpack(F80, b)
    if ca >= QNAN or cb >= QNAN:
        r, fl = propagate_nan(F80, a, ca, b, cb, False)
        return r, fl, 0
    flags = (DE if ca == DENORMAL else 0) | (DE if cb == DENORMAL else 0)
    if ca == INF or cb == ZERO:
        return F80.indefinite, IE, 0
    if ca == ZERO:
        return a, flags, 0
    if cb == INF:  # the dividend, re-encoded (a pseudo-denormal comes back normalized; a
        # denormal is a tiny result: UE and the exponent wrap when UE is unmasked)
        bits, fl = round_pack(F80, sa, ea, ma, wrap=wrap)
        return bits, flags | (fl & ~0x200), 0
    # a = ma * 2**ea, b = mb * 2**eb; exponents of the leading bits
    da = ea + ma.bit_length()
    db = eb + mb.bit_length()
    d = da - db
    if d >= 64:
        # partial remainder: divide by b * 2**(d - n) with n = 32 + (d mod 32)
        n = 32 + (d & 31)
        shift = d - n
        e = min(ea, eb + shift)
        va = ma << (ea - e)
        vb = mb << (eb + shift - e)
        q = va // vb
        r = va - q * vb
        if r == 0:
            return F80.zero(sa), flags, SW_C2
        bits, fl = round_pack(F80, sa, e, r, wrap=wrap)
        return bits, flags | (fl & ~0x200), SW_C2
    e = min(ea, eb)
    va = ma << (ea - e)
    vb = mb << (eb - e)
    q, r = divmod(va, vb)
    if ieee and (2 * r > vb or (2 * r == vb and q & 1)):
        q += 1
        r = vb - r
        s = sa ^ 1
    else:
        s = sa
    cbits = (SW_C0 if q & 4 else 0) | (SW_C3 if q & 2 else 0) | (SW_C1 if q & 1 else 0)
    if r == 0:
        return F80.zero(sa), flags, cbits
    bits, fl = round_pack(F80, s, e, r, wrap=wrap)
    return bits, flags | (fl & ~0x200), cbits
