"""Intel syntax exactly as GNU objdump 2.40 prints it with ``-M intel``."""

from __future__ import annotations

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import Far, Imm, Mem, Reg, Rel, ShiftOne

from .common import PrintAddress, default_print_address, layout, prefix_words, size_suffix

PTR = {1: "BYTE PTR ", 2: "WORD PTR ", 4: "DWORD PTR ", 6: "FWORD PTR ", 8: "QWORD PTR ",
       10: "TBYTE PTR ", 16: "XMMWORD PTR ", 32: "YMMWORD PTR ", 64: "ZMMWORD PTR "}


def _mem(m: Mem) -> str:
    ptr = PTR.get(m.size, "") if not m.moffs else ""
    base, index = m.base, m.index
    if base is None and index is None:
        seg = m.seg or "ds"
        return f"{ptr}{seg}:{m.disp & ((1 << m.addr_size) - 1):#x}"
    seg = f"{m.seg}:" if m.seg else ""
    inner = base.name if base is not None else ""
    if index is not None:
        if m.addr_size == 16:
            inner += f"+{index.name}"
        else:
            inner += f"{'+' if inner else ''}{index.name}*{m.scale}"
    if m.disp_size:
        d = m.disp
        if m.target is not None:        # objdump prints rip+disp unsigned
            inner += f"+{d & ((1 << m.addr_size) - 1):#x}"
        else:
            inner += f"-{-d:#x}" if d < 0 else f"+{d:#x}"
    return f"{ptr}{seg}[{inner}]"


def format_intel(insn: Instruction, print_address: PrintAddress | None = None) -> str:
    """The instruction text objdump -M intel prints after the raw-bytes column."""
    pa = print_address or default_print_address
    kind = insn.kind
    if kind != "insn":
        if kind == "truncated":
            return f".byte {insn.bytes[0]:#x}"
        words = prefix_words(insn, False) + ([insn.mnemonic] if kind == "bad" else [])
        if insn.evex is not None and insn.evex[0]:       # objdump keeps the EVEX mask
            mask = f"{{k{insn.evex[0]}}}" + ("{z}" if insn.evex[1] else "")
            return layout(words, [mask])
        return " ".join(words)
    words = prefix_words(insn, False)
    if insn.pseudo_prefix:
        words.append(insn.pseudo_prefix)
    words.append(insn.mnemonic + size_suffix(insn, True))
    evex = insn.evex
    ops = []
    comment = ""
    for op in insn.operands:
        t = type(op)
        if t is Reg:
            ops.append(op.name if op.cls != "dr" else "dr" + op.name[2:])
        elif t is Imm:
            ops.append(f"{op.value:#x}")
        elif t is Mem:
            if evex is not None and evex[2]:
                ops.append(_mem(op).replace(" PTR ", " BCST ", 1))
            else:
                ops.append(_mem(op))
            if op.target is not None:
                comment = f"        # {pa(op.target)}"
        elif t is Rel:
            ops.append(pa(op.target))
        elif t is Far:
            ops.append(f"{op.seg:#x}:{op.offset:#x}")
        elif t is ShiftOne:
            ops.append("1")
    if evex is not None:
        mask, zeroing, bcst, rounding = evex
        if mask:
            ops[0] += f"{{k{mask}}}" + ("{z}" if zeroing else "")
        if rounding:
            i = len(ops) - 1
            while i > 0 and type(insn.operands[i]) is Imm:
                i -= 1
            if rounding.endswith("-bad"):
                ops.insert(i + 1, f"{{{rounding}}}")
            else:
                ops[i] += f"{{{rounding}}}"
    return layout(words, ops, comment)
