"""x86vm's answer to each x87 harness case, in the harness's output format (see harness.c)."""

from __future__ import annotations

from x86vm.cpu import x87 as X
from x86vm.cpu.fp.core import F32, F64

# status-word bits compared: flags, SF, ES, C0-C3, B (TOP differs: the harness pushes more)
SW_MASK = 0xC7FF

_BIN = {"fadd": X.FADD, "fsub": X.FSUB, "fmul": X.FMUL, "fdiv": X.FDIV}
_UNARY = {"fsqrt": X.fsqrt, "frndint": X.frndint, "fabs": X.fabs, "fchs": X.fchs}
_MEM = {"fadd32": (X.FADD, F32), "fadd64": (X.FADD, F64), "fmul32": (X.FMUL, F32),
        "fdiv64": (X.FDIV, F64)}
_STORE = {"fst32": F32, "fst64": F64}
_FIST = {"fist16": (16, False, False), "fist32": (32, False, False),
         "fist64": (64, True, False), "fisttp16": (16, True, True),
         "fisttp32": (32, True, True), "fisttp64": (64, True, True)}
_SENTINEL = 0x5A5A5A5A5A5A5A5A
_TRANS1 = {"fsin": X.fsin, "fcos": X.fcos, "f2xm1": X.f2xm1, "fptan": X.fptan,
           "fsincos": X.fsincos}
_TRANS2 = {"fpatan": X.fpatan, "fyl2x": X.fyl2x, "fyl2xp1": X.fyl2xp1}


def _h80(v: int) -> str:
    return f"{v:020x}"


def run(op: str, cw: int, a: int, b: int = 0) -> str:
    x = X.X87()
    X.fldcw(x, cw)
    sw_line = None
    if op in _BIN or op in ("fscale", "fprem", "fprem1", "fcom", "fucom"):
        X.fld(x, b)
        X.fld(x, a)
        if op in _BIN:
            X.arith(x, _BIN[op], 0, 1)
        elif op == "fscale":
            X.fscale(x)
        elif op in ("fprem", "fprem1"):
            X.fprem(x, op == "fprem1")
        else:
            X.fcom(x, 1, unordered=op == "fucom")
            return f"0 {x.status_word & SW_MASK:04x}"
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op in _UNARY or op == "fxtract":
        X.fld(x, a)
        if op == "fxtract":
            X.fxtract(x)
            sw_line = x.status_word & SW_MASK
            r1 = x.st(1)
            if x.is_empty(1):  # the harness's FSTP of an empty register
                r1 = 0 if x.unmasked(1) else X.INDEFINITE
            return f"{_h80(x.st(0))} {_h80(r1)} {sw_line:04x}"
        _UNARY[op](x)
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op in _MEM:
        o, fmt = _MEM[op]
        X.fld(x, a)
        X.arith_mem(x, o, fmt, b)
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op in ("fld32", "fld64"):
        X.fld_mem(x, F32 if op == "fld32" else F64, a)
        sw = x.status_word & SW_MASK
        X.fclex(x)
        r = x.st(0)
        if x.is_empty(0):  # the harness's FSTP of an empty register
            r = 0 if x.unmasked(1) else X.INDEFINITE
        return f"{_h80(r)} {sw:04x}"
    if op in _STORE:
        X.fld(x, a)
        fmt = _STORE[op]
        bits, _ = X.fst_mem(x, fmt, False)
        if bits is None:
            bits = _SENTINEL & ((1 << fmt.width) - 1)
        return f"{bits:x} {x.status_word & SW_MASK:04x}"
    if op in _FIST:
        width, pop, trunc = _FIST[op]
        X.fld(x, a)
        if pop:
            X.fld_st(x, 0)
        value, _ = X.fist_mem(x, width, pop, trunc)
        if value is None:
            value = _SENTINEL & ((1 << width) - 1)
        return f"{value:x} {x.status_word & SW_MASK:04x}"
    if op in ("fcomi", "fucomi"):
        X.fld(x, b)
        X.fld(x, a)
        efl, _ = X.fcomi(x, 1, unordered=op == "fucomi")
        return f"{0 if efl is None else efl:x} {x.status_word & SW_MASK:04x}"
    if op in ("fiadd16", "fimul32"):
        X.fld(x, a)
        X.arith_int(x, X.FADD if op == "fiadd16" else X.FMUL, b, 16 if op == "fiadd16" else 32)
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op in _TRANS1:
        X.fld(x, a)
        _TRANS1[op](x)
        if op in ("fptan", "fsincos"):
            r1 = x.st(1)
            if x.is_empty(1):
                r1 = 0 if x.unmasked(1) else X.INDEFINITE
            return f"{_h80(x.st(0))} {_h80(r1)} {x.status_word & SW_MASK:04x}"
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op in _TRANS2:
        X.fld(x, b)
        X.fld(x, a)
        _TRANS2[op](x)
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op in ("fcom32", "fcomp64"):
        X.fld(x, a)
        X.fcom(x, 0, pops=1 if op == "fcomp64" else 0, mem=(F32 if op == "fcom32" else F64, b))
        return f"0 {x.status_word & SW_MASK:04x}"
    if op == "ftst":
        X.fld(x, 0)
        X.fld(x, a)
        X.ftst(x)
        return f"0 {x.status_word & SW_MASK:04x}"
    if op == "fstcw":
        return f"{x.cw:04x} 0"
    if op == "funder":
        X.fld(x, a)
        X.arith(x, X.FADD, 0, 1)
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op == "fover":
        for _ in range(8):
            X.fld(x, a)
        X.fld(x, b)
        sw = x.status_word & SW_MASK
        r = x.st(0)
        return f"{_h80(r)} {sw:04x}"
    if op in ("fsave", "fsave16", "fxsave"):
        X.fld(x, b)
        X.fld(x, a)
        if op == "fxsave":
            return X.fxsave(x, 0x1F80, []).hex()
        return X.fsave(x, 16 if op == "fsave16" else 32, False).hex()
    if op in ("mmx", "mmxemms"):
        if op == "mmx":
            X.fld_const(x, "one")
        X.mmx_enter(x)
        X.mmx_write(x, 0, a)
        X.mmx_write(x, 3, b)
        if op == "mmxemms":
            X.emms(x)
        return X.fsave(x, 32, False).hex()
    if op == "fbstp":
        X.fld(x, a)
        v, _ = X.fbstp(x)
        m = (0x5A5A5A5A5A5A5A5A5A5A if v is None else v).to_bytes(10, "little").hex()
        return f"{m} {x.status_word & SW_MASK:04x}"
    if op == "fbld":
        X.fbld(x, a)
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op == "fconst":
        X.fld_const(x, X._CONST_NAMES[a % 7])
        return f"{_h80(x.st(0))} {x.status_word & SW_MASK:04x}"
    if op == "fxam":
        if b != 0xE:  # 0xE: examine an empty ST(0) (its stale register holds +0)
            X.fld(x, a)
        X.fxam(x)
        return f"0 {x.status_word & SW_MASK:04x}"
    raise KeyError(op)
