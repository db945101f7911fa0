"""What the AT&T and Intel formatters share: prefix words, suffixes, layout (objdump 2.40)."""

from __future__ import annotations

from collections.abc import Callable

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import Far, Mem
from x86vm.isa.tables import (
    SFX_ALWAYS,
    SFX_DATA,
    SFX_LEGACY,
    SFX_LONG,
    SFX_NODEFAULT,
    SFX_NOREG,
    SFX_RMMEM,
    SFX_XY,
)

_REX_BITS = (("W", 8), ("R", 4), ("X", 2), ("B", 1))
_REX_NAMES = ["rex"] + ["rex." + "".join(c for c, bit in _REX_BITS if r & bit)
                        for r in range(1, 16)]
_SEG_NAMES = {0x26: "es", 0x2E: "cs", 0x36: "ss", 0x3E: "ds", 0x64: "fs", 0x65: "gs"}
SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q", 10: "t"}
MASK = {16: 0xFFFFFFFF, 32: 0xFFFFFFFF, 64: 0xFFFFFFFFFFFFFFFF}     # address arithmetic
INTEL_SUFFIX = {2: "w", 4: "d", 8: "q"}


def default_print_address(addr: int) -> str:
    """objdump's rendering of an address without symbols."""
    return f"{addr:#x}"


def prefix_words(insn: Instruction, att: bool, prefixes=None) -> list[str]:
    """Names of the prefixes the instruction did not consume, in byte order."""
    spec = insn.spec
    words = []
    if prefixes is None:
        prefixes = insn.unused_prefixes
    f2_left = prefixes.count(0xF2)
    for p in prefixes:
        if p == 0x9B:
            words.append("fwait")
        elif 0x40 <= p <= 0x4F and insn.mode == 64:
            words.append(_REX_NAMES[p & 0xF])
        elif p == 0x66:
            words.append("data32" if insn.mode == 16 else "data16")
        elif p == 0x67:
            words.append("addr32" if insn.mode != 32 else "addr16")
        elif p == 0xF3 or p == 0xF2:
            hle = spec.hle if spec is not None else None
            if hle and insn.operands and type(insn.operands[0]) is Mem and (
                    hle == "hle!" or (hle == "hle" and 0xF0 in insn.prefixes)
                    or (hle == "hler" and p == 0xF3)):
                words.append("xrelease" if p == 0xF3 else "xacquire")
            elif p == 0xF3:
                words.append("rep" if spec is not None and "rep" in spec.flags else "repz")
            else:
                f2_left -= 1            # only the last F2 is the BND prefix
                words.append("bnd" if spec is not None and spec.bnd and not f2_left
                             else "repnz")
        elif p == 0xF0:
            words.append("lock")
        elif p == 0x3E and spec is not None and spec.notrack:
            words.append("notrack")
        else:
            words.append(_SEG_NAMES[p])
    return words


def size_suffix(insn: Instruction, intel: bool) -> str:
    """The AT&T size suffix (b/w/l/q) objdump appends, or ''; Intel only for push/call family."""
    spec = insn.spec
    sfx = spec.sfx
    if sfx == SFX_NODEFAULT:
        mode = insn.mode
        default = 64 if mode == 64 and spec.d64 else (16 if mode == 16 else 32)
        if insn.operand_size == default:
            return ""
        ops = insn.operands
        for i in spec.size_ops:         # a general register already shows the size
            if i < len(ops) and type(ops[i]).__name__ == "Reg":
                return ""
        if intel:
            if insn.memory_operand is not None or any(type(o) is Far for o in insn.operands):
                return ""
            return INTEL_SUFFIX[insn.operand_size >> 3]
        return SUFFIX[insn.operand_size >> 3]
    if sfx == SFX_DATA:         # x87 environment: 16/32-bit layout chosen by 66
        if 0x66 not in insn.prefixes:
            return ""
        if intel:
            return "d" if insn.operand_size == 32 else "w"
        return "l" if insn.operand_size == 32 else "s"
    if sfx == SFX_LONG:         # SYSRET/SYSEXIT: to 32- or 64-bit code (REX.W)
        if insn.mode != 64:
            return ""
        return (INTEL_SUFFIX if intel else SUFFIX)[8 if insn.operand_size == 64 else 4]
    if sfx == SFX_LEGACY:
        if insn.mode == 64:
            return ""
        return (INTEL_SUFFIX if intel else SUFFIX)[insn.operand_size >> 3]
    if intel or sfx == 0:
        return ""
    ops = insn.operands
    if sfx == SFX_NOREG:
        for i in spec.size_ops:
            if i < len(ops) and ops[i].__class__.__name__ == "Reg":
                return ""
        mem = insn.memory_operand
        size = mem.size if mem is not None else (ops[0].size if ops else 0)
        return SUFFIX.get(size, "")
    if sfx == SFX_ALWAYS:
        return SUFFIX.get(ops[0].size, "") if ops else ""
    if sfx == SFX_RMMEM:
        mem = insn.memory_operand
        return SUFFIX.get(mem.size, "") if mem is not None else ""
    if sfx == SFX_XY:
        mem = insn.memory_operand
        return {16: "x", 32: "y"}.get(mem.size, "") if mem is not None else ""
    return ""


def layout(words: list[str], operands: list[str], comment: str = "") -> str:
    """objdump's line: mnemonic (with prefix words) padded to 6, a space, operands."""
    head = " ".join(words)
    if not operands:
        return head + comment
    return f"{head:<6} {','.join(operands)}{comment}"


PrintAddress = Callable[[int], str]


