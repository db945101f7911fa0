"""Binary floating point with exact integer arithmetic: formats, classification, rounding.

A value travels as its bit pattern (an ``int``). To compute, it is *unpacked* into a class
code and an exact ``(sign, exp, sig)`` triple meaning ``(-1)**sign * sig * 2**exp``; a result
is an exact triple handed to :func:`round_pack`, which rounds it once to the destination
precision and encodes it. Nothing goes through a Python ``float``.

Exception flags are an ``int`` in the x87 status-word / MXCSR layout (SDM Vol. 1 §8.1.3.1,
§10.2.3): IE=1, DE=2, ZE=4, OE=8, UE=0x10, PE=0x20; ``C1`` (0x200) is the x87 "rounded up"
bit (SDM Vol. 1 Table 8-1).

Tininess is detected after rounding (unbounded exponent, destination precision), as the
host CPU does; a masked underflow (UE) is reported only when the tiny result is also inexact
(SDM Vol. 1 §4.9.1.5).
"""

from __future__ import annotations

# -- exception flags (status word / MXCSR bit positions) ----------------------------------------
IE = 0x01  # invalid operation
DE = 0x02  # denormal operand
ZE = 0x04  # divide by zero
OE = 0x08  # overflow
UE = 0x10  # underflow
PE = 0x20  # precision (inexact)
C1 = 0x200  # x87: the result was rounded up in magnitude
WRAP_UNBOUNDED = 0x1000  # round_pack wrap flag: report OE/UE with PE from an unbounded exponent

# -- rounding control (x87 CW.RC and MXCSR.RC share the encoding, SDM Vol. 1 Table 4-8) ----------
RC_NEAREST = 0
RC_DOWN = 1
RC_UP = 2
RC_ZERO = 3

# -- operand classes (SDM Vol. 1 Table 4-3 and, for the 80-bit format, Table 8-3) ----------------
ZERO = 0
NORMAL = 1
DENORMAL = 2  # includes the 80-bit pseudo-denormal (exponent 0, J=1)
INF = 3
QNAN = 4
SNAN = 5
UNSUPPORTED = 6  # 80-bit pseudo-NaN, pseudo-infinity, unnormal


class Fmt:
    """An IEEE-754 binary interchange format: ``ebits`` exponent bits, ``fbits`` stored fraction
    bits, ``explicit`` when the integer bit J is stored (x87 double extended)."""

    __slots__ = ("name", "ebits", "fbits", "explicit", "bias", "emin", "emax", "prec",
                 "width", "emask", "fmask", "sign_bit", "qbit", "indefinite", "inf_exp")

    def __init__(self, name: str, ebits: int, fbits: int, explicit: bool) -> None:
        self.name = name
        self.ebits = ebits
        self.fbits = fbits  # stored bits after the binary point
        self.explicit = explicit
        self.bias = (1 << (ebits - 1)) - 1
        self.emin = 1 - self.bias
        self.emax = self.bias
        self.prec = fbits + 1
        self.width = 1 + ebits + fbits + (1 if explicit else 0)
        self.emask = (1 << ebits) - 1
        self.fmask = (1 << fbits) - 1
        self.sign_bit = 1 << (self.width - 1)
        self.qbit = 1 << (fbits - 1)  # quiet bit of a NaN's fraction
        self.inf_exp = self.emask
        jbit = (1 << fbits) if explicit else 0
        self.indefinite = (self.sign_bit | (self.emask << (self.width - 1 - ebits))
                           | jbit | self.qbit)

    def __repr__(self) -> str:
        return f"Fmt({self.name})"

    # bit-pattern helpers ---------------------------------------------------------------
    def pack_fields(self, sign: int, bexp: int, frac: int) -> int:
        """Bits from sign, biased exponent and the significand field (J included if explicit)."""
        return (sign << (self.width - 1)) | (bexp << (self.width - 1 - self.ebits)) | frac

    def inf(self, sign: int) -> int:
        j = (1 << self.fbits) if self.explicit else 0
        return self.pack_fields(sign, self.emask, j)

    def zero(self, sign: int) -> int:
        return sign << (self.width - 1)

    def max_finite(self, sign: int, prec: int) -> int:
        sig = ((1 << prec) - 1) << (self.prec - prec)
        if not self.explicit:
            sig &= self.fmask
        return self.pack_fields(sign, self.emask - 1, sig)


