"""MMX and SSE execution: availability checks, operand access and the integer/move helpers.

Every helper is ``helper(cpu, (insn, operands))`` (operands in Intel order, as the decoder
gives them) and is registered with :func:`x86vm.cpu.ops.register_helpers`. Order inside an
instruction: the #UD/#NM checks, then every operand read (memory faults, the 16-byte
alignment #GP), then the writes — so an instruction stopped by a fault or by a monitor read
runs again from the start. The lane arithmetic lives in :mod:`x86vm.cpu.simd_int` (integer)
and :mod:`x86vm.cpu.sse_float` (floating point, driven by :mod:`x86vm.cpu.sse_fexec`).

Availability (SDM Vol. 3A §13.1 and Vol. 2 "Exceptions" of each instruction): an instruction
that touches MMX registers: CR0.EM → #UD, CR0.TS → #NM, a pending x87 exception → #MF; one
that touches XMM registers: CR0.EM or CR4.OSFXSR clear → #UD, CR0.TS → #NM. An MMX
instruction then puts the x87 unit in MMX state (TOP = 0, all tags valid; EMMS empties them).
"""

from __future__ import annotations

from x86vm.cpu import simd_int as S
from x86vm.cpu.errors import CpuFault
from x86vm.cpu.operand import Imm, Mem, Reg, linear, read_reg, write_reg
from x86vm.cpu.state import CR0_EM, CR0_TS, CR4_OSFXSR
from x86vm.cpu.x87 import SW_ES, emms, mmx_enter, mmx_read, mmx_write

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
M128 = (1 << 128) - 1
UD, NM, MF, GP = 6, 7, 16, 13


def simd_available(cpu, mmx: bool, xmm: bool) -> None:
    """Raise #UD / #NM / #MF as the SDM says for an instruction using MMX and/or XMM state."""
    cr0 = cpu.cr0
    if cr0 & CR0_EM or (xmm and not cpu.cr4 & CR4_OSFXSR):
        raise cpu.undefined("SIMD disabled (CR0.EM / CR4.OSFXSR)")
    if cr0 & CR0_TS:
        raise CpuFault(NM)
    if mmx and cpu.x87.sw & SW_ES:
        raise CpuFault(MF)


def uses(ops) -> tuple[bool, bool]:
    """(touches MMX registers, touches XMM registers)."""
    mmx = xmm = False
    for op in ops:
        if type(op) is Reg:
            if op.cls == "mmx":
                mmx = True
            elif op.cls == "xmm":
                xmm = True
    return mmx, xmm


def enter(cpu, ops) -> bool:
    """The availability check for ``ops``; True if the instruction uses MMX registers."""
    mmx, xmm = uses(ops)
    simd_available(cpu, mmx, xmm or not mmx)
    return mmx


def get(cpu, op, size: int = 0, aligned: bool = False) -> int:
    """The value of a register, memory (``size`` bytes, default the operand's) or immediate
    operand. ``aligned``: a 16-byte memory operand must be 16-byte aligned (#GP(0))."""
    t = type(op)
    if t is Reg:
        cls = op.cls
        if cls == "xmm":
            return cpu.xmm[op.num]
        if cls == "mmx":
            return mmx_read(cpu.x87, op.num)
        return read_reg(cpu, op)
    if t is Mem:
        la = linear(cpu, op)
        size = size or op.size or 16
        if size == 16:
            if aligned and la & 15:
                raise CpuFault(GP, 0, "misaligned 16-byte SSE operand")
            if la & 0xFFF <= 0xFF0:   # within a page: two TLB-fast quadword reads
                rd8 = cpu.rd[8]
                lo = rd8(la)
                return lo | (rd8(la + 8) << 64)
        return cpu.read_mem(la, size)
    if t is Imm:
        return op.value
    raise cpu.undefined(f"SIMD operand {t.__name__}")


