"""Lazy arithmetic flags (SDM Vol. 1 §3.4.3, Appendix A "EFLAGS Cross-Reference").

An instruction that sets flags does not compute them: it leaves ``cc = (op, bits, res, a, b,
cin)`` on the CPU (the operation, the operand width, the masked result and the inputs), as
QEMU keeps ``cc_op``. Flags are computed only when something reads them (``jcc`` of another
block, ``pushf``, an interrupt). Most are overwritten before anyone looks.
"""

from __future__ import annotations

CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800
ARITH = CF | PF | AF | ZF | SF | OF

# lazy operations
ADD, SUB, ADC, SBB, LOGIC, INC, DEC, SHL, SHR, SAR, MUL = range(11)

PARITY = bytes(PF if bin(i).count("1") % 2 == 0 else 0 for i in range(256))

CONDITIONS = ("o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge",
              "le", "g")
"""Condition codes in encoding order (SDM Vol. 1 Table B-1): the low nibble of Jcc/SETcc."""
ALIASES = {"c": "b", "nae": "b", "nb": "ae", "nc": "ae", "z": "e", "nz": "ne", "na": "be",
           "nbe": "a", "pe": "p", "po": "np", "nge": "l", "nl": "ge", "ng": "le", "nle": "g"}


def cond_index(name: str) -> int:
    """The encoding of a condition suffix (``"e"``, ``"nz"``...)."""
    return CONDITIONS.index(ALIASES.get(name, name))


def compute(cc: tuple) -> int:
    """The six arithmetic flags of the lazy record ``cc``."""
    op, bits, res, a, b, cin = cc
    sign = 1 << (bits - 1)
    f = PARITY[res & 0xFF]
    if res == 0:
        f |= ZF
    if res & sign:
        f |= SF
    if op == SUB:
        if a < b:
            f |= CF
        if (a ^ b) & (a ^ res) & sign:
            f |= OF
        f |= (a ^ b ^ res) & AF
    elif op == ADD:
        if res < a:
            f |= CF
        if (a ^ res) & (b ^ res) & sign:
            f |= OF
        f |= (a ^ b ^ res) & AF
    elif op == LOGIC:
        pass
    elif op == INC:
        f |= cin
        if res == sign:
            f |= OF
        if res & 0xF == 0:
            f |= AF
    elif op == DEC:
        f |= cin
        if res == sign - 1:
            f |= OF
        if a & 0xF == 0:
            f |= AF
    elif op == ADC:
        if res < a or (cin and res == a):
            f |= CF
        if (a ^ res) & (b ^ res) & sign:
            f |= OF
        f |= (a ^ b ^ res) & AF
    elif op == SBB:
        if a < b + cin:
            f |= CF
        if (a ^ b) & (a ^ res) & sign:
            f |= OF
        f |= (a ^ b ^ res) & AF
    elif op == SHL:  # b = count (1..), cin unused
        cf = (a >> (bits - b)) & 1 if b <= bits else 0
        f |= cf
        if ((res >> (bits - 1)) & 1) ^ cf:
            f |= OF
    elif op == SHR:
        f |= (a >> (b - 1)) & 1
        if b == 1 and a & sign:
            f |= OF
    elif op == SAR:
        sa = a - (a << 1 & (sign << 1))  # signed value
        f |= (sa >> min(b - 1, bits)) & 1
    elif op == MUL:  # cin = CF=OF
        if cin:
            f |= CF | OF
    return f


def carry(cc: tuple | None, flags: int) -> int:
    """CF alone (1 or 0), from ``cc`` or the concrete ``flags``."""
    if cc is None:
        return flags & 1
    op, bits, res, a, b, cin = cc
    if op == SUB:
        return 1 if a < b else 0
    if op == ADD:
        return 1 if res < a else 0
    if op == LOGIC:
        return 0
    if op == INC or op == DEC:
        return cin
    return compute(cc) & 1


def test(cond: int, f: int) -> bool:
    """Evaluate condition ``cond`` (0-15) on concrete flags ``f``."""
    c = cond >> 1
    if c == 0:
        r = f & OF
    elif c == 1:
        r = f & CF
    elif c == 2:
        r = f & ZF
    elif c == 3:
        r = f & (CF | ZF)
    elif c == 4:
        r = f & SF
    elif c == 5:
        r = f & PF
    elif c == 6:
        r = bool(f & SF) != bool(f & OF)
    else:
        r = (f & ZF) or (bool(f & SF) != bool(f & OF))
    return (not r) if cond & 1 else bool(r)


def cond(cc: tuple | None, fl: int, c: int) -> bool:
    """Condition ``c`` from the lazy record (comparisons without computing flags)."""
    if cc is not None:
        op = cc[0]
        if op == SUB:
            x = c >> 1
            bits, v, a, b = cc[1], cc[2], cc[3], cc[4]
            if x == 1:
                r = a < b
            elif x == 2:
                r = v == 0
            elif x == 3:
                r = a <= b
            elif x == 6:
                s = 1 << (bits - 1)
                r = (a ^ s) < (b ^ s)
            elif x == 7:
                s = 1 << (bits - 1)
                r = (a ^ s) <= (b ^ s)
            elif x == 4:
                r = v >> (bits - 1)
            else:
                return test(c, compute(cc))
            return (not r) if c & 1 else bool(r)
        if op == LOGIC:
            x = c >> 1
            if x == 2:
                r = cc[2] == 0
                return (not r) if c & 1 else r
        return test(c, compute(cc))
    return test(c, fl)