F32 = Fmt("binary32", 8, 23, False)
F64 = Fmt("binary64", 11, 52, False)
F80 = Fmt("extended", 15, 63, True)


def unpack(fmt: Fmt, bits: int) -> tuple[int, int, int, int]:
    """``(cls, sign, exp, sig)`` of a bit pattern; for finite values the value is exactly
    ``(-1)**sign * sig * 2**exp``; for NaNs ``sig`` is the fraction field (without J)."""
    fbits = fmt.fbits
    width = fmt.width
    sign = bits >> (width - 1) & 1
    bexp = bits >> (width - 1 - fmt.ebits) & fmt.emask
    frac = bits & fmt.fmask
    if fmt.explicit:
        j = bits >> fbits & 1
        if bexp == 0:
            if j:
                return DENORMAL, sign, fmt.emin - fbits, frac | (1 << fbits)  # pseudo-denormal
            if frac == 0:
                return ZERO, sign, 0, 0
            return DENORMAL, sign, fmt.emin - fbits, frac
        if bexp == fmt.emask:
            if not j:
                return UNSUPPORTED, sign, 0, frac  # pseudo-infinity / pseudo-NaN
            if frac == 0:
                return INF, sign, 0, 0
            return (QNAN if frac & fmt.qbit else SNAN), sign, 0, frac
        if not j:
            return UNSUPPORTED, sign, 0, frac  # unnormal
        return NORMAL, sign, bexp - fmt.bias - fbits, frac | (1 << fbits)
    if bexp == 0:
        if frac == 0:
            return ZERO, sign, 0, 0
        return DENORMAL, sign, fmt.emin - fbits, frac
    if bexp == fmt.emask:
        if frac == 0:
            return INF, sign, 0, 0
        return (QNAN if frac & fmt.qbit else SNAN), sign, 0, frac
    return NORMAL, sign, bexp - fmt.bias - fbits, frac | (1 << fbits)


def classify(fmt: Fmt, bits: int) -> int:
    """The operand class of ``bits`` (ZERO, NORMAL, DENORMAL, INF, QNAN, SNAN, UNSUPPORTED)."""
    return unpack(fmt, bits)[0]


def is_nan_cls(cls: int) -> bool:
    return cls == QNAN or cls == SNAN


def quiet(fmt: Fmt, bits: int) -> int:
    """A NaN with its quiet bit set."""
    return bits | fmt.qbit


def nan_convert(src: Fmt, dst: Fmt, bits: int) -> int:
    """A NaN carried to another format: sign kept, fraction truncated or zero-extended from
    the top, quieted (SDM Vol. 1 §4.8.3.6)."""
    sign = bits >> (src.width - 1) & 1
    frac = bits & src.fmask
    if dst.fbits >= src.fbits:
        frac <<= dst.fbits - src.fbits
    else:
        frac >>= src.fbits - dst.fbits
    frac |= dst.qbit
    if dst.explicit:
        frac |= 1 << dst.fbits
    return dst.pack_fields(sign, dst.emask, frac)


