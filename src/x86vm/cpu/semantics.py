"""Instruction semantics as Python source: one generator per operation (SDM Vol. 2).

``GENERATORS`` maps :func:`~x86vm.cpu.translate.op_key` to a function that emits the lines
of one instruction into a :class:`Gen`. The frequent general-purpose instructions are
generated inline (registers are ``r[n]``, memory goes through the TLB fast paths ``rd4``/
``wr4``..., flags are left lazy in ``cpu.cc``); everything else calls its interpreter in
:mod:`x86vm.cpu.ops` (``HELPERS``); an operation in neither table raises #UD in the guest
and is counted.

Order inside an instruction: every read (and so every fault) comes before the first
architectural write, memory is written before registers, so an instruction that stops for
the monitor can simply run again.
"""

from __future__ import annotations

from x86vm.cpu import flags as F
from x86vm.cpu import ops
from x86vm.cpu.codegen import LOOP_CAP, M64, MASK, Gen, _Unsupported, namespace  # noqa: F401
from x86vm.cpu.flags import cond_index
from x86vm.isa.operands import Far, Imm, Mem, Reg, Rel, ShiftOne

BLOCK_ENDERS = frozenset((
    "hlt", "int", "int3", "into", "int1", "iret", "syscall", "sysret", "sysenter", "sysexit",
    "lgdt", "lidt", "lldt", "ltr", "invlpg", "wrmsr", "sti", "popf", "cli", "mov_sys",
    "lmsw", "clts", "swapgs", "ud2", "wbinvd", "invd", "rsm", "lss", "lds", "les", "lfs",
    "lgs", "pop_seg", "out", "outs", "in", "ins", "cpuid", "xsetbv", "vmcall", "vmmcall"))


CONTINUING = frozenset((
    "mul", "imul", "div", "idiv", "rol", "ror", "rcl", "rcr", "shld", "shrd", "bt", "bts",
    "btr", "btc", "bsf", "bsr", "tzcnt", "lzcnt", "popcnt", "bswap", "xadd", "cmpxchg",
    "cmpxchg8b", "cmpxchg16b", "lahf", "sahf", "enter", "pusha", "popa", "xlat", "daa",
    "das", "aaa", "aas", "aam", "aad", "rdtsc", "rdtscp", "pushf", "andn", "bextr", "blsi",
    "blsmsk", "blsr", "bzhi", "mulx", "pdep", "pext", "rorx", "sarx", "shlx", "shrx", "adcx",
    "adox", "movbe", "lar", "lsl", "verr", "verw", "arpl", "bound", "stac", "clac"))
"""Interpreted instructions after which the block goes on (no control transfer, no mode
change, no I/O, no REP restart)."""


def ends_block(insn) -> bool:
    spec = insn.spec
    if spec is None or insn.kind != "insn":
        return True
    if spec.branch:
        return True
    name = insn.mnemonic
    if name in BLOCK_ENDERS:
        return True
    if name == "mov" or name == "pop":
        for op in insn.operands:
            if type(op) is Reg and op.cls in ("seg", "cr", "dr"):
                return True
    return name not in GENERATORS and name not in CONTINUING and \
        name not in ops.CONTINUING_HELPERS


# -- generators ---------------------------------------------------------------------------

