"""x86vm's answer to each SSE harness case, in the harness's output format (see harness.c)."""

from __future__ import annotations

from x86vm.cpu import sse_float as S
from x86vm.cpu.fp.core import F32, F64

_ARITH = {"add": S.ADD, "sub": S.SUB, "mul": S.MUL, "div": S.DIV, "min": S.MIN, "max": S.MAX}
_FMT = {"ss": F32, "sd": F64}


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
    else:
        raise KeyError(op)
    return f"{r:x} {mx | fl:x}"
