"""The x87 FPU: its state and one function per x87 instruction family (SDM Vol. 1 ch. 8).

The CPU core owns the decoding and the memory accesses; it calls these functions with
register indices and memory operand *bit patterns* and gets back what to store. Every
operation updates the status word (exception flags, C0-C3, SF, ES/B) as the SDM says and
returns ``True`` when an unmasked exception is now pending (SW.ES): the core then raises #MF
(CR0.NE=1) before the *next* waiting x87/MMX instruction, or asserts FERR# (CR0.NE=0).
Masked responses (QNaN indefinite, infinity, denormal or zero results, the x87 overflow and
underflow exponent wrap for unmasked OE/UE) are applied here. See docs/cpu-fp.md.
"""

from __future__ import annotations

from .fp import images, ops, transcendental, x87ops
from .fp.core import (
    C1,
    DE,
    F32,
    F64,
    F80,
    IE,
    INF,
    NORMAL,
    OE,
    PE,
    QNAN,
    SNAN,
    UE,
    UNSUPPORTED,
    ZE,
    ZERO,
    Fmt,
    round_pack,
    unpack,
)

# status word (SDM Vol. 1 Figure 8-4)
SW_SF = 0x40
SW_ES = 0x80
SW_C0 = 0x100
SW_C1 = 0x200
SW_C2 = 0x400
SW_C3 = 0x4000
SW_B = 0x8000
SW_TOP_SHIFT = 11
SW_CC = SW_C0 | SW_C1 | SW_C2 | SW_C3
# control word (SDM Vol. 1 Figure 8-6)
CW_MASKS = 0x3F
CW_PC_SHIFT = 8
CW_RC_SHIFT = 10
CW_INIT = 0x037F

# tags (SDM Vol. 1 Figure 8-7)
TAG_VALID = 0
TAG_ZERO = 1
TAG_SPECIAL = 2
TAG_EMPTY = 3

INDEFINITE = F80.indefinite
_PRECISION = (24, 64, 53, 64)  # PC field → significand bits (01 is reserved; the host uses 64)
_PRE_OP = IE | DE | ZE  # exceptions detected before the operation: no result when unmasked
_PRE_KEEP = _PRE_OP | 0x40  # what such a fault still reports (SF with a stack fault)

# arithmetic operation ids for arith()
FADD, FMUL, FSUB, FSUBR, FDIV, FDIVR = range(6)