def _alu(op_code: int, write: bool = True, kind: str = "") -> callable:
    def gen(g: Gen, insn) -> None:
        dst, src = insn.operands
        k = g.k
        size = dst.size
        mask = MASK[size]
        la = g.mem_la(dst)
        g.emit(f"a{k} = {g.read(dst, la=la)}")
        if type(src) is Imm:
            g.emit(f"b{k} = {src.value & mask:#x}")
        else:
            g.emit(f"b{k} = {g.read(src)}")
        a, b = f"a{k}", f"b{k}"
        if kind == "adc":
            g.emit(f"c{k} = {g.carry()}")
            g.emit(f"v{k} = ({a} + {b} + c{k}) & {mask:#x}")
        elif kind == "sbb":
            g.emit(f"c{k} = {g.carry()}")
            g.emit(f"v{k} = ({a} - {b} - c{k}) & {mask:#x}")
        elif op_code == F.ADD:
            g.emit(f"v{k} = ({a} + {b}) & {mask:#x}")
        elif op_code == F.SUB:
            g.emit(f"v{k} = ({a} - {b}) & {mask:#x}")
        else:
            g.emit(f"v{k} = {a} {kind} {b}")
        if write:
            g.write(dst, f"v{k}", la)
        cin = f"c{k}" if kind in ("adc", "sbb") else "0"
        if op_code == F.LOGIC:
            g.set_cc(F.LOGIC, size * 8, f"v{k}")
        else:
            g.set_cc(op_code, size * 8, f"v{k}", a, b, cin)
    return gen


def _incdec(op_code: int) -> callable:
    def gen(g: Gen, insn) -> None:
        (dst,) = insn.operands
        k, mask = g.k, MASK[dst.size]
        la = g.mem_la(dst)
        g.emit(f"c{k} = {g.carry()}")
        g.emit(f"a{k} = {g.read(dst, la=la)}")
        g.emit(f"v{k} = (a{k} {'+' if op_code == F.INC else '-'} 1) & {mask:#x}")
        g.write(dst, f"v{k}", la)
        g.set_cc(op_code, dst.size * 8, f"v{k}", f"a{k}", "1", f"c{k}")
    return gen


def g_neg(g: Gen, insn) -> None:
    (dst,) = insn.operands
    k, mask = g.k, MASK[dst.size]
    la = g.mem_la(dst)
    g.emit(f"b{k} = {g.read(dst, la=la)}")
    g.emit(f"a{k} = 0")
    g.emit(f"v{k} = (-b{k}) & {mask:#x}")
    g.write(dst, f"v{k}", la)
    g.set_cc(F.SUB, dst.size * 8, f"v{k}", "0", f"b{k}")


def g_not(g: Gen, insn) -> None:
    (dst,) = insn.operands
    la = g.mem_la(dst)
    g.write(dst, f"{g.read(dst, la=la)} ^ {MASK[dst.size]:#x}", la)


def g_mov(g: Gen, insn) -> None:
    dst, src = insn.operands
    if type(src) is Imm:
        g.write(dst, f"{src.value & MASK[dst.size]:#x}")
    else:
        g.write(dst, g.read(src, dst.size if type(src) is Mem else None))


def g_movzx(g: Gen, insn) -> None:
    dst, src = insn.operands
    g.write(dst, g.read(src))


def g_movsx(g: Gen, insn) -> None:
    dst, src = insn.operands
    s = 1 << (src.size * 8 - 1)
    g.write(dst, f"((({g.read(src)}) ^ {s:#x}) - {s:#x}) & {MASK[dst.size]:#x}")


def g_lea(g: Gen, insn) -> None:
    dst, src = insn.operands
    expr = g.ea(src)
    if dst.size < src.addr_size // 8:
        expr = f"{expr} & {MASK[dst.size]:#x}"
    g.write(dst, expr)


