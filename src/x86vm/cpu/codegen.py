"""The code generator's toolkit: a :class:`Gen` holds the Python source of one block and
knows how to name a register, compute an effective or linear address, load and store through
the soft TLB (inline, the call only on a miss), push and pop, keep the lazy flags of the
block's last flag-setting instruction in locals, and leave the block or loop back to its
start. The generators of :mod:`x86vm.cpu.semantics` are written with it.
"""

from __future__ import annotations

import struct

from x86vm.cpu import flags as F
from x86vm.cpu.segcheck import check_access
from x86vm.isa.operands import Imm, Mem, Reg

M64 = 0xFFFFFFFFFFFFFFFF
MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: M64}
HIGH8 = {"ah": 0, "ch": 1, "dh": 2, "bh": 3}
NO_INDEX = frozenset(("eiz", "riz"))  # objdump's name for "no index" (SIB index 100b)
SEG_INDEX = {"es": 0, "cs": 1, "ss": 2, "ds": 3, "fs": 4, "gs": 5}
LOOP_CAP = 2000  # instructions a self-looping block runs before it returns


def namespace(cpu) -> dict:
    """The globals of every block of ``cpu``: its memory fast paths and helpers."""
    ns = {"M64": M64, "carry": F.carry, "cond": F.cond, "tr": cpu.tlb_r.get,
          "tw": cpu.tlb_w.get, "segcheck": check_access}
    for size, fmt in ((2, "<H"), (4, "<I"), (8, "<Q")):
        ns[f"U{size}"] = struct.Struct(fmt).unpack_from
        ns[f"P{size}"] = struct.Struct(fmt).pack_into
    for size, fn in cpu.rd.items():
        ns[f"rd{size}"] = fn
    for size, fn in cpu.wr.items():
        ns[f"wr{size}"] = fn
    return ns