class X87:
    """x87 state: physical registers R0-R7 as 80-bit patterns, TOP, empty-register bits (the
    full tag word is derived from contents, as FXRSTOR-era processors do), control and status
    words, last-instruction pointers and opcode."""

    __slots__ = ("regs", "top", "empty", "cw", "sw", "fip", "fcs", "fdp", "fds", "fop")

    def __init__(self) -> None:
        self.regs = [0] * 8
        self.finit()
        self.regs = [0] * 8

    def finit(self) -> None:
        """FNINIT (SDM Vol. 1 Table 8-2): CW=037F, SW=0, all tags empty, pointers zero."""
        self.top = 0
        self.empty = 0xFF
        self.cw = CW_INIT
        self.sw = 0  # without TOP
        self.fip = self.fcs = self.fdp = self.fds = self.fop = 0

    # -- words ------------------------------------------------------------------------------
    @property
    def status_word(self) -> int:
        return (self.sw & ~0x3800) | (self.top << SW_TOP_SHIFT)

    @status_word.setter
    def status_word(self, value: int) -> None:
        self.top = value >> SW_TOP_SHIFT & 7
        self.sw = value & ~0x3800 & 0xFFFF

    @property
    def rc(self) -> int:
        return self.cw >> CW_RC_SHIFT & 3

    @property
    def prec(self) -> int:
        return _PRECISION[self.cw >> CW_PC_SHIFT & 3]

    def tag(self, phys: int) -> int:
        """The full 2-bit tag of physical register ``phys`` (SDM Vol. 1 §8.1.7)."""
        if self.empty >> phys & 1:
            return TAG_EMPTY
        return tag_of(self.regs[phys])

    @property
    def tag_word(self) -> int:
        return sum(self.tag(i) << (2 * i) for i in range(8))

    @tag_word.setter
    def tag_word(self, value: int) -> None:
        self.empty = sum(1 << i for i in range(8) if (value >> (2 * i) & 3) == TAG_EMPTY)

    # -- stack ------------------------------------------------------------------------------
    def phys(self, i: int) -> int:
        return (self.top + i) & 7

    def st(self, i: int) -> int:
        return self.regs[(self.top + i) & 7]

    def is_empty(self, i: int) -> bool:
        return bool(self.empty >> ((self.top + i) & 7) & 1)

    def set_st(self, i: int, bits: int) -> None:
        p = (self.top + i) & 7
        self.regs[p] = bits
        self.empty &= ~(1 << p)

    def pop(self) -> None:
        self.empty |= 1 << self.top
        self.top = (self.top + 1) & 7

    def push(self, bits: int) -> None:
        self.top = (self.top - 1) & 7
        self.regs[self.top] = bits
        self.empty &= ~(1 << self.top)

    # -- exceptions -------------------------------------------------------------------------
    def signal(self, flags: int) -> bool:
        """OR the exception flags into SW, set C1 from the round-up bit, update ES/B.
        Returns whether an unmasked exception is pending."""
        sw = self.sw | (flags & 0x7F)
        sw = (sw & ~SW_C1) | (flags & C1)
        if sw & ~self.cw & 0x3F:
            sw |= SW_ES | SW_B
        self.sw = sw
        return bool(sw & SW_ES)

    def update_es(self) -> bool:
        """Set ES and B when an exception flag is unmasked (FLDCW, FLDENV, FRSTOR, FXRSTOR);
        C1 and the other condition codes are left alone, as on the host."""
        if self.sw & ~self.cw & 0x3F:
            self.sw |= SW_ES | SW_B
        return bool(self.sw & SW_ES)

    def unmasked(self, flags: int) -> int:
        return flags & ~self.cw & 0x3F

    def stack_underflow(self) -> int:
        """Flags of an x87 stack underflow (IE, SF, C1=0)."""
        return IE | SW_SF

    def stack_overflow(self) -> int:
        """Flags of an x87 stack overflow (IE, SF, C1=1)."""
        return IE | SW_SF | C1


def tag_of(bits: int) -> int:
    c = unpack(F80, bits)[0]
    if c == ZERO:
        return TAG_ZERO
    if c == NORMAL:
        return TAG_VALID
    return TAG_SPECIAL


def _wrap(x: X87) -> int:
    return (OE | UE) & ~x.cw


def _store(x: X87, dst: int, bits: int, flags: int, pop: bool) -> bool:
    """Common tail of an arithmetic instruction: write the result unless a pre-operation
    exception is unmasked, pop if asked, signal."""
    if x.unmasked(flags & _PRE_OP):
        return x.signal(flags & _PRE_KEEP)
    x.set_st(dst, bits)
    if pop:
        x.pop()
    return x.signal(flags)


def _binop(x: X87, op: int, a: int, b: int) -> tuple[int, int]:
    rc = x.rc
    prec = x.prec
    wrap = _wrap(x)
    if op == FADD:
        return ops.add(F80, a, b, rc, prec, False, False, False, wrap)
    if op == FMUL:
        return ops.mul(F80, a, b, rc, prec, False, False, False, wrap)
    if op == FSUB:
        return ops.sub(F80, a, b, rc, prec, False, False, False, wrap)
    if op == FSUBR:
        return ops.sub(F80, b, a, rc, prec, False, False, False, wrap)
    if op == FDIV:
        return ops.div(F80, a, b, rc, prec, False, False, False, wrap)
    return ops.div(F80, b, a, rc, prec, False, False, False, wrap)