def _shift(op_code: int) -> callable:
    def gen(g: Gen, insn) -> None:
        dst, cnt = insn.operands
        k, size = g.k, dst.size
        mask, bits = MASK[size], size * 8
        cmask = 0x3F if size == 8 else 0x1F
        if type(cnt) is ShiftOne:
            n = 1
        elif type(cnt) is Imm:
            n = cnt.value & cmask
        else:
            n = None
        if n == 0:
            if type(dst) is Reg and size == 4:   # still written (zero-extended)
                g.set_reg(dst, g.reg(dst))
            return
        la = g.mem_la(dst)
        if n is None:
            g.flush_cc()
            g.emit(f"n{k} = r[1] & {cmask:#x}")
            if type(dst) is Reg and size == 4:
                g.emit(f"r[{dst.num}] &= 0xFFFFFFFF")
            g.emit(f"if n{k}:")
            inner = Gen.__new__(Gen)
            inner.__dict__.update(g.__dict__)
            inner.lines = []
        else:
            inner = g
            g.emit(f"n{k} = {n}")
        inner.emit(f"a{k} = {inner.read(dst, la=la)}")
        if op_code == F.SHL:
            inner.emit(f"v{k} = (a{k} << n{k}) & {mask:#x}")
        elif op_code == F.SHR:
            inner.emit(f"v{k} = a{k} >> n{k}")
        else:
            s = 1 << (bits - 1)
            inner.emit(f"v{k} = (((a{k} ^ {s:#x}) - {s:#x}) >> n{k}) & {mask:#x}")
        inner.write(dst, f"v{k}", la)
        if inner is not g:
            inner.emit(f"cpu.cc = ({op_code}, {bits}, v{k}, a{k}, n{k}, 0)")
            g.lines.extend("    " + line for line in inner.lines)
            g.may_fault |= inner.may_fault
            g.writes |= inner.writes
            g.last_cc = None
        else:
            g.set_cc(op_code, bits, f"v{k}", f"a{k}", f"n{k}")
    return gen


def g_imul(g: Gen, insn) -> None:
    ops_ = insn.operands
    if len(ops_) == 1:
        raise _Unsupported("one-operand imul")
    dst = ops_[0]
    src1, src2 = (ops_[0], ops_[1]) if len(ops_) == 2 else (ops_[1], ops_[2])
    k, size = g.k, dst.size
    mask, s = MASK[size], 1 << (size * 8 - 1)
    g.emit(f"a{k} = (({g.read(src1)}) ^ {s:#x}) - {s:#x}")
    g.emit(f"b{k} = (({g.read(src2)}) ^ {s:#x}) - {s:#x}")
    g.emit(f"p{k} = a{k} * b{k}")
    g.emit(f"v{k} = p{k} & {mask:#x}")
    g.write(dst, f"v{k}")
    g.emit(f"o{k} = 0 if ((v{k} ^ {s:#x}) - {s:#x}) == p{k} else 1")
    g.set_cc(F.MUL, size * 8, f"v{k}", "0", "0", f"o{k}")
    g.last_cc = None


def g_xchg(g: Gen, insn) -> None:
    a, b = insn.operands
    k = g.k
    if type(a) is Mem or type(b) is Mem:
        mem, reg = (a, b) if type(a) is Mem else (b, a)
        la = g.mem_la(mem)
        g.emit(f"t{k} = {g.read(mem, la=la)}")
        g.write(mem, g.read(reg), la)
        g.set_reg(reg, f"t{k}")
        return
    g.emit(f"t{k} = {g.read(a)}")
    g.set_reg(a, g.read(b))
    g.set_reg(b, f"t{k}")


def g_nop(g: Gen, insn) -> None:
    pass


def g_push(g: Gen, insn) -> None:
    (src,) = insn.operands
    if type(src) is Reg and src.cls == "seg":
        raise _Unsupported("push seg")
    size = insn.operand_size // 8
    if type(src) is Imm:
        g.push(f"{src.value & MASK[size]:#x}", size)
    else:
        g.push(g.read(src, size if type(src) is Mem else None), size)


def g_pop(g: Gen, insn) -> None:
    (dst,) = insn.operands
    if type(dst) is not Reg or dst.cls != "gpr":
        raise _Unsupported("pop to memory/segment")
    size = insn.operand_size // 8
    g.pop(size, f"v{g.k}")
    g.set_reg(dst, f"v{g.k}")


def g_jcc(g: Gen, insn) -> None:
    c = cond_index(insn.mnemonic[1:])
    target = insn.operands[0].target & _opmask(insn)
    nxt = (insn.address + insn.length) & g.ipmask
    _branch(g, g.cond(c), target, nxt)


