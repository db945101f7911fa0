"""Intel syntax exactly as GNU objdump 2.40 prints it with ``-M intel``."""

from __future__ import annotations

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import Far, Imm, Mem, Reg, Rel

from .common import (
    PrintAddress,
    family_frame,
    layout,
    memoised,
    prefix_words,
    size_suffix,
)

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
    """The instruction text objdump prints after the raw-bytes column.

    Text is memoised on the shared decoded core; an address-dependent part (branch target,
    RIP-relative comment) is rendered through `print_address` on every call.
    """
    return memoised(insn, print_address, 2, _render)


def _render(insn: Instruction, pa: PrintAddress) -> str:
    kind = insn.kind
    if kind != "insn":
        if kind == "truncated":
            return f".byte {insn.bytes[0]:#x}"
        words = prefix_words(insn, False) + ([insn.mnemonic] if kind == "bad" else [])
        if insn.evex is not None and insn.evex[0]:       # objdump keeps the EVEX mask
            mask = f"{{k{insn.evex[0]}}}" + ("{z}" if insn.evex[1] else "")
            return layout(words, [mask])
        return " ".join(words)
    core = insn.core
    words, texts = family_frame(core, 4, _frame, pa)
    if texts is None:
        words, texts = _frame(insn, pa)
    else:
        texts = list(texts)
        bcst = core.evex is not None and core.evex[2]
        ops = insn.operands
        for j in core.dynamic:
            texts[j] = _op_text(ops[j], bcst, pa)
    return _finish(insn, words, texts, pa)


def _op_text(op, bcst, pa: PrintAddress) -> str:
    t = type(op)
    if t is Reg:
        return op.name if op.cls != "dr" else "dr" + op.name[2:]
    if t is Imm:
        return f"{op.value:#x}"
    if t is Mem:
        return _mem(op).replace(" PTR ", " BCST ", 1) if bcst else _mem(op)
    if t is Rel:
        return pa(op.target)
    if t is Far:
        return f"{op.seg:#x}:{op.offset:#x}"
    return "1"          # the implicit count of D0/D1 shifts


def _frame(insn, pa: PrintAddress) -> tuple[list[str], list[str]]:
    """Prefix words + mnemonic, and each operand's text."""
    words = prefix_words(insn, False)
    if insn.pseudo_prefix:
        words.append(insn.pseudo_prefix)
    words.append(insn.mnemonic + size_suffix(insn, True))
    bcst = insn.evex is not None and insn.evex[2]
    return words, [_op_text(op, bcst, pa) for op in insn.operands]


def _finish(insn, words: list[str], ops: list[str], pa: PrintAddress) -> str:
    """AVX-512 decorations, RIP comment, objdump's layout."""
    evex = insn.evex
    if evex is not None:
        ops = list(ops)
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
    comment = ""
    core = insn.core
    if core.reloc is not None and type(core.operands[core.reloc]) is Mem:
        comment = f"        # {pa(insn.reloc_target)}"
    return layout(words, ops, comment)