def put(cpu, op, value: int, size: int = 0, aligned: bool = False) -> None:
    """Write a register (XMM: all 128 bits; MMX: the 64-bit register; GPR: as a GPR write)
    or ``size`` bytes of memory."""
    t = type(op)
    if t is Reg:
        cls = op.cls
        if cls == "xmm":
            cpu.xmm[op.num] = value & M128
        elif cls == "mmx":
            mmx_write(cpu.x87, op.num, value)
        else:
            write_reg(cpu, op, value)
        return
    if t is Mem:
        la = linear(cpu, op)
        size = size or op.size or 16
        value &= (1 << (8 * size)) - 1
        if size == 16:
            if aligned and la & 15:
                raise CpuFault(GP, 0, "misaligned 16-byte SSE operand")
            if la & 0xFFF <= 0xFF0:
                wr8 = cpu.wr[8]
                wr8(la, value & M64)
                wr8(la + 8, value >> 64)
            else:    # across a page: both pages are checked before either is written
                cpu.write_slow(la, 16, value)
            return
        cpu.write_mem(la, size, value)
        return
    raise cpu.undefined(f"SIMD destination {t.__name__}")


def check_store(cpu, op, size: int = 0, aligned: bool = False) -> None:
    """Probe a memory destination before any register is written (alignment only: a page
    fault on the store itself happens before the store, which is the last write)."""
    if type(op) is Mem and aligned and (size or op.size or 16) == 16 and linear(cpu, op) & 15:
        raise CpuFault(GP, 0, "misaligned 16-byte SSE operand")


def _bits(op) -> int:
    return 64 if type(op) is Reg and op.cls == "mmx" else 128


def _mmx_done(cpu, mmx: bool) -> None:
    """The MMX state change, after the last write that could fault (a store)."""
    if mmx:
        mmx_enter(cpu.x87)


# -- two-operand vector operations ------------------------------------------------------------

def _binary_table() -> dict:
    t = {}
    for name in S.LANEWISE:
        t[name] = (lambda n: lambda a, b, bits: S.lanewise(n, a, b, bits))(name)
    for name, fn in S.BITWISE.items():
        t[name] = (lambda f: lambda a, b, bits: f(a, b, (1 << bits) - 1))(fn)
    for name in S.PACKS:
        t[name] = (lambda n: lambda a, b, bits: S.pack(n, a, b, bits))(name)
    for name in S.UNPACKS:
        t[name] = (lambda n: lambda a, b, bits: S.unpack(n, a, b, bits))(name)
    for name in S.HORIZONTAL:
        t[name] = (lambda n: lambda a, b, bits: S.horizontal(n, a, b, bits))(name)
    t["pshufb"] = S.pshufb
    t["pmaddwd"] = S.pmaddwd
    t["pmaddubsw"] = S.pmaddubsw
    t["pmuludq"] = S.pmuludq
    t["pmuldq"] = lambda a, b, bits: S.pmuludq(a, b, bits, True)
    t["psadbw"] = S.psadbw
    return t


BINARY = _binary_table()
"""dst ← f(dst, src, bits): lane-wise, bitwise, packs, unpacks, SSSE3 horizontal…"""