def arith(x: X87, op: int, dst: int, src: int, pop: bool = False) -> bool:
    """``ST(dst) = ST(dst) op ST(src)`` (FADD/FMUL/FSUB/FSUBR/FDIV/FDIVR with register
    operands, and the ...P forms with ``pop``)."""
    if x.is_empty(dst) or x.is_empty(src):
        return _store(x, dst, INDEFINITE, x.stack_underflow(), pop)
    bits, flags = _binop(x, op, x.st(dst), x.st(src))
    return _store(x, dst, bits, flags, pop)


def arith_mem(x: X87, op: int, fmt: Fmt, value: int) -> bool:
    """``ST(0) = ST(0) op m32fp/m64fp`` (``fmt`` F32 or F64, ``value`` the memory bits)."""
    if x.is_empty(0):
        return _store(x, 0, INDEFINITE, x.stack_underflow(), False)
    b, fl = ops.extend(fmt, value)
    a = x.st(0)
    bits, flags = _binop(x, op, a, b)
    if fl and not flags & (IE | ZE) and unpack(F80, a)[0] < QNAN:
        flags |= fl
    return _store(x, 0, bits, flags, False)


def arith_int(x: X87, op: int, value: int, width: int) -> bool:
    """``ST(0) = ST(0) op m16int/m32int`` (FIADD...; ``value`` the memory bits)."""
    if x.is_empty(0):
        return _store(x, 0, INDEFINITE, x.stack_underflow(), False)
    b, _ = ops.from_int(F80, value, width)
    bits, flags = _binop(x, op, x.st(0), b)
    return _store(x, 0, bits, flags, False)


def _underflow0(x: X87) -> bool:
    return _store(x, 0, INDEFINITE, x.stack_underflow(), False)


def fsqrt(x: X87) -> bool:
    """FSQRT: ST(0) = sqrt(ST(0)), rounded by RC and PC."""
    if x.is_empty(0):
        return _underflow0(x)
    bits, flags = ops.sqrt(F80, x.st(0), x.rc, x.prec)
    return _store(x, 0, bits, flags, False)


def frndint(x: X87) -> bool:
    """FRNDINT: ST(0) rounded to an integral value by RC."""
    if x.is_empty(0):
        return _underflow0(x)
    bits, flags = ops.round_integral(F80, x.st(0), x.rc)
    return _store(x, 0, bits, flags, False)


def fabs(x: X87) -> bool:
    """FABS: clear the sign (no exception but stack underflow; C1 cleared)."""
    if x.is_empty(0):
        return _underflow0(x)
    return _store(x, 0, x.st(0) & ~F80.sign_bit, 0, False)


def fchs(x: X87) -> bool:
    """FCHS: invert the sign."""
    if x.is_empty(0):
        return _underflow0(x)
    return _store(x, 0, x.st(0) ^ F80.sign_bit, 0, False)


def fscale(x: X87) -> bool:
    """FSCALE: ST(0) = ST(0) * 2**trunc(ST(1))."""
    if x.is_empty(0) or x.is_empty(1):
        return _store(x, 0, INDEFINITE, x.stack_underflow(), False)
    bits, flags = x87ops.fscale(x.st(0), x.st(1), x.rc, 64, _wrap(x))  # PC does not apply
    return _store(x, 0, bits, flags, False)


