"""x86vm's answer to each SSE harness case, in the harness's output format (see harness.c)."""

from __future__ import annotations

from x86vm.cpu import sse_float as S
from x86vm.cpu.fp.core import F32, F64

_ARITH = {"add": S.ADD, "sub": S.SUB, "mul": S.MUL, "div": S.DIV, "min": S.MIN, "max": S.MAX}
_FMT = {"ss": F32, "sd": F64}


_PACKED = {
    "haddps": lambda m, a, b: S.horizontal(S.ADD, F32, m, a, b),
    "hsubps": lambda m, a, b: S.horizontal(S.SUB, F32, m, a, b),
    "haddpd": lambda m, a, b: S.horizontal(S.ADD, F64, m, a, b),
    "addsubps": lambda m, a, b: S.addsub(F32, m, a, b),
    "addsubpd": lambda m, a, b: S.addsub(F64, m, a, b),
    "addps": lambda m, a, b: S.packed(S.ADD, F32, m, a, b),
    "dpps_ff": lambda m, a, b: S.dp(F32, m, a, b, 0xFF),
    "dpps_71": lambda m, a, b: S.dp(F32, m, a, b, 0x71),
    "dpps_b6": lambda m, a, b: S.dp(F32, m, a, b, 0xB6),
    "dppd_33": lambda m, a, b: S.dp(F64, m, a, b, 0x33),
    "dppd_12": lambda m, a, b: S.dp(F64, m, a, b, 0x12),
}


def run(op: str, mx: int, a: int, b: int = 0) -> str:
    if op[:3] in _ARITH and op[3:] in _FMT:
        r, fl = S.arith(_ARITH[op[:3]], _FMT[op[3:]], mx, a, b)
    elif op in ("sqrtss", "sqrtsd"):
        r, fl = S.sqrt(_FMT[op[4:]], mx, a)
    elif op in ("rcpss", "rsqrtss"):
        r, fl = (S.rcp if op == "rcpss" else S.rsqrt)(F32, mx, a)
    elif op == "cvtss2sd":
        r, fl = S.convert(F32, F64, mx, a)
    elif op == "cvtsd2ss":
        r, fl = S.convert(F64, F32, mx, a)
    elif op[:5] in ("cmpss", "cmpsd"):
        r, fl = S.cmp(_FMT[op[3:5]], mx, a, b, int(op[5:]))
    elif op[:7] in ("roundss", "roundsd"):
        r, fl = S.round_integral(_FMT[op[5:7]], mx, a, int(op[7:]))
    elif op in ("comiss", "ucomiss", "comisd", "ucomisd"):
        r, fl = S.comi(_FMT[op[-2:]], mx, a, b, op[0] == "c")
    elif op.startswith("cvtsi2"):
        r, fl = S.from_int(_FMT[op[6:8]], mx, a, int(op[8:]))
    elif op.startswith("cvt") and "2si" in op:
        trunc = op[3] == "t"
        s = op[4:6] if trunc else op[3:5]
        r, fl = S.to_int(_FMT[s], mx, a, int(op.split("2si")[1]), trunc)
    elif op in _PACKED:
        r, fl = _PACKED[op](mx, a, b)
        new, fault = S.commit(mx, fl)
        return f"fault {new:x}" if fault else f"{r:032x} {new:x}"
    else:
        raise KeyError(op)
    new, fault = S.commit(mx, fl)
    if fault:
        return f"fault {new:x}"
    return f"{r:x} {new:x}"