def memoised(insn: Instruction, print_address: PrintAddress | None, slot: str,
             render: Callable[[Instruction, PrintAddress], str]) -> str:
    """Format once per decoded core (identical bytes share one); only an address-dependent
    operand is re-rendered, through `print_address`, for each instruction."""
    core = insn.core
    parts = getattr(core, slot)
    if parts is None:
        if core.reloc is None:
            parts = render(insn, default_print_address)
        else:
            before, _, after = render(insn, _mark).partition("\0")
            parts = (before, after)
        setattr(core, slot, parts)
    if type(parts) is str:
        return parts
    return parts[0] + (print_address or default_print_address)(insn.reloc_target) + parts[1]


class Frame:
    """How one family of cores prints: the mnemonic head and the static operand texts.

    `head` is the prefix words and mnemonic padded as objdump pads them; `order` lists
    operand indices in printing order; `holes` say where each member's values go; `simple`
    is False when AVX-512 decorations need the full renderer.
    """

    __slots__ = ("words", "texts", "head", "order", "comment", "simple", "holes", "segments")

    def __init__(self, words, texts, order, comment, simple, holes=()) -> None:
        self.holes = holes      # (operand index, text before, style, arg, text after)
        self.segments = None
        self.words = words
        self.texts = texts
        self.order = order
        self.comment = comment
        self.simple = simple
        head = " ".join(words)
        self.head = f"{head:<6} " if order else head


def family_frame(core, slot: str, frame: Callable, pa: PrintAddress):
    """The Frame of the core's family template, or None.

    Cores decoded from one plan (same prefixes, opcode, ModRM, SIB) print alike except for
    their `dynamic` operands (displacements, immediates, targets); the rest is shared.
    """
    family = core.family
    if family is None or family is core:
        return None
    cached = getattr(family, slot)
    if cached is None:
        cached = frame(Instruction(family.address, family), _mark)
        setattr(family, slot, cached)
    return cached


# How a displacement/immediate/target value is printed (see fill()).
H_SIGNED, H_SIGNED_PLUS, H_MASK, H_PLUS_MASK, H_ABS16, H_HEX, H_ADDRESS, H_FAR_ATT, \
    H_FAR_INTEL = range(9)


def fill(style: int, arg: int, v, pa: PrintAddress) -> str:
    """Print value `v` of a memory displacement, immediate or target in `style`."""
    if style == H_SIGNED:
        return f"-{-v:#x}" if v < 0 else f"{v:#x}"
    if style == H_SIGNED_PLUS:
        return f"-{-v:#x}" if v < 0 else f"+{v:#x}"
    if style == H_MASK:
        return f"{v & arg:#x}"
    if style == H_PLUS_MASK:
        return f"+{v & arg:#x}"
    if style == H_ABS16:                # objdump prints a 16-bit absolute address signed
        return f"-{0x10000 - v:#x}" if v & 0x8000 else f"{v & arg:#x}"
    if style == H_HEX:
        return f"{v:#x}"
    if style == H_ADDRESS:
        return pa(v)
    if style == H_FAR_ATT:
        return f"${v[0]:#x},${v[1]:#x}"
    return f"{v[0]:#x}:{v[1]:#x}"


def render_member(insn: Instruction, frame: Frame, pa: PrintAddress) -> str:
    """Text of a family member: the family's frame with its own values filled in."""
    segments = frame.segments
    if segments is None:
        segments = frame.segments = _segments(frame)
    values = insn.core.values
    if len(segments) == 3:                       # one value: the common case
        style, arg, k = segments[1]
        v = values[k]
        if style == H_SIGNED:
            mid = f"-{-v:#x}" if v < 0 else f"{v:#x}"
        elif style == H_HEX:
            mid = f"{v:#x}"
        else:
            mid = fill(style, arg, v, pa)
        text = segments[0] + mid + segments[2]
    else:
        parts = []
        for i, seg in enumerate(segments):
            if i & 1:
                parts.append(fill(seg[0], seg[1], values[seg[2]], pa))
            else:
                parts.append(seg)
        text = "".join(parts)
    if frame.comment:
        text += f"        # {pa(insn.reloc_target)}"
    return text


def member_parts(core, frame: Frame):
    """Memo entry of a family member: its text, or (before, after) an address that
    print_address renders per instruction (branch target or RIP-relative comment)."""
    segments = frame.segments
    if segments is None:
        segments = frame.segments = _segments(frame)
    values = core.values
    out = []
    cut = -1
    for i, seg in enumerate(segments):
        if i & 1:
            style = seg[0]
            if style == H_ADDRESS:
                cut = len(out)
                out.append("")
            elif style == H_SIGNED:
                v = values[seg[2]]
                out.append(f"-{-v:#x}" if v < 0 else f"{v:#x}")
            elif style == H_HEX:
                out.append(f"{values[seg[2]]:#x}")
            else:
                out.append(fill(style, seg[1], values[seg[2]], None))
        else:
            out.append(seg)
    if frame.comment:
        return ("".join(out) + "        # ", "")
    if cut >= 0:
        return ("".join(out[:cut]), "".join(out[cut + 1:]))
    return "".join(out)


def _segments(frame: Frame) -> tuple:
    """The frame's text as static strings alternating with value holes (style, arg, k)."""
    hole_at = {h[0]: (k, h) for k, h in enumerate(frame.holes)}
    out: list = [frame.head]
    for n, i in enumerate(frame.order):
        if n:
            out[-1] += ","
        if i in hole_at:
            k, (_j, pre, style, arg, post) = hole_at[i]
            out[-1] += pre
            out.append((style, arg, k))
            out.append(post)
        else:
            out[-1] += frame.texts[i]
    return tuple(out)


def _mark(addr: int) -> str:
    return "\0"