def round_pack(fmt: Fmt, sign: int, exp: int, sig: int, rc: int = RC_NEAREST,
               prec: int = 0, ftz: bool = False, wrap: int = 0) -> tuple[int, int]:
    """Round ``(-1)**sign * sig * 2**exp`` (exact, ``sig > 0``) to ``prec`` significant bits
    (default: the format's) within ``fmt``'s exponent range; return ``(bits, flags)``.

    ``ftz``: a tiny result becomes a signed zero with UE|PE (MXCSR.FTZ, masked underflow).
    ``wrap``: OE and/or UE, the exceptions that are unmasked with an x87 register destination
    (SDM Vol. 1 §4.9.2, §8.5.4, §8.5.5): an overflow (underflow) then returns the result scaled
    by 2**-a (2**a), a = 3 * 2**(ebits-2) (24576 for the 80-bit format), with OE (UE) set; an
    unmasked underflow is reported on tininess alone. With ``WRAP_UNBOUNDED`` (SSE, where no
    result is delivered) PE is whether rounding to ``prec`` bits with an unbounded exponent is
    inexact, however far out of range the value is.
    """
    if not prec:
        prec = fmt.prec
    emin = fmt.emin
    n = sig.bit_length()
    e = exp + n - 1  # exponent of the leading bit
    flags = 0
    q = (e if e > emin else emin) - prec + 1  # exponent of the last kept bit
    if q > exp:
        shift = q - exp
        keep = sig >> shift
        rem = sig & ((1 << shift) - 1)
        if rem:
            flags = PE
            if rc == RC_NEAREST:
                half = 1 << (shift - 1)
                up = rem > half or (rem == half and keep & 1)
            elif rc == RC_ZERO:
                up = False
            elif rc == RC_DOWN:
                up = sign == 1
            else:
                up = sign == 0
            if up:
                keep += 1
                flags |= C1
    else:
        keep = sig << (exp - q)
        rem = 0
    # tininess after rounding: is the value rounded with an unbounded exponent below 2**emin?
    if e < emin:
        tiny = True
        if e == emin - 1:
            q2 = e - prec + 1
            shift2 = q2 - exp
            if shift2 > 0:
                k2 = sig >> shift2
                r2 = sig & ((1 << shift2) - 1)
                if r2:
                    if rc == RC_NEAREST:
                        h2 = 1 << (shift2 - 1)
                        if r2 > h2 or (r2 == h2 and k2 & 1):
                            k2 += 1
                    elif (rc == RC_DOWN and sign) or (rc == RC_UP and not sign):
                        k2 += 1
                tiny = k2.bit_length() + q2 - 1 < emin
        if tiny:
            if wrap & UE:
                if wrap & WRAP_UNBOUNDED:
                    return fmt.zero(sign), UE | _inexact_at(sig, prec)
                adj = 3 << (fmt.ebits - 2)
                if e + adj < emin:  # still tiny after the wrap: a signed zero (host)
                    return fmt.zero(sign), UE | PE
                bits, fl = round_pack(fmt, sign, exp + adj, sig, rc, prec)
                return bits, fl | UE
            if ftz:
                return fmt.zero(sign), UE | PE
            if flags:
                flags |= UE
    if keep == 0:
        return fmt.zero(sign), flags
    kb = keep.bit_length()
    if kb > prec:  # rounding carried into a new binade: keep == 2**prec
        keep >>= 1
        q += 1
        kb -= 1
    E = kb - 1 + q
    if E > fmt.emax:
        if wrap & OE:
            if wrap & WRAP_UNBOUNDED:
                return fmt.inf(sign), OE | _inexact_at(sig, prec)
            adj = 3 << (fmt.ebits - 2)
            if E - adj > fmt.emax:  # still too large after the wrap: infinity (host)
                return fmt.inf(sign), OE | PE | C1
            bits, fl = round_pack(fmt, sign, exp - adj, sig, rc, prec)
            return bits, fl | OE
        flags = OE | PE
        if rc == RC_NEAREST or (rc == RC_UP and not sign) or (rc == RC_DOWN and sign):
            return fmt.inf(sign), flags | C1
        return fmt.max_finite(sign, prec), flags
    fbits = fmt.fbits
    if E >= emin:
        frac = keep << (fbits - kb + 1)  # leading bit at position fbits
        if not fmt.explicit:
            frac &= fmt.fmask
        return fmt.pack_fields(sign, E + fmt.bias, frac), flags
    return fmt.pack_fields(sign, 0, keep << (q - emin + fbits)), flags


def _inexact_at(sig: int, prec: int) -> int:
    """PE when ``sig`` does not fit in ``prec`` significant bits."""
    shift = sig.bit_length() - prec
    return PE if shift > 0 and sig & ((1 << shift) - 1) else 0


def round_to_int(sign: int, exp: int, sig: int, rc: int) -> tuple[int, bool, bool]:
    """``|value|`` rounded to an integer by ``rc``: ``(magnitude, inexact, rounded_up)``."""
    if exp >= 0:
        return sig << exp, False, False
    shift = -exp
    keep = sig >> shift
    rem = sig & ((1 << shift) - 1)
    if not rem:
        return keep, False, False
    if rc == RC_NEAREST:
        half = 1 << (shift - 1)
        up = rem > half or (rem == half and keep & 1)
    elif rc == RC_ZERO:
        up = False
    elif rc == RC_DOWN:
        up = sign == 1
    else:
        up = sign == 0
    return keep + (1 if up else 0), True, bool(up)
