"""x87 execution: the decoder's x87 operations mapped to the arithmetic of :mod:`x86vm.cpu.x87`.

One helper per instruction family, registered in :data:`x86vm.cpu.ops.HELPERS` (keyed by
:func:`x86vm.cpu.translate.op_key`). Each helper follows docs/cpu-fp.md "what the core does":

1. the device-not-available / pending-error checks (SDM Vol. 1 §8.6, Vol. 3A §2.5 and Table
   2-2): CR0.EM or CR0.TS → #NM for every x87 instruction; for the waiting ones (all but
   FNINIT, FNCLEX, FNSTCW, FNSTSW, FNSTENV, FNSAVE, and the 8087/287 no-ops) an unmasked
   exception left pending by an earlier instruction (SW.ES) → #MF when CR0.NE=1, else FERR#
   (``cpu.ferr(True)`` when the board wired it: IRQ13 on a PC) and the instruction runs;
   FWAIT only does this check, with #NM when CR0.MP and CR0.TS are both set;
2. every memory operand is read (a fault or a monitor read stops the instruction here);
3. the last-instruction pointers FIP/FCS/FOP (and FDP/FDS with a memory operand) are recorded
   for the non-control instructions (SDM Vol. 1 §8.1.8-8.1.9);
4. the x87 function runs; a value it returns for memory is written last. A fault in that write
   restores the x87 state saved in step 3, so the instruction can run again from its start.

FXSAVE/FXRSTOR (SDM Vol. 2A), LDMXCSR/STMXCSR and FWAIT are here too: they own the x87/SSE
state image and the CR0/CR4 checks shared with the SIMD units (:func:`check_sse`).
"""

from __future__ import annotations

from x86vm.cpu import x87 as X
from x86vm.cpu.errors import GP, MF, NM, UD, CpuFault
from x86vm.cpu.fp import images
from x86vm.cpu.fp.core import F32, F64, F80
from x86vm.cpu.fp.ops import from_int
from x86vm.cpu.operand import MASK, Mem, Reg, ea, linear, seg_index, write_reg
from x86vm.cpu.state import (
    CR0_EM,
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR0_TS,
    CR4_OSFXSR,
    RFLAGS_VM,
)

_PREFIXES = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x9B))
_FLOAT = {4: F32, 8: F64, 10: F80}
_ARITH = {"fadd": X.FADD, "fmul": X.FMUL, "fsub": X.FSUB, "fsubr": X.FSUBR, "fdiv": X.FDIV,
          "fdivr": X.FDIVR}
_CONST = {"fld1": "one", "fldl2t": "l2t", "fldl2e": "l2e", "fldpi": "pi", "fldlg2": "lg2",
          "fldln2": "ln2", "fldz": "zero"}
CF, PF, ZF = 0x01, 0x04, 0x40
_FCMOV = {"b": lambda f: f & CF, "e": lambda f: f & ZF, "be": lambda f: f & (CF | ZF),
          "u": lambda f: f & PF}


# -- step 1: CR0 checks and pending errors ---------------------------------------------------

def _fpu_error(cpu) -> None:
    """An unmasked exception is pending at a waiting instruction (SDM Vol. 1 §8.7)."""
    if cpu.cr0 & CR0_NE:
        raise CpuFault(MF)
    ferr = getattr(cpu, "ferr", None)     # PC-style: FERR# → IRQ13 (the board's line)
    if ferr is not None:
        ferr(True)


def _check(cpu, insn, waiting: bool = True) -> None:
    """#NM for CR0.EM/TS; then, for waiting instructions (or a 9B prefix), #MF/FERR#."""
    cr0 = cpu.cr0
    if insn.wait and cr0 & CR0_MP and cr0 & CR0_TS:
        raise CpuFault(NM)
    if cr0 & (CR0_EM | CR0_TS):
        raise CpuFault(NM)
    if (waiting or insn.wait) and cpu.x87.sw & X.SW_ES:
        _fpu_error(cpu)


def check_sse(cpu) -> None:
    """The checks of SSE instructions, LDMXCSR and STMXCSR (SDM Vol. 3A §13.1.3, Table 2-2):
    #UD when CR0.EM=1 or CR4.OSFXSR=0, then #NM when CR0.TS=1."""
    if cpu.cr0 & CR0_EM or not cpu.cr4 & CR4_OSFXSR:
        raise CpuFault(UD)
    if cpu.cr0 & CR0_TS:
        raise CpuFault(NM)


# -- operands and pointers --------------------------------------------------------------------

