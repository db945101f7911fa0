"""Random MMX/SSE cases per instruction class for the host-CPU differential (cpu/hostcpu.py).

Registers and memory mix integer edge lanes, random bits and floating-point specials (zeros,
infinities, quiet and signalling NaNs, denormals, extremes); memory operands address the
scratch area through %rbx/%ebx, 16-byte aligned except now and then (then MOVDQA & co must
raise #GP). Floating-point classes draw MXCSR rounding modes, FTZ/DAZ, exception masks (some
unmasked: #XM) and sticky flags at random.
"""

from __future__ import annotations

import random

from cpu.hostcpu import MEM_BASE, MEM_SIZE, SimdCase, draw_cases

F32_SPECIAL = (0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
               0x7FA00000, 1, 0x807FFFFF, 0x00800000, 0x3F800000, 0xBF800000, 0x7F7FFFFF,
               0x4F000000, 0xCF000000, 0x5F000000, 0x3F000000, 0x40490FDB, 0x4B000000)
F64_SPECIAL = (0, 1 << 63, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
               0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000, 1,
               0x800FFFFFFFFFFFFF, 0x0010000000000000, 0x3FF0000000000000,
               0xBFF0000000000000, 0x7FEFFFFFFFFFFFFF, 0x41E0000000000000,
               0xC1E0000000000000, 0x43E0000000000000, 0x3FE0000000000000,
               0x400921FB54442D18, 0x4330000000000000, 0x41DFFFFFFFC00000)
INT_EDGE = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
            0xFFFFFFFF)
_BITS = [64]


# per float width: its special values, exponent range of the moderate values, fraction bits
_FLOAT = {32: (F32_SPECIAL, (100, 160), 23), 64: (F64_SPECIAL, (990, 1060), 52)}


def _float(rng: random.Random, width: int) -> int:
    """A float lane: a special value, a random value of moderate exponent, or random bits."""
    specials, exponents, fraction = _FLOAT[width]
    r = rng.random()
    if r < 0.5:
        return rng.choice(specials)
    if r < 0.8:
        return (rng.getrandbits(1) << (width - 1)) | (rng.randrange(*exponents) << fraction) \
            | rng.getrandbits(fraction)
    return rng.getrandbits(width)