def h_binary(cpu, c) -> None:
    insn, (dst, src) = c
    mmx = enter(cpu, c[1])
    bits = _bits(dst)
    a = get(cpu, dst)
    b = get(cpu, src, bits // 8, aligned=True)
    v = BINARY[insn.mnemonic](a, b, bits)
    put(cpu, dst, v)
    _mmx_done(cpu, mmx)


def h_unary(cpu, c) -> None:
    """PABSx (SSSE3), PMOVSX/ZX, PHMINPOSUW (SSE4.1): dst ← f(src)."""
    insn, (dst, src) = c
    mmx = enter(cpu, c[1])
    name = insn.mnemonic
    bits = _bits(dst)
    if name in S.PMOVX:
        v = S.pmovx(name, get(cpu, src, S.pmovx_source_bytes(name)))
    elif name == "phminposuw":
        v = S.minposuw(get(cpu, src, 16, aligned=True))
    else:
        v = S.unary(name, get(cpu, src, bits // 8, aligned=True), bits)
    put(cpu, dst, v)
    _mmx_done(cpu, mmx)


def h_shift(cpu, c) -> None:
    """PSLLx/PSRLx/PSRAx by an immediate or by the low 64 bits of a register or memory."""
    insn, (dst, src) = c
    mmx = enter(cpu, c[1])
    bits = _bits(dst)
    a = get(cpu, dst)
    n = src.value if type(src) is Imm else get(cpu, src, bits // 8, aligned=True) & M64
    v = S.shift(insn.mnemonic, a, n, bits)
    put(cpu, dst, v)
    _mmx_done(cpu, mmx)


def h_byte_shift(cpu, c) -> None:
    insn, (dst, imm) = c
    enter(cpu, c[1])
    cpu.xmm[dst.num] = S.byte_shift(insn.mnemonic, cpu.xmm[dst.num], imm.value)


def _imm_table() -> dict:
    return {
        "pshufd": lambda a, b, imm, bits: S.pshufd(b, imm),
        "pshufw": lambda a, b, imm, bits: S.pshufw(b, imm),
        "pshuflw": lambda a, b, imm, bits: S.pshufw(b, imm, 128, 0),
        "pshufhw": lambda a, b, imm, bits: S.pshufw(b, imm, 128, 4),
        "palignr": lambda a, b, imm, bits: S.palignr(a, b, imm, bits),
        "shufps": lambda a, b, imm, bits: S.shufps(a, b, imm),
        "shufpd": lambda a, b, imm, bits: S.shufpd(a, b, imm),
        "pblendw": lambda a, b, imm, bits: S.blend_imm(a, b, imm, 2),
        "blendps": lambda a, b, imm, bits: S.blend_imm(a, b, imm & 15, 4),
        "blendpd": lambda a, b, imm, bits: S.blend_imm(a, b, imm & 3, 8),
        "mpsadbw": lambda a, b, imm, bits: S.mpsadbw(a, b, imm),
    }


WITH_IMM = _imm_table()


def h_with_imm(cpu, c) -> None:
    insn, (dst, src, imm) = c
    mmx = enter(cpu, c[1])
    bits = _bits(dst)
    a = get(cpu, dst)
    b = get(cpu, src, bits // 8, aligned=True)
    v = WITH_IMM[insn.mnemonic](a, b, imm.value, bits)
    put(cpu, dst, v)
    _mmx_done(cpu, mmx)


def h_blendv(cpu, c) -> None:
    """PBLENDVB/BLENDVPS/BLENDVPD (SSE4.1) with the implicit mask XMM0."""
    insn, ops = c
    dst, src = ops[0], ops[1]
    enter(cpu, ops)
    b = get(cpu, src, 16, aligned=True)
    w = {"pblendvb": 1, "blendvps": 4, "blendvpd": 8}[insn.mnemonic]
    cpu.xmm[dst.num] = S.blend_var(cpu.xmm[dst.num], b, cpu.xmm[0], w)


def h_ptest(cpu, c) -> None:
    dst, src = c[1]
    enter(cpu, c[1])
    b = get(cpu, src, 16, aligned=True)
    fl = cpu.flags() & ~0x8D5
    cpu.fl = fl | S.ptest(cpu.xmm[dst.num], b)


def h_movmsk(cpu, c) -> None:
    insn, (dst, src) = c
    mmx = enter(cpu, c[1])
    w = {"pmovmskb": 1, "movmskps": 4, "movmskpd": 8}[insn.mnemonic]
    v = S.movmsk(get(cpu, src), w, _bits(src))
    put(cpu, dst, v)
    _mmx_done(cpu, mmx)


def h_emms(cpu, c) -> None:
    simd_available(cpu, True, False)
    emms(cpu.x87)


# -- moves --------------------------------------------------------------------------------------

ALIGNED_MOVES = frozenset(("movdqa", "movaps", "movapd", "movntdq", "movntps", "movntpd",
                           "movntdqa"))


def h_mov128(cpu, c) -> None:
    """MOVDQA/MOVDQU/MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVNT*/LDDQU: 128 bits, aligned or not."""
    insn, (dst, src) = c
    enter(cpu, c[1])
    aligned = insn.mnemonic in ALIGNED_MOVES
    v = get(cpu, src, 16, aligned)
    put(cpu, dst, v, 16, aligned)


def h_movdq(cpu, c) -> None:
    """MOVD/MOVQ in every form: to an XMM or MMX register the value is zero-extended; to a
    GPR or memory the low 32/64 bits are stored (SDM Vol. 2B MOVD/MOVQ)."""
    insn, (dst, src) = c
    mmx = enter(cpu, c[1])
    size = 4 if insn.mnemonic == "movd" else 8
    if type(dst) is Reg and dst.cls == "gpr":
        size = dst.size
    elif type(src) is Reg and src.cls == "gpr":
        size = src.size
    v = get(cpu, src, size) & ((1 << (8 * size)) - 1)
    put(cpu, dst, v, size)
    _mmx_done(cpu, mmx)


def h_movnti(cpu, c) -> None:
    dst, src = c[1]
    put(cpu, dst, read_reg(cpu, src))


def h_movq2dq(cpu, c) -> None:
    """MOVQ2DQ xmm, mm / MOVDQ2Q mm, xmm."""
    dst, src = c[1]
    simd_available(cpu, True, True)
    v = get(cpu, src) & M64
    put(cpu, dst, v)
    mmx_enter(cpu.x87)


def h_movs_scalar(cpu, c) -> None:
    """MOVSS/MOVSD (SSE): register to register merges the low lane; a load zeroes the rest;
    a store writes the low lane."""
    insn, (dst, src) = c
    enter(cpu, c[1])
    size = 4 if insn.mnemonic == "movss" else 8
    m = (1 << (8 * size)) - 1
    v = get(cpu, src, size) & m
    if type(dst) is Mem:
        put(cpu, dst, v, size)
    elif type(src) is Mem:
        cpu.xmm[dst.num] = v
    else:
        cpu.xmm[dst.num] = (cpu.xmm[dst.num] & ~m) | v


def h_movhl(cpu, c) -> None:
    """MOVLPS/MOVLPD/MOVHPS/MOVHPD (64-bit loads and stores of one half), MOVHLPS, MOVLHPS."""
    insn, (dst, src) = c
    enter(cpu, c[1])
    name = insn.mnemonic
    if type(dst) is Mem:
        x = cpu.xmm[src.num]
        put(cpu, dst, x >> 64 if name in ("movhps", "movhpd") else x & M64, 8)
        return
    s = get(cpu, src, 8)
    d = cpu.xmm[dst.num]
    if name == "movhlps":
        d = (d & ~M64) | (s >> 64)
    elif name == "movlhps":
        d = (d & M64) | ((s & M64) << 64)
    elif name in ("movhps", "movhpd"):
        d = (d & M64) | ((s & M64) << 64)
    else:
        d = (d & ~M64) | (s & M64)
    cpu.xmm[dst.num] = d


def h_dup(cpu, c) -> None:
    """MOVDDUP / MOVSHDUP / MOVSLDUP (SSE3)."""
    insn, (dst, src) = c
    enter(cpu, c[1])
    name = insn.mnemonic
    if name == "movddup":
        lo = get(cpu, src, 8) & M64
        cpu.xmm[dst.num] = lo | (lo << 64)
        return
    d = S.split(get(cpu, src, 16, aligned=True), 4, 128)
    k = 1 if name == "movshdup" else 0
    cpu.xmm[dst.num] = S.join([d[k], d[k], d[k + 2], d[k + 2]], 4)


def h_maskmov(cpu, c) -> None:
    """MASKMOVQ / MASKMOVDQU: store the bytes of src selected by the mask's top bits at
    DS:rDI (a segment override applies)."""
    insn, ops = c
    dst, src = ops[0], ops[1]
    mmx = enter(cpu, ops)
    bits = _bits(dst)
    data = S.split(get(cpu, dst), 1, bits)
    mask = S.split(get(cpu, src), 1, bits)
    asize = insn.address_size // 8
    base = cpu.r[7] & ((1 << (8 * asize)) - 1)
    seg = _seg_override(insn)
    for i, m in enumerate(mask):
        if m & 0x80:
            cpu.write_mem(_seg_la(cpu, seg, (base + i) & ((1 << (8 * asize)) - 1)), 1,
                          data[i])
    _mmx_done(cpu, mmx)


_SEG_PREFIX = {0x26: 0, 0x2E: 1, 0x36: 2, 0x3E: 3, 0x64: 4, 0x65: 5}


def _seg_override(insn) -> int:
    seg = 3
    for p in getattr(insn, "prefixes", ()):
        if p in _SEG_PREFIX:
            seg = _SEG_PREFIX[p]
    return seg


def _seg_la(cpu, seg: int, off: int) -> int:
    if cpu.code_bits == 64:
        return (off + cpu.sbase[seg]) & M64 if seg >= 4 else off
    return (off + cpu.sbase[seg]) & M32


# -- element extract / insert -------------------------------------------------------------------

EXTRACT = {"pextrb": 1, "pextrw": 2, "pextrd": 4, "pextrq": 8, "extractps": 4}
INSERT = {"pinsrb": 1, "pinsrw": 2, "pinsrd": 4, "pinsrq": 8}


def h_extract(cpu, c) -> None:
    insn, (dst, src, imm) = c
    mmx = enter(cpu, c[1])
    w = EXTRACT[insn.mnemonic]
    bits = _bits(src)
    n = bits // (8 * w)
    v = (get(cpu, src) >> (8 * w * (imm.value % n))) & ((1 << (8 * w)) - 1)
    if type(dst) is Mem:
        put(cpu, dst, v, w)
    else:
        put(cpu, dst, v)     # a GPR destination is zero-extended
    _mmx_done(cpu, mmx)


def h_insert(cpu, c) -> None:
    insn, (dst, src, imm) = c
    mmx = enter(cpu, c[1])
    w = INSERT[insn.mnemonic]
    bits = _bits(dst)
    m = (1 << (8 * w)) - 1
    v = get(cpu, src, w) & m
    d = get(cpu, dst)
    sh = 8 * w * (imm.value % (bits // (8 * w)))
    put(cpu, dst, (d & ~(m << sh)) | (v << sh))
    _mmx_done(cpu, mmx)


def h_insertps(cpu, c) -> None:
    """INSERTPS (SSE4.1): a dword from src (register: lane imm[7:6]; memory: m32) into lane
    imm[5:4] of dst, then lanes zeroed by imm[3:0]."""
    dst, src, imm = c[1]
    enter(cpu, c[1])
    i = imm.value
    if type(src) is Mem:
        v = get(cpu, src, 4)
    else:
        v = (cpu.xmm[src.num] >> (32 * (i >> 6))) & M32
    d = list(S.split(cpu.xmm[dst.num], 4, 128))
    d[(i >> 4) & 3] = v
    cpu.xmm[dst.num] = S.join([0 if i >> k & 1 else d[k] for k in range(4)], 4)


def _register() -> dict:
    h: dict = {}
    for name in BINARY:
        h[name] = h_binary
    for name in S.SHIFTS:
        h[name] = h_shift
    for name in WITH_IMM:
        h[name] = h_with_imm
    for name in ("pabsb", "pabsw", "pabsd", "phminposuw", *S.PMOVX):
        h[name] = h_unary
    for name in ("movdqa", "movdqu", "movaps", "movups", "movapd", "movupd", "movntdq",
                 "movntps", "movntpd", "movntdqa", "lddqu"):
        h[name] = h_mov128
    for name in ("movlps", "movlpd", "movhps", "movhpd", "movhlps", "movlhps"):
        h[name] = h_movhl
    for name in ("movddup", "movshdup", "movsldup"):
        h[name] = h_dup
    for name in EXTRACT:
        h[name] = h_extract
    for name in INSERT:
        h[name] = h_insert
    h.update({
        "pslldq": h_byte_shift, "psrldq": h_byte_shift, "pmovmskb": h_movmsk,
        "movmskps": h_movmsk, "movmskpd": h_movmsk, "emms": h_emms, "movd": h_movdq,
        "movq": h_movdq, "movntq": h_movdq, "movnti": h_movnti, "movq2dq": h_movq2dq,
        "movdq2q": h_movq2dq, "movss": h_movs_scalar, "movsd": h_movs_scalar,
        "maskmovq": h_maskmov, "maskmovdqu": h_maskmov, "insertps": h_insertps,
        "pblendvb": h_blendv, "blendvps": h_blendv, "blendvpd": h_blendv, "ptest": h_ptest,
    })
    return h


HELPERS = _register()
