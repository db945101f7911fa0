"""AT&T syntax exactly as GNU objdump 2.40 prints it (its default syntax)."""

from __future__ import annotations

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import Far, Imm, Mem, Reg, Rel

from .common import (
    SUFFIX,
    PrintAddress,
    family_frame,
    layout,
    memoised,
    prefix_words,
    size_suffix,
)

_HINTS = {0x2E: ",pn", 0x3E: ",pt"}


def _mem(m: Mem) -> str:
    seg = f"%{m.seg}:" if m.seg else ""
    base, index = m.base, m.index
    if base is None and index is None:
        d = m.disp
        if m.addr_size == 16 and d & 0x8000 and not m.moffs:  # objdump: signed disp16
            return f"{seg}-{0x10000 - d:#x}"
        return f"{seg}{d & ((1 << m.addr_size) - 1):#x}"
    disp = ""
    if m.disp_size:
        d = m.disp
        disp = f"-{-d:#x}" if d < 0 else f"{d:#x}"
    if index is None:
        return f"{seg}{disp}(%{base.name})"
    if m.addr_size == 16:
        return f"{seg}{disp}(%{base.name},%{index.name})"
    b = f"%{base.name}" if base is not None else ""
    return f"{seg}{disp}({b},%{index.name},{m.scale})"


def format_att(insn: Instruction, print_address: PrintAddress | None = None) -> str:
    """The instruction text objdump prints after the raw-bytes column.

    Text is memoised on the shared decoded core; an address-dependent part (branch target,
    RIP-relative comment) is rendered through `print_address` on every call.
    """
    return memoised(insn, print_address, 1, _render)


def _render(insn: Instruction, pa: PrintAddress) -> str:
    kind = insn.kind
    if kind != "insn":
        if kind == "truncated":
            return f".byte {insn.bytes[0]:#x}"
        words = prefix_words(insn, True) + ([insn.mnemonic] if kind == "bad" else [])
        if insn.evex is not None and insn.evex[0]:       # objdump keeps the EVEX mask
            mask = f"{{%k{insn.evex[0]}}}" + ("{z}" if insn.evex[1] else "")
            return layout(words, [mask])
        return " ".join(words)
    core = insn.core
    words, texts = family_frame(core, 3, _frame, pa)
    if texts is None:
        words, texts = _frame(insn, pa)
    else:
        texts = list(texts)
        star = "*" if core.spec.indirect else ""
        ops = insn.operands
        for j in core.dynamic:
            texts[j] = _op_text(ops[j], star, pa)
    return _finish(insn, words, texts, pa)


def _op_text(op, star: str, pa: PrintAddress) -> str | None:
    t = type(op)
    if t is Reg:
        return "(%dx)" if op.cls == "port" else f"{star}%{op.name}"
    if t is Imm:
        return f"${op.value:#x}"
    if t is Mem:
        return star + _mem(op)
    if t is Rel:
        return pa(op.target)
    if t is Far:
        return f"${op.seg:#x},${op.offset:#x}"
    return None         # the implicit 1 of D0/D1 shifts is not printed


def _frame(insn, pa: PrintAddress) -> tuple[list[str], list[str | None]]:
    """Prefix words + mnemonic, and each operand's text in Intel order."""
    spec = insn.spec
    words = prefix_words(insn, True)
    mnemonic = insn.att_mnemonic + size_suffix(insn, False)
    if (spec.branch == "jcc" or spec.branch == "loop") and words:
        for p, w in zip(reversed(insn.unused_prefixes), reversed(words), strict=False):
            if p in _HINTS and w in ("cs", "ds"):
                words.remove(w)
                mnemonic += _HINTS[p]
                break
    if 0x67 in insn.unused_prefixes and "asfx" in spec.flags:
        words.remove("addr32" if insn.mode != 32 else "addr16")
        mnemonic += SUFFIX[insn.address_size >> 3]
    if insn.pseudo_prefix:
        words.append(insn.pseudo_prefix)
    words.append(mnemonic)
    star = "*" if spec.indirect else ""
    return words, [_op_text(op, star, pa) for op in insn.operands]


def _finish(insn, words: list[str], texts: list[str | None], pa: PrintAddress) -> str:
    """AT&T order (source first), AVX-512 decorations, RIP comment, objdump's layout."""
    spec = insn.spec
    ops = [t for t in texts if t is not None]
    if not (spec.flags and "att-noreverse" in spec.flags):
        ops.reverse()
    evex = insn.evex
    if evex is not None:
        _decorate(insn, ops, evex)
    comment = ""
    core = insn.core
    if core.reloc is not None and type(core.operands[core.reloc]) is Mem:
        comment = f"        # {pa(insn.reloc_target)}"
    return layout(words, ops, comment)


def _decorate(insn: Instruction, ops: list[str], evex: tuple) -> None:
    """AVX-512 decorations (SDM §2.7): {%kN}{z} on the destination, {1toN}, {rounding}."""
    mask, zeroing, bcst, rounding = evex
    if mask:
        ops[-1] += f"{{%k{mask}}}" + ("{z}" if zeroing else "")
    if bcst:
        for i, op in enumerate(reversed(insn.operands)):
            if type(op) is Mem:
                ops[i] += f"{{1to{bcst}}}"
    if rounding:
        i = 0
        while i < len(ops) and ops[i].startswith("$"):
            i += 1
        ops.insert(i, f"{{{rounding}}}")
