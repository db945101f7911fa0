"""What the AT&T and Intel formatters share: prefix words, suffixes, layout (objdump 2.40)."""

from __future__ import annotations

from collections.abc import Callable

from x86vm.isa.instruction import Instruction
from x86vm.isa.operands import Far, Mem
from x86vm.isa.tables import (
    SFX_ALWAYS,
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
INTEL_SUFFIX = {2: "w", 4: "d", 8: "q"}


def default_print_address(addr: int) -> str:
    """objdump's rendering of an address without symbols."""
    return f"{addr:#x}"


def prefix_words(insn: Instruction, att: bool) -> list[str]:
    """Names of the prefixes the instruction did not consume, in byte order."""
    spec = insn.spec
    words = []
    for p in insn.unused_prefixes:
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
                words.append("bnd" if spec is not None and spec.bnd else "repnz")
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
        if intel:
            if insn.memory_operand is not None or any(type(o) is Far for o in insn.operands):
                return ""
            return INTEL_SUFFIX[insn.operand_size >> 3]
        return SUFFIX[insn.operand_size >> 3]
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