def _sti(op: Reg) -> int:
    """Stack index of an ST operand (the decoder's "st" is ST(0), "st(i)" has num i+1)."""
    return op.num - 1 if op.num else 0


def _real(cpu) -> bool:
    return not cpu.cr0 & CR0_PE or bool(cpu.fl & RFLAGS_VM)


def _fop(insn) -> int:
    """The 11-bit opcode: escape byte bits 2:0, then the ModR/M byte (SDM Vol. 1 §8.1.10)."""
    data = insn.bytes
    i = 0
    while i < len(data) - 1 and (data[i] in _PREFIXES or
                                 (insn.mode == 64 and 0x40 <= data[i] <= 0x4F)):
        i += 1
    return (data[i] & 7) << 8 | data[i + 1]


def _wait_bytes(insn) -> int:
    """Leading FWAIT (9B) bytes the decoder folded into ``insn``: FWAIT is an instruction of
    its own, so FIP points past them (QEMU TCG agrees, tests/test_cpu_x87_guest.py)."""
    if not insn.wait:
        return 0
    data = insn.bytes
    n = 0
    for i, b in enumerate(data):
        if b == 0x9B:
            n = i + 1
        elif b not in _PREFIXES:
            break
    return n


def _record(cpu, insn, mem: Mem | None = None) -> None:
    """FIP/FCS/FOP, and FDP/FDS for a memory operand (real and virtual-8086 mode: linear
    20-bit addresses)."""
    x = cpu.x87
    x.fop = _fop(insn)
    ip = insn.address + _wait_bytes(insn)
    if _real(cpu):
        x.fip = (cpu.sbase[1] + ip) & 0xFFFFF
        x.fcs = 0
        if mem is not None:
            x.fdp = linear(cpu, mem) & 0xFFFFF
            x.fds = 0
        return
    x.fip = ip & MASK[8 if cpu.code_bits == 64 else 4]
    x.fcs = cpu.seg[1].selector
    if mem is not None:
        x.fdp = ea(cpu, mem)
        x.fds = cpu.seg[seg_index(mem)].selector


def _snapshot(x: X.X87) -> tuple:
    return (list(x.regs), x.top, x.empty, x.cw, x.sw, x.fip, x.fcs, x.fdp, x.fds, x.fop)


def _restore(x: X.X87, s: tuple) -> None:
    (x.regs[:], x.top, x.empty, x.cw, x.sw, x.fip, x.fcs, x.fdp, x.fds, x.fop) = s


def _read_bytes(cpu, la: int, n: int) -> bytes:
    v = cpu.read_mem(la, n)
    return v.to_bytes(n, "little")


def _write_bytes(cpu, la: int, data: bytes) -> None:
    cpu.write_mem(la, len(data), int.from_bytes(data, "little"))


def _read_mem(cpu, mem: Mem) -> int:
    return cpu.read_mem(linear(cpu, mem), mem.size)


def _store(cpu, insn, mem: Mem, compute) -> None:
    """A store to memory: record the pointers, compute (which changes the x87 state), write.
    A fault in the write leaves the x87 state as it was before the instruction."""
    x = cpu.x87
    saved = _snapshot(x)
    try:
        _record(cpu, insn, mem)
        value, _ = compute(x)
        if value is not None:
            cpu.write_mem(linear(cpu, mem), mem.size, value & MASK[mem.size])
    except BaseException:
        _restore(x, saved)
        raise


# -- arithmetic --------------------------------------------------------------------------------

def h_arith(cpu, c) -> None:
    """FADD/FMUL/FSUB/FSUBR/FDIV/FDIVR (ST, ST(i) / ST(i), ST / …P), m32fp/m64fp."""
    insn, ops = c
    _check(cpu, insn)
    x = cpu.x87
    name = insn.mnemonic
    pop = name.endswith("p")
    op = _ARITH[name[:-1] if pop else name]
    if len(ops) == 1 and type(ops[0]) is Mem:
        mem = ops[0]
        value = _read_mem(cpu, mem)
        _record(cpu, insn, mem)
        X.arith_mem(x, op, _FLOAT[mem.size], value)
        return
    if ops:
        dst, src = _sti(ops[0]), _sti(ops[1])
    else:                          # FADDP with no operand: ST(1) = ST(1) op ST(0), pop
        dst, src = 1, 0
    _record(cpu, insn)
    X.arith(x, op, dst, src, pop)