def _branch(g: Gen, cond: str, target: int, nxt: int) -> None:
    if g.loop_start is not None and target == g.loop_start:
        g.back_edge(cond)
        g.emit(f"cpu.rip = {nxt:#x}")
    else:
        g.emit(f"cpu.rip = {target:#x} if {cond} else {nxt:#x}")
    g.ret(g.k + 1)
    g.ended = True


def _opmask(insn) -> int:
    return MASK[insn.operand_size // 8]


def g_jmp(g: Gen, insn) -> None:
    (op,) = insn.operands
    if type(op) is Rel:
        target = op.target & _opmask(insn)
        if g.loop_start is not None and target == g.loop_start:
            g.back_edge(None)
            g.ended = True
            return
        g.jump(f"{target:#x}")
    elif type(op) is Far or (type(op) is Mem and op.size == insn.operand_size // 8 + 2):
        raise _Unsupported("far jmp")
    else:
        g.jump(f"{g.read(op)}")


def g_call(g: Gen, insn) -> None:
    (op,) = insn.operands
    if type(op) is Far or (type(op) is Mem and op.size == insn.operand_size // 8 + 2):
        raise _Unsupported("far call")
    size = insn.operand_size // 8
    nxt = (insn.address + insn.length) & MASK[size]
    if type(op) is Rel:
        target = f"{op.target & MASK[size]:#x}"
    else:
        g.emit(f"t{g.k} = {g.read(op)}")
        target = f"t{g.k}"
    g.push(f"{nxt:#x}", size)
    g.jump(target)


def g_ret(g: Gen, insn) -> None:
    size = insn.operand_size // 8
    k = g.k
    g.pop(size, f"t{k}")
    if insn.operands:
        smask, _ = g.stack()
        g.set_sp(f"(r[4] + {insn.operands[0].value}) & {smask:#x}")
    g.jump(f"t{k}")


def g_setcc(g: Gen, insn) -> None:
    c = cond_index(insn.mnemonic[3:])
    g.write(insn.operands[0], f"(1 if {g.cond(c)} else 0)")


def g_cmovcc(g: Gen, insn) -> None:
    c = cond_index(insn.mnemonic[4:])
    dst, src = insn.operands
    k = g.k
    g.emit(f"t{k} = {g.read(src)}")
    g.emit(f"if {g.cond(c)}:")
    g.emit(f"    r[{dst.num}] = " + (f"t{k}" if dst.size >= 4 else
           f"(r[{dst.num}] & {M64 ^ MASK[dst.size]:#x}) | t{k}"))
    if dst.size == 4:
        g.emit("else:")
        g.emit(f"    r[{dst.num}] &= 0xFFFFFFFF")


def g_loop(g: Gen, insn) -> None:
    asize = insn.address_size
    m = MASK[asize // 8]
    k = g.k
    name = insn.mnemonic
    target = insn.operands[0].target & _opmask(insn)
    nxt = (insn.address + insn.length) & g.ipmask
    if name in ("jcxz", "jecxz", "jrcxz"):
        _branch(g, f"(r[1] & {m:#x}) == 0", target, nxt)
        return
    else:
        g.emit(f"n{k} = (r[1] - 1) & {m:#x}")
        if asize == 16:
            g.emit(f"r[1] = (r[1] & 0xFFFFFFFFFFFF0000) | n{k}")
        else:
            g.emit(f"r[1] = n{k}")
        extra = ""
        if name == "loope":
            extra = f" and {g.cond(4)}"
        elif name == "loopne":
            extra = f" and {g.cond(5)}"
        _branch(g, f"(n{k}{extra})", target, nxt)


def g_extend_ax(g: Gen, insn) -> None:
    size = insn.operand_size // 8
    half = size // 2
    s = 1 << (half * 8 - 1)
    src = {1: "(r[0] & 0xFF)", 2: "(r[0] & 0xFFFF)", 4: "(r[0] & 0xFFFFFFFF)"}[half]
    expr = f"(({src} ^ {s:#x}) - {s:#x}) & {MASK[size]:#x}"
    g.set_reg(Reg("", "gpr", 0, size), expr)


def g_extend_dx(g: Gen, insn) -> None:
    size = insn.operand_size // 8
    s = 1 << (size * 8 - 1)
    src = {2: "(r[0] & 0xFFFF)", 4: "(r[0] & 0xFFFFFFFF)", 8: "r[0]"}[size]
    g.set_reg(Reg("", "gpr", 2, size), f"({MASK[size]:#x} if {src} & {s:#x} else 0)")


def g_flagbit(expr: str) -> callable:
    def gen(g: Gen, insn) -> None:
        if "cpu.flags()" in expr:   # CF changes: the lazy flags become concrete first
            g.flush_cc()
            g.emit("cpu.flags()")
            g.last_cc = None
        g.emit(expr.replace("cpu.flags(); ", ""))
    return gen


def g_leave(g: Gen, insn) -> None:
    size = insn.operand_size // 8
    smask, _ = g.stack()
    g.set_sp(f"r[5] & {smask:#x}")
    g.pop(size, f"t{g.k}")
    g.set_reg(Reg("", "gpr", 5, size), f"t{g.k}")


GENERATORS = {
    "add": _alu(F.ADD), "sub": _alu(F.SUB), "cmp": _alu(F.SUB, write=False),
    "and": _alu(F.LOGIC, kind="&"), "or": _alu(F.LOGIC, kind="|"),
    "xor": _alu(F.LOGIC, kind="^"), "test": _alu(F.LOGIC, write=False, kind="&"),
    "adc": _alu(F.ADC, kind="adc"), "sbb": _alu(F.SBB, kind="sbb"),
    "inc": _incdec(F.INC), "dec": _incdec(F.DEC), "neg": g_neg, "not": g_not,
    "mov": g_mov, "movabs": g_mov, "movzx": g_movzx, "movsx": g_movsx, "movsxd": g_movsx,
    "lea": g_lea,
    "shl": _shift(F.SHL), "sal": _shift(F.SHL), "shr": _shift(F.SHR), "sar": _shift(F.SAR),
    "imul": g_imul, "xchg": g_xchg, "nop": g_nop, "pause": g_nop, "endbr64": g_nop,
    "endbr32": g_nop, "prefetchnta": g_nop, "prefetcht0": g_nop, "prefetcht1": g_nop,
    "prefetcht2": g_nop, "prefetchw": g_nop, "prefetch": g_nop, "lfence": g_nop,
    "sfence": g_nop, "mfence": g_nop,
    "push": g_push, "pop": g_pop, "jmp": g_jmp, "call": g_call, "ret": g_ret,
    "loop": g_loop, "loope": g_loop, "loopne": g_loop, "jcxz": g_loop, "jecxz": g_loop,
    "jrcxz": g_loop, "cbw": g_extend_ax, "cwde": g_extend_ax, "cdqe": g_extend_ax,
    "cwd": g_extend_dx, "cdq": g_extend_dx, "cqo": g_extend_dx, "leave": g_leave,
    "cld": g_flagbit("cpu.fl &= ~0x400"), "std": g_flagbit("cpu.fl |= 0x400"),
    "clc": g_flagbit("cpu.flags(); cpu.fl &= ~1"), "stc": g_flagbit("cpu.flags(); cpu.fl |= 1"),
    "cmc": g_flagbit("cpu.flags(); cpu.fl ^= 1"),
}
for _c in F.CONDITIONS + tuple(F.ALIASES):
    GENERATORS["j" + _c] = g_jcc
    GENERATORS["set" + _c] = g_setcc
    GENERATORS["cmov" + _c] = g_cmovcc


# -- block assembly -------------------------------------------------------------------------

def compile_block(insns: list, cpu, ns: dict, ipmask: int):
    g = Gen(cpu, ns, ipmask)
    g.count = len(insns)
    last = insns[-1]
    if last.kind == "insn" and last.spec is not None and last.spec.branch in ("jcc", "jmp", "loop"):
        op = last.operands[0] if last.operands else None
        if type(op) is Rel and op.target & _opmask(last) == insns[0].address:
            g.loop_start = insns[0].address
    body: list[str] = []
    rips = []
    restore: dict[str, list[int]] = {}   # lazy flags to store if instruction k faults
    for k, insn in enumerate(insns):
        rips.append(insn.address)
        g.k = k
        g.lines = []
        g.ended = g.writes = g.may_fault = False
        before = g.pending_cc
        nxt = (insn.address + insn.length) & ipmask
        gen = GENERATORS.get(op_key(insn)) if insn.kind == "insn" and not _bad_lock(insn) \
            else None
        if cpu.absent_features and insn.kind == "insn" and \
                insn.cpuid_feature in cpu.absent_features:
            gen = None      # a feature the CPU model lacks (--cpu-features): #UD
        done = False
        if gen is not None:
            saved = (g.last_cc, g.pending_cc)
            try:
                gen(g, insn)
                done = True
            except _Unsupported:
                g.lines = []
                g.ended = g.writes = g.may_fault = False
                g.last_cc, g.pending_cc = saved
        if not done:
            _helper_call(g, insn, nxt)
        if g.may_fault or g.writes:
            body.append(f"    i = {k}")
            if before is not None:
                restore.setdefault(before, []).append(k)
        body.extend(g.lines)
        if g.ended:
            break
        if g.writes:
            store = f"cpu.cc = {g.pending_cc}; " if g.pending_cc is not None else ""
            body.append(f"    if pend: {store}cpu.rip = {nxt:#x}; return {g.retired(k + 1)}")
    else:
        g.lines = []
        g.emit(f"cpu.rip = {(last.address + last.length) & ipmask:#x}")
        g.ret(len(insns))
        body.extend(g.lines)
    src = ["def block(cpu):", "  r = cpu.r", "  sb = cpu.sbase", "  pend = cpu.pending",
           "  i = 0"]
    if g.loop_start is not None:
        src += ["  n = 0", "  try:", "   while True:"]
        src.extend("   " + line for line in body)
    else:
        src.append("  try:")
        src.extend("  " + line for line in body)
    src.append("  except BaseException:")
    if g.loop_start is not None:
        src.append("    cpu.icount += n")
    for expr, ks in restore.items():
        src.append(f"    if i in {tuple(ks)!r}: cpu.cc = {expr}")
    src.append("    cpu.bi = i")
    src.append("    raise")
    text = "\n".join(src) + "\n"
    code = compile(text, f"<block {insns[0].address:#x}>", "exec")
    local: dict = {}
    exec(code, ns, local)
    blk = local["block"]
    blk.rips = rips
    blk.source = text
    return blk


def _bad_lock(insn) -> bool:
    """LOCK on an instruction or form that cannot be locked: #UD (SDM Vol. 2A "LOCK")."""
    return 0xF0 in insn.prefixes and not insn.lock_allowed


def _helper_call(g: Gen, insn, nxt: int) -> None:
    """Call the interpreter for ``insn``; it sets ``cpu.rip`` when it transfers control."""
    name = op_key(insn) if insn.kind == "insn" else "(bad)"
    helper = ops.HELPERS.get(name)
    if helper is None or _bad_lock(insn) or (
            g.cpu.absent_features and insn.cpuid_feature in g.cpu.absent_features):
        helper = ops.undefined
    h = g.const(helper)
    c = g.const((insn, insn.operands))
    g.may_fault = True
    g.writes = True
    g.flush_cc()
    g.last_cc = None
    g.emit(f"cpu.rip = {nxt:#x}")
    if ends_block(insn):
        g.emit(f"{h}(cpu, {c})")
        g.ret(g.k + 1)
        g.ended = True
    else:
        g.emit(f"{h}(cpu, {c})")


from x86vm.cpu.translate import op_key  # noqa: E402  (translate imports this module lazily)
