"""AT&T syntax exactly as GNU objdump 2.40 prints it (its default syntax)."""

from __future__ import annotations

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import Far, Imm, Mem, Reg, Rel, ShiftOne

from .common import SUFFIX, PrintAddress, default_print_address, layout, prefix_words, size_suffix

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
    """The instruction text objdump prints after the raw-bytes column."""
    pa = print_address or default_print_address
    kind = insn.kind
    if kind != "insn":
        if kind == "truncated":
            return f".byte {insn.bytes[0]:#x}"
        words = prefix_words(insn, True) + ([insn.mnemonic] if kind == "bad" else [])
        if insn.evex is not None and insn.evex[0]:       # objdump keeps the EVEX mask
            mask = f"{{%k{insn.evex[0]}}}" + ("{z}" if insn.evex[1] else "")
            return layout(words, [mask])
        return " ".join(words)
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
    ops = []
    comment = ""
    star = "*" if spec.indirect else ""
    for op in reversed(insn.operands):
        t = type(op)
        if t is Reg:
            if op.cls == "port":
                ops.append("(%dx)")
            else:
                ops.append(f"{star}%{op.name}")
        elif t is Imm:
            ops.append(f"${op.value:#x}")
        elif t is Mem:
            ops.append(star + _mem(op))
            if op.target is not None:
                comment = f"        # {pa(op.target)}"
        elif t is Rel:
            ops.append(pa(op.target))
        elif t is Far:
            ops.append(f"${op.seg:#x},${op.offset:#x}")
        elif t is ShiftOne:
            continue
    if spec.flags and "att-noreverse" in spec.flags:
        ops.reverse()
    evex = insn.evex
    if evex is not None:
        _decorate(insn, ops, evex)
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