def h_arith_int(cpu, c) -> None:
    """FIADD/FIMUL/FISUB/FISUBR/FIDIV/FIDIVR m16int/m32int."""
    insn, (mem,) = c
    _check(cpu, insn)
    value = _read_mem(cpu, mem)
    _record(cpu, insn, mem)
    X.arith_int(cpu.x87, _ARITH["f" + insn.mnemonic[2:]], value, mem.size * 8)


def _unary(fn):
    def helper(cpu, c) -> None:
        insn = c[0]
        _check(cpu, insn)
        _record(cpu, insn)
        fn(cpu.x87)
    helper.__name__ = f"h_{fn.__name__}"
    return helper


def h_fprem1(cpu, c) -> None:
    insn = c[0]
    _check(cpu, insn)
    _record(cpu, insn)
    X.fprem(cpu.x87, ieee=True)


# -- loads and stores --------------------------------------------------------------------------

def h_fld(cpu, c) -> None:
    """FLD m32fp/m64fp/m80fp, FLD ST(i)."""
    insn, (src,) = c
    _check(cpu, insn)
    x = cpu.x87
    if type(src) is Mem:
        value = _read_mem(cpu, src)
        _record(cpu, insn, src)
        if src.size == 10:
            X.fld(x, value)
        else:
            X.fld_mem(x, _FLOAT[src.size], value)
        return
    _record(cpu, insn)
    X.fld_st(x, _sti(src))


def h_fild(cpu, c) -> None:
    insn, (mem,) = c
    _check(cpu, insn)
    value = _read_mem(cpu, mem)
    _record(cpu, insn, mem)
    X.fild(cpu.x87, value, mem.size * 8)


def h_fbld(cpu, c) -> None:
    insn, (mem,) = c
    _check(cpu, insn)
    value = _read_mem(cpu, mem)
    _record(cpu, insn, mem)
    X.fbld(cpu.x87, value)


def h_fld_const(cpu, c) -> None:
    insn = c[0]
    _check(cpu, insn)
    _record(cpu, insn)
    X.fld_const(cpu.x87, _CONST[insn.mnemonic])


def h_fst(cpu, c) -> None:
    """FST/FSTP m32fp/m64fp/m80fp, ST(i)."""
    insn, (dst,) = c
    _check(cpu, insn)
    pop = insn.mnemonic == "fstp"
    if type(dst) is Mem:
        fmt = _FLOAT[dst.size]
        _store(cpu, insn, dst, lambda x: X.fst_mem(x, fmt, pop))
        return
    _record(cpu, insn)
    X.fst_st(cpu.x87, _sti(dst), pop)


def h_fist(cpu, c) -> None:
    """FIST/FISTP/FISTTP m16int/m32int/m64int."""
    insn, (dst,) = c
    _check(cpu, insn)
    name = insn.mnemonic
    width = dst.size * 8
    _store(cpu, insn, dst,
           lambda x: X.fist_mem(x, width, name != "fist", name == "fisttp"))


def h_fbstp(cpu, c) -> None:
    insn, (dst,) = c
    _check(cpu, insn)
    _store(cpu, insn, dst, X.fbstp)


# -- comparisons -------------------------------------------------------------------------------

def h_fcom(cpu, c) -> None:
    """FCOM/FCOMP/FUCOM/FUCOMP ST(i) or m32fp/m64fp; FCOMPP/FUCOMPP; FICOM/FICOMP."""
    insn, ops = c
    _check(cpu, insn)
    x = cpu.x87
    name = insn.mnemonic
    unordered = name.startswith("fu")
    pops = 2 if name.endswith("pp") else (1 if name.endswith("p") else 0)
    if ops and type(ops[0]) is Mem:
        mem = ops[0]
        value = _read_mem(cpu, mem)
        _record(cpu, insn, mem)
        if name.startswith("fi"):
            operand = (F80, from_int(F80, value, mem.size * 8)[0])
        else:
            operand = (_FLOAT[mem.size], value)
        X.fcom(x, 0, unordered, pops, mem=operand)
        return
    i = _sti(ops[-1]) if ops else 1
    _record(cpu, insn)
    X.fcom(x, i, unordered, pops)


def h_fcomi(cpu, c) -> None:
    """FCOMI/FCOMIP/FUCOMI/FUCOMIP ST, ST(i): ZF, PF, CF from the comparison; OF, SF, AF 0."""
    insn, ops = c
    _check(cpu, insn)
    name = insn.mnemonic
    _record(cpu, insn)
    bits, _ = X.fcomi(cpu.x87, _sti(ops[-1]), name.startswith("fu"), name.endswith("p"))
    cpu.fl = (cpu.flags() & ~0x8D5) | bits


