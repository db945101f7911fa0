"""Operand generators for the floating-point differential tests: edge cases (zeros, denormals,
pseudo-denormals, unsupported 80-bit encodings, infinities, NaNs, extreme normals) mixed with
random values, and pairs whose exponents are close so that sums and quotients land on every
rounding boundary."""

from __future__ import annotations

import random

from x86vm.cpu.fp.core import F32, F64, F80, Fmt


def _pack(fmt: Fmt, sign: int, bexp: int, frac: int, j: int = 1) -> int:
    if fmt.explicit:
        frac = (frac & fmt.fmask) | (j << fmt.fbits)
    return fmt.pack_fields(sign, bexp, frac & ((1 << (fmt.fbits + fmt.explicit)) - 1))


def _frac(rng: random.Random, fmt: Fmt) -> int:
    """A fraction with long runs of 0s/1s at the rounding positions more often than chance."""
    kind = rng.randrange(6)
    n = fmt.fbits
    if kind == 0:
        return rng.getrandbits(n)
    if kind == 1:  # a short random head then zeros or ones
        k = rng.randrange(n + 1)
        tail = (1 << (n - k)) - 1 if rng.randrange(2) else 0
        return (rng.getrandbits(k) << (n - k)) | tail if k else tail
    if kind == 2:  # one or two bits
        v = 1 << rng.randrange(n)
        return v | (1 << rng.randrange(n)) if rng.randrange(2) else v
    if kind == 3:  # all ones minus a little
        return ((1 << n) - 1) ^ rng.getrandbits(rng.randrange(1, 8))
    if kind == 4:  # a tie at a precision-control boundary (24/53 bits) of an 80-bit value
        pos = rng.choice((n - 23, n - 52, n - 23 - 1, n - 52 - 1, 1, 2))
        pos = max(pos, 1)
        head = rng.getrandbits(n) >> pos << pos
        return head | (1 << (pos - 1)) | (rng.randrange(2) if rng.randrange(3) == 0 else 0)
    return rng.getrandbits(n) & ~rng.getrandbits(n)


def special(rng: random.Random, fmt: Fmt) -> int:
    """One edge-case value."""
    s = rng.randrange(2)
    emax = fmt.emask
    fr = _frac(rng, fmt)
    k = rng.randrange(14 if fmt.explicit else 10)
    if k == 0:
        return fmt.zero(s)
    if k == 1:  # denormal
        return _pack(fmt, s, 0, fr or 1, 0)
    if k == 2:
        return fmt.inf(s)
    if k == 3:  # QNaN
        return _pack(fmt, s, emax, fr | fmt.qbit)
    if k == 4:  # SNaN
        return _pack(fmt, s, emax, (fr & ~fmt.qbit) or 1)
    if k == 5:
        return fmt.indefinite
    if k == 6:  # smallest / largest normals
        return _pack(fmt, s, rng.choice((1, 2, emax - 1, emax - 2)), fr)
    if k == 7:
        return _pack(fmt, s, 0, 1, 0)
    if k == 8:
        return _pack(fmt, s, fmt.bias + rng.randrange(-2, 3), rng.choice((0, fr)))
    if k == 9:
        return _pack(fmt, s, emax - 1, fmt.fmask)
    # 80-bit only: pseudo-denormal, pseudo-infinity, pseudo-NaN, unnormal
    if k == 10:
        return _pack(fmt, s, 0, fr, 1)
    if k == 11:
        return _pack(fmt, s, emax, 0, 0)
    if k == 12:
        return _pack(fmt, s, emax, fr or 1, 0)
    return _pack(fmt, s, rng.randrange(1, emax), fr, 0)


def normal(rng: random.Random, fmt: Fmt, bexp: int | None = None) -> int:
    if bexp is None:
        r = rng.randrange(4)
        if r == 0:
            bexp = rng.randrange(1, fmt.emask)
        elif r == 1:  # near the bottom: results become denormal
            bexp = rng.randrange(1, min(fmt.emask - 1, 80))
        elif r == 2:  # near the top: results overflow
            bexp = rng.randrange(max(1, fmt.emask - 80), fmt.emask)
        else:
            bexp = fmt.bias + rng.randrange(-40, 40)
    return _pack(fmt, rng.randrange(2), max(1, min(fmt.emask - 1, bexp)), _frac(rng, fmt))


def value(rng: random.Random, fmt: Fmt) -> int:
    return special(rng, fmt) if rng.randrange(4) == 0 else normal(rng, fmt)


def pair(rng: random.Random, fmt: Fmt, op: str = "") -> tuple[int, int]:
    """Two operands; usually the second's exponent is near the first's (or near the one that
    makes a product/quotient overflow or underflow)."""
    a = value(rng, fmt)
    r = rng.randrange(5)
    if r == 0:
        return a, value(rng, fmt)
    bexp = (a >> (fmt.width - 1 - fmt.ebits)) & fmt.emask
    if r == 1 and op in ("mul", "div"):
        # a product/quotient near the range limits
        target = rng.choice((1, fmt.emask - 1, rng.randrange(1, 70)))
        be = target - bexp + fmt.bias if op == "mul" else bexp - target + fmt.bias
    else:
        be = bexp + rng.randrange(-70, 71) if r < 4 else bexp + rng.randrange(-3, 4)
    if not 0 < be < fmt.emask:
        be = max(1, min(fmt.emask - 1, be))
    b = normal(rng, fmt, be)
    if r == 3 and op == "add":  # cancellation
        b = (b & ~fmt.sign_bit) | ((a ^ fmt.sign_bit) & fmt.sign_bit)
    return (b, a) if rng.randrange(2) else (a, b)


def any_bits(rng: random.Random, fmt: Fmt) -> int:
    return rng.getrandbits(fmt.width)


FORMATS = {"f32": F32, "f64": F64, "f80": F80}
