"""AT&T syntax exactly as GNU objdump 2.40 prints it (its default syntax)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

from x86vm.isa import (
    EIZ_ABSOLUTE,
    SFX_NODEFAULT,
    BadMemory,
    BadOperand,
    Far,
    Imm,
    Instruction,
    Mem,
    Reg,
    Rel,
    SizedMode,
)

from .common import (
    H_ABS16,
    H_FAR_ATT,
    H_MASK,
    H_SIGNED,
    SUFFIX,
    Frame,
    MemParts,
    PrintAddress,
    Syntax,
    at_address,
    drop_used_prefix_words,
    mem_text,
    prefix_words,
    shown_segment,
    size_prefix_name,
    size_suffix,
    suffix_always,
    value_holes,
    vsib_marks,
)

_HINTS = {0x2E: ",pn", 0x3E: ",pt"}
_SEG_PREFIXES = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65))


def _mem_parts(m: Mem) -> MemParts:
    """Memory operand as (text before, value style, style arg, text after) its disp."""
    shown = shown_segment(m)
    seg = f"%{shown}:" if shown else ""
    base, index = m.base, m.index
    mask = (1 << m.addr_size) - 1
    if base is None and index is None:
        return seg, H_ABS16 if m.addr_size == 16 and not m.moffs else H_MASK, mask, ""
    if base is None and index is EIZ_ABSOLUTE:
        return seg, H_MASK, mask, f"(,%eiz,{m.scale})"
    if index is None:
        post = f"(%{base.name})"
    elif m.addr_size == 16:
        post = f"(%{base.name},%{index.name})"
    else:
        b = f"%{base.name}" if base is not None else ""
        ix = index.name if index.cls == "bad" else f"%{index.name}"     # VSIB "(bad)"
        post = f"({b},{ix},{m.scale})"
    return seg, H_SIGNED if m.disp_size else -1, 0, post


def format_att(insn: Instruction, print_address: PrintAddress | None = None) -> str:
    """What objdump -d prints after the raw-bytes column (AT&T syntax); addresses (branch
    targets, RIP-relative comments) through `print_address`, else as hex."""
    memo = _TEXTS_GET(insn.core)  # the text, or a family's texts by bytes (see Syntax)
    if type(memo) is dict:
        text = memo.get(insn.bytes) or _ATT.remember(insn, memo)
    else:
        text = memo or _ATT.remember(insn)
    return text if type(text) is str else at_address(text, insn.address, print_address)


def _op_text(op, star: str, pa: PrintAddress) -> str | None:
    t = type(op)
    if t is Reg:
        return "(%dx)" if op.cls == "port" else f"{star}%{op.name}"
    if t is Imm:
        return f"${op.value:#x}"
    if t is Mem:
        return star + mem_text(_mem_parts(op), op.disp)
    if t is Rel:
        return pa(op.target)
    if t is Far:
        return f"${op.seg:#x},${op.offset:#x}"
    if t is BadMemory and op.seg:
        return f"%{op.seg}:(bad)"
    if t is BadOperand or t is BadMemory:
        return "(bad)"
    return None         # the implicit 1 of D0/D1 shifts is not printed


def _frame(insn, pa: PrintAddress, intel_mnemonic: bool = False, suffix: bool = False
           ) -> Frame:
    """Prefix words + mnemonic, and each operand's text (in Intel order); with
    `intel_mnemonic` (objdump -M intel-mnemonic) the x87 forms flagged ``sysv386`` keep the
    Intel name; with `suffix` (-M suffix) the size letter of the form's ``suffix=`` macro."""
    spec = insn.spec
    words = prefix_words(insn, True)
    name = insn.mnemonic if intel_mnemonic and "sysv386" in spec.objdump_flags \
        else insn.att_mnemonic
    macro = spec.suffix_macro if suffix else None
    if macro is not None:
        if "rexw-name" in spec.flags:       # the macro's letter replaces the REX.W name's
            name = spec.att_names[1]
        return _suffixed_frame(insn, pa, words, name, macro)
    mnemonic = name + size_suffix(insn, False)
    if words and type(insn.mode) is SizedMode and insn.mode == 64 and \
            not (insn.mode.intel64 and "near64" in spec.flags) and \
            spec.sfx == SFX_NODEFAULT and insn.memory_operand is not None and \
            "data32" in words and insn.operand_size == 64 and \
            not any(0x48 <= p <= 0x4F for p in insn.prefixes):
        # -M data16, 66 on push/pop/call/jmp through memory: objdump's AT&T "pushl" uses
        # the 66 (its Intel listing shows "data32" and the QWORD operand)
        del words[len(words) - 1 - words[::-1].index("data32")]
        mnemonic += "l"
    hint = _hint(insn, words)
    if 0x67 in insn.unused_prefixes and "asfx" in spec.objdump_flags:
        word = size_prefix_name(0x67, insn.mode)     # (the last 67 is the one used)
        del words[len(words) - 1 - words[::-1].index(word)]
        mnemonic += SUFFIX[insn.address_size >> 3]
    mnemonic += hint
    if suffix and spec.swap_s and insn.memory_operand is None:
        mnemonic += ".s"
    return _finish_frame(insn, pa, words, mnemonic, suffix)


