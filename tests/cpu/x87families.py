"""x87 cases for the host-CPU differential (cpu/hostcpu.py): each case loads a random x87 state
with FRSTOR, runs the instruction(s) under test, and stores the state with FNSAVE into the
scratch memory, which is compared with the host's byte for byte — except the fields that hold
the host's own addresses and selectors (FIP, FCS, FDS), AMD's FXSAVE pointer fields (written
only when ES is set, docs/cpu-fp.md) and its MXCSR_MASK. The transcendental class compares
the registers within 1 ulp and the status word without C1 and PE (docs/cpu-fp.md:
"Transcendentals"). Register values come from tests/cpu_fp/fpgen.py (edge cases and random
values whose exponents meet at the rounding boundaries).
"""

from __future__ import annotations

import random
import struct
from dataclasses import replace

from cpu.hostcpu import MEM_BASE, MEM_SIZE, Case, Outcome, draw_cases
from cpu.hostcpu import compare as compare_gp
from cpu_fp import fpgen
from x86vm.cpu.fp.core import F32, F64, F80

RBX = MEM_BASE + 0x800
IN_IMAGE = 0x200        # offsets from %rbx: FRSTOR's image (108 bytes)
OUT_IMAGE = 0x280       # FNSAVE's image after the case
MXCSR_DEFAULT = 0x300   # 0x1F80, loaded last by cases that change MXCSR
AUX = 0x340             # 16-aligned: FXSAVE/FNSTENV/FNSAVE images, STMXCSR (up to 0x540)
FX_IN = -0x600          # 16-aligned: FXRSTOR's image (512 bytes)
XS_IN = -0x380          # 64-aligned: XRSTOR's image (576 bytes)
OPERAND = 0x0           # memory operands at OPERAND + 16*k, k in -8..7
_ARITH = ("fadd", "fmul", "fsub", "fsubr", "fdiv", "fdivr")
_CONSTS = ("fld1", "fldl2t", "fldl2e", "fldpi", "fldlg2", "fldln2", "fldz")
_BITS = [64]


def _base() -> str:
    return "%rbx" if _BITS[0] == 64 else "%ebx"


def _at(off: int) -> str:
    return f"{off}({_base()})"


class X87Case(Case):
    """A case with the x87 fields it checks: ``ignore`` (offsets from %rbx, lengths) not
    compared, ``ulps`` register tolerance, ``n`` instructions under test."""

    def __init__(self, text, regs, rflags, memory, ignore=(), ulps=0, n=1):
        super().__init__(text, regs, rflags, memory)
        self.ignore, self.ulps, self.n = tuple(ignore), ulps, n


# -- state -------------------------------------------------------------------------------------

