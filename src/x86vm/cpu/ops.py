"""Interpreters for the general-purpose instructions not generated inline (SDM Vol. 2).

Each helper is ``helper(cpu, (insn, operands))``; ``cpu.rip`` already holds the address of
the next instruction (a helper that transfers control overwrites it). A helper reads every
operand before its first write, so an instruction stopped by a fault or a monitor read can
run again from the start. String instructions commit one element at a time and clear the
replayed values after each, so a REP instruction stopped in its middle resumes where it was.
"""

from __future__ import annotations

from x86vm.cpu import flags as F
from x86vm.cpu.errors import DE, GP, CpuFault
from x86vm.cpu.mmu import WRITE
from x86vm.cpu.operand import (
    MASK,
    Imm,
    Mem,
    Reg,
    ShiftOne,
    linear,
    read,
    seg_index,
    seg_linear,
    write,
    write_reg,
)
from x86vm.cpu.state import RFLAGS_VM

M64 = 0xFFFFFFFFFFFFFFFF


def _signed(v: int, bits: int) -> int:
    s = 1 << (bits - 1)
    return (v ^ s) - s


def _set_arith(cpu, bits: int) -> None:
    """Make flags concrete and return them for partial updates."""
    cpu.flags()


def undefined(cpu, c) -> None:
    insn = c[0]
    name = insn.mnemonic if insn.kind == "insn" else f"(bad) {insn.bytes.hex()}"
    raise cpu.undefined(name)


# -- multiply and divide ---------------------------------------------------------------------

def _acc_read(cpu, size: int) -> int:
    if size == 1:
        return cpu.r[0] & 0xFFFF
    lo = cpu.r[0] & MASK[size]
    hi = cpu.r[2] & MASK[size]
    return (hi << (8 * size)) | lo


def _acc_write(cpu, size: int, lo: int, hi: int) -> None:
    if size == 1:
        cpu.r[0] = (cpu.r[0] & ~0xFFFF) | (lo & 0xFF) | ((hi & 0xFF) << 8)
        return
    write_reg(cpu, Reg("", "gpr", 0, size), lo)
    write_reg(cpu, Reg("", "gpr", 2, size), hi)


def h_mul(cpu, c) -> None:
    insn, ops = c
    src = ops[-1]
    size = src.size
    bits = size * 8
    b = read(cpu, src)
    a = cpu.r[0] & MASK[size]
    if insn.mnemonic == "imul":
        p = _signed(a, bits) * _signed(b, bits)
        lo = p & MASK[size]
        of = _signed(lo, bits) != p
    else:
        p = a * b
        lo = p & MASK[size]
        of = p >> bits != 0
    hi = (p >> bits) & MASK[size]
    _acc_write(cpu, size, lo, hi)
    cpu.cc = (F.MUL, bits, lo, 0, 0, 1 if of else 0)


def h_div(cpu, c) -> None:
    insn, ops = c
    src = ops[-1]
    size = src.size
    bits = size * 8
    d = read(cpu, src)
    n = _acc_read(cpu, size) if size != 1 else cpu.r[0] & 0xFFFF
    if d == 0:
        raise CpuFault(DE)
    if insn.mnemonic == "idiv":
        sn, sd = _signed(n, 2 * bits), _signed(d, bits)
        q = abs(sn) // abs(sd)
        if (sn < 0) != (sd < 0):
            q = -q
        rem = sn - q * sd
        if not -(1 << (bits - 1)) <= q < (1 << (bits - 1)):
            raise CpuFault(DE)
    else:
        q, rem = divmod(n, d)
        if q >> bits:
            raise CpuFault(DE)
    _acc_write(cpu, size, q & MASK[size], rem & MASK[size])


def h_imul(cpu, c) -> None:
    insn, ops = c
    if len(ops) == 1:
        return h_mul(cpu, c)
    dst = ops[0]
    s1, s2 = (ops[0], ops[1]) if len(ops) == 2 else (ops[1], ops[2])
    bits = dst.size * 8
    p = _signed(read(cpu, s1, dst.size), bits) * _signed(read(cpu, s2, dst.size), bits)
    lo = p & MASK[dst.size]
    write(cpu, dst, lo)
    cpu.cc = (F.MUL, bits, lo, 0, 0, 0 if _signed(lo, bits) == p else 1)


