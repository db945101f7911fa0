"""SSE floating-point execution: operands to lanes, :mod:`x86vm.cpu.sse_float` per lane, then
MXCSR (SDM Vol. 1 ch. 10-11; docs/cpu-fp.md "SSE: what the core does per instruction").

Every helper computes all lanes first, then ``commit``s the flags into MXCSR; an unmasked
exception raises #XM (CR4.OSXMMEXCPT=1) or #UD and leaves the destination as it was
(SDM Vol. 1 §11.5.1). Scalar forms (…SS, …SD) replace the low lane and keep the rest.
"""

from __future__ import annotations

from x86vm.cpu import sse_float as SF
from x86vm.cpu.errors import CpuFault
from x86vm.cpu.fp.core import F32, F64
from x86vm.cpu.operand import Mem, Reg
from x86vm.cpu.sse_exec import enter, get, mmx_enter, put
from x86vm.cpu.state import CR4_OSXMMEXCPT

XM = 19
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
ARITH_OPS = {"add": SF.ADD, "sub": SF.SUB, "mul": SF.MUL, "div": SF.DIV, "min": SF.MIN,
             "max": SF.MAX}
FMT = {"ss": F32, "ps": F32, "sd": F64, "pd": F64}


def commit(cpu, flags: int) -> None:
    """Fold ``flags`` into MXCSR; raise #XM / #UD if one of them is unmasked."""
    cpu.mxcsr, fault = SF.commit(cpu.mxcsr, flags)
    if fault:
        if cpu.cr4 & CR4_OSXMMEXCPT:
            raise CpuFault(XM)
        raise cpu.undefined("unmasked SIMD floating-point exception, CR4.OSXMMEXCPT=0")


def _split(v: int, w: int, n: int) -> list[int]:
    m = (1 << w) - 1
    return [(v >> (i * w)) & m for i in range(n)]


def _join(vals, w: int) -> int:
    out = 0
    for i, x in enumerate(vals):
        out |= x << (i * w)
    return out