def fprem(x: X87, ieee: bool = False) -> bool:
    """FPREM (``ieee=False``) / FPREM1: ST(0) = partial remainder of ST(0) / ST(1);
    C2 = incomplete, C0/C3/C1 = quotient bits 2/1/0."""
    if x.is_empty(0) or x.is_empty(1):
        x.sw &= ~SW_C2
        return _store(x, 0, INDEFINITE, x.stack_underflow(), False)
    bits, flags, cbits = x87ops.fprem(x.st(0), x.st(1), ieee, _wrap(x))
    if flags & IE or unpack(F80, bits)[0] >= QNAN:
        # a NaN result: C0 and C3 keep their values, C1 and C2 are cleared (host behaviour)
        x.sw &= ~SW_C2
        return _store(x, 0, bits, flags & ~C1, False)
    if not x.unmasked(flags & _PRE_OP):
        x.sw = (x.sw & ~SW_CC) | (cbits & ~SW_C1)
        flags = (flags & ~C1) | (cbits & C1)
    return _store(x, 0, bits, flags, False)


def fxtract(x: X87) -> bool:
    """FXTRACT: ST(0) = exponent, then push the significand."""
    if x.is_empty(0) or not x.is_empty(7):
        # masked: ST(0) and the pushed significand are both indefinite (host)
        flags = x.stack_underflow() if x.is_empty(0) else x.stack_overflow()
        if x.unmasked(flags):
            return x.signal(flags)
        x.set_st(0, INDEFINITE)
        x.push(INDEFINITE)
        return x.signal(flags)
    ex, sig, flags = x87ops.fxtract(x.st(0))
    if x.unmasked(flags & _PRE_OP):
        return x.signal(flags & _PRE_KEEP)
    x.set_st(0, ex)
    x.push(sig)
    return x.signal(flags)


# -- loads and stores ---------------------------------------------------------------------------
def fld(x: X87, bits: int) -> bool:
    """Push an 80-bit pattern (FLD m80fp, FLD ST(i) after reading it, constants)."""
    if not x.is_empty(7):
        flags = x.stack_overflow()
        if not x.unmasked(flags):
            x.push(INDEFINITE)
        return x.signal(flags)
    x.push(bits)
    return x.signal(0)


def fld_st(x: X87, i: int) -> bool:
    """FLD ST(i)."""
    if x.is_empty(i):   # an underflow (C1=0) even when ST(7) is in use too (host)
        flags = x.stack_underflow()
        if not x.unmasked(flags):
            x.push(INDEFINITE)
        return x.signal(flags)
    return fld(x, x.st(i))


def fld_mem(x: X87, fmt: Fmt, value: int) -> bool:
    """FLD m32fp/m64fp: convert exactly to 80 bits (DE for a denormal, IE for an SNaN). An
    unmasked IE loads nothing; an unmasked DE still loads (host behaviour)."""
    if not x.is_empty(7):
        return fld(x, 0)
    bits, flags = ops.convert(fmt, F80, value)
    if x.unmasked(flags & IE):
        return x.signal(flags & _PRE_KEEP)
    x.push(bits)
    return x.signal(flags)


def fild(x: X87, value: int, width: int) -> bool:
    """FILD m16int/m32int/m64int (exact)."""
    return fld(x, ops.from_int(F80, value, width)[0])


def fst_mem(x: X87, fmt: Fmt, pop: bool) -> tuple[int | None, bool]:
    """FST/FSTP m32fp/m64fp/m80fp: ``(bits to store or None, #MF pending)``. Nothing is stored
    (and nothing popped) when an unmasked exception prevents it."""
    if x.is_empty(0):
        flags = x.stack_underflow()
        if x.unmasked(flags):
            return None, x.signal(flags)
        bits = fmt.indefinite
    elif fmt is F80:
        bits, flags = x.st(0), 0
    else:
        # an x87 store reports no DE (host behaviour); an unmasked OE/UE stores nothing and
        # reports neither PE nor C1
        bits, flags = ops.convert(F80, fmt, x.st(0), x.rc, 0, False, False, _wrap(x))
        flags &= ~DE
        if x.unmasked(flags & _PRE_OP):
            return None, x.signal(flags & _PRE_KEEP)
        if flags & _wrap(x):
            return None, x.signal(flags & (OE | UE))
    if pop:
        x.pop()
    return bits, x.signal(flags)