def h_ftst(cpu, c) -> None:
    insn = c[0]
    _check(cpu, insn)
    _record(cpu, insn)
    X.ftst(cpu.x87)


def h_fcmov(cpu, c) -> None:
    """FCMOVcc ST, ST(i) (SDM Vol. 2A FCMOVcc: B E BE U and their negations)."""
    insn, ops = c
    _check(cpu, insn)
    cond = insn.mnemonic[5:]
    negate = cond.startswith("n")
    taken = bool(_FCMOV[cond[1:] if negate else cond](cpu.flags()))
    _record(cpu, insn)
    X.fcmov(cpu.x87, _sti(ops[-1]), taken != negate)


# -- register stack ----------------------------------------------------------------------------

def h_fxch(cpu, c) -> None:
    insn, ops = c
    _check(cpu, insn)
    _record(cpu, insn)
    X.fxch(cpu.x87, _sti(ops[0]) if ops else 1)


def h_ffree(cpu, c) -> None:
    """FFREE ST(i); FFREEP ST(i) also pops (an undocumented alias the host implements)."""
    insn, (reg,) = c
    _check(cpu, insn)
    _record(cpu, insn)
    x = cpu.x87
    X.ffree(x, _sti(reg))
    if insn.mnemonic == "ffreep":
        x.pop()


def h_nop(cpu, c) -> None:
    """FNOP (a waiting non-control instruction)."""
    insn = c[0]
    _check(cpu, insn)
    _record(cpu, insn)


def h_legacy_nop(cpu, c) -> None:
    """FNENI/FNDISI (8087) and FNSETPM (287): no-ops since the 387, non-waiting."""
    _check(cpu, c[0], waiting=False)


# -- control instructions ---------------------------------------------------------------------

def h_fninit(cpu, c) -> None:
    _check(cpu, c[0], waiting=False)
    cpu.x87.finit()


def h_fnclex(cpu, c) -> None:
    _check(cpu, c[0], waiting=False)
    X.fclex(cpu.x87)


def h_fldcw(cpu, c) -> None:
    insn, (mem,) = c
    _check(cpu, insn)
    X.fldcw(cpu.x87, _read_mem(cpu, mem))


def h_fnstcw(cpu, c) -> None:
    insn, (mem,) = c
    _check(cpu, insn, waiting=False)
    cpu.write_mem(linear(cpu, mem), 2, cpu.x87.cw)


def h_fnstsw(cpu, c) -> None:
    insn, (dst,) = c
    _check(cpu, insn, waiting=False)
    sw = cpu.x87.status_word
    if type(dst) is Mem:
        cpu.write_mem(linear(cpu, dst), 2, sw)
    else:
        write_reg(cpu, dst, sw)


def _opsize(insn) -> int:
    return 16 if insn.operand_size == 16 else 32


def h_fnstenv(cpu, c) -> None:
    """FNSTENV (then all exceptions masked) and FNSAVE (then FNINIT)."""
    insn, (mem,) = c
    _check(cpu, insn, waiting=False)
    x = cpu.x87
    saved = _snapshot(x)
    fn = X.fstenv if insn.mnemonic == "fnstenv" else X.fsave
    data = fn(x, _opsize(insn), _real(cpu))
    try:
        _write_bytes(cpu, linear(cpu, mem), data)
    except BaseException:
        _restore(x, saved)
        raise


def h_fldenv(cpu, c) -> None:
    """FLDENV and FRSTOR: the whole image is read before anything is loaded."""
    insn, (mem,) = c
    _check(cpu, insn)
    opsize = _opsize(insn)
    size = (images.ENV_SIZE if insn.mnemonic == "fldenv" else images.SAVE_SIZE)[opsize]
    data = _read_bytes(cpu, linear(cpu, mem), size)
    fn = X.fldenv if insn.mnemonic == "fldenv" else X.frstor
    fn(cpu.x87, data, opsize, _real(cpu))


def h_fwait(cpu, c) -> None:
    """FWAIT/WAIT: #NM when CR0.MP and CR0.TS are set, then the pending-error check."""
    cr0 = cpu.cr0
    if cr0 & CR0_MP and cr0 & CR0_TS:
        raise CpuFault(NM)
    if cpu.x87.sw & X.SW_ES:
        _fpu_error(cpu)


# -- FXSAVE / FXRSTOR / LDMXCSR / STMXCSR -------------------------------------------------------

def _fx_la(cpu, insn, mem: Mem) -> int:
    cr0 = cpu.cr0
    if cr0 & (CR0_EM | CR0_TS):
        raise CpuFault(NM)
    la = linear(cpu, mem)
    if la & 15:
        raise CpuFault(GP, 0, f"{insn.mnemonic}: misaligned")
    return la


