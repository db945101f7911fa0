"""Intel syntax exactly as GNU objdump 2.40 prints it with ``-M intel``."""

from __future__ import annotations

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import BadOperand, Far, Imm, Mem, Reg, Rel

from .common import (
    H_ADDRESS,
    H_FAR_INTEL,
    H_HEX,
    H_MASK,
    H_PLUS_MASK,
    H_SIGNED_PLUS,
    MASK,
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

PTR = {1: "BYTE PTR ", 2: "WORD PTR ", 4: "DWORD PTR ", 6: "FWORD PTR ", 8: "QWORD PTR ",
       10: "TBYTE PTR ", 16: "XMMWORD PTR ", 32: "YMMWORD PTR ", 64: "ZMMWORD PTR "}


def _mem_parts(m: Mem) -> tuple[str, int, int, str]:
    """Memory operand as (text before, value style, style arg, text after) its disp."""
    ptr = PTR.get(m.size, "") if not m.moffs else ""
    base, index = m.base, m.index
    mask = (1 << m.addr_size) - 1
    if base is None and index is None:
        return f"{ptr}{m.seg or 'ds'}:", H_MASK, mask, ""
    seg = f"{m.seg}:" if m.seg else ""
    inner = base.name if base is not None else ""
    if index is not None:
        if m.addr_size == 16:
            inner += f"+{index.name}"
        else:
            inner += f"{'+' if inner else ''}{index.name}*{m.scale}"
    if not m.disp_size:
        return f"{ptr}{seg}[{inner}", -1, 0, "]"
    if m.target is not None:        # objdump prints rip+disp unsigned
        return f"{ptr}{seg}[{inner}", H_PLUS_MASK, mask, "]"
    return f"{ptr}{seg}[{inner}", H_SIGNED_PLUS, 0, "]"


def _mem(m: Mem) -> str:
    pre, style, arg, post = _mem_parts(m)
    return pre + (fill(style, arg, m.disp, None) if style >= 0 else "") + post


def format_intel(insn: Instruction, print_address: PrintAddress | None = None) -> str:
    """The instruction text objdump prints after the raw-bytes column.

    Text is memoised on the shared decoded core; an address-dependent part (branch target,
    RIP-relative comment) is rendered through `print_address` on every call.
    """
    core = insn.core
    parts = core.memo2
    if parts is None:
        family = core.family            # a new member of a known family: fill its frame
        if family is None or family is core or family.memo4 is None or \
                not family.memo4.simple:
            return memoised(insn, print_address, "memo2", _render)
        parts = core.memo2 = member_parts(core, family.memo4)
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
        words = prefix_words(insn, False) + ([insn.mnemonic] if kind == "bad" else [])
        if insn.evex is not None and insn.evex[0]:       # objdump keeps the EVEX mask
            mask = f"{{k{insn.evex[0]}}}" + ("{z}" if insn.evex[1] else "")
            return layout(words, [mask])
        return " ".join(words)
    frame = family_frame(insn.core, "memo4", _frame, pa)
    if frame is not None and frame.simple:
        return render_member(insn, frame, pa)
    frame = _frame(insn, pa)
    return _finish(insn, frame.words, frame.texts, pa)


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
    if t is BadOperand:
        return "(bad)"
    return "1"          # the implicit count of D0/D1 shifts


def _frame(insn, pa: PrintAddress) -> Frame:
    """Prefix words + mnemonic, and each operand's text."""
    words = prefix_words(insn, False)
    if "intel-noops" in insn.spec.flags:      # objdump -M intel omits implicit operands,
        unused = set(insn.unused_prefixes)     # so an address-size prefix shows as a word
        shown = [p for p in insn.prefixes if p in unused or p == 0x67]
        words = prefix_words(insn, False, shown)
        words.append(insn.mnemonic)
        return Frame(words, [], [], False, True)
    if insn.pseudo_prefix:
        words.append(insn.pseudo_prefix)
    words.append(insn.mnemonic + size_suffix(insn, True))
    bcst = insn.evex is not None and insn.evex[2] > 0
    texts = [_op_text(op, bcst, pa) for op in insn.operands]
    core = insn.core
    comment = core.reloc is not None and core.reloc_mem
    holes = []
    for _kind, j, *_ in core.fields or ():
        op = core.operands[j]
        t = type(op)
        if t is Mem:
            pre, style, arg, post = _mem_parts(op)
            holes.append((j, pre, style, arg, post))
        elif t is Imm:
            holes.append((j, "", H_HEX, 0, ""))
        elif t is Rel:
            holes.append((j, "", H_ADDRESS, 0, ""))
        else:
            holes.append((j, "", H_FAR_INTEL, 0, ""))
    return Frame(words, texts, list(range(len(texts))), comment, insn.evex is None, holes)


def _finish(insn, words: list[str], ops: list[str], pa: PrintAddress) -> str:
    """AVX-512 decorations, RIP comment, objdump's layout."""
    evex = insn.evex
    if evex is not None:
        ops = list(ops)
        mask, zeroing, bcst, rounding = evex
        if mask:
            ops[0] += f"{{k{mask}}}" + ("{z}" if zeroing else "")
        if bcst < 0:                    # EVEX.b on memory without broadcast
            for i, op in enumerate(insn.operands):
                if type(op) is Mem:
                    ops[i] += "{bad}"
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
    if core.reloc is not None and core.reloc_mem:
        comment = f"        # {pa(insn.reloc_target)}"
    return layout(words, ops, comment)