def vec(rng: random.Random) -> int:
    """A 128-bit value: integer edges, random bits, or float lanes."""
    kind = rng.random()
    if kind < 0.25:
        w = rng.choice((1, 2, 4, 8))
        out = 0
        for i in range(16 // w):
            e = rng.choice(INT_EDGE) & ((1 << (8 * w)) - 1) if rng.random() < 0.5 else \
                rng.getrandbits(8 * w)
            out |= e << (8 * w * i)
        return out
    if kind < 0.45:
        return rng.getrandbits(128)
    if kind < 0.75:
        return sum(_float(rng, 32) << (32 * i) for i in range(4))
    return sum(_float(rng, 64) << (64 * i) for i in range(2))


def memory(rng: random.Random) -> bytes:
    return b"".join(vec(rng).to_bytes(16, "little") for _ in range(MEM_SIZE // 16))


def fp_mxcsr(rng: random.Random) -> int:
    m = (rng.randrange(4) << 13) | rng.getrandbits(6) * (rng.random() < 0.3)
    if rng.random() < 0.2:
        m |= 0x8000
    if rng.random() < 0.2:
        m |= 0x40
    masks = 0x3F if rng.random() < 0.75 else rng.getrandbits(6)
    return m | (masks << 7)


GPR64 = ("rax", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
         "r14", "r15")


def _case(rng: random.Random, text: str, mxcsr: int = 0x1F80) -> SimdCase:
    regs = {r: rng.choice((0, 1, 0x80, 0xFFFFFFFF, rng.getrandbits(64), rng.getrandbits(8)))
            for r in GPR64}
    regs["rbx"] = MEM_BASE + 0x800
    nx = 16 if _BITS[0] == 64 else 8
    return SimdCase(text, regs, 0x202 | (rng.getrandbits(12) & 0x8D5), memory(rng),
                    [vec(rng) for _ in range(nx)] + [0] * (16 - nx),
                    [vec(rng) & (2**64 - 1) for _ in range(8)], mxcsr)


def xmm(rng: random.Random) -> str:
    return f"%xmm{rng.randrange(16 if _BITS[0] == 64 else 8)}"


def mmx(rng: random.Random) -> str:
    return f"%mm{rng.randrange(8)}"


def mem(rng: random.Random, align: int = 16) -> str:
    base = "%rbx" if _BITS[0] == 64 else "%ebx"
    if rng.random() < 0.04:
        disp = rng.randrange(-0x400, 0x3F0)
    else:
        disp = rng.randrange(-0x400, 0x3F0, align)
    return f"{disp}({base})"


def gpr(rng: random.Random, size: int) -> str:
    if _BITS[0] == 32 or size == 4:
        names = ("eax", "ecx", "edx", "esi", "edi") + (("r9d", "r12d") if _BITS[0] == 64 else ())
    else:
        names = ("rax", "rcx", "rdx", "rsi", "rdi", "r9", "r12")
    return "%" + rng.choice(names)


def _src(rng: random.Random, reg) -> str:
    return mem(rng, 16 if reg is xmm else 8) if rng.random() < 0.3 else reg(rng)


# -- integer ----------------------------------------------------------------------------------

SSE2_BINARY = (
    "paddb paddw paddd paddq psubb psubw psubd psubq paddsb paddsw paddusb paddusw psubsb "
    "psubsw psubusb psubusw pcmpeqb pcmpeqw pcmpeqd pcmpgtb pcmpgtw pcmpgtd pminub pmaxub "
    "pminsw pmaxsw pavgb pavgw pmullw pmulhw pmulhuw pmuludq pmaddwd psadbw pand pandn por "
    "pxor packsswb packssdw packuswb punpcklbw punpcklwd punpckldq punpcklqdq punpckhbw "
    "punpckhwd punpckhdq punpckhqdq andps andnps orps xorps andpd andnpd orpd xorpd unpcklps "
    "unpckhps unpcklpd unpckhpd").split()
MMX_BINARY = [n for n in SSE2_BINARY if n.startswith("p") and "qdq" not in n]
SHIFTS = "psllw pslld psllq psrlw psrld psrlq psraw psrad".split()


def _shift(rng: random.Random, reg) -> str:
    op = rng.choice(SHIFTS)
    r = rng.random()
    if r < 0.5:
        count = rng.choice((0, 1, 7, 8, 15, 16, 31, 32, 63, 64, 200, rng.randrange(70)))
        return f"{op} ${count}, {reg(rng)}"
    return f"{op} {_src(rng, reg)}, {reg(rng)}"


def sse_int(rng: random.Random) -> SimdCase:
    r = rng.random()
    if r < 0.55:
        text = f"{rng.choice(SSE2_BINARY)} {_src(rng, xmm)}, {xmm(rng)}"
    elif r < 0.7:
        text = _shift(rng, xmm)
    elif r < 0.75:
        text = f"{rng.choice(('pslldq', 'psrldq'))} ${rng.randrange(20)}, {xmm(rng)}"
    elif r < 0.87:
        op = rng.choice(("pshufd", "pshuflw", "pshufhw", "shufps", "shufpd"))
        text = f"{op} ${rng.randrange(256)}, {_src(rng, xmm)}, {xmm(rng)}"
    elif r < 0.93:
        op = rng.choice(("pmovmskb", "movmskps", "movmskpd"))
        text = f"{op} {xmm(rng)}, {gpr(rng, 4)}"
    elif r < 0.965:
        text = f"pextrw ${rng.randrange(16)}, {xmm(rng)}, {gpr(rng, 4)}"
    else:
        src = gpr(rng, 4) if rng.random() < 0.6 else mem(rng, 2)
        text = f"pinsrw ${rng.randrange(16)}, {src}, {xmm(rng)}"
    return _case(rng, text)


def mmx_class(rng: random.Random) -> SimdCase:
    r = rng.random()
    msrc = lambda g: mem(g, 8) if g.random() < 0.3 else mmx(g)   # noqa: E731
    if r < 0.5:
        text = f"{rng.choice(MMX_BINARY)} {msrc(rng)}, {mmx(rng)}"
    elif r < 0.62:
        text = _shift(rng, mmx)
    elif r < 0.7:
        text = f"pshufw ${rng.randrange(256)}, {msrc(rng)}, {mmx(rng)}"
    elif r < 0.78:
        forms = ["movq {m}, {a}", "movq {a}, {mem}", "movq {mem}, {a}", "movd {g4}, {a}",
                 "movd {a}, {g4}", "movd {mem}, {a}", "movd {a}, {mem}"]
        if _BITS[0] == 64:
            forms += ["movq {g8}, {a}", "movq {a}, {g8}"]
        text = rng.choice(forms).format(m=mmx(rng), a=mmx(rng), mem=mem(rng, 8),
                                        g4=gpr(rng, 4), g8=gpr(rng, 8))
    elif r < 0.84:
        text = rng.choice((f"pmovmskb {mmx(rng)}, {gpr(rng, 4)}",
                           f"pextrw ${rng.randrange(8)}, {mmx(rng)}, {gpr(rng, 4)}",
                           f"pinsrw ${rng.randrange(8)}, {gpr(rng, 4)}, {mmx(rng)}",
                           "emms"))
    elif r < 0.9:
        text = rng.choice((f"movq2dq {mmx(rng)}, {xmm(rng)}", f"movdq2q {xmm(rng)}, {mmx(rng)}",
                           f"movntq {mmx(rng)}, {mem(rng, 8)}"))
    else:
        case = _case(rng, f"maskmovq {mmx(rng)}, {mmx(rng)}")
        case.regs["rdi"] = MEM_BASE + rng.randrange(0x100, 0xC00)
        return case
    return _case(rng, text)


# -- moves ------------------------------------------------------------------------------------

def sse_mov(rng: random.Random) -> SimdCase:
    r = rng.random()
    if r < 0.35:
        op = rng.choice(("movdqa", "movdqu", "movaps", "movups", "movapd", "movupd"))
        form = rng.randrange(3)
        text = (f"{op} {xmm(rng)}, {xmm(rng)}", f"{op} {mem(rng)}, {xmm(rng)}",
                f"{op} {xmm(rng)}, {mem(rng)}")[form]
    elif r < 0.42:
        op = rng.choice(("movntdq", "movntps", "movntpd"))
        text = f"{op} {xmm(rng)}, {mem(rng)}"
    elif r < 0.6:
        forms = ["movd {g4}, {x}", "movd {x}, {g4}", "movd {m}, {x}", "movd {x}, {m}",
                 "movq {x}, {x2}", "movq {m}, {x}", "movq {x}, {m}"]
        if _BITS[0] == 64:
            forms += ["movq {g8}, {x}", "movq {x}, {g8}"]
        text = rng.choice(forms).format(g4=gpr(rng, 4), g8=gpr(rng, 8), x=xmm(rng),
                                        x2=xmm(rng), m=mem(rng, 8))
    elif r < 0.75:
        op = rng.choice(("movss", "movsd"))
        form = rng.randrange(3)
        text = (f"{op} {xmm(rng)}, {xmm(rng)}", f"{op} {mem(rng, 4)}, {xmm(rng)}",
                f"{op} {xmm(rng)}, {mem(rng, 4)}")[form]
    elif r < 0.88:
        op = rng.choice(("movlps", "movhps", "movlpd", "movhpd", "movhlps", "movlhps"))
        if op in ("movhlps", "movlhps"):
            text = f"{op} {xmm(rng)}, {xmm(rng)}"
        elif rng.random() < 0.5:
            text = f"{op} {mem(rng, 8)}, {xmm(rng)}"
        else:
            text = f"{op} {xmm(rng)}, {mem(rng, 8)}"
    elif r < 0.93:
        text = f"movnti {gpr(rng, rng.choice((4, 8)))}, {mem(rng, 4)}"
    else:
        text = f"maskmovdqu {xmm(rng)}, {xmm(rng)}"
        case = _case(rng, text)
        case.regs["rdi"] = MEM_BASE + rng.randrange(0x100, 0xC00)
        return case
    return _case(rng, text)


# -- floating point -----------------------------------------------------------------------------

FP_ARITH = [op + t for op in ("add", "sub", "mul", "div", "min", "max", "sqrt")
            for t in ("ss", "sd", "ps", "pd")]
COMI = ("comiss", "ucomiss", "comisd", "ucomisd")


def _fp_src(rng: random.Random, name: str) -> str:
    if rng.random() < 0.3:
        return mem(rng, 4 if name.endswith("s") else 8) if name[-2] == "s" else mem(rng)
    return xmm(rng)


def sse_fp(rng: random.Random) -> SimdCase:
    r = rng.random()
    if r < 0.6:
        op = rng.choice(FP_ARITH)
        text = f"{op} {_fp_src(rng, op)}, {xmm(rng)}"
    elif r < 0.82:
        op = "cmp" + rng.choice(("ss", "sd", "ps", "pd"))
        imm = rng.randrange(8) if rng.random() < 0.9 else rng.randrange(256)  # [7:3] ignored
        text = f"{op} ${imm}, {_fp_src(rng, op)}, {xmm(rng)}"
    else:
        op = rng.choice(COMI)
        text = f"{op} {_fp_src(rng, op)}, {xmm(rng)}"
    return _case(rng, text, fp_mxcsr(rng))


CVT_PACKED = ("cvtps2pd", "cvtpd2ps", "cvtdq2ps", "cvtdq2pd", "cvtps2dq", "cvttps2dq",
              "cvtpd2dq", "cvttpd2dq")


def sse_cvt(rng: random.Random) -> SimdCase:
    r = rng.random()
    if r < 0.35:
        op = rng.choice(CVT_PACKED)
        src = xmm(rng)
        if rng.random() < 0.3:
            src = mem(rng, 8) if op in ("cvtps2pd", "cvtdq2pd") else mem(rng)
        text = f"{op} {src}, {xmm(rng)}"
    elif r < 0.55:
        op = rng.choice(("cvtsi2ss", "cvtsi2sd"))
        size = rng.choice((4, 8)) if _BITS[0] == 64 else 4
        sfx = "l" if size == 4 else "q"
        src = gpr(rng, size) if rng.random() < 0.7 else mem(rng, 4)
        text = f"{op}{sfx} {src}, {xmm(rng)}"
    elif r < 0.8:
        op = rng.choice(("cvtss2si", "cvtsd2si", "cvttss2si", "cvttsd2si"))
        size = rng.choice((4, 8)) if _BITS[0] == 64 else 4
        src = xmm(rng) if rng.random() < 0.7 else mem(rng, 4)
        text = f"{op} {src}, {gpr(rng, size)}"
    elif r < 0.9:
        op = rng.choice(("cvtss2sd", "cvtsd2ss"))
        text = f"{op} {_fp_src(rng, op)}, {xmm(rng)}"
    else:
        op = rng.choice(("cvtpi2ps", "cvtpi2pd", "cvtps2pi", "cvttps2pi", "cvtpd2pi",
                         "cvttpd2pi"))
        if op.startswith("cvtpi"):
            src = mmx(rng) if rng.random() < 0.7 else mem(rng, 8)
            text = f"{op} {src}, {xmm(rng)}"
        else:
            src = xmm(rng) if rng.random() < 0.7 else mem(rng, 16 if "pd" in op else 8)
            text = f"{op} {src}, {mmx(rng)}"
    return _case(rng, text, fp_mxcsr(rng))


# -- SSE3, SSSE3, SSE4.1 ----------------------------------------------------------------------

def sse3(rng: random.Random) -> SimdCase:
    r = rng.random()
    if r < 0.6:
        op = rng.choice(("addsubps", "addsubpd", "haddps", "haddpd", "hsubps", "hsubpd"))
        return _case(rng, f"{op} {_src(rng, xmm)}, {xmm(rng)}", fp_mxcsr(rng))
    op = rng.choice(("movddup", "movshdup", "movsldup", "lddqu"))
    if op == "lddqu":
        src = mem(rng, 1)
    elif rng.random() < 0.3:
        src = mem(rng, 8 if op == "movddup" else 16)
    else:
        src = xmm(rng)
    return _case(rng, f"{op} {src}, {xmm(rng)}")


SSSE3_BINARY = ("pshufb phaddw phaddd phaddsw phsubw phsubd phsubsw pmaddubsw pmulhrsw "
                "psignb psignw psignd pabsb pabsw pabsd").split()


def ssse3(rng: random.Random) -> SimdCase:
    reg = xmm if rng.random() < 0.7 else mmx
    if rng.random() < 0.8:
        return _case(rng, f"{rng.choice(SSSE3_BINARY)} {_src(rng, reg)}, {reg(rng)}")
    imm = rng.choice((0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 200, rng.randrange(40)))
    return _case(rng, f"palignr ${imm}, {_src(rng, reg)}, {reg(rng)}")


SSE41_BINARY = ("pmulld pminsb pminsd pminuw pminud pmaxsb pmaxsd pmaxuw pmaxud pcmpeqq "
                "packusdw pmuldq phminposuw").split()
PMOVX = [f"pmov{s}x{t}" for s in "sz" for t in ("bw", "bd", "bq", "wd", "wq", "dq")]
PMOVX_BYTES = {"bw": 8, "bd": 4, "bq": 2, "wd": 8, "wq": 4, "dq": 8}


def sse41(rng: random.Random) -> SimdCase:
    r = rng.random()
    mx = 0x1F80
    if r < 0.3:
        text = f"{rng.choice(SSE41_BINARY)} {_src(rng, xmm)}, {xmm(rng)}"
    elif r < 0.4:
        op = rng.choice(PMOVX)
        src = mem(rng, PMOVX_BYTES[op[-2:]]) if rng.random() < 0.3 else xmm(rng)
        text = f"{op} {src}, {xmm(rng)}"
    elif r < 0.45:
        text = f"ptest {_src(rng, xmm)}, {xmm(rng)}"
    elif r < 0.55:
        op = rng.choice(("pblendw", "blendps", "blendpd", "mpsadbw"))
        text = f"{op} ${rng.randrange(256)}, {_src(rng, xmm)}, {xmm(rng)}"
    elif r < 0.6:
        op = rng.choice(("pblendvb", "blendvps", "blendvpd"))
        text = f"{op} %xmm0, {_src(rng, xmm)}, {xmm(rng)}"
    elif r < 0.7:
        op, w = rng.choice((("pextrb", 1), ("pextrw", 2), ("pextrd", 4), ("pextrq", 8),
                            ("extractps", 4)))
        if op == "pextrq" and _BITS[0] == 32:
            op, w = "pextrd", 4
        dst = mem(rng, w) if rng.random() < 0.3 else gpr(rng, 8 if op == "pextrq" else 4)
        text = f"{op} ${rng.randrange(16)}, {xmm(rng)}, {dst}"
    elif r < 0.78:
        op, w = rng.choice((("pinsrb", 1), ("pinsrd", 4), ("pinsrq", 8)))
        if op == "pinsrq" and _BITS[0] == 32:
            op, w = "pinsrd", 4
        src = mem(rng, w) if rng.random() < 0.3 else gpr(rng, 8 if op == "pinsrq" else 4)
        text = f"{op} ${rng.randrange(16)}, {src}, {xmm(rng)}"
    elif r < 0.82:
        src = mem(rng, 4) if rng.random() < 0.3 else xmm(rng)
        text = f"insertps ${rng.randrange(256)}, {src}, {xmm(rng)}"
    elif r < 0.84:
        text = f"movntdqa {mem(rng)}, {xmm(rng)}"
    else:
        mx = fp_mxcsr(rng)
        op = rng.choice(("roundps", "roundpd", "roundss", "roundsd", "dpps", "dppd"))
        imm = rng.randrange(16) if op.startswith("round") else rng.randrange(256)
        if op.startswith("round") and op[-2] == "s" and rng.random() < 0.3:
            src = mem(rng, 4)
        else:
            src = _src(rng, xmm)
        text = f"{op} ${imm}, {src}, {xmm(rng)}"
    return _case(rng, text, mx)


def _string_vec(rng: random.Random, imm: int) -> int:
    """Characters from a small alphabet (so that matches happen), sometimes a NUL."""
    w = 2 if imm & 1 else 1
    alphabet = (0, 1, 0x41, 0x42, 0x43, 0x7F, 0x80, 0xFF, 0xFFFF, 0x8000)
    out = 0
    for i in range(16 // w):
        ch = rng.choice(alphabet[1:6]) if rng.random() < 0.9 else rng.choice(alphabet)
        out |= (ch & ((1 << (8 * w)) - 1)) << (8 * w * i)
    return out


def sse42(rng: random.Random) -> SimdCase:
    r = rng.random()
    if r < 0.1:
        return _case(rng, f"pcmpgtq {_src(rng, xmm)}, {xmm(rng)}")
    if r < 0.25:
        size = rng.choice((1, 2, 4, 8) if _BITS[0] == 64 else (1, 2, 4))
        sfx = {1: "b", 2: "w", 4: "l", 8: "q"}[size]
        dst = gpr(rng, 8 if size == 8 else 4)
        src = mem(rng, 1) if rng.random() < 0.3 else {1: "%cl", 2: "%cx", 4: "%ecx",
                                                       8: "%rcx"}[size]
        return _case(rng, f"crc32{sfx} {src}, {dst}")
    op = rng.choice(("pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm"))
    imm = rng.randrange(128)
    a, b = xmm(rng), xmm(rng)
    src = mem(rng, 1) if rng.random() < 0.3 else b
    case = _case(rng, f"{op} ${imm}, {src}, {a}")
    nx = 16 if _BITS[0] == 64 else 8
    case.xmm = [_string_vec(rng, imm) for _ in range(nx)] + [0] * (16 - nx)
    case.memory = b"".join(_string_vec(rng, imm).to_bytes(16, "little")
                           for _ in range(MEM_SIZE // 16))
    for r_ in ("rax", "rdx"):
        case.regs[r_] = rng.choice((0, 1, 3, 8, 15, 16, 17, 100, -1, -5, -16, -17, 2**31,
                                    -2**31, 2**63)) & (2**64 - 1)
    if _BITS[0] == 64 and op.startswith("pcmpe") and rng.random() < 0.3:
        case.text = case.text.replace(op, op + "q")     # REX.W: RAX and RDX are the lengths
    return case


FAMILIES = {"sse_int": sse_int, "mmx": mmx_class, "sse_mov": sse_mov, "sse_fp": sse_fp,
            "sse_cvt": sse_cvt, "sse3": sse3, "ssse3": ssse3, "sse41": sse41,
            "sse42": sse42}


def generate(family: str, count: int, seed: int, bits: int = 64) -> list[SimdCase]:
    """``count`` cases of ``family`` for 64-bit or 32-bit code."""
    return draw_cases(FAMILIES, _BITS, family, count, seed, bits)