def h_fxsave(cpu, c) -> None:
    """FXSAVE/FXSAVE64: the x87 state, MXCSR and XMM0-7 (XMM0-15 in 64-bit mode); bytes
    288-511 are left alone (SDM Vol. 2A FXSAVE Table 3-53)."""
    insn, (mem,) = c
    la = _fx_la(cpu, insn, mem)
    nxmm = 16 if cpu.code_bits == 64 else 8
    data = X.fxsave(cpu.x87, cpu.mxcsr, cpu.xmm[:nxmm], insn.mnemonic == "fxsave64")
    _write_bytes(cpu, la, data)


def h_fxrstor(cpu, c) -> None:
    """FXRSTOR/FXRSTOR64: #GP(0) for MXCSR bits outside the mask, before anything loads."""
    insn, (mem,) = c
    la = _fx_la(cpu, insn, mem)
    nxmm = 16 if cpu.code_bits == 64 else 8
    data = _read_bytes(cpu, la, 160 + 16 * nxmm)
    if images.fxrstor_mxcsr(data) & ~images.FXSAVE_MXCSR_MASK:
        raise CpuFault(GP, 0, "fxrstor: reserved MXCSR bits")
    mxcsr, xmm = X.fxrstor(cpu.x87, data, nxmm, insn.mnemonic == "fxrstor64")
    cpu.mxcsr = mxcsr
    cpu.xmm[:nxmm] = xmm


def h_ldmxcsr(cpu, c) -> None:
    insn, (mem,) = c
    check_sse(cpu)
    value = _read_mem(cpu, mem)
    if value & ~images.FXSAVE_MXCSR_MASK:
        raise CpuFault(GP, 0, "ldmxcsr: reserved bits")
    cpu.mxcsr = value


def h_stmxcsr(cpu, c) -> None:
    insn, (mem,) = c
    check_sse(cpu)
    cpu.write_mem(linear(cpu, mem), 4, cpu.mxcsr)


X87_HELPERS = {
    "fwait": h_fwait, "fninit": h_fninit, "fnclex": h_fnclex, "fldcw": h_fldcw,
    "fnstcw": h_fnstcw, "fnstsw": h_fnstsw, "fnstenv": h_fnstenv, "fnsave": h_fnstenv,
    "fldenv": h_fldenv, "frstor": h_fldenv, "fnop": h_nop,
    "fneni(8087 only)": h_legacy_nop, "fndisi(8087 only)": h_legacy_nop,
    "fnsetpm(287 only)": h_legacy_nop,
    "fld": h_fld, "fild": h_fild, "fbld": h_fbld, "fst": h_fst, "fstp": h_fst,
    "fist": h_fist, "fistp": h_fist, "fisttp": h_fist, "fbstp": h_fbstp,
    "fcom": h_fcom, "fcomp": h_fcom, "fcompp": h_fcom, "fucom": h_fcom, "fucomp": h_fcom,
    "fucompp": h_fcom, "ficom": h_fcom, "ficomp": h_fcom,
    "fcomi": h_fcomi, "fcomip": h_fcomi, "fucomi": h_fcomi, "fucomip": h_fcomi,
    "ftst": h_ftst, "fxch": h_fxch, "ffree": h_ffree, "ffreep": h_ffree,
    "fprem1": h_fprem1,
    "fxsave": h_fxsave, "fxsave64": h_fxsave, "fxrstor": h_fxrstor, "fxrstor64": h_fxrstor,
    "ldmxcsr": h_ldmxcsr, "stmxcsr": h_stmxcsr,
}
for _name in _ARITH:
    X87_HELPERS[_name] = X87_HELPERS[_name + "p"] = h_arith
    X87_HELPERS["fi" + _name[1:]] = h_arith_int
for _name in _CONST:
    X87_HELPERS[_name] = h_fld_const
for _cond in ("b", "e", "be", "u"):
    X87_HELPERS["fcmov" + _cond] = X87_HELPERS["fcmovn" + _cond] = h_fcmov
for _fn in (X.fsqrt, X.frndint, X.fabs, X.fchs, X.fscale, X.fxtract, X.fprem, X.fxam,
            X.fincstp, X.fdecstp, X.fsin, X.fcos, X.fsincos, X.fptan, X.fpatan, X.f2xm1,
            X.fyl2x, X.fyl2xp1):
    X87_HELPERS[_fn.__name__] = _unary(_fn)