def fst_st(x: X87, i: int, pop: bool) -> bool:
    """FST/FSTP ST(i)."""
    if x.is_empty(0):
        flags = x.stack_underflow()
        if x.unmasked(flags):
            return x.signal(flags)
        x.set_st(i, INDEFINITE)
    else:
        x.set_st(i, x.st(0))
        flags = 0
    if pop:
        x.pop()
    return x.signal(flags)


def fist_mem(x: X87, width: int, pop: bool, truncate: bool = False
             ) -> tuple[int | None, bool]:
    """FIST/FISTP (by RC) and FISTTP (``truncate``) to a ``width``-bit integer:
    ``(value to store or None, #MF pending)``; out of range or NaN stores the integer
    indefinite with IE (masked)."""
    if x.is_empty(0):
        flags = x.stack_underflow()
        value = ops.int_indefinite(width)
    else:
        value, flags = ops.to_int(F80, x.st(0), width, 3 if truncate else x.rc)
        flags &= ~DE  # not reported by x87 stores (host behaviour)
    if x.unmasked(flags & _PRE_OP):
        return None, x.signal(flags & _PRE_KEEP)
    if pop:
        x.pop()
    return value, x.signal(flags)


def fxch(x: X87, i: int) -> bool:
    """FXCH ST(i); an empty operand reads as the QNaN indefinite (IE, SF)."""
    flags = 0
    if x.is_empty(0) or x.is_empty(i):
        flags = x.stack_underflow()
        if x.unmasked(flags):
            return x.signal(flags)
        a = INDEFINITE if x.is_empty(0) else x.st(0)
        b = INDEFINITE if x.is_empty(i) else x.st(i)
    else:
        a, b = x.st(0), x.st(i)
    x.set_st(0, b)
    x.set_st(i, a)
    return x.signal(flags)


def fcmov(x: X87, i: int, condition: bool) -> bool:
    """FCMOVcc ST(0), ST(i): the core evaluates the EFLAGS condition; an empty operand is a
    stack underflow whether or not the move happens (masked: ST(0) = indefinite)."""
    if x.is_empty(0) or x.is_empty(i):
        return _store(x, 0, INDEFINITE, x.stack_underflow(), False)
    if condition:
        x.set_st(0, x.st(i))
    return x.signal(x.sw & C1)  # C1 unchanged (host behaviour)


def ffree(x: X87, i: int) -> None:
    """FFREE ST(i): tag it empty (C1 cleared, as on the host)."""
    x.empty |= 1 << x.phys(i)
    x.sw &= ~SW_C1


def fincstp(x: X87) -> None:
    x.top = (x.top + 1) & 7
    x.sw &= ~SW_C1


def fdecstp(x: X87) -> None:
    x.top = (x.top - 1) & 7
    x.sw &= ~SW_C1


def fclex(x: X87) -> None:
    """FCLEX/FNCLEX: clear the exception flags, SF, ES and B."""
    x.sw &= ~(0x3F | SW_SF | SW_ES | SW_B)


def fldcw(x: X87, cw: int) -> bool:
    """FLDCW: a load that unmasks a pending exception sets ES (SDM Vol. 1 §8.6)."""
    x.cw = cw & 0x1F7F | 0x40
    x.sw &= ~(SW_ES | SW_B)
    return x.update_es()


# -- comparisons --------------------------------------------------------------------------------
_CC_OF = {ops.CMP_GT: 0, ops.CMP_LT: SW_C0, ops.CMP_EQ: SW_C3, ops.CMP_UN: SW_C0 | SW_C2 | SW_C3}
# EFLAGS for FCOMI: ZF=0x40, PF=0x04, CF=0x01
_EFL_OF = {ops.CMP_GT: 0, ops.CMP_LT: 0x01, ops.CMP_EQ: 0x40, ops.CMP_UN: 0x45}


