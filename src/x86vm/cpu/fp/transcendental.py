"""x87 transcendental instructions on 80-bit patterns: FSIN, FCOS, FSINCOS, FPTAN, FPATAN,
F2XM1, FYL2X, FYL2XP1 (SDM Vol. 2A, the instructions' pages).

Computed in fixed point with integer series to well over 64 bits (more for tiny arguments) and
then rounded once by RC: x86vm is (all but always) correctly rounded. Hardware is not — it
reduces trigonometric arguments with a 66-bit pi and its polynomials are within about one ulp
— so these results can differ from the host's in the last bits; tests/cpu_fp/fuzz.py's
``x87-transcendental`` family measures the distance (docs/cpu-fp.md gives the numbers).
"""

from __future__ import annotations

from math import isqrt

from .core import (
    DE,
    DENORMAL,
    F80,
    IE,
    INF,
    PE,
    QNAN,
    RC_NEAREST,
    SNAN,
    UE,
    UNSUPPORTED,
    ZE,
    ZERO,
    round_pack,
    unpack,
)
from .ops import propagate_nan

_pi_cache: list[int] = [0, 0]  # [precision, pi * 2**precision]
_ln2_cache: list[int] = [0, 0]


def _atan_inv(n: int, bits: int) -> int:
    total = term = (1 << bits) // n
    k, sgn, n2 = 1, 1, n * n
    while term:
        term //= n2
        k += 2
        sgn = -sgn
        total += sgn * (term // k)
    return total


def _pi(p: int) -> int:
    """pi * 2**p, rounded down (within a few units)."""
    if _pi_cache[0] < p + 16:
        q = p + 64
        _pi_cache[:] = [q, 16 * _atan_inv(5, q + 8) - 4 * _atan_inv(239, q + 8) >> 8]
    return _pi_cache[1] >> (_pi_cache[0] - p)


def _atanh_fixed(u: int, p: int) -> int:
    """atanh(u) for fixed-point ``u`` (scale 2**-p, |u| <= 1/2)."""
    if u < 0:  # odd; and a right shift of a negative term never reaches 0
        return -_atanh_fixed(-u, p)
    total = term = u
    u2 = u * u >> p
    k = 1
    while term:
        term = term * u2 >> p
        k += 2
        total += term // k
    return total


def _ln2(p: int) -> int:
    if _ln2_cache[0] < p + 16:
        q = p + 64
        _ln2_cache[:] = [q, 2 * _atanh_fixed((1 << q) // 3, q)]
    return _ln2_cache[1] >> (_ln2_cache[0] - p)


def _fixed(e: int, m: int, p: int) -> int:
    """m * 2**e in fixed point (scale 2**-p), truncated."""
    s = e + p
    return m << s if s >= 0 else m >> -s


def _precision(e: int, m: int) -> int:
    """Fraction bits giving ~190 significant bits for an operand of magnitude m * 2**e."""
    lead = e + m.bit_length()
    return max(256, 200 - lead)


def _result(sign: int, v: int, p: int, rc: int, wrap: int = 0) -> tuple[int, int]:
    """Round the fixed-point value ``v`` (scale 2**-p, not exact: a sticky bit is added)."""
    if v == 0:
        return F80.zero(sign), PE
    if v < 0:
        sign ^= 1
        v = -v
    bits, fl = round_pack(F80, sign, -p - 1, (v << 1) | 1, rc, 0, False, wrap)
    return bits, fl | PE


def _sin_cos_reduced(r: int, p: int) -> tuple[int, int]:
    """(sin r, cos r), fixed point, |r| <= ~pi/4."""
    r2 = r * r >> p
    s = term = r
    k = 1
    while term:
        term = -(term * r2 >> p) // ((k + 1) * (k + 2))
        k += 2
        s += term
    c = term = 1 << p
    k = 0
    while term:
        term = -(term * r2 >> p) // ((k + 1) * (k + 2))
        k += 2
        c += term
    return s, c


# Hardware reduces the argument modulo pi/2 with a 66-bit pi (SDM Vol. 1 §8.3.10); so does
# x86vm (pi truncated to 66 significant bits; the host agrees bit for bit on arguments up to
# 2**63, where an exact pi gives results that differ in every bit). None: the exact pi.
REDUCTION_PI: list = [66, 0]  # [significant bits, rounding: 0 truncate, 1 nearest]


def _reduction_half_pi(q: int) -> int:
    bits, mode = REDUCTION_PI
    exact = _pi(q + 200)
    if bits is None:
        return exact >> 201
    drop = exact.bit_length() - bits
    v = exact >> drop
    if mode and (exact >> (drop - 1)) & 1:
        v += 1
    return (v << drop) >> 201


TRIG_LIMIT_EXP = 63  # |x| >= 2**63: out of range, C2=1, operand unchanged


TINY_LEAD = -60  # below 2**-60 the series' second term is far below the last bit


def _near(sign: int, e: int, m: int, below: bool, rc: int, wrap: int = 0
          ) -> tuple[int, int]:
    """Round a value a hair below (or above) the exact ``m * 2**e`` in magnitude (``wrap``:
    the unmasked OE/UE, as for :func:`round_pack`)."""
    sig = (m << 66) - 1 if below else (m << 66) + 1
    bits, fl = round_pack(F80, sign, e - 66, sig, rc, 0, False, wrap)
    return bits, fl | PE


def trig(a: int, which: str, rc: int = RC_NEAREST, wrap: int = 0
         ) -> tuple[int, int, int, bool]:
    """FSIN (``which='sin'``), FCOS ('cos'), FPTAN ('tan'): ``(result, result2, flags,
    out_of_range)``; for 'sincos' result = sin, result2 = cos. ``out_of_range`` (|x| >= 2**63):
    C2 is set and ST(0) is left unchanged. ``wrap``: an unmasked UE scales a tiny sine or
    tangent by 2**24576, as the host does."""
    c, s, e, m = unpack(F80, a)
    if c >= QNAN or c == INF:
        if c == INF or c == UNSUPPORTED:
            return F80.indefinite, F80.indefinite, IE, False
        q = a | F80.qbit
        return q, q, (IE if c == SNAN else 0), False
    flags = DE if c == DENORMAL else 0
    if c == ZERO:
        one = 0x3FFF8000000000000000
        return (one if which == "cos" else a), one, flags, False
    if e + m.bit_length() > TRIG_LIMIT_EXP:
        return a, a, flags, True
    if e + m.bit_length() < TINY_LEAD:  # sin x < x < tan x, cos x < 1 (magnitudes)
        r_sin, f_sin = _near(s, e, m, True, rc, wrap)
        r_cos, f_cos = _near(0, 0, 1, True, rc)
        if which == "tan":
            r1, f1 = _near(s, e, m, False, rc, wrap)
            return r1, 0x3FFF8000000000000000, flags | f1, False
        if which == "sin":
            return r_sin, 0, flags | f_sin, False
        if which == "cos":
            return r_cos, 0, flags | f_cos, False
        return r_sin, r_cos, flags | f_sin | f_cos, False
    p = _precision(e, m)
    g = 72
    x = _fixed(e, m, p + g)
    half_pi = _reduction_half_pi(p + g)
    k = (2 * x + half_pi) // (2 * half_pi)  # nearest multiple of pi/2
    r = (x - k * half_pi) >> g
    sn, cs = _sin_cos_reduced(r, p)
    q = k & 3
    sin_v = (sn, cs, -sn, -cs)[q]
    cos_v = (cs, -sn, -cs, sn)[q]
    if which == "tan":
        if cos_v == 0:
            cos_v = 1
        v = (sin_v << p) // cos_v if (sin_v >= 0) == (cos_v > 0) else \
            -((abs(sin_v) << p) // abs(cos_v))
        r1, f1 = _result(s, v, p, rc)
        return r1, 0x3FFF8000000000000000, flags | f1, False
    r_sin, f_sin = _result(s, sin_v, p, rc)
    r_cos, f_cos = _result(0, cos_v, p, rc)
    if which == "sin":
        return r_sin, 0, flags | f_sin, False
    if which == "cos":
        return r_cos, 0, flags | f_cos, False
    return r_sin, r_cos, flags | f_sin | f_cos, False


def _atan_fixed(t: int, p: int) -> int:
    """atan(t) for fixed-point 0 <= t <= 1."""
    one = 1 << p
    halvings = 0
    while t > one >> 3:
        t = (t << p) // (one + isqrt(one * one + t * t))
        halvings += 1
    total = term = t
    t2 = t * t >> p
    k = 1
    while term:
        term = -(term * t2 >> p)
        k += 2
        total += term // k
    return total << halvings


def fpatan(y: int, x: int, rc: int = RC_NEAREST, wrap: int = 0) -> tuple[int, int]:
    """FPATAN: atan2(y, x) = the angle of (x, y), in [-pi, pi] (ST(1) = y, ST(0) = x).
    ``wrap`` (here and in f2xm1, fyl2x, fyl2xp1): the unmasked OE/UE of :func:`round_pack`,
    so a tiny or huge result is scaled by 2**∓24576 as the host does."""
    cy, sy, ey, my = unpack(F80, y)
    cx, sx, ex, mx = unpack(F80, x)
    if cy >= QNAN or cx >= QNAN:
        return propagate_nan(F80, x, cx, y, cy, False)
    flags = (DE if cy == DENORMAL else 0) | (DE if cx == DENORMAL else 0)
    p = 256
    if cy == ZERO or (cx == INF and cy != INF):
        if sx:  # ±pi
            return _result(sy, _pi(p), p, rc)[0], flags | PE
        return F80.zero(sy), flags
    if cx == ZERO or (cy == INF and cx != INF):
        r, f = _result(sy, _pi(p) >> 1, p, rc)
        return r, flags | f
    if cy == INF:  # both infinite: ±pi/4 or ±3pi/4
        v = _pi(p) >> 2
        if sx:
            v *= 3
        r, f = _result(sy, v, p, rc)
        return r, flags | f
    ly = ey + my.bit_length()
    lx = ex + mx.bit_length()
    if ly - lx < TINY_LEAD and not sx:  # atan t < t: y/x rounded a hair low
        k = 140
        q, rem = divmod(my << k, mx)
        bits, fl = round_pack(F80, sy, ey - ex - k - 2, (q << 2) - (0 if rem else 1), rc, 0,
                              False, wrap)
        return bits, flags | fl | PE
    if ly <= lx:
        p = max(256, 200 - (ly - lx))
        t = (my << (ey - ex + p)) // mx
        theta = _atan_fixed(t, p)
    else:
        t = (mx << (ex - ey + p)) // my if ex - ey + p >= 0 else 0
        theta = (_pi(p) >> 1) - _atan_fixed(t, p)
    if sx:
        theta = _pi(p) - theta
    r, f = _result(sy, theta, p, rc, wrap)
    return r, flags | f


def f2xm1(a: int, rc: int = RC_NEAREST, wrap: int = 0) -> tuple[int, int]:
    """F2XM1: 2**x - 1 for -1 <= x <= 1; outside that range (undefined in the SDM) x is
    returned unchanged with PE, as the host does."""
    c, s, e, m = unpack(F80, a)
    if c >= QNAN:
        if c == UNSUPPORTED:
            return F80.indefinite, IE
        return a | F80.qbit, (IE if c == SNAN else 0)
    if c == ZERO:
        return a, 0
    if c == INF:  # 2**-inf - 1 = -1, 2**inf - 1 = inf, both exact
        return (0xBFFF8000000000000000 if s else a), 0
    flags = DE if c == DENORMAL else 0
    lead = e + m.bit_length()
    if lead > 1 or (lead == 1 and m & (m - 1)):  # |x| > 1
        return a, flags | PE
    p = _precision(e, m)
    x = _fixed(e, m, p)
    if s:
        x = -x
    n = x >> p  # floor
    f = x - (n << p)
    if n and f > 1 << (p - 1):
        n += 1
        f -= 1 << p
    y = f * _ln2(p) >> p  # f * ln 2, |y| <= ln2/2
    total = term = y
    k = 1
    while term:
        k += 1
        term = (term * y >> p) // k
        total += term
    # 2**x - 1 = 2**n * (1 + total) - 1
    if n >= 0:
        v = ((1 << p) + total << n) - (1 << p)
    else:
        v = (((1 << p) + total) >> -n) - (1 << p)
    exact = f == 0 and n != 0
    if exact:
        v = (1 << (p + n)) - (1 << p) if n >= 0 else (1 << p >> -n) - (1 << p)
        sgn = 1 if v < 0 else 0
        bits, fl = round_pack(F80, sgn, -p, abs(v), rc, 0, False, wrap)
        return bits, flags | fl
    r, fl = _result(0, v, p, rc, wrap)
    return r, flags | fl


def _log2_fixed(e: int, m: int, p: int) -> tuple[int, bool]:
    """(log2(m * 2**e) in fixed point, exact)."""
    n = m.bit_length()
    lead = e + n - 1
    if m & (m - 1) == 0:
        return lead << p, True
    # mantissa in [1, 2): u = (mt - 1)/(mt + 1), ln mt = 2 atanh u
    u = ((m - (1 << (n - 1))) << p) // (m + (1 << (n - 1)))
    ln = 2 * _atanh_fixed(u, p)
    return (lead << p) + (ln << p) // _ln2(p), False


def fyl2x(y: int, x: int, rc: int = RC_NEAREST, prec: int = 0, wrap: int = 0
          ) -> tuple[int, int]:
    """FYL2X: y * log2(x) (ST(1) = y, ST(0) = x)."""
    cy, sy, ey, my = unpack(F80, y)
    cx, sx, ex, mx = unpack(F80, x)
    if cy >= QNAN or cx >= QNAN:
        return propagate_nan(F80, x, cx, y, cy, False)
    flags = (DE if cy == DENORMAL else 0) | (DE if cx == DENORMAL else 0)
    if sx and cx != ZERO:
        return F80.indefinite, IE
    if cx == ZERO:
        if cy == ZERO:
            return F80.indefinite, IE
        if cy == INF:
            return F80.inf(sy ^ 1), flags
        return F80.inf(sy ^ 1), ZE  # like a zero divide: no DE
    if cx == INF:
        if cy == ZERO:
            return F80.indefinite, IE
        return F80.inf(sy), flags
    is_one = mx & (mx - 1) == 0 and ex + mx.bit_length() - 1 == 0
    if cy == INF:
        if is_one:
            return F80.indefinite, IE
        below = ex + mx.bit_length() - 1 < 0
        return F80.inf(sy ^ (1 if below else 0)), flags
    if cy == ZERO:
        below = ex + mx.bit_length() - 1 < 0
        return F80.zero(sy ^ (1 if below else 0)), flags
    p = 320
    lg, exact = _log2_fixed(ex, mx, p)
    if lg == 0:
        return F80.zero(sy), flags
    sign = sy ^ (1 if lg < 0 else 0)
    lg = abs(lg)
    if exact:  # x a power of two: the host still reports PE, and UE for a tiny result
        bits, fl = round_pack(F80, sign, ey - p, my * lg, rc, prec, False, wrap)
        if bits & 0x7FFF << 64 == 0:
            fl |= UE
        return bits, flags | fl | PE
    bits, fl = round_pack(F80, sign, ey - p - 1, (my * lg << 1) | 1, rc, prec, False, wrap)
    return bits, flags | fl | PE


def fyl2xp1(y: int, x: int, rc: int = RC_NEAREST, prec: int = 0, wrap: int = 0
            ) -> tuple[int, int]:
    """FYL2XP1: y * log2(x + 1) (the SDM defines |x| < 1 - sqrt(2)/2; x86vm computes it for
    any x > -1)."""
    cy, sy, ey, my = unpack(F80, y)
    cx, sx, ex, mx = unpack(F80, x)
    if cy >= QNAN or cx >= QNAN:
        return propagate_nan(F80, x, cx, y, cy, False)
    flags = (DE if cy == DENORMAL else 0) | (DE if cx == DENORMAL else 0)
    if cx == INF or cy == INF:
        if cx == ZERO or cy == ZERO or (cx == INF and sx):
            return F80.indefinite, IE
        return F80.inf(sy ^ sx), flags
    if cx == ZERO or cy == ZERO:
        return F80.zero(sy ^ sx), flags
    lead = ex + mx.bit_length()
    if sx and lead > 0:  # x <= -1 (undefined in the SDM): x itself with PE, as the host does
        return x, flags | PE
    p = max(320, 256 - lead)
    xf = _fixed(ex, mx, p)
    if sx:
        xf = -xf
    # ln(1 + x) = 2 atanh(x / (2 + x)); large x: via log2 of 1+x
    if abs(xf) <= (1 << p) // 2:
        u = (xf << p) // ((2 << p) + xf) if xf >= 0 else -((-xf << p) // ((2 << p) + xf))
        lg = (2 * _atanh_fixed(u, p) << p) // _ln2(p)
    else:
        n = _fixed(0, 1, p) + xf
        lg, _ = _log2_fixed(-p, n, p)
    sign = sy ^ (1 if lg < 0 else 0)
    bits, fl = round_pack(F80, sign, ey - p - 1, (my * abs(lg) << 1) | 1, rc, prec, False,
                          wrap)
    return bits, flags | fl | PE
