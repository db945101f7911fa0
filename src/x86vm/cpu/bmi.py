"""BMI1, BMI2, ADX and MOVBE (SDM Vol. 2: ANDN, BEXTR, BLSI, BLSMSK, BLSR, BZHI, MULX, PDEP,
PEXT, RORX, SARX, SHLX, SHRX, ADCX, ADOX, MOVBE). Operands in Intel order; the 32-bit forms
zero-extend their destination as every 32-bit write does."""

from __future__ import annotations

from x86vm.cpu import flags as F
from x86vm.cpu.operand import MASK, read, write


def _logic_flags(cpu, value: int, bits: int, cf: int, zf: int | None = None) -> None:
    """SF and ZF from ``value`` (ZF forced when given), CF as given, OF clear."""
    fl = cpu.flags() & ~F.ARITH
    if (value == 0) if zf is None else zf:
        fl |= F.ZF
    if value >> (bits - 1):
        fl |= F.SF
    cpu.fl = fl | (F.CF if cf else 0)


def h_andn(cpu, c) -> None:
    dst, src1, src2 = c[1]
    size = dst.size
    v = ~read(cpu, src1) & read(cpu, src2) & MASK[size]
    write(cpu, dst, v)
    _logic_flags(cpu, v, size * 8, 0)


def h_bextr(cpu, c) -> None:
    dst, src, ctl_op = c[1]
    size = dst.size
    ctl = read(cpu, ctl_op)
    start, length = ctl & 0xFF, (ctl >> 8) & 0xFF
    v = (read(cpu, src) >> start) & ((1 << length) - 1) if start < size * 8 else 0
    write(cpu, dst, v)
    _logic_flags(cpu, v, size * 8, 0)


def h_bls(cpu, c) -> None:
    insn, (dst, src) = c
    size = dst.size
    mask = MASK[size]
    s = read(cpu, src)
    name = insn.mnemonic
    if name == "blsi":
        v = s & -s & mask
        cf, zf = s != 0, None
    elif name == "blsmsk":
        v = (s ^ (s - 1)) & mask
        cf, zf = s == 0, 0
    else:  # blsr
        v = s & (s - 1) & mask
        cf, zf = s == 0, None
    write(cpu, dst, v)
    _logic_flags(cpu, v, size * 8, cf, zf)


def h_bzhi(cpu, c) -> None:
    dst, src, index_op = c[1]
    size = dst.size
    n = read(cpu, index_op) & 0xFF
    s = read(cpu, src)
    if n < size * 8:
        v, cf = s & ((1 << n) - 1), 0
    else:
        v, cf = s, 1
    write(cpu, dst, v)
    _logic_flags(cpu, v, size * 8, cf)


def h_mulx(cpu, c) -> None:
    hi_op, lo_op, src = c[1]
    size = hi_op.size
    p = (cpu.r[2] & MASK[size]) * read(cpu, src)
    write(cpu, lo_op, p & MASK[size])
    write(cpu, hi_op, p >> (8 * size))   # written last: it wins when both are one register


def h_pdep(cpu, c) -> None:
    insn, (dst, src_op, mask_op) = c
    src, mask = read(cpu, src_op), read(cpu, mask_op)
    v = 0
    k = 0
    bit = 0
    while mask >> bit:
        if (mask >> bit) & 1:
            if insn.mnemonic == "pdep":
                v |= ((src >> k) & 1) << bit
            else:
                v |= ((src >> bit) & 1) << k
            k += 1
        bit += 1
    write(cpu, dst, v)


def h_shiftx(cpu, c) -> None:
    insn, ops = c
    name = insn.mnemonic
    dst, src = ops[0], ops[1]
    size = dst.size
    bits = size * 8
    s = read(cpu, src)
    if name == "rorx":
        n = ops[2].value & (bits - 1)
        v = ((s >> n) | (s << (bits - n))) & MASK[size]
    else:
        n = read(cpu, ops[2]) & (bits - 1)
        if name == "shlx":
            v = (s << n) & MASK[size]
        elif name == "shrx":
            v = s >> n
        else:
            sign = 1 << (bits - 1)
            v = (((s ^ sign) - sign) >> n) & MASK[size]
    write(cpu, dst, v)


def h_adx(cpu, c) -> None:
    insn, (dst, src) = c
    size = dst.size
    flag = F.CF if insn.mnemonic == "adcx" else F.OF
    fl = cpu.flags()
    total = read(cpu, dst) + read(cpu, src) + (1 if fl & flag else 0)
    write(cpu, dst, total & MASK[size])
    cpu.fl = (fl & ~flag) | (flag if total >> (8 * size) else 0)


def h_movbe(cpu, c) -> None:
    dst, src = c[1]
    size = dst.size
    write(cpu, dst, int.from_bytes(read(cpu, src).to_bytes(size, "little"), "big"))


BMI_HELPERS = {
    "andn": h_andn, "bextr": h_bextr, "blsi": h_bls, "blsmsk": h_bls, "blsr": h_bls,
    "bzhi": h_bzhi, "mulx": h_mulx, "pdep": h_pdep, "pext": h_pdep, "rorx": h_shiftx,
    "sarx": h_shiftx, "shlx": h_shiftx, "shrx": h_shiftx, "adcx": h_adx, "adox": h_adx,
    "movbe": h_movbe,
}