def _compare(x: X87, a_empty: bool, a: int, b_empty: bool, b: int, unordered: bool
             ) -> tuple[int, int]:
    if a_empty or b_empty:
        return ops.CMP_UN, x.stack_underflow()
    return ops.compare(F80, a, b, not unordered)


def fcom(x: X87, i: int, unordered: bool = False, pops: int = 0,
         mem: tuple[Fmt, int] | None = None) -> bool:
    """FCOM/FCOMP/FCOMPP/FUCOM... ST(0) with ST(i) (or a memory operand ``(F32|F64, bits)``;
    FICOM passes its integer converted by the caller with ``ops.from_int``): C3/C2/C0."""
    if mem is not None:
        b, fl = ops.extend(mem[0], mem[1])
        rel, flags = _compare(x, x.is_empty(0), x.st(0), False, b, unordered)
        if fl and not flags & IE:
            flags |= fl
    else:
        rel, flags = _compare(x, x.is_empty(0), x.st(0), x.is_empty(i), x.st(i), unordered)
    x.sw = (x.sw & ~SW_CC) | _CC_OF[rel]  # set even when the exception is unmasked
    if x.unmasked(flags & _PRE_OP):
        return x.signal(flags & _PRE_KEEP)
    for _ in range(pops):
        x.pop()
    return x.signal(flags)


def fcomi(x: X87, i: int, unordered: bool = False, pop: bool = False
          ) -> tuple[int, bool]:
    """FCOMI/FCOMIP/FUCOMI/FUCOMIP: ``(ZF|PF|CF bits for EFLAGS, #MF pending)``; the core
    replaces ZF, PF, CF (and clears OF, SF, AF) with them — even when the exception is
    unmasked, as the host does (then nothing is popped)."""
    rel, flags = _compare(x, x.is_empty(0), x.st(0), x.is_empty(i), x.st(i), unordered)
    if not flags & SW_SF:   # C1 is left alone unless the stack underflows (host behaviour)
        flags |= x.sw & C1
    if x.unmasked(flags & _PRE_OP):
        return _EFL_OF[rel], x.signal(flags & (_PRE_KEEP | C1))
    if pop:
        x.pop()
    return _EFL_OF[rel], x.signal(flags)


def ftst(x: X87) -> bool:
    """FTST: compare ST(0) with +0.0."""
    rel, flags = _compare(x, x.is_empty(0), x.st(0), False, 0, False)
    x.sw = (x.sw & ~SW_CC) | _CC_OF[rel]
    return x.signal(flags)


# FXAM classes → C3,C2,C0 (SDM Vol. 2A FXAM)
_FXAM = {UNSUPPORTED: 0, QNAN: SW_C0, SNAN: SW_C0, NORMAL: SW_C2, INF: SW_C2 | SW_C0,
         ZERO: SW_C3, 2: SW_C3 | SW_C2}


def fxam(x: X87) -> None:
    """FXAM: classify ST(0) into C3/C2/C0, its sign into C1 (empty: C3|C0)."""
    bits = x.st(0)
    sign = SW_C1 if bits >> 79 & 1 else 0
    cc = SW_C3 | SW_C0 if x.is_empty(0) else _FXAM[unpack(F80, bits)[0]]
    x.sw = (x.sw & ~SW_CC) | cc | sign


__all__ = [
    "F32", "F64", "F80", "FADD", "FDIV", "FDIVR", "FMUL", "FSUB", "FSUBR", "PE", "X87",
    "arith", "arith_int", "arith_mem", "fabs", "fchs", "fclex", "fcom", "fcomi", "fild",
    "fist_mem", "fld", "fld_mem", "fld_st", "fprem", "frndint", "fscale", "fsqrt", "fst_mem",
    "fst_st", "ftst", "fxam", "fxch", "fxtract",
]


# -- constants (FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ) -------------------------------
def _atanh_inv(n: int, bits: int) -> int:
    """atanh(1/n) in fixed point with ``bits`` fraction bits (integer series)."""
    one = 1 << bits
    total = term = one // n
    k = 1
    n2 = n * n
    while term:
        term //= n2
        k += 2
        total += term // k
    return total