# -- rotates and double shifts ---------------------------------------------------------------

def _rewrite(cpu, dst, value: int) -> None:
    """A count of 0 changes nothing, but a 32-bit register destination is still written
    (zero-extended in 64-bit mode), as the host CPU does."""
    if type(dst) is Reg and dst.size == 4:
        write(cpu, dst, value)


def h_rotate(cpu, c) -> None:
    insn, ops = c
    dst, cnt = ops
    size = dst.size
    bits = size * 8
    mask = MASK[size]
    n = read(cpu, cnt) & (0x3F if size == 8 else 0x1F)
    name = insn.mnemonic
    a = read(cpu, dst)
    if n == 0:
        _rewrite(cpu, dst, a)
        return
    fl = cpu.flags()
    cf = fl & 1
    if name == "rol":
        k = n % bits
        v = ((a << k) | (a >> (bits - k))) & mask if k else a
        cf = v & 1
        of = ((v >> (bits - 1)) ^ cf) & 1
    elif name == "ror":
        k = n % bits
        v = ((a >> k) | (a << (bits - k))) & mask if k else a
        cf = (v >> (bits - 1)) & 1
        of = ((v >> (bits - 1)) ^ (v >> (bits - 2))) & 1
    elif name == "rcl":
        k = n % (bits + 1)
        wide = (cf << bits) | a
        for _ in range(k):
            wide = ((wide << 1) | (wide >> bits)) & ((1 << (bits + 1)) - 1)
        v, cf = wide & mask, (wide >> bits) & 1
        of = ((v >> (bits - 1)) ^ cf) & 1
    else:  # rcr
        k = n % (bits + 1)
        wide = (cf << bits) | a
        for _ in range(k):
            wide = ((wide >> 1) | ((wide & 1) << bits)) & ((1 << (bits + 1)) - 1)
        v, cf = wide & mask, (wide >> bits) & 1
        # the two top bits of the result: the SDM's MSB(DEST) XOR CF for one bit, and what
        # the 386 (test386.asm's reference) leaves for a multi-bit count, undefined in the SDM
        of = ((v >> (bits - 1)) ^ (v >> (bits - 2))) & 1
    write(cpu, dst, v)
    cpu.fl = (cpu.fl & ~(F.CF | F.OF)) | cf | (F.OF if of else 0)


def h_shift(cpu, c) -> None:
    """SHL/SHR/SAR with a form the generator left to the interpreter."""
    insn, ops = c
    dst, cnt = ops
    size = dst.size
    bits = size * 8
    n = read(cpu, cnt) & (0x3F if size == 8 else 0x1F)
    a = read(cpu, dst)
    if n == 0:
        _rewrite(cpu, dst, a)
        return
    name = insn.mnemonic
    if name in ("shl", "sal"):
        v, op = (a << n) & MASK[size], F.SHL
    elif name == "shr":
        v, op = a >> n, F.SHR
    else:
        v, op = (_signed(a, bits) >> n) & MASK[size], F.SAR
    write(cpu, dst, v)
    cpu.cc = (op, bits, v, a, n, 0)


def h_shxd(cpu, c) -> None:
    insn, ops = c
    dst, src, cnt = ops
    size = dst.size
    bits = size * 8
    mask = MASK[size]
    n = read(cpu, cnt) & (0x3F if size == 8 else 0x1F)
    a = read(cpu, dst)
    b = read(cpu, src)
    if n == 0:
        _rewrite(cpu, dst, a)
        return
    if insn.mnemonic == "shld":
        wide = (a << bits) | b
        v = ((wide << n) >> bits) & mask
        cf = (a >> (bits - n)) & 1 if n <= bits else 0
    else:
        wide = (b << bits) | a
        v = (wide >> n) & mask
        cf = (a >> (n - 1)) & 1 if n <= bits else 0
    write(cpu, dst, v)
    fl = cpu.flags() & ~F.ARITH
    fl |= F.PARITY[v & 0xFF] | cf
    if v == 0:
        fl |= F.ZF
    if v >> (bits - 1):
        fl |= F.SF
    if ((v ^ a) >> (bits - 1)) & 1:
        fl |= F.OF
    cpu.fl = fl