def _suffixed_frame(insn, pa: PrintAddress, words: list[str], name: str, macro: str
                    ) -> Frame:
    """The frame under -M suffix of a form whose template has a size-letter macro: the
    letter objdump's putop prints with SUFFIX_ALWAYS, then the branch hint, then ".s"."""
    hint = _hint(insn, words)
    letter, used = suffix_always(insn, macro, False)
    drop_used_prefix_words(insn, words, used)
    mnemonic = name + letter + hint
    if insn.spec.swap_s and insn.memory_operand is None:
        mnemonic += ".s"
    return _finish_frame(insn, pa, words, mnemonic, True)


def _hint(insn, words: list[str]) -> str:
    """A conditional branch's ",pn"/",pt" (its segment prefix word dropped from `words`):
    objdump prints CS alone as ",pn", DS alone as ",pt" (both: no hint), in place of the
    last segment prefix, whichever it is."""
    spec = insn.spec
    if (spec.branch == "jcc" or spec.branch == "loop") and words:
        unused = insn.unused_prefixes
        segs = [i for i, p in enumerate(unused) if p in _SEG_PREFIXES]
        hints = {p for p in unused if p in _HINTS}
        if segs and len(hints) == 1 and len(words) == len(unused):
            del words[segs[-1]]
            return _HINTS[hints.pop()]
    return ""


def _finish_frame(insn, pa: PrintAddress, words: list[str], mnemonic: str,
                  suffix: bool = False) -> Frame:
    spec = insn.spec
    if "pad6" in spec.objdump_flags:        # objdump's PREFETCHI_Fixup writes "nopl  "
        mnemonic = mnemonic.ljust(6)
    if insn.pseudo_prefix:
        words.append(insn.pseudo_prefix)
    if suffix and "pre-suffix" in spec.objdump_flags:
        # objdump's %XV macro ("{vex} " on VEX) goes on into its S macro: -M suffix puts
        # the operand size's letter before the mnemonic ("{vex} lvpdpbusd", "lvpdpbusd")
        mnemonic = suffix_always(insn, "S", False)[0] + mnemonic
    words.append(mnemonic)
    star = "*" if spec.indirect else ""
    texts = [_op_text(op, star, pa) for op in insn.operands]
    order = [i for i, t in enumerate(texts) if t is not None]
    if "att-noreverse" not in spec.objdump_flags:
        order.reverse()
    core = insn.core
    comment = core.reloc is not None and core.reloc_mem
    holes = value_holes(core, _mem_parts, star, "$", H_FAR_ATT)
    return Frame(words, texts, order, comment,
                 insn.evex is None and insn.spec.vsib is None, holes)   # (gathers: /(bad))


def _operands(insn: Instruction, texts: list[str | None]) -> list[str]:
    """The operand texts as printed: AT&T order (source first), AVX-512 decorations."""
    spec = insn.spec
    ops = [t for t in texts if t is not None]
    if "att-noreverse" not in spec.objdump_flags:
        ops.reverse()
    evex = insn.evex
    if insn.spec.vsib is not None:
        for i in vsib_marks(insn, True)[0]:
            ops[len(ops) - 1 - i] += "/(bad)"
    if evex is not None:
        _decorate(insn, ops, evex)
    return ops


def _decorate(insn: Instruction, ops: list[str], evex: tuple) -> None:
    """AVX-512 decorations (SDM §2.7): {%kN}{z} on the destination, {1toN}, {rounding}."""
    mask, zeroing, bcst, rounding = evex
    if bcst:            # (before the mask: a memory destination shows "(...){bad}{%k1}")
        for i, op in enumerate(reversed(insn.operands)):
            if type(op) is Mem:
                ops[i] += "{bad}" if bcst == -1 else f"{{1to{abs(bcst)}}}"
    if mask:
        ops[-1] += f"{{%k{mask}}}" + ("{z}" if zeroing else "")
    if insn.spec.vsib is not None and vsib_marks(insn, True)[1]:    # gathers etc. need {k}
        ops[-1] += "/(bad)"
    if rounding:
        i = 0
        if "att-rc1" in insn.spec.objdump_flags:        # vcvtsi2ss & co.: after the integer source
            i = 1
        elif not rounding.endswith("-bad"):     # objdump: "-bad" takes the first free slot
            while i < len(ops) and ops[i].startswith("$"):
                i += 1
        ops.insert(i, f"{{{rounding}}}")


_ATT = Syntax(True, _frame, _operands)
_TEXTS_GET = _ATT.texts.get


@cache
def att_formatter(intel_mnemonic: bool = False, amd64: bool = False, suffix: bool = False
                  ) -> Callable[[Instruction, PrintAddress | None], str]:
    """`format_att` with objdump's ``-M`` choices, each with its own text cache:
    `intel_mnemonic` (``-M intel-mnemonic`` then ``att``) names the x87 ``fsub``/``fsubr``
    (``fdiv``/``fdivr``) of the ST(i),ST forms as Intel does, not by the SysV386 swap
    objdump prints by default (its SYSV386_COMPAT); `amd64` (``-M amd64``) prints the forms
    AMD64 lacks (sysenter, sysexit: flag ``amd64-bad``) as ``(bad)``; `suffix`
    (``-M suffix``) prints every size letter of objdump's templates (map flag ``suffix=``)."""
    if not intel_mnemonic and not amd64 and not suffix:
        return format_att
    return Syntax(True, partial(_frame, intel_mnemonic=intel_mnemonic, suffix=suffix),
                  _operands, amd64).text_function()