def f80(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.15:
        return fpgen.special(rng, F80)
    if r < 0.3:   # an exactly representable double or float, or a small integer
        kind = rng.randrange(3)
        if kind == 0:
            return _extend(F64, fpgen.value(rng, F64))
        if kind == 1:
            return _extend(F32, fpgen.value(rng, F32))
        return _int80(rng.randrange(-100000, 100000))
    if r < 0.5:
        return fpgen.normal(rng, F80, F80.bias + rng.randrange(-70, 70))
    return fpgen.value(rng, F80)


def _extend(fmt, bits: int) -> int:
    from x86vm.cpu.fp.ops import convert
    return convert(fmt, F80, bits)[0]


def _int80(n: int) -> int:
    from x86vm.cpu.fp.ops import from_int
    return from_int(F80, n & (2**64 - 1), 64)[0]


def control_word(rng: random.Random, masked: bool) -> int:
    masks = 0x3F if masked else sum(1 << b for b in range(6) if rng.random() < 0.75)
    pc = rng.choice((0, 2, 3, 3, 3))
    return 0x40 | masks | pc << 8 | rng.randrange(4) << 10


def fsave_image(rng: random.Random, cw: int, empties: float = 0.2) -> bytes:
    """A 32-bit protected-mode FSAVE image: random TOP, registers, C0-C3 and masked
    exception flags (no unmasked exception pending: the next instruction would trap)."""
    top = rng.randrange(8)
    flags = rng.getrandbits(7) & cw & 0x3F if rng.random() < 0.3 else 0
    sw = flags | (rng.getrandbits(4) & 0b1011) << 8 & 0x700 | (0x4000 if rng.random() < .3
                                                              else 0) | top << 11
    r = rng.random()
    if r < 0.1:
        empty = [True] * 8
    elif r < 0.25:
        empty = [False] * 8
    else:
        empty = [rng.random() < empties for _ in range(8)]
    tw = sum((3 if empty[i] else 0) << (2 * i) for i in range(8))
    env = struct.pack("<7I", 0xFFFF0000 | cw, 0xFFFF0000 | sw, 0xFFFF0000 | tw, 0, 0, 0,
                      0xFFFF0000)
    regs = b"".join(f80(rng).to_bytes(10, "little") for _ in range(8))
    return env + regs


def _memory(rng: random.Random, image: bytes) -> bytearray:
    mem = bytearray(rng.randbytes(MEM_SIZE))
    at = 0x800 + IN_IMAGE
    mem[at:at + 108] = image
    mem[0x800 + MXCSR_DEFAULT:0x800 + MXCSR_DEFAULT + 4] = (0x1F80).to_bytes(4, "little")
    return mem


_SIZE = {"f32": 4, "f64": 8, "f80": 10, "bcd": 10, "i16": 2, "i32": 4, "i64": 8}


def _slot(rng: random.Random) -> str:
    """One of the 16 memory operand slots around %rbx."""
    return _at(OPERAND + 16 * rng.randrange(-8, 8))


def _operand(rng: random.Random, mem: bytearray, size: int, value: int) -> str:
    """A memory operand slot holding ``value``."""
    off = OPERAND + 16 * rng.randrange(-8, 8)
    mem[0x800 + off:0x800 + off + size] = value.to_bytes(size, "little")
    return _at(off)


def _load(rng: random.Random, mem: bytearray, kind: str) -> str:
    """A memory operand slot holding a random value of ``kind`` (f32 … i64, bcd)."""
    return _operand(rng, mem, _SIZE[kind], _mem_value(rng, kind))


def _mem_value(rng: random.Random, kind: str) -> int:
    if kind == "f32":
        return fpgen.value(rng, F32)
    if kind == "f64":
        return fpgen.value(rng, F64)
    if kind == "f80":
        return f80(rng)
    if kind == "bcd":
        digits = rng.randrange(19)
        v = 0
        for i in range(digits):
            v |= rng.randrange(10 if rng.random() < 0.97 else 16) << (4 * i)
        return v | (rng.randrange(2) << 79)
    width = int(kind[1:])
    r = rng.random()
    if r < 0.3:
        return rng.choice((0, 1, 2**width - 1, 2**(width - 1), 2**(width - 1) - 1))
    if r < 0.6:
        return rng.randrange(-1000, 1000) & (2**width - 1)
    return rng.getrandbits(width)


def _finish(rng, mem, body: list[str], ignore=(), ulps=0, mxcsr=False) -> X87Case:
    text = [f"frstor {_at(IN_IMAGE)}", *body, f"fnsave {_at(OUT_IMAGE)}"]
    if mxcsr:
        text.append(f"ldmxcsr {_at(MXCSR_DEFAULT)}")
    regs = {r: rng.getrandbits(64) for r in ("rax", "rcx", "rdx", "rsi", "rdi")}
    regs["rbx"] = RBX
    fl = 0x202 | (rng.getrandbits(12) & 0x8D5)
    return X87Case("; ".join(text), regs, fl, bytes(mem),
                   ignore=((OUT_IMAGE + 12, 6), (OUT_IMAGE + 24, 4), *ignore), ulps=ulps,
                   n=len(body))


def _state(rng, masked: bool = False, empties: float = 0.2):
    cw = control_word(rng, masked)
    return cw, _memory(rng, fsave_image(rng, cw, empties))


# -- instruction texts per class ----------------------------------------------------------------

# (text, kind of its memory operand) per form: {op} the operation, {i} a register
_ARITH_FORMS = (("{op} %st({i}), %st", None), ("{op} %st, %st({i})", None),
                ("{op}p %st, %st({i})", None), ("{op}s", "f32"), ("{op}l", "f64"),
                ("fi{iop}s", "i16"), ("fi{iop}l", "i32"))


def _arith_text(rng, mem) -> str:
    op = rng.choice(_ARITH)
    i = rng.randrange(8)
    form, kind = _ARITH_FORMS[rng.randrange(len(_ARITH_FORMS))]
    text = form.format(op=op, iop=op[1:], i=i)
    return f"{text} {_load(rng, mem, kind)}" if kind else text


def _ldst_text(rng, mem) -> str:
    i = rng.randrange(8)
    k = rng.randrange(17)
    if k == 0:
        return f"flds {_load(rng, mem, 'f32')}"
    if k == 1:
        return f"fldl {_load(rng, mem, 'f64')}"
    if k == 2:
        return f"fldt {_load(rng, mem, 'f80')}"
    if k == 3:
        return f"fld %st({i})"
    if k == 4:
        w, sfx = rng.choice(((16, "s"), (32, "l"), (64, "ll")))
        return f"fild{sfx} {_load(rng, mem, f'i{w}')}"
    if k == 5:
        return f"fbld {_load(rng, mem, 'bcd')}"
    if k == 6:
        return rng.choice(_CONSTS)
    if k == 7:
        return f"{rng.choice(('fsts', 'fstps'))} {_slot(rng)}"
    if k == 8:
        return f"{rng.choice(('fstl', 'fstpl'))} {_slot(rng)}"
    if k == 9:
        return f"fstpt {_slot(rng)}"
    if k == 10:
        return f"{rng.choice(('fst', 'fstp'))} %st({i})"
    if k in (11, 12):
        op = rng.choice(("fist", "fistp", "fisttp"))
        sfx = rng.choice(("s", "l") if op == "fist" else ("s", "l", "ll"))
        return f"{op}{sfx} {_slot(rng)}"
    if k == 13:
        return f"fbstp {_slot(rng)}"
    if k == 14:
        return f"fxch %st({i})"
    if k == 15:
        return f"{rng.choice(('ffree', 'ffreep'))} %st({i})"
    return rng.choice(("fincstp", "fdecstp", "fnop"))


def _unary_text(rng, mem) -> str:
    return rng.choice(("fsqrt", "frndint", "fabs", "fchs", "fscale", "fxtract", "fprem",
                       "fprem1", "ftst", "fxam"))


def _compare_text(rng, mem) -> str:
    i = rng.randrange(8)
    k = rng.randrange(9)
    if k == 0:
        op = rng.choice(("fcoms", "fcomps"))
        return f"{op} {_load(rng, mem, 'f32')}"
    if k == 1:
        op = rng.choice(("fcoml", "fcompl"))
        return f"{op} {_load(rng, mem, 'f64')}"
    if k == 2:
        return f"{rng.choice(('fcom', 'fcomp', 'fucom', 'fucomp'))} %st({i})"
    if k == 3:
        return rng.choice(("fcompp", "fucompp", "ftst"))
    if k == 4:
        op, w = rng.choice((("ficoms", 16), ("ficomps", 16), ("ficoml", 32),
                            ("ficompl", 32)))
        return f"{op} {_load(rng, mem, f'i{w}')}"
    if k in (5, 6):
        return f"{rng.choice(('fcomi', 'fcomip', 'fucomi', 'fucomip'))} %st({i}), %st"
    cc = rng.choice(("b", "e", "be", "u", "nb", "ne", "nbe", "nu"))
    return f"fcmov{cc} %st({i}), %st"


def _arg_for(rng, op: str) -> int:
    """An argument in the function's domain most of the time."""
    if rng.random() < 0.15:
        return f80(rng)
    if op == "f2xm1":
        return fpgen.normal(rng, F80, F80.bias - rng.randrange(0, 70))
    if op == "fyl2xp1":
        return fpgen.normal(rng, F80, F80.bias - rng.randrange(2, 70))
    if op in ("fyl2x",):
        return fpgen.normal(rng, F80, F80.bias + rng.randrange(-60, 60)) & ~F80.sign_bit
    return fpgen.normal(rng, F80, F80.bias + rng.randrange(-40, 64))


# -- the classes ---------------------------------------------------------------------------------

def x87arith(rng) -> X87Case:
    cw, mem = _state(rng)
    return _finish(rng, mem, [_arith_text(rng, mem)])


def x87ldst(rng) -> X87Case:
    cw, mem = _state(rng, empties=0.3)
    return _finish(rng, mem, [_ldst_text(rng, mem)])


def x87unary(rng) -> X87Case:
    cw, mem = _state(rng)
    return _finish(rng, mem, [_unary_text(rng, mem)])


def x87compare(rng) -> X87Case:
    cw, mem = _state(rng)
    return _finish(rng, mem, [_compare_text(rng, mem)])


def x87trans(rng) -> X87Case:
    """FSIN/FCOS/FSINCOS/FPTAN/FPATAN/F2XM1/FYL2X/FYL2XP1: within 1 ulp, C1/PE not compared
    (PE stays masked so that ES does not depend on it)."""
    op = rng.choice(("fsin", "fcos", "fsincos", "fptan", "fpatan", "f2xm1", "fyl2x",
                     "fyl2xp1"))
    cw = control_word(rng, False) | 0x20
    image = bytearray(fsave_image(rng, cw, empties=0.05))
    top = image[5] >> 3 & 7
    image[28:38] = _arg_for(rng, op).to_bytes(10, "little")       # ST(0)
    if op in ("fpatan", "fyl2x", "fyl2xp1"):
        image[38:48] = fpgen.normal(rng, F80, F80.bias + rng.randrange(-20, 20)) \
            .to_bytes(10, "little")
    tw = struct.unpack_from("<H", image, 8)[0]
    tw &= ~(3 << (2 * top))            # ST(0) in use
    if op in ("fsincos", "fptan") and rng.random() < 0.9:
        tw |= 3 << (2 * ((top - 1) & 7))   # room to push
    struct.pack_into("<H", image, 8, tw)
    mem = _memory(rng, bytes(image))
    return _finish(rng, mem, [op], ulps=1)


def x87control(rng) -> X87Case:
    """FLDCW, FNSTCW, FNSTSW, FNCLEX, FNINIT (and with FWAIT), FNENI/FNDISI/FNSETPM (no-ops),
    FNSTENV/FLDENV/FNSAVE/FRSTOR (32- and 16-bit images), FXSAVE/FXRSTOR(64), LDMXCSR/STMXCSR,
    FWAIT."""
    cw, mem = _state(rng)
    k = rng.randrange(12)
    aux = _at(AUX)
    ignore: list[tuple[int, int]] = []
    mxcsr = False
    if k == 0:
        value = rng.getrandbits(16)
        body = [f"fldcw {_operand(rng, mem, 2, value)}"]
    elif k == 1:
        body = [rng.choice((f"fnstcw {aux}", f"fnstsw {aux}", "fnstsw %ax"))]
    elif k == 2:
        body = [rng.choice(("fnclex", "fninit", "fwait", "fnop", "fclex", "finit",
                            ".byte 0xdb, 0xe0", ".byte 0xdb, 0xe1", ".byte 0xdb, 0xe4"))]
    elif k in (3, 4):
        op = rng.choice(("fnstenv", "fnsave"))
        wide = rng.random() < 0.7
        body = [f"{op} {aux}" if wide else f"data16 {op} {aux}"]
        # FIP (and FCS/FOP), FDS: the host's own addresses and selectors
        ignore = [(AUX + 12, 6), (AUX + 24, 4)] if wide else [(AUX + 6, 4), (AUX + 12, 2)]
    elif k == 5:
        wide = rng.random() < 0.7
        env = bytearray(fsave_image(rng, control_word(rng, False))[:28])
        if wide:
            body = [f"fldenv {_at(AUX)}"]
            at = 0x800 + AUX
            mem[at:at + 28] = env
        else:
            cw2, sw2, tw2 = (struct.unpack_from("<I", env, 4 * j)[0] & 0xFFFF
                             for j in range(3))
            small = struct.pack("<7H", cw2, sw2, tw2, *(rng.getrandbits(16) for _ in range(4)))
            body = [f"data16 fldenv {_at(AUX)}"]
            at = 0x800 + AUX
            mem[at:at + 14] = small
    elif k == 6:
        image = fsave_image(rng, control_word(rng, False))
        at = 0x800 + AUX
        mem[at:at + 108] = image
        body = [f"frstor {_at(AUX)}"]
    elif k in (7, 8):
        op = "fxsave" if rng.random() < 0.5 or _BITS[0] == 32 else "fxsave64"
        body = [f"{op} {aux}"]
        # FOP, FIP, FDP (AMD: written only when ES is set) and AMD's MXCSR_MASK; XMM: the
        # host's leftovers (fxrstor cases compare them)
        ignore = [(AUX + 6, 18), (AUX + 28, 4), (AUX + 160, 256 if _BITS[0] == 64 else 128)]
    elif k in (9, 10):
        mxcsr = True
        at = 0x800 + FX_IN
        image = bytearray(rng.randbytes(512))
        fs = fsave_image(rng, control_word(rng, False))
        cw2, sw2, tw2 = (struct.unpack_from("<I", fs, 4 * j)[0] & 0xFFFF for j in range(3))
        ftw = sum(1 << j for j in range(8) if (tw2 >> (2 * j) & 3) != 3)
        struct.pack_into("<HHBB", image, 0, cw2, sw2, ftw, 0)
        image[6:24] = bytes(18)          # FOP, FIP, FDP
        struct.pack_into("<II", image, 24, rng.getrandbits(16), 0xFFFF)
        for j in range(8):
            image[32 + 16 * j:42 + 16 * j] = fs[28 + 10 * j:38 + 10 * j]
        mem[at:at + 512] = image
        op = "fxrstor" if rng.random() < 0.5 or _BITS[0] == 32 else "fxrstor64"
        save = "fxsave" if op == "fxrstor" else "fxsave64"
        body = [f"{op} {_at(FX_IN)}", f"{save} {aux}"]
        ignore = [(AUX + 6, 18), (AUX + 28, 4), (AUX + 416, 96)]
        if _BITS[0] == 32:
            ignore.append((AUX + 288, 128))
    else:
        mxcsr = True
        value = rng.getrandbits(16)
        body = [f"ldmxcsr {_operand(rng, mem, 4, value)}", f"stmxcsr {aux}"]
    return _finish(rng, mem, body, ignore=ignore, mxcsr=mxcsr)


def _fx_image(rng, zero_sse: bool = False) -> bytearray:
    """A valid FXRSTOR image: a random x87 state, MXCSR and XMM registers (all zero and
    MXCSR 1F80H with ``zero_sse``: the SSE component in its initial configuration)."""
    image = bytearray(rng.randbytes(512))
    fs = fsave_image(rng, control_word(rng, False))
    cw2, sw2, tw2 = (struct.unpack_from("<I", fs, 4 * j)[0] & 0xFFFF for j in range(3))
    ftw = sum(1 << j for j in range(8) if (tw2 >> (2 * j) & 3) != 3)
    struct.pack_into("<HHBB", image, 0, cw2, sw2, ftw, 0)
    image[6:24] = bytes(18)
    struct.pack_into("<II", image, 24, 0x1F80 if zero_sse else rng.getrandbits(16), 0xFFFF)
    for j in range(8):
        image[32 + 16 * j:42 + 16 * j] = fs[28 + 10 * j:38 + 10 * j]
    if zero_sse:
        image[160:416] = bytes(256)
    return image


def x87xsave(rng) -> X87Case:
    """XSAVE/XRSTOR(64) of the x87 and SSE components with a random requested-feature
    bitmap in EAX (EDX 0: the host's XCR0 has more components than the emulator's); the
    state starts from an FXRSTOR image, sometimes with either component initial."""
    cw, mem = _state(rng)
    at = 0x800 + FX_IN
    mem[at:at + 512] = _fx_image(rng, zero_sse=rng.random() < 0.3)
    wide = _BITS[0] == 64 and rng.random() < 0.5
    body = [f"fxrstor {_at(FX_IN)}"]
    if rng.random() < 0.25:            # x87 initial again only if R0-R7 are also 0
        body.append("fninit")
        if rng.random() < 0.5:
            for j in range(8):
                mem[at + 32 + 16 * j:at + 42 + 16 * j] = bytes(10)
    rfbm = rng.randrange(4)
    nxmm = 16 if _BITS[0] == 64 else 8
    if rng.random() < 0.5:
        body.append(f"{'xsave64' if wide else 'xsave'} {_at(AUX)}")
        ignore = [(AUX + 6, 18), (AUX + 28, 4)]
    else:
        image = _fx_image(rng, zero_sse=rng.random() < 0.2)
        header = bytearray(64)
        header[0] = rng.randrange(4)           # XSTATE_BV
        at = 0x800 + XS_IN
        mem[at:at + 576] = image + header
        body += [f"{'xrstor64' if wide else 'xrstor'} {_at(XS_IN)}",
                 f"{'fxsave64' if wide else 'fxsave'} {_at(AUX)}"]
        ignore = [(AUX + 6, 18), (AUX + 28, 4), (AUX + 160 + 16 * nxmm, 512 - 160 - 16 * nxmm)]
    case = _finish(rng, mem, body, ignore=ignore, mxcsr=True)
    case.regs["rax"], case.regs["rdx"] = rfbm, 0
    return case


def x87seq(rng) -> X87Case:
    """Two to six x87 instructions in a row, every exception masked (one would fault the
    next waiting instruction)."""
    cw, mem = _state(rng, masked=True)
    body = []
    for _ in range(rng.randrange(2, 7)):
        gen = rng.choice((_arith_text, _arith_text, _ldst_text, _ldst_text, _unary_text,
                          _compare_text))
        body.append(gen(rng, mem))
    return _finish(rng, mem, body)


X87_FAMILIES = {"x87arith": x87arith, "x87ldst": x87ldst, "x87unary": x87unary,
                "x87cmp": x87compare, "x87trans": x87trans, "x87ctl": x87control,
                "x87seq": x87seq, "xsave": x87xsave}


def generate(family: str, count: int, seed: int, bits: int = 64) -> list[X87Case]:
    """``count`` cases of ``family`` for 64-bit or 32-bit code."""
    return draw_cases(X87_FAMILIES, _BITS, family, count, seed, bits)


# -- comparison -------------------------------------------------------------------------------

def _masked(memory: bytes, ignore) -> bytearray:
    out = bytearray(memory)
    for off, n in ignore:
        at = 0x800 + off
        out[at:at + n] = bytes(n)
    return out


def _ulp_close(a: int, b: int, ulps: int) -> bool:
    if a == b:
        return True
    if (a ^ b) >> 79 or (a >> 64 & 0x7FFF) == 0x7FFF or (b >> 64 & 0x7FFF) == 0x7FFF:
        return False
    def ordinal(v: int) -> int:
        e, m = v >> 64 & 0x7FFF, v & (2**64 - 1)
        return (e << 63) + (m & (2**63 - 1)) if m >> 63 or e == 0 else -1
    oa, ob = ordinal(a), ordinal(b)
    return oa >= 0 and ob >= 0 and abs(oa - ob) <= ulps


def compare(case: X87Case, host: Outcome, emu: Outcome) -> list[str]:
    """Differences between host and emulator: GPRs, flags and memory as for the integer
    classes, minus the ignored fields; with ``ulps``, the FNSAVE image's registers within
    that many ulps and its status word without C1 and PE."""
    hm, em = _masked(host.memory, case.ignore), _masked(emu.memory, case.ignore)
    if "xsave" in case.text:
        _xinuse_may_be_set(hm, em)
    diffs = []
    if case.ulps:
        at = 0x800 + OUT_IMAGE
        for j in range(8):
            a = int.from_bytes(hm[at + 28 + 10 * j:at + 38 + 10 * j], "little")
            b = int.from_bytes(em[at + 28 + 10 * j:at + 38 + 10 * j], "little")
            if not _ulp_close(a, b, case.ulps):
                diffs.append(f"st{j}: host {a:020x} emu {b:020x}")
            hm[at + 28 + 10 * j:at + 38 + 10 * j] = em[at + 28 + 10 * j:at + 38 + 10 * j]
        for m in (hm, em):
            m[at + 4] &= ~0x20
            m[at + 5] &= ~0x02
    diffs += compare_gp(case, replace(host, memory=bytes(hm)), replace(emu, memory=bytes(em)))
    if any(d.startswith("memory") for d in diffs):
        at = next(i for i in range(MEM_SIZE) if hm[i] != em[i])
        diffs.append(_explain(at, hm, em))
    return diffs


def _xinuse_may_be_set(hm: bytearray, em: bytearray) -> None:
    """XSAVE's XSTATE_BV[i] = 0 promises component i is in its initial configuration; a 1
    promises nothing (SDM Vol. 1 §13.6: XINUSE[i] may be 1 for a component in its initial
    configuration — this host's is after the kernel restored the process's state). The
    emulator's exact 0 is accepted where the host wrote 1 for the x87 or SSE bit."""
    at = 0x800 + AUX + 512
    h, e = hm[at], em[at]
    if h & ~e & 0x3 and h & ~0x3 == e & ~0x3 and e & ~h == 0:
        hm[at] = e


def _explain(at: int, hm: bytes, em: bytes) -> str:
    off = at - 0x800
    if OUT_IMAGE <= off < OUT_IMAGE + 108:
        o = OUT_IMAGE + 0x800
        names = ("cw", "sw", "tw", "fip", "fcs|fop", "fdp", "fds")
        if off - OUT_IMAGE < 28:
            j = (off - OUT_IMAGE) // 4
            return (f"out {names[j]}: host {struct.unpack_from('<I', hm, o + 4 * j)[0]:#x} "
                    f"emu {struct.unpack_from('<I', em, o + 4 * j)[0]:#x}")
        j = (off - OUT_IMAGE - 28) // 10
        a = int.from_bytes(hm[o + 28 + 10 * j:o + 38 + 10 * j], "little")
        b = int.from_bytes(em[o + 28 + 10 * j:o + 38 + 10 * j], "little")
        return f"out st{j}: host {a:020x} emu {b:020x}"
    return f"at rbx{off:+#x}: host {hm[at:at + 8].hex()} emu {em[at:at + 8].hex()}"
