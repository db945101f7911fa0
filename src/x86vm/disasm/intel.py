"""Intel syntax exactly as GNU objdump 2.40 prints it with ``-M intel``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

from x86vm.isa import (
    EIZ_ABSOLUTE,
    BadMemory,
    BadOperand,
    Far,
    Imm,
    Instruction,
    Mem,
    Reg,
    Rel,
    default_sizes,
)

from .common import (
    H_FAR_INTEL,
    H_MASK,
    H_PLUS_MASK,
    H_SIGNED_PLUS,
    Frame,
    MemParts,
    PrintAddress,
    Syntax,
    at_address,
    drop_used_prefix_words,
    mem_text,
    prefix_words,
    shown_segment,
    size_suffix,
    suffix_always,
    value_holes,
    vsib_marks,
)

PTR = {1: "BYTE PTR ", 2: "WORD PTR ", 4: "DWORD PTR ", 6: "FWORD PTR ", 8: "QWORD PTR ",
       10: "TBYTE PTR ", 16: "XMMWORD PTR ", 32: "YMMWORD PTR ", 64: "ZMMWORD PTR "}


def _mem_parts(m: Mem, sized_moffs: bool = False) -> MemParts:
    """Memory operand as (text before, value style, style arg, text after) its disp; a
    moffs operand shows its size only with `sized_moffs` (-M suffix: objdump's OP_OFF)."""
    ptr = PTR.get(m.size, "") if not m.moffs or sized_moffs else ""
    base, index = m.base, m.index
    mask = (1 << m.addr_size) - 1
    shown = shown_segment(m)
    if base is None and index is None:
        return f"{ptr}{shown or 'ds'}:", H_MASK, mask, ""
    seg = f"{shown}:" if shown else ""
    inner = base.name if base is not None else ""
    if index is not None:
        if m.addr_size == 16:
            inner += f"+{index.name}"
        else:
            inner += f"{'+' if inner else ''}{index.name}*{m.scale}"
    if index is EIZ_ABSOLUTE and base is None:
        return f"{ptr}{seg}[{inner}", H_PLUS_MASK, mask, "]"
    if not m.disp_size:
        return f"{ptr}{seg}[{inner}", -1, 0, "]"
    if m.target is not None:        # objdump prints rip/eip+disp as an unsigned 64-bit value
        return f"{ptr}{seg}[{inner}", H_PLUS_MASK, 0xFFFFFFFFFFFFFFFF, "]"
    return f"{ptr}{seg}[{inner}", H_SIGNED_PLUS, 0, "]"


def format_intel(insn: Instruction, print_address: PrintAddress | None = None) -> str:
    """The text of ``objdump -d -M intel`` after the raw bytes, memoised like format_att."""
    memo = _TEXTS_GET(insn.core)  # the text, or a family's texts by bytes (see Syntax)
    if type(memo) is dict:
        text = memo.get(insn.bytes) or _INTEL.remember(insn, memo)
    else:
        text = memo or _INTEL.remember(insn)
    return text if type(text) is str else at_address(text, insn.address, print_address)


def _op_text(op, bcst, pa: PrintAddress, sized_moffs: bool = False) -> str:
    t = type(op)
    if t is Reg:
        return op.name if op.cls != "dr" else "dr" + op.name[2:]
    if t is Imm:
        return f"{op.value:#x}"
    if t is Mem:
        text = mem_text(_mem_parts(op, sized_moffs), op.disp)
        return text.replace(" PTR ", " BCST ", 1) if bcst else text
    if t is Rel:
        return pa(op.target)
    if t is Far:
        return f"{op.seg:#x}:{op.offset:#x}"
    if t is BadMemory:
        return PTR.get(op.size, "") + (f"{op.seg}:(bad)" if op.seg else "(bad)")
    if t is BadOperand:
        return "(bad)"
    return "1"          # the implicit count of D0/D1 shifts


def _oword(insn, text: str) -> str:
    """objdump calls a 16-byte integer operand OWORD (map flag "oword": cmpxchg16b, invept)."""
    if "oword" in insn.spec.objdump_flags and text.startswith("XMMWORD"):
        return "OWORD" + text[7:]
    return text


def _frame(insn, pa: PrintAddress, suffix: bool = False) -> Frame:
    """Prefix words + mnemonic, and each operand's text; with `suffix` (-M suffix) the
    letter of the form's ``intel-suffix=`` macro, ".s" and sized moffs operands."""
    words = prefix_words(insn, False)
    if "intel-noops" in insn.spec.objdump_flags:      # objdump -M intel omits implicit operands,
        unused = set(insn.unused_prefixes)     # so an address-size prefix shows as a word
        shown = [p for p in insn.prefixes if p in unused or p == 0x67]
        words = prefix_words(insn, False, shown)
        words.append(insn.mnemonic)
        return Frame(words, [], [], False, True)
    unused = insn.unused_prefixes
    if "movsxd" in insn.spec.objdump_flags and insn.operand_size == 64 and 0x66 in unused and \
            insn.memory_operand is not None:    # REX.W: the decoder left the (last) 66
        i = len(unused) - 1 - unused[::-1].index(0x66)      # unused in memory forms only
        words = prefix_words(insn, False, unused[:i] + unused[i + 1:])
    far64 = "farw" in insn.spec.flags and insn.operand_size == 64
    if far64:       # Intel64's REX.W far pointer: objdump's Intel text still shows "rex.W"
        rex = [p for p in insn.prefixes if 0x40 <= p <= 0x4F][-1:]    # and an FWORD
        if rex and rex[0] not in insn.unused_prefixes:
            words = prefix_words(insn, False, (*insn.unused_prefixes, *rex))
    if insn.pseudo_prefix:
        words.append(insn.pseudo_prefix)
    macro = insn.spec.intel_suffix_macro if suffix else None
    if macro is not None:
        letter, used = suffix_always(insn, macro, True)
        drop_used_prefix_words(insn, words, used)
        name = insn.spec.names[1] if "rexw-name" in insn.spec.flags else insn.mnemonic
        mnemonic = name + letter
    else:
        mnemonic = insn.mnemonic + ("" if far64 else size_suffix(insn, True))
    if suffix and insn.spec.swap_s and insn.memory_operand is None:
        mnemonic += ".s"
    if "pad6" in insn.spec.objdump_flags:   # objdump's PREFETCHI_Fixup writes "nop   "
        mnemonic = mnemonic.ljust(6)
    words.append(mnemonic)
    bcst = insn.evex is not None and insn.evex[2] > 0
    texts = [_oword(insn, _op_text(op, bcst, pa, suffix)) for op in insn.operands]
    core = insn.core
    comment = core.reloc is not None and core.reloc_mem
    holes = [(j, _oword(insn, pre), style, arg, post)
             for j, pre, style, arg, post in value_holes(
                 core, partial(_mem_parts, sized_moffs=suffix), "", "", H_FAR_INTEL)]
    if far64:       # (the size the pointer has without REX.W: m16:32, or m16:16)
        data32 = (default_sizes(insn.mode)[0] == 32) != (0x66 in insn.prefixes)
        size = "FWORD PTR" if data32 else "DWORD PTR"

        def resized(text):
            return text.replace("TBYTE PTR", size).replace("FWORD PTR", size)
        texts = [resized(t) if t is not None else t for t in texts]
        holes = [(j, resized(pre), style, arg, post) for j, pre, style, arg, post in holes]
    return Frame(words, texts, list(range(len(texts))), comment,
                 insn.evex is None and insn.spec.vsib is None, holes)   # (gathers: /(bad))


def _length_shown(insn: Instruction, upto: int) -> bool:
    """objdump's EVEX_len_used: an operand before `upto` is a vector register named by the
    vector length (a full-length one; a half-length one only as a 512-bit form's ymm)."""
    for op, sizes in zip(insn.operands[:upto], insn.spec.register_sizes, strict=False):
        if type(op) is Reg and op.cls in ("xmm", "ymm", "zmm") and sizes is not None:
            if sizes[6] == 64 or sizes[6] == 32 and sizes[3] == 16 and op.cls == "ymm":
                return True
    return False


def _operands(insn: Instruction, ops: list[str]) -> list[str]:
    """The operand texts as printed: with AVX-512 decorations."""
    evex = insn.evex
    if insn.spec.vsib is not None:
        ops = list(ops)
        for i in vsib_marks(insn, False)[0]:
            ops[i] += "/(bad)"
    if evex is not None:
        ops = list(ops)
        mask, zeroing, bcst, rounding = evex
        if bcst < 0:                    # EVEX.b on memory without broadcast (before {k})
            for i, op in enumerate(insn.operands):
                if type(op) is Mem:
                    ops[i] += "{bad}"
        elif bcst:              # "BCST [..]", and {1toN} unless the vector length was shown
            for i, op in enumerate(insn.operands):
                if type(op) is Mem and not _length_shown(insn, i):
                    ops[i] += f"{{1to{bcst}}}"
        if mask:
            ops[0] += f"{{k{mask}}}" + ("{z}" if zeroing else "")
        if insn.spec.vsib is not None and vsib_marks(insn, False)[1]:   # they need a {k}
            ops[0] += "/(bad)"
        if rounding:
            i = len(ops) - 1
            while i > 0 and type(insn.operands[i]) is Imm:
                i -= 1
            if rounding.endswith("-bad") and "att-rc1" not in insn.spec.objdump_flags:
                ops.append(f"{{{rounding}}}")       # objdump: the first free operand slot
            else:
                ops[i] += f"{{{rounding}}}"
    return ops


_INTEL = Syntax(False, _frame, _operands)
_TEXTS_GET = _INTEL.texts.get
_INTEL_AMD64 = Syntax(False, _frame, _operands, amd64=True)


#: `format_intel` with objdump's ``-M amd64``: sysenter/sysexit (flag ``amd64-bad``) print
#: ``(bad)``.
format_intel_amd64 = _INTEL_AMD64.text_function()


@cache
def intel_formatter(amd64: bool = False, suffix: bool = False
                    ) -> Callable[[Instruction, PrintAddress | None], str]:
    """`format_intel` with objdump's ``-M`` choices, each with its own text cache: `amd64`
    as in `format_intel_amd64`, `suffix` (``-M suffix``): the size letters objdump's Intel
    templates print then (map flag ``intel-suffix=``: ``retq``, ``pushw``...), ".s" on the
    swapped register encodings and the size of a moffs operand (``DWORD PTR ds:0x0``)."""
    if not suffix:
        return format_intel_amd64 if amd64 else format_intel
    return Syntax(False, partial(_frame, suffix=True), _operands, amd64).text_function()