class Gen:
    """Source of one block; ``k`` is the index of the instruction being generated."""

    def __init__(self, cpu, ns: dict, ipmask: int) -> None:
        self.cpu = cpu
        self.ns = ns
        self.ipmask = ipmask
        self.code_bits = cpu.code_bits
        self.stack_bits = cpu.stack_bits
        self.seg_checks = cpu.seg_checks
        self.lines: list[str] = []
        self.k = 0
        self.last_cc: tuple | None = None   # (k, op, bits) of the flags producer in this block
        self.pending_cc: str | None = None  # its lazy record, not yet stored in cpu.cc
        self.loop_start: int | None = None  # the block branches back to its start: loop inside
        self.count = 0                      # instructions in the block
        self.ended = False
        self.writes = False                 # this instruction may write memory/ports
        self.tmp = 0                        # fresh local names within an instruction
        self.may_fault = False

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def const(self, value) -> str:
        name = f"K{len(self.ns)}"
        self.ns[name] = value
        return name

    # -- operands ---------------------------------------------------------------------

    def reg(self, op: Reg) -> str:
        n, size = op.num, op.size
        if size == 1 and op.name in HIGH8:
            return f"((r[{HIGH8[op.name]}] >> 8) & 0xFF)"
        if size == 8:
            return f"r[{n}]"
        return f"(r[{n}] & {MASK[size]:#x})"

    def set_reg(self, op: Reg, expr: str) -> None:
        n, size = op.num, op.size
        if size == 1 and op.name in HIGH8:
            m = HIGH8[op.name]
            self.emit(f"r[{m}] = (r[{m}] & 0xFFFFFFFFFFFF00FF) | (({expr}) << 8)")
        elif size >= 4:
            self.emit(f"r[{n}] = {expr}")
        else:
            keep = M64 ^ MASK[size]
            self.emit(f"r[{n}] = (r[{n}] & {keep:#x}) | ({expr})")

    def ea(self, mem: Mem) -> str:
        """The effective address (offset in its segment), masked to the address size."""
        amask = MASK[mem.addr_size // 8]
        if mem.target is not None:
            return f"{mem.target & amask:#x}"
        parts = []
        if mem.base is not None:
            parts.append(f"r[{mem.base.num}]")
        if mem.index is not None and mem.index.name not in NO_INDEX:
            parts.append(f"r[{mem.index.num}]" + (f" * {mem.scale}" if mem.scale != 1 else ""))
        if mem.disp or not parts:
            parts.append(f"{mem.disp}" if mem.disp >= 0 else f"({mem.disp})")
        if len(parts) == 1 and mem.base is not None and mem.addr_size == 64:
            return parts[0]
        return f"(({' + '.join(parts)}) & {amask:#x})"

    def seg_of(self, mem: Mem) -> int:
        if mem.seg is not None:
            return SEG_INDEX[mem.seg]
        base = mem.base
        if base is not None and base.name in ("rsp", "rbp", "esp", "ebp", "sp", "bp"):
            return 2
        return 3

    def lin(self, mem: Mem, size: int = 1, write: bool = False) -> str:
        seg = self.seg_of(mem)
        ea = self.ea(mem)
        if self.seg_checks >> seg & 1:      # a segment that is not flat: check its limit/type
            ea = self._name("o", ea)
            self.emit(f"segcheck(cpu, {seg}, {ea}, {size}, {write})")
        if self.code_bits == 64:
            if seg >= 4:
                return f"(({ea} + sb[{seg}]) & M64)"
            return ea
        return f"(({ea} + sb[{seg}]) & 0xFFFFFFFF)"

    def read(self, op, size: int | None = None, la: str | None = None) -> str:
        t = type(op)
        if t is Reg:
            if op.cls == "gpr":
                return self.reg(op)
            if op.cls == "seg" and op.num < 6:
                return f"cpu.seg[{op.num}].selector"
            raise _Unsupported(op.cls)
        if t is Imm:
            return f"{op.value:#x}"
        if t is Mem:
            self.may_fault = True
            size = size or op.size
            if size not in (1, 2, 4, 8):
                raise _Unsupported(f"memory size {size}")
            return self.load(size, la or self.lin(op, size))
        raise _Unsupported(t.__name__)

    def _name(self, prefix: str, expr: str) -> str:
        """``expr`` bound to a fresh local (unless it is a name or a constant already)."""
        if expr.isidentifier() or _is_constant(expr):
            return expr
        self.tmp += 1
        name = f"{prefix}{self.k}_{self.tmp}"
        self.emit(f"{name} = {expr}")
        return name

    def load(self, size: int, la: str) -> str:
        """A memory read with the TLB lookup inline (the call only on a miss)."""
        la = self._name("l", la)
        self.tmp += 1
        out = f"m{self.k}_{self.tmp}"
        self.emit(f"e = tr({la} >> 12)")
        if size == 1:
            self.emit(f"{out} = e[0][{la} + e[1]] if e is not None else rd1({la})")
        else:
            self.emit(f"{out} = U{size}(e[0], {la} + e[1])[0] if e is not None and "
                      f"{la} & 0xFFF <= {4096 - size} else rd{size}({la})")
        return out

    def store(self, size: int, la: str, value: str) -> None:
        la = self._name("l", la)
        value = self._name("w", value)
        self.emit(f"e = tw({la} >> 12)")
        if size == 1:
            self.emit(f"if e is not None: e[0][{la} + e[1]] = {value}")
        else:
            self.emit(f"if e is not None and {la} & 0xFFF <= {4096 - size}: "
                      f"P{size}(e[0], {la} + e[1], {value})")
        self.emit(f"else: wr{size}({la}, {value})")

    def write(self, op, expr: str, la: str | None = None) -> None:
        t = type(op)
        if t is Reg and op.cls == "gpr":
            self.set_reg(op, expr)
        elif t is Mem:
            if op.size not in (1, 2, 4, 8):
                raise _Unsupported(f"memory size {op.size}")
            self.may_fault = self.writes = True
            self.store(op.size, la or self.lin(op, op.size, True), expr)
        else:
            raise _Unsupported(f"write {op!r}")

    def mem_la(self, op) -> str | None:
        """Bind the linear address of a memory operand to a local (for read-modify-write)."""
        if type(op) is Mem:
            self.emit(f"la{self.k} = {self.lin(op, op.size, True)}")
            return f"la{self.k}"
        return None

    # -- stack ----------------------------------------------------------------------------

    def stack(self) -> tuple[int, str]:
        bits = self.stack_bits
        return MASK[bits // 8], ("" if bits == 64 else "sb[2] + ")

    def push(self, expr: str, size: int) -> None:
        smask, base = self.stack()
        k = self.k
        self.may_fault = True
        self.emit(f"v{k}p = {expr}")
        self.emit(f"sp{k} = (r[4] - {size}) & {smask:#x}")
        lin = f"sp{k}" if not base else f"(({base}sp{k}) & 0xFFFFFFFF)"
        self.store(size, lin, f"v{k}p")
        self.set_sp(f"sp{k}")

    def pop(self, size: int, name: str) -> None:
        smask, base = self.stack()
        k = self.k
        self.may_fault = True
        self.emit(f"sp{k} = r[4] & {smask:#x}")
        lin = f"sp{k}" if not base else f"(({base}sp{k}) & 0xFFFFFFFF)"
        self.emit(f"{name} = {self.load(size, lin)}")
        self.set_sp(f"(sp{k} + {size}) & {smask:#x}")

    def set_sp(self, expr: str) -> None:
        if self.stack_bits == 16:
            self.emit(f"r[4] = (r[4] & 0xFFFFFFFFFFFF0000) | ({expr})")
        else:
            self.emit(f"r[4] = {expr}")

    # -- flags and control flow -------------------------------------------------------------

    def set_cc(self, op: int, bits: int, v: str, a: str = "0", b: str = "0",
               cin: str = "0") -> None:
        self.pending_cc = f"({op}, {bits}, {v}, {a}, {b}, {cin})"
        self.last_cc = (self.k, op, bits)

    def flush_cc(self) -> None:
        """Store the pending lazy-flags record (before anything reads ``cpu.cc``)."""
        if self.pending_cc is not None:
            self.emit(f"cpu.cc = {self.pending_cc}")
            self.pending_cc = None

    def ret(self, count: int) -> None:
        """Leave the block with ``count`` instructions of this pass retired."""
        self.flush_cc()
        self.emit(f"return {self.retired(count)}")

    def retired(self, count: int) -> str:
        return f"n + {count}" if self.loop_start is not None else f"{count}"

    def back_edge(self, cond: str | None) -> None:
        """A branch to the block's own start: run the body again (at most LOOP_CAP
        instructions per call, so that the dispatcher still looks at interrupts)."""
        self.flush_cc()
        pad = ""
        if cond is not None:
            self.emit(f"if {cond}:")
            pad = "    "
        self.emit(f"{pad}n += {self.count}")
        self.emit(f"{pad}if n < {LOOP_CAP}:")
        self.emit(f"{pad}    continue")
        self.emit(f"{pad}cpu.rip = {self.loop_start:#x}")
        self.emit(f"{pad}return n")

    def carry(self) -> str:
        lc = self.last_cc
        k = None if lc is None else lc[0]
        if lc is not None:
            if lc[1] == F.SUB:
                return f"(1 if a{k} < b{k} else 0)"
            if lc[1] == F.ADD:
                return f"(1 if v{k} < a{k} else 0)"
            if lc[1] == F.LOGIC:
                return "0"
            if lc[1] in (F.INC, F.DEC):
                return f"c{k}"
        self.flush_cc()
        return "carry(cpu.cc, cpu.fl)"

    def cond(self, c: int) -> str:
        lc = self.last_cc
        x, neg = c >> 1, c & 1
        expr = None
        if lc is not None:
            k, op, bits = lc
            s = 1 << (bits - 1)
            a, b, v = f"a{k}", f"b{k}", f"v{k}"
            if op == F.SUB:
                expr = {1: f"{a} < {b}", 2: f"{v} == 0", 3: f"{a} <= {b}",
                        4: f"{v} & {s:#x}", 6: f"({a} ^ {s:#x}) < ({b} ^ {s:#x})",
                        7: f"({a} ^ {s:#x}) <= ({b} ^ {s:#x})"}.get(x)
            elif op == F.LOGIC:
                expr = {0: "False", 1: "False", 2: f"{v} == 0", 3: f"{v} == 0",
                        4: f"{v} & {s:#x}", 6: f"{v} & {s:#x}",
                        7: f"({v} == 0 or {v} & {s:#x})"}.get(x)
            elif op in (F.ADD, F.INC, F.DEC):
                expr = {2: f"{v} == 0", 4: f"{v} & {s:#x}"}.get(x)
                if op == F.ADD and x == 1:
                    expr = f"{v} < {a}"
        if expr is None:
            self.flush_cc()
            return f"cond(cpu.cc, cpu.fl, {c})"
        return f"not ({expr})" if neg else f"({expr})"

    def jump(self, expr: str) -> None:
        self.emit(f"cpu.rip = {expr}")
        self.ret(self.k + 1)
        self.ended = True


def _is_constant(expr: str) -> bool:
    try:
        int(expr, 0)
    except ValueError:
        return False
    return True


class _Unsupported(Exception):
    """An operand form the generator does not handle inline: use the interpreter."""