# -- bit instructions --------------------------------------------------------------------------

def h_bt(cpu, c) -> None:
    insn, ops = c
    dst, src = ops
    size = dst.size
    bits = size * 8
    off = read(cpu, src)
    if type(dst) is Mem and type(src) is not Imm:
        soff = _signed(off, src.size * 8)
        la = linear(cpu, dst)
        la += (soff // bits) * size
        if cpu.code_bits != 64:
            la &= 0xFFFFFFFF
        a = cpu.read_mem(la, size)
        bit = soff % bits
        target = ("mem", la)
    else:
        a = read(cpu, dst)
        bit = off % bits
        target = None
    cf = (a >> bit) & 1
    name = insn.mnemonic
    v = None
    if name == "bts":
        v = a | (1 << bit)
    elif name == "btr":
        v = a & ~(1 << bit)
    elif name == "btc":
        v = a ^ (1 << bit)
    if v is not None:
        if target is None:
            write(cpu, dst, v)
        else:
            cpu.write_mem(target[1], size, v)
    cpu.flags()
    cpu.fl = (cpu.fl & ~F.CF) | cf


def h_bsf(cpu, c) -> None:
    insn, ops = c
    dst, src = ops
    v = read(cpu, src)
    bits = dst.size * 8
    name = insn.mnemonic
    fl = cpu.flags()
    if name in ("bsf", "bsr"):
        if v == 0:
            cpu.fl = fl | F.ZF
            return
        res = (v & -v).bit_length() - 1 if name == "bsf" else v.bit_length() - 1
        write(cpu, dst, res)
        cpu.fl = fl & ~F.ZF
        return
    if name == "tzcnt":
        res = (v & -v).bit_length() - 1 if v else bits
    elif name == "lzcnt":
        res = bits - v.bit_length()
    else:  # popcnt
        res = bin(v).count("1")
        write(cpu, dst, res)
        cpu.fl = (fl & ~F.ARITH) | (F.ZF if v == 0 else 0)
        return
    write(cpu, dst, res)
    cpu.fl = (fl & ~(F.CF | F.ZF)) | (F.CF if v == 0 else 0) | (F.ZF if res == 0 else 0)


def h_bswap(cpu, c) -> None:
    (dst,) = c[1]
    size = dst.size
    v = read(cpu, dst)
    if size == 2:
        write(cpu, dst, 0)
        return
    write(cpu, dst, int.from_bytes(v.to_bytes(size, "little"), "big"))


# -- exchange and compare ----------------------------------------------------------------------

def h_xadd(cpu, c) -> None:
    dst, src = c[1]
    size = dst.size
    a, b = read(cpu, dst), read(cpu, src)
    v = (a + b) & MASK[size]
    if type(dst) is Reg:    # SRC ← DEST, then DEST ← sum: xadd %eax,%eax leaves the sum
        write(cpu, src, a)
        write(cpu, dst, v)
    else:
        write(cpu, dst, v)
        write(cpu, src, a)
    cpu.cc = (F.ADD, size * 8, v, a, b, 0)


def h_cmpxchg(cpu, c) -> None:
    dst, src = c[1]
    size = dst.size
    acc = cpu.r[0] & MASK[size]
    cur = read(cpu, dst)
    if acc == cur:
        write(cpu, dst, read(cpu, src))
    else:
        if type(dst) is Mem:   # a memory destination is written back (SDM "CMPXCHG");
            write(cpu, dst, cur)   # a register one is left alone (this AMD host)
        write_reg(cpu, Reg("", "gpr", 0, size), cur)
    cpu.cc = (F.SUB, size * 8, (acc - cur) & MASK[size], acc, cur, 0)


def h_cmpxchg8b(cpu, c) -> None:
    insn, ops = c
    (mem,) = ops
    half = 8 if insn.mnemonic == "cmpxchg16b" else 4
    if type(mem) is not Mem:
        raise cpu.undefined(insn.mnemonic)
    la = linear(cpu, mem)
    cur = cpu.read_mem(la, 2 * half)
    m = MASK[half]
    expect = ((cpu.r[2] & m) << (8 * half)) | (cpu.r[0] & m)
    fl = cpu.flags()
    if cur == expect:
        cpu.write_mem(la, 2 * half, ((cpu.r[1] & m) << (8 * half)) | (cpu.r[3] & m))
        cpu.fl = fl | F.ZF
    else:
        cpu.write_mem(la, 2 * half, cur)
        cpu.r[0] = cur & m
        cpu.r[2] = (cur >> (8 * half)) & m
        cpu.fl = fl & ~F.ZF


def h_xchg(cpu, c) -> None:
    a, b = c[1]
    va, vb = read(cpu, a), read(cpu, b)
    write(cpu, a, vb)
    write(cpu, b, va)


# -- stack and flags -------------------------------------------------------------------------

def h_push(cpu, c) -> None:
    insn, ops = c
    (src,) = ops
    size = insn.operand_size // 8
    if type(src) is Reg and src.cls == "seg":
        v = cpu.seg[src.num].selector
        if size == 4 or size == 8:   # the processor writes 16 bits (SDM "PUSH")
            bits = cpu.stack_bits
            smask = MASK[bits // 8]
            sp = (cpu.r[4] - size) & smask
            la = sp if bits == 64 else (cpu.sbase[2] + sp) & 0xFFFFFFFF
            cpu.write_mem(la, 2, v)
            cpu._set_sp(sp)
            return
        cpu.push(v, size)
        return
    cpu.push(read(cpu, src, size), size)


def h_pop(cpu, c) -> None:
    insn, ops = c
    (dst,) = ops
    size = insn.operand_size // 8
    if type(dst) is Reg and dst.cls == "seg":
        bits = cpu.stack_bits
        smask = MASK[bits // 8]
        sp = cpu.r[4] & smask
        la = sp if bits == 64 else (cpu.sbase[2] + sp) & 0xFFFFFFFF
        sel = cpu.read_mem(la, 2)
        # the increment uses the stack size before the load: POP SS may change SS.B
        rsp = (cpu.r[4] & ~smask) | ((sp + size) & smask) if bits == 16 else (sp + size) & smask
        cpu.load_segment(dst.num, sel)
        cpu.r[4] = rsp
        if dst.num == 2:
            cpu.shadow = cpu.movss_shadow = cpu.attn = True
        return
    sp_before = cpu.r[4]
    v = cpu.pop(size)
    try:
        write(cpu, dst, v, size)
    except CpuFault:
        cpu.r[4] = sp_before
        raise


def _vm86_iopl_check(cpu) -> None:
    """PUSHF/POPF in virtual-8086 mode need IOPL 3 (SDM Vol. 3B §20.2.7), else #GP(0)."""
    if cpu.fl & RFLAGS_VM and (cpu.fl >> 12) & 3 != 3:
        raise CpuFault(GP, 0)


def h_pushf(cpu, c) -> None:
    insn = c[0]
    size = insn.operand_size // 8
    _vm86_iopl_check(cpu)
    cpu.push(cpu.flags() & 0xFCFFFF, size)   # VM and RF read as 0


def h_popf(cpu, c) -> None:
    insn = c[0]
    size = insn.operand_size // 8
    _vm86_iopl_check(cpu)
    v = cpu.pop(size)
    cur = cpu.flags()
    mask = 0x247FD5   # CF PF AF ZF SF TF DF OF NT AC ID
    iopl = (cur >> 12) & 3
    if cpu.cpl == 0:
        mask |= 0x3000 | 0x200
    elif cpu.cpl <= iopl:
        mask |= 0x200
    if size == 2:
        mask &= 0xFFFF
    cpu.set_flags((cur & ~mask) | (v & mask))
    cpu.irq_check = cpu.attn = True


def h_lahf(cpu, c) -> None:
    fl = cpu.flags()
    cpu.r[0] = (cpu.r[0] & ~0xFF00) | ((fl & 0xD5 | 2) << 8)


def h_sahf(cpu, c) -> None:
    fl = cpu.flags()
    cpu.fl = (fl & ~0xD5) | ((cpu.r[0] >> 8) & 0xD5)


def h_enter(cpu, c) -> None:
    insn, ops = c
    alloc, level = ops[0].value, ops[1].value & 31
    size = insn.operand_size // 8
    bits = cpu.stack_bits
    smask = MASK[bits // 8]
    # the write at the final stack pointer is checked first: ENTER faults (#PF, #SS) before
    # it changes anything if that byte could not be written (SDM Vol. 2A "ENTER")
    pushes = level + 1 if level else 1
    final = (cpu.r[4] - size * pushes - alloc) & smask
    cpu.translate(cpu._lin_mask(seg_linear(cpu, 2, final)), WRITE)
    cpu.push(cpu.r[5], size)
    # FrameTemp is the whole (E)SP at the operand size, even on a 16-bit stack: a 32-bit
    # ENTER on a 16-bit SS keeps ESP's upper half in EBP (test386.asm POST 1A, as the 386)
    frame = cpu.r[4] & MASK[size]
    bp = cpu.r[5]
    for _ in range(1, level):
        bp = (bp - size) & smask
        cpu.push(cpu.read_mem(seg_linear(cpu, 2, bp), size), size)
    if level:
        cpu.push(frame, size)
    write_reg(cpu, Reg("", "gpr", 5, size), frame)
    cpu._set_sp((cpu.r[4] - alloc) & smask)


def h_pusha(cpu, c) -> None:
    insn = c[0]
    size = insn.operand_size // 8
    sp = cpu.r[4]
    for i in range(8):
        cpu.push(sp if i == 4 else cpu.r[i], size)


def h_popa(cpu, c) -> None:
    insn = c[0]
    size = insn.operand_size // 8
    for i in reversed(range(8)):
        v = cpu.pop(size)
        if i != 4:
            write_reg(cpu, Reg("", "gpr", i, size), v)


def h_xlat(cpu, c) -> None:
    (mem,) = c[1]
    off = (cpu.r[3] + (cpu.r[0] & 0xFF)) & MASK[mem.addr_size // 8]
    v = cpu.read_mem(linear(cpu, mem, off), 1)
    cpu.r[0] = (cpu.r[0] & ~0xFF) | v


# -- BCD (legacy modes) ------------------------------------------------------------------------

def h_bcd(cpu, c) -> None:
    insn, ops = c
    name = insn.mnemonic
    fl = cpu.flags()
    al = cpu.r[0] & 0xFF
    ah = (cpu.r[0] >> 8) & 0xFF
    cf, af = fl & F.CF, fl & F.AF
    if name in ("aam", "aad"):
        base = ops[0].value if ops else 10
        if name == "aam":
            if base == 0:
                raise CpuFault(DE)
            ah, al = al // base, al % base
        else:
            al, ah = (al + ah * base) & 0xFF, 0
        cpu.r[0] = (cpu.r[0] & ~0xFFFF) | (ah << 8) | al
        cpu.cc = (F.LOGIC, 8, al, 0, 0, 0)
        return
    if name in ("aaa", "aas"):
        if (al & 0xF) > 9 or af:
            if name == "aaa":
                ax = (cpu.r[0] + 0x106) & 0xFFFF
            else:   # AX ← AX − 6 (AL's borrow reaches AH), then AH ← AH − 1 (SDM "AAS")
                ax = ((cpu.r[0] & 0xFFFF) - 6) & 0xFFFF
                ax = (ax - 0x100) & 0xFFFF
            af = cf = 1
        else:
            ax = cpu.r[0] & 0xFFFF
            af = cf = 0
        ax &= 0xFF0F
        cpu.r[0] = (cpu.r[0] & ~0xFFFF) | ax
        cpu.fl = (fl & ~(F.CF | F.AF)) | (F.CF if cf else 0) | (F.AF if af else 0)
        return
    old_al, old_cf = al, cf
    cf = 0
    if (al & 0xF) > 9 or af:
        al = (al + 6) & 0xFF if name == "daa" else (al - 6) & 0xFF
        cf = old_cf or (old_al + 6 > 0xFF if name == "daa" else old_al < 6)
        af = 1
    else:
        af = 0
    if old_al > 0x99 or old_cf:
        al = (al + 0x60) & 0xFF if name == "daa" else (al - 0x60) & 0xFF
        cf = 1
    cpu.r[0] = (cpu.r[0] & ~0xFF) | al
    f = F.PARITY[al] | (F.ZF if al == 0 else 0) | (F.SF if al & 0x80 else 0)
    cpu.fl = (fl & ~F.ARITH) | f | (F.CF if cf else 0) | (F.AF if af else 0)


HELPERS = {
    "mul": h_mul, "imul": h_imul, "div": h_div, "idiv": h_div,
    "rol": h_rotate, "ror": h_rotate, "rcl": h_rotate, "rcr": h_rotate,
    "shl": h_shift, "sal": h_shift, "shr": h_shift, "sar": h_shift,
    "shld": h_shxd, "shrd": h_shxd,
    "bt": h_bt, "bts": h_bt, "btr": h_bt, "btc": h_bt,
    "bsf": h_bsf, "bsr": h_bsf, "tzcnt": h_bsf, "lzcnt": h_bsf, "popcnt": h_bsf,
    "bswap": h_bswap, "xadd": h_xadd, "cmpxchg": h_cmpxchg, "cmpxchg8b": h_cmpxchg8b,
    "cmpxchg16b": h_cmpxchg8b, "xchg": h_xchg,
    "push": h_push, "pop": h_pop, "pushf": h_pushf, "popf": h_popf, "lahf": h_lahf,
    "sahf": h_sahf, "enter": h_enter, "pusha": h_pusha, "popa": h_popa, "xlat": h_xlat,
    "daa": h_bcd, "das": h_bcd, "aaa": h_bcd, "aas": h_bcd, "aam": h_bcd, "aad": h_bcd,
}

from x86vm.cpu.bmi import BMI_HELPERS  # noqa: E402
from x86vm.cpu.cacheline import CACHE_LINE_HELPERS  # noqa: E402
from x86vm.cpu.strings import STRING_HELPERS  # noqa: E402
from x86vm.cpu.svm import register as register_svm  # noqa: E402
from x86vm.cpu.system import SYSTEM_HELPERS  # noqa: E402
from x86vm.cpu.x87_exec import X87_HELPERS  # noqa: E402
from x86vm.cpu.xsave import XSAVE_HELPERS  # noqa: E402

HELPERS.update(BMI_HELPERS)
HELPERS.update(STRING_HELPERS)
HELPERS.update(SYSTEM_HELPERS)
CONTINUING_HELPERS: set[str] = set()
"""Registered operations after which a translated block goes on (no control transfer, mode
change or I/O): see ``semantics.ends_block``."""


def register_helpers(helpers: dict, continuing: bool = False) -> None:
    """The hook for instruction sets implemented elsewhere (x87, MMX, SSE): map operation
    keys (``translate.op_key``) to ``helper(cpu, (insn, operands))``. An operation with no
    helper stays #UD; CPUID (cpuid.py) must advertise a set only once it is registered.
    ``continuing``: the block does not end after these operations."""
    HELPERS.update(helpers)
    if continuing:
        CONTINUING_HELPERS.update(helpers)


register_helpers(X87_HELPERS, continuing=True)
register_helpers(XSAVE_HELPERS, continuing=True)
register_helpers(CACHE_LINE_HELPERS, continuing=True)
register_svm(HELPERS)   # SVM instructions, and intercept checks around interceptable ones

from x86vm.cpu import sse_register  # noqa: E402,F401  (registers MMX/SSE helpers)

__all__ = ["HELPERS", "register_helpers", "undefined", "seg_index", "ShiftOne"]