def _operands(cpu, c):
    """(insn, dst, src, fmt, scalar, a, b): ``a`` = dst value, ``b`` = src value (a scalar
    memory source is one lane; a 128-bit memory source must be aligned)."""
    insn, ops = c
    dst, src = ops[0], ops[1]
    enter(cpu, ops)
    name = insn.mnemonic
    sfx = name[-2:]
    fmt = FMT[sfx]
    scalar = sfx[0] == "s"
    a = cpu.xmm[dst.num]
    if scalar:
        b = get(cpu, src, fmt.width // 8) & ((1 << fmt.width) - 1)
    else:
        b = get(cpu, src, 16, aligned=True)
    return insn, dst, src, fmt, scalar, a, b


def _lanewise(cpu, c, fn) -> None:
    """dst ← fn(fmt, a_lane, b_lane) → (bits, flags) over the scalar or packed lanes."""
    insn, dst, src, fmt, scalar, a, b = _operands(cpu, c)
    w = fmt.width
    m = (1 << w) - 1
    if scalar:
        r, flags = fn(fmt, a & m, b)
        commit(cpu, flags)
        cpu.xmm[dst.num] = (a & ~m) | r
        return
    n = 128 // w
    out = []
    flags = 0
    for x, y in zip(_split(a, w, n), _split(b, w, n), strict=True):
        r, f = fn(fmt, x, y)
        out.append(r)
        flags |= f
    commit(cpu, flags)
    cpu.xmm[dst.num] = _join(out, w)


def h_arith(cpu, c) -> None:
    op = ARITH_OPS[c[0].mnemonic[:3]]
    mx = cpu.mxcsr
    _lanewise(cpu, c, lambda fmt, x, y: SF.arith(op, fmt, mx, x, y))


def h_sqrt(cpu, c) -> None:
    mx = cpu.mxcsr
    _lanewise(cpu, c, lambda fmt, x, y: SF.sqrt(fmt, mx, y))


def h_approx(cpu, c) -> None:
    fn = SF.rcp if c[0].mnemonic.startswith("rcp") else SF.rsqrt
    mx = cpu.mxcsr
    _lanewise(cpu, c, lambda fmt, x, y: fn(fmt, mx, y))


def h_cmp(cpu, c) -> None:
    """CMPSS/CMPSD/CMPPS/CMPPD imm8: the legacy encodings use predicates 0-7 (imm8[2:0])."""
    pred = c[1][2].value & 7
    mx = cpu.mxcsr
    _lanewise(cpu, c, lambda fmt, x, y: SF.cmp(fmt, mx, x, y, pred))


def h_round(cpu, c) -> None:
    imm = c[1][2].value
    mx = cpu.mxcsr
    _lanewise(cpu, c, lambda fmt, x, y: SF.round_integral(fmt, mx, y, imm))


def h_comi(cpu, c) -> None:
    insn, dst, src, fmt, scalar, a, b = _operands(cpu, c)
    m = (1 << fmt.width) - 1
    value, flags = SF.comi(fmt, cpu.mxcsr, a & m, b, not insn.mnemonic.startswith("u"))
    commit(cpu, flags)
    cpu.fl = (cpu.flags() & ~SF.COMI_EFLAGS_MASK) | value


def h_horizontal(cpu, c) -> None:
    """HADDPS/HSUBPS/HADDPD/HSUBPD, ADDSUBPS/ADDSUBPD (SSE3), DPPS/DPPD (SSE4.1)."""
    insn, ops = c
    name = insn.mnemonic
    dst, src = ops[0], ops[1]
    enter(cpu, ops)
    fmt = F32 if name.endswith("ps") else F64
    a, b = cpu.xmm[dst.num], get(cpu, src, 16, aligned=True)
    if name.startswith("addsub"):
        r, flags = SF.addsub(fmt, cpu.mxcsr, a, b)
    elif name.startswith("dp"):
        r, flags = SF.dp(fmt, cpu.mxcsr, a, b, ops[2].value)
    else:
        r, flags = SF.horizontal(SF.ADD if name[1] == "a" else SF.SUB, fmt, cpu.mxcsr, a, b)
    commit(cpu, flags)
    cpu.xmm[dst.num] = r


# -- conversions ------------------------------------------------------------------------------

def _is_mmx(op) -> bool:
    return type(op) is Reg and op.cls == "mmx"


# name → (source format or "int", destination format or "int", lanes, truncate)
CONVERSIONS = {
    "cvtps2pd": (F32, F64, 2, False), "cvtpd2ps": (F64, F32, 2, False),
    "cvtdq2ps": (32, F32, 4, False), "cvtdq2pd": (32, F64, 2, False),
    "cvtps2dq": (F32, 32, 4, False), "cvttps2dq": (F32, 32, 4, True),
    "cvtpd2dq": (F64, 32, 2, False), "cvttpd2dq": (F64, 32, 2, True),
    "cvtpi2ps": (32, F32, 2, False), "cvtpi2pd": (32, F64, 2, False),
    "cvtps2pi": (F32, 32, 2, False), "cvttps2pi": (F32, 32, 2, True),
    "cvtpd2pi": (F64, 32, 2, False), "cvttpd2pi": (F64, 32, 2, True),
}


def _width(f) -> int:
    return f if isinstance(f, int) else f.width


def _convert_lane(mx: int, sf, df, x: int, truncate: bool) -> tuple[int, int]:
    if isinstance(sf, int):
        return SF.from_int(df, mx, x, sf)
    if isinstance(df, int):
        return SF.to_int(sf, mx, x, df, truncate)
    return SF.convert(sf, df, mx, x)


def h_cvt_packed(cpu, c) -> None:
    insn, (dst, src) = c
    name = insn.mnemonic
    enter(cpu, c[1])
    sf, df, n, trunc = CONVERSIONS[name]
    sw, dw = _width(sf), _width(df)
    if type(src) is Mem:
        nbytes = n * sw // 8
        b = get(cpu, src, nbytes, aligned=nbytes == 16)
    else:
        b = get(cpu, src)
    mx = cpu.mxcsr
    out = []
    flags = 0
    for x in _split(b, sw, n):
        r, f = _convert_lane(mx, sf, df, x, trunc)
        out.append(r)
        flags |= f
    commit(cpu, flags)
    v = _join(out, dw)
    if _is_mmx(dst) or _is_mmx(src):
        mmx_enter(cpu.x87)
    if name == "cvtpi2ps":
        v |= cpu.xmm[dst.num] & ~M64        # the upper half of the destination is kept
    put(cpu, dst, v)


def h_cvt_scalar(cpu, c) -> None:
    """CVTSI2SS/SD, CVTSS2SD, CVTSD2SS (merge into the low lane), CVT(T)SS2SI / SD2SI."""
    insn, (dst, src) = c
    name = insn.mnemonic
    enter(cpu, c[1])
    mx = cpu.mxcsr
    if name.startswith("cvtsi2"):
        df = F32 if name.endswith("ss") else F64
        width = src.size * 8 if src.size in (4, 8) else 32
        r, flags = SF.from_int(df, mx, get(cpu, src, width // 8), width)
    else:
        sf = F32 if "ss2" in name else F64
        b = get(cpu, src, sf.width // 8) & ((1 << sf.width) - 1)
        if name.endswith("2si"):
            r, flags = SF.to_int(sf, mx, b, dst.size * 8, name.startswith("cvtt"))
            commit(cpu, flags)
            put(cpu, dst, r)
            return
        df = F64 if sf is F32 else F32
        r, flags = SF.convert(sf, df, mx, b)
    commit(cpu, flags)
    m = (1 << df.width) - 1
    cpu.xmm[dst.num] = (cpu.xmm[dst.num] & ~m) | r


def _register() -> dict:
    h: dict = {}
    for op in ARITH_OPS:
        for sfx in FMT:
            h[op + sfx] = h_arith
    for sfx in FMT:
        h["sqrt" + sfx] = h_sqrt
        h["cmp" + sfx] = h_cmp
        h["round" + sfx] = h_round
    for name in ("rcpss", "rcpps", "rsqrtss", "rsqrtps"):
        h[name] = h_approx
    for name in ("comiss", "ucomiss", "comisd", "ucomisd"):
        h[name] = h_comi
    for name in ("haddps", "haddpd", "hsubps", "hsubpd", "addsubps", "addsubpd", "dpps",
                 "dppd"):
        h[name] = h_horizontal
    for name in CONVERSIONS:
        h[name] = h_cvt_packed
    for name in ("cvtsi2ss", "cvtsi2sd", "cvtss2sd", "cvtsd2ss", "cvtss2si", "cvtsd2si",
                 "cvttss2si", "cvttsd2si"):
        h[name] = h_cvt_scalar
    return h


HELPERS = _register()
