"""AT&T syntax exactly as GNU objdump 2.40 prints it (its default syntax)."""

from __future__ import annotations

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import BadOperand, Far, Imm, Mem, Reg, Rel

from .common import (
    H_ABS16,
    H_ADDRESS,
    H_FAR_ATT,
    H_HEX,
    H_MASK,
    H_SIGNED,
    MASK,
    SUFFIX,
    Frame,
    PrintAddress,
    family_frame,
    fill,
    layout,
    member_parts,
    memoised,
    prefix_words,
    render_member,
    size_suffix,
)

_HINTS = {0x2E: ",pn", 0x3E: ",pt"}


def _mem_parts(m: Mem) -> tuple[str, int, int, str]:
    """Memory operand as (text before, value style, style arg, text after) its disp."""
    seg = f"%{m.seg}:" if m.seg else ""
    base, index = m.base, m.index
    mask = (1 << m.addr_size) - 1
    if base is None and index is None:
        return seg, H_ABS16 if m.addr_size == 16 and not m.moffs else H_MASK, mask, ""
    if index is None:
        post = f"(%{base.name})"
    elif m.addr_size == 16:
        post = f"(%{base.name},%{index.name})"
    else:
        b = f"%{base.name}" if base is not None else ""
        post = f"({b},%{index.name},{m.scale})"
    return seg, H_SIGNED if m.disp_size else -1, 0, post


def _mem(m: Mem) -> str:
    pre, style, arg, post = _mem_parts(m)
    return pre + (fill(style, arg, m.disp, None) if style >= 0 else "") + post


def format_att(insn: Instruction, print_address: PrintAddress | None = None) -> str:
    """The instruction text objdump prints after the raw-bytes column.

    Text is memoised on the shared decoded core; an address-dependent part (branch target,
    RIP-relative comment) is rendered through `print_address` on every call.
    """
    core = insn.core
    parts = core.memo1
    if parts is None:
        family = core.family            # a new member of a known family: fill its frame
        if family is None or family is core or family.memo3 is None or \
                not family.memo3.simple:
            return memoised(insn, print_address, "memo1", _render)
        parts = core.memo1 = member_parts(core, family.memo3)
    if type(parts) is str:
        return parts
    target = core.target                # address-dependent: before + address + after
    if insn.address != core.address:
        target = (target + insn.address - core.address) & MASK[core.mode]
    if print_address is None:
        return f"{parts[0]}{target:#x}{parts[1]}"
    return parts[0] + print_address(target) + parts[1]


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
    frame = family_frame(insn.core, "memo3", _frame, pa)
    if frame is not None and frame.simple:
        return render_member(insn, frame, pa)
    frame = _frame(insn, pa)
    return _finish(insn, frame.words, frame.texts, pa)


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
    if t is BadOperand:
        return "(bad)"
    return None         # the implicit 1 of D0/D1 shifts is not printed


def _frame(insn, pa: PrintAddress) -> Frame:
    """Prefix words + mnemonic, and each operand's text (in Intel order)."""
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
    texts = [_op_text(op, star, pa) for op in insn.operands]
    order = [i for i, t in enumerate(texts) if t is not None]
    if not (spec.flags and "att-noreverse" in spec.flags):
        order.reverse()
    core = insn.core
    comment = core.reloc is not None and core.reloc_mem
    holes = []
    for _kind, j, *_ in core.fields or ():
        op = core.operands[j]
        t = type(op)
        if t is Mem:
            pre, style, arg, post = _mem_parts(op)
            holes.append((j, star + pre, style, arg, post))
        elif t is Imm:
            holes.append((j, "$", H_HEX, 0, ""))
        elif t is Rel:
            holes.append((j, "", H_ADDRESS, 0, ""))
        else:
            holes.append((j, "", H_FAR_ATT, 0, ""))
    return Frame(words, texts, order, comment, insn.evex is None, holes)


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
    if core.reloc is not None and core.reloc_mem:
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
                ops[i] += "{bad}" if bcst < 0 else f"{{1to{bcst}}}"
    if rounding:
        i = 0
        while i < len(ops) and ops[i].startswith("$"):
            i += 1
        if "att-rc1" in insn.spec.flags:        # vcvtsi2ss & co.: after the integer source
            i += 1
        ops.insert(i, f"{{{rounding}}}")
