"""Operand access for the interpreters (the instructions not generated inline)."""

from __future__ import annotations

from x86vm.isa.operands import Far, Imm, Mem, Reg, Rel, ShiftOne

M64 = 0xFFFFFFFFFFFFFFFF
MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: M64, 16: (1 << 128) - 1, 10: (1 << 80) - 1}
HIGH8 = {"ah": 0, "ch": 1, "dh": 2, "bh": 3}
SEG_INDEX = {"es": 0, "cs": 1, "ss": 2, "ds": 3, "fs": 4, "gs": 5}
_SS_BASES = ("rsp", "rbp", "esp", "ebp", "sp", "bp")


def ea(cpu, mem: Mem) -> int:
    """Effective address of ``mem`` (offset within its segment)."""
    amask = MASK[mem.addr_size // 8]
    if mem.target is not None:
        return mem.target & amask
    r = cpu.r
    a = mem.disp
    if mem.base is not None:
        a += r[mem.base.num]
    if mem.index is not None and mem.index.name not in ("eiz", "riz"):
        a += r[mem.index.num] * mem.scale
    return a & amask


def seg_index(mem: Mem) -> int:
    if mem.seg is not None:
        return SEG_INDEX[mem.seg]
    if mem.base is not None and mem.base.name in _SS_BASES:
        return 2
    return 3


def linear(cpu, mem: Mem, offset: int | None = None) -> int:
    """Linear address of ``mem`` (or of ``offset`` in its segment)."""
    seg = seg_index(mem)
    a = ea(cpu, mem) if offset is None else offset
    if cpu.code_bits == 64:
        return (a + cpu.sbase[seg]) & M64 if seg >= 4 else a
    return (a + cpu.sbase[seg]) & 0xFFFFFFFF


def seg_linear(cpu, seg: int, offset: int) -> int:
    if cpu.code_bits == 64:
        return (offset + cpu.sbase[seg]) & M64 if seg >= 4 else offset
    return (offset + cpu.sbase[seg]) & 0xFFFFFFFF


def read_reg(cpu, op: Reg) -> int:
    if op.cls == "gpr":
        if op.size == 1 and op.name in HIGH8:
            return (cpu.r[HIGH8[op.name]] >> 8) & 0xFF
        return cpu.r[op.num] & MASK[op.size]
    if op.cls == "seg" and op.num < 6:
        return cpu.seg[op.num].selector
    if op.cls == "port":
        return cpu.r[2] & 0xFFFF
    raise cpu.undefined(f"register class {op.cls}")


def write_reg(cpu, op: Reg, value: int) -> None:
    r = cpu.r
    size = op.size
    if size == 1 and op.name in HIGH8:
        n = HIGH8[op.name]
        r[n] = (r[n] & ~0xFF00) | ((value & 0xFF) << 8)
    elif size >= 4:
        r[op.num] = value & MASK[size]
    else:
        r[op.num] = (r[op.num] & ~MASK[size]) | (value & MASK[size])


def read(cpu, op, size: int | None = None) -> int:
    t = type(op)
    if t is Reg:
        return read_reg(cpu, op)
    if t is Imm:
        return op.value
    if t is Mem:
        return cpu.read_mem(linear(cpu, op), size or op.size)
    if t is ShiftOne:
        return 1
    if t is Rel:
        return op.target
    raise cpu.undefined(f"operand {t.__name__}")


def write(cpu, op, value: int, size: int | None = None) -> None:
    t = type(op)
    if t is Reg:
        write_reg(cpu, op, value)
    elif t is Mem:
        size = size or op.size
        cpu.write_mem(linear(cpu, op), size, value & MASK[size])
    else:
        raise cpu.undefined(f"write to {t.__name__}")


def size_of(op, insn) -> int:
    s = getattr(op, "size", 0)
    return s if s else insn.operand_size // 8


__all__ = ["Far", "Imm", "Mem", "Reg", "Rel", "ShiftOne", "ea", "linear", "read", "write",
           "read_reg", "write_reg", "seg_index", "seg_linear", "size_of", "MASK"]