def _constants(bits: int = 256) -> dict[str, int]:
    one = 1 << bits
    # Machin: pi = 16 atan(1/5) - 4 atan(1/239)
    def atan_inv(n: int) -> int:
        total = term = one // n
        k, sgn = 1, 1
        while term:
            term //= n * n
            k += 2
            sgn = -sgn
            total += sgn * (term // k)
        return total
    pi = 16 * atan_inv(5) - 4 * atan_inv(239)
    ln2 = 2 * _atanh_inv(3, bits)
    ln10 = 3 * ln2 + 2 * _atanh_inv(9, bits)  # ln 10 = 3 ln 2 + ln 1.25
    return {"pi": pi, "l2e": (one << bits) // ln2, "l2t": (ln10 << bits) // ln2,
            "lg2": (ln2 << bits) // ln10, "ln2": ln2}


_CONST_FIXED = _constants()
_CONST_NAMES = ("one", "l2t", "l2e", "pi", "lg2", "ln2", "zero")


def constant(name: str, rc: int) -> int:
    """The 80-bit value FLD1/FLDL2T/FLDL2E/FLDPI/FLDLG2/FLDLN2/FLDZ pushes under rounding
    control ``rc`` (``name`` one of one, l2t, l2e, pi, lg2, ln2, zero). Precision control
    does not apply."""
    if name == "one":
        return 0x3FFF8000000000000000
    if name == "zero":
        return 0
    # the irrational constants: 256 fraction bits, then a sticky 1 for the infinite tail
    return round_pack(F80, 0, -257, (_CONST_FIXED[name] << 1) | 1, rc)[0]


def fld_const(x: X87, name: str) -> bool:
    """FLD1 ... FLDZ: push :func:`constant` under the current RC."""
    return fld(x, constant(name, x.rc))


# -- packed BCD ---------------------------------------------------------------------------------
def fbld(x: X87, value: int) -> bool:
    """FBLD m80bcd: push the (exact) value of an 18-digit packed BCD integer."""
    return fld(x, images.bcd_to_f80(value))


def fbstp(x: X87) -> tuple[int | None, bool]:
    """FBSTP m80bcd: ``(packed BCD to store or None, #MF pending)``, then pop."""
    if x.is_empty(0):
        flags = x.stack_underflow()
        value = images.BCD_INDEFINITE
    else:
        value, flags = images.f80_to_bcd(x.st(0), x.rc)
    if x.unmasked(flags & _PRE_OP):
        return None, x.signal(flags & _PRE_KEEP)
    x.pop()
    return value, x.signal(flags)


# -- MMX aliasing (SDM Vol. 1 §9.5) -------------------------------------------------------------
MMX_EXPONENT = 0xFFFF << 64  # sign and exponent bits of a register written by MMX


def mmx_enter(x: X87) -> None:
    """What every MMX instruction but EMMS does to the x87 state: TOP = 0, all tags valid."""
    x.top = 0
    x.empty = 0


def mmx_read(x: X87, i: int) -> int:
    """MMi (physical register i, low 64 bits)."""
    return x.regs[i] & 0xFFFFFFFFFFFFFFFF


def mmx_write(x: X87, i: int, value: int) -> None:
    """Write MMi: the low 64 bits; bits 64-79 become all ones."""
    x.regs[i] = MMX_EXPONENT | (value & 0xFFFFFFFFFFFFFFFF)


def emms(x: X87) -> None:
    """EMMS: tag every register empty."""
    x.empty = 0xFF


# -- environment and state images ---------------------------------------------------------------
def fstenv(x: X87, opsize: int, real: bool) -> bytes:
    """FNSTENV: the image to store; then all exceptions are masked (SDM Vol. 2A FSTENV)."""
    data = images.fstenv(x, opsize, real)
    x.cw |= CW_MASKS
    return data


def fsave(x: X87, opsize: int, real: bool) -> bytes:
    """FNSAVE: the image to store; then the FPU is reinitialised (FNINIT)."""
    data = images.fsave(x, opsize, real)
    x.finit()
    return data


fldenv = images.fldenv
frstor = images.frstor
fxsave = images.fxsave
fxrstor = images.fxrstor


# -- transcendentals (cpu/fp/transcendental.py; precision control does not apply) ---------------
def _trig(x: X87, which: str) -> bool:
    if x.is_empty(0):
        x.sw &= ~SW_C2
        return _underflow0(x)
    if which in ("tan", "sincos") and not x.is_empty(7):   # before the range check (host)
        x.sw &= ~SW_C2
        flags = x.stack_overflow()
        if x.unmasked(flags):
            return x.signal(flags)
        x.set_st(0, INDEFINITE)
        x.push(INDEFINITE)
        return x.signal(flags)
    r1, r2, flags, out_of_range = transcendental.trig(x.st(0), which, x.rc, _wrap(x))
    if out_of_range:  # |x| >= 2**63: C2=1, nothing else changes
        x.sw |= SW_C2
        return x.signal(x.sw & C1)
    x.sw &= ~SW_C2
    if which in ("sin", "cos"):
        return _store(x, 0, r1, flags, False)
    if x.unmasked(flags & _PRE_OP):
        return x.signal(flags & _PRE_KEEP)
    if not x.is_empty(7):
        flags = x.stack_overflow()
        if x.unmasked(flags):
            return x.signal(flags)
        r1 = r2 = INDEFINITE
    x.set_st(0, r1)  # FPTAN: tan, then push 1.0; FSINCOS: sin, then push cos
    x.push(r2)
    return x.signal(flags)


def fsin(x: X87) -> bool:
    """FSIN: ST(0) = sin ST(0); |ST(0)| >= 2**63 sets C2 and changes nothing."""
    return _trig(x, "sin")


def fcos(x: X87) -> bool:
    """FCOS: ST(0) = cos ST(0) (C2 as FSIN)."""
    return _trig(x, "cos")


def fsincos(x: X87) -> bool:
    """FSINCOS: ST(0) = sin, then push cos (C2 as FSIN)."""
    return _trig(x, "sincos")


def fptan(x: X87) -> bool:
    """FPTAN: ST(0) = tan, then push 1.0 (C2 as FSIN)."""
    return _trig(x, "tan")


def _binary_pop(x: X87, fn) -> bool:
    """ST(1) = fn(ST(1), ST(0)), then pop (FPATAN, FYL2X, FYL2XP1)."""
    if x.is_empty(0) or x.is_empty(1):
        return _store(x, 1, INDEFINITE, x.stack_underflow(), True)
    bits, flags = fn(x.st(1), x.st(0), x.rc, wrap=_wrap(x))
    return _store(x, 1, bits, flags, True)


def fpatan(x: X87) -> bool:
    """FPATAN: ST(1) = arctan(ST(1) / ST(0)) in the quadrant of (ST(0), ST(1)); pop."""
    return _binary_pop(x, transcendental.fpatan)


def fyl2x(x: X87) -> bool:
    """FYL2X: ST(1) = ST(1) * log2 ST(0); pop."""
    return _binary_pop(x, transcendental.fyl2x)


def fyl2xp1(x: X87) -> bool:
    """FYL2XP1: ST(1) = ST(1) * log2(ST(0) + 1); pop."""
    return _binary_pop(x, transcendental.fyl2xp1)


def f2xm1(x: X87) -> bool:
    """F2XM1: ST(0) = 2**ST(0) - 1."""
    if x.is_empty(0):
        return _underflow0(x)
    bits, flags = transcendental.f2xm1(x.st(0), x.rc, _wrap(x))
    return _store(x, 0, bits, flags, False)
