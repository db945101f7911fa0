"""What the AT&T and Intel formatters share: prefix words, suffixes, layout (objdump 2.40)."""

from __future__ import annotations

from collections.abc import Callable

from x86vm.isa import (
    ADDRESS_MASK,
    SFX_ALWAYS,
    SFX_DATA,
    SFX_LEGACY,
    SFX_LONG,
    SFX_NODEFAULT,
    SFX_NOREG,
    SFX_RMMEM,
    SFX_RMMEM64,
    SFX_XY,
    SFX_XYZ,
    Far,
    Imm,
    Instruction,
    Mem,
    Reg,
    Rel,
    decode,
    default_sizes,
)

_REX_BITS = (("W", 8), ("R", 4), ("X", 2), ("B", 1))
_REX_NAMES = ["rex"] + ["rex." + "".join(c for c, bit in _REX_BITS if r & bit)
                        for r in range(1, 16)]
_SEG_NAMES = {0x26: "es", 0x2E: "cs", 0x36: "ss", 0x3E: "ds", 0x64: "fs", 0x65: "gs"}
SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q", 10: "t"}
MASK = ADDRESS_MASK      # address arithmetic (one table: x86vm.isa)
INTEL_SUFFIX = {2: "w", 4: "d", 8: "q"}


class ObjdumpView(Instruction):
    """An instruction as objdump names it: an immediate predicate folded into the mnemonic
    (``cmpps $1`` is ``cmpltps``, ``pclmulqdq $0x11`` is ``pclmulhqhqdq``) and an FN* form
    after a consumed FWAIT as the waiting F* form (``9B DF E0`` is ``fstsw``), as Go's
    x86asm gnu.go does; everything else is the instruction's."""

    __slots__ = ("_mnemonic", "_att_mnemonic", "_operands")

    def __init__(self, insn: Instruction, mnemonic: str, att_mnemonic: str,
                 operands: tuple) -> None:
        super().__init__(insn.address, insn.core, insn.bytes)
        self._mnemonic = mnemonic
        self._att_mnemonic = att_mnemonic
        self._operands = operands

    @property
    def mnemonic(self) -> str:
        return self._mnemonic

    @property
    def att_mnemonic(self) -> str:
        return self._att_mnemonic

    @property
    def operands(self) -> tuple:
        return self._operands


def objdump_view(insn: Instruction) -> Instruction:
    """`insn` as objdump prints it (an ObjdumpView where its names differ from the SDM's)."""
    core = insn.core
    spec = core.spec
    template = core.imm_template
    wait = spec is not None and spec.fwait and insn.wait
    if template is None and not wait:
        return insn
    mnemonic, att_mnemonic, operands = insn.mnemonic, insn.att_mnemonic, insn.operands
    if template is not None:
        names = spec.imm_list
        value = operands[-1].value
        if value < len(names) and names[value] != "-":
            mnemonic = template[0].replace("{}", names[value])
            att_mnemonic = template[1].replace("{}", names[value])
            operands = operands[:-1]
    if wait:
        mnemonic, att_mnemonic = "f" + mnemonic[2:], "f" + att_mnemonic[2:]
    return ObjdumpView(insn, mnemonic, att_mnemonic, operands)


def shown_segment(m: Mem) -> str | None:
    """The segment objdump prints on a memory operand: an override's, and a string
    instruction's always (``%ds:(%rsi)``, ``%es:(%rdi)``)."""
    return m.segment if m.override or m.implicit else None


def default_print_address(addr: int) -> str:
    """objdump's rendering of an address without symbols."""
    return f"{addr:#x}"


def prefix_words(insn: Instruction, att: bool, prefixes=None) -> list[str]:
    """Names of the prefixes the instruction did not consume, in byte order."""
    spec = insn.spec
    words = []
    if prefixes is None:
        prefixes = insn.unused_prefixes
    if not prefixes:
        return words
    # objdump names only the last F3 and the last F2 by their role (rep, xrelease, xacquire,
    # bnd); earlier ones read "repz"/"repnz", and a mov's xrelease needs F3 after any F2
    last_f3 = max((i for i, p in enumerate(prefixes) if p == 0xF3), default=-1)
    last_f2 = max((i for i, p in enumerate(prefixes) if p == 0xF2), default=-1)
    notrack_at = -1         # objdump: with a 3E, the last segment prefix reads "notrack"
    if spec is not None and spec.notrack and 0x3E in prefixes and not (
            insn.mode == 64 and 0x66 in insn.prefixes):     # (not with 66 in 64-bit code)
        notrack_at = max(i for i, p in enumerate(prefixes) if p in _SEG_NAMES)
    for i, p in enumerate(prefixes):
        if i == notrack_at:
            words.append("notrack")
            continue
        if p == 0x9B:
            words.append("fwait")
        elif 0x40 <= p <= 0x4F and insn.mode == 64:
            words.append(_REX_NAMES[p & 0xF])
        elif p == 0x66 or p == 0x67:
            words.append(size_prefix_name(p, insn.mode))
        elif (p == 0xF3 or p == 0xF2) and i != last_f3 and i != last_f2:
            words.append("repz" if p == 0xF3 else "repnz")
        elif p == 0xF3 or p == 0xF2:
            hle = spec.hle if spec is not None else None
            if hle and insn.operands and type(insn.operands[0]) is Mem and (
                    hle == "hle!" or (hle == "hle" and 0xF0 in insn.prefixes)
                    or (hle == "hler" and p == 0xF3 and i > last_f2)):
                words.append("xrelease" if p == 0xF3 else "xacquire")
            elif p == 0xF3:
                words.append("rep" if spec is not None and "rep" in spec.execution_flags
                             else "repz")
            else:                       # (only the last F2 is the BND prefix)
                words.append("bnd" if spec is not None and spec.bnd else "repnz")
        elif p == 0xF0:
            words.append("lock")
        else:
            words.append(_SEG_NAMES[p])
    return words


def size_prefix_name(prefix: int, mode: int) -> str:
    """objdump's word for an unused 66/67: the size it would switch to from the mode's
    default (i386-dis.c prefix_name with the default sizes, ``-M data16`` & co. included)."""
    osz, asz = default_sizes(mode)
    if prefix == 0x66:
        return "data16" if osz == 32 else "data32"
    if mode == 64:
        return "addr32" if asz == 64 else "addr64"
    return "addr16" if asz == 32 else "addr32"


def size_suffix(insn: Instruction, intel: bool) -> str:
    """The AT&T size suffix (b/w/l/q) objdump appends, or ''; Intel only for push/call family."""
    spec = insn.spec
    sfx = spec.sfx
    if sfx == SFX_NODEFAULT:
        mode = insn.mode
        default = default_sizes(mode)[0]
        if insn.operand_size == default or mode == 64 and spec.d64 and \
                insn.operand_size == 64:    # (objdump: REX.W on push & co. shows nothing)
            return ""
        ops = insn.operands
        for i in spec.size_ops:         # a general register already shows the size
            if i < len(ops) and type(ops[i]) is Reg:
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
            if i < len(ops) and type(ops[i]) is Reg:
                return ""
        mem = insn.memory_operand
        size = mem.size if mem is not None else (ops[0].size if ops else 0)
        return SUFFIX.get(size, "")
    if sfx == SFX_ALWAYS:
        return SUFFIX.get(ops[0].size, "") if ops else ""
    if sfx == SFX_RMMEM or (sfx == SFX_RMMEM64 and insn.mode == 64):
        mem = insn.memory_operand
        if mem is not None and not mem.size and sfx == SFX_RMMEM64:   # "{bad}": unsized Ey
            return SUFFIX[insn.operand_size >> 3]
        return SUFFIX.get(mem.size, "") if mem is not None else ""
    if sfx == SFX_XY or sfx == SFX_XYZ:
        mem = insn.memory_operand
        if mem is None:
            return ""
        return {16: "x", 32: "y", 64: "z" if sfx == SFX_XYZ else ""}.get(mem.size, "")
    return ""


REX_W_USED = 0x48    # suffix_always: the letter consumed REX.W (objdump's USED_REX (REX_W))


def suffix_always(insn: Instruction, macro: str, intel: bool) -> tuple[str, tuple]:
    """What objdump -M suffix (SUFFIX_ALWAYS) prints for the form's size-letter `macro`
    (map flags ``suffix=``/``intel-suffix=``; i386-dis.c putop), and what the letter
    consumes: 0x66, 0x67 (objdump's used_prefixes: no ``data16`` word) or REX_W_USED.

    REX.W is the REX prefix right before the opcode (VEX/XOP/EVEX.W in 64-bit code);
    DFLAG/AFLAG are the default operand/address size toggled by 66/67."""
    mode = insn.mode
    prefixes = insn.prefixes
    osz, asz = default_sizes(mode)
    has66 = 0x66 in prefixes
    dflag = (osz == 32) != has66
    rexw = mode == 64 and _rex_w(insn)
    intel64 = type(mode) is not int and mode.intel64
    long = "d" if intel else "l"
    sized = (long if dflag else "w"), (0x66,)      # by the operand size, 66 consumed
    if macro == "B":
        return "b", ()
    if macro == "S":
        return ("q", ()) if rexw else sized
    if macro == "D":            # (USED_REX before the ModRM test)
        if insn.memory_operand is not None:
            return "w", (REX_W_USED,)
        return ("q", (REX_W_USED,)) if rexw else (sized[0], (0x66, REX_W_USED))
    if macro == "@" and mode == 64 and (intel64 or rexw or not has66):
        return "q", ()
    if macro == "P" or macro == "@":
        if (not rexw and has66) or mode != 64:
            return sized
        return "q", ()
    if macro == "Z":
        return ("q" if mode == 64 else "l"), ()
    if macro == "F":
        aflag = (asz != 16 if mode != 64 else asz == 64) != (0x67 in prefixes)
        if mode == 64:
            return ("q" if aflag else "l"), (0x67,)
        return ("l" if aflag else "w"), (0x67,)
    if macro == "G":
        return ("l", ()) if rexw else ("l" if dflag else "w", (0x66,))
    if macro == "C":
        return (long if dflag else ("w" if intel else "s")), (0x66,)
    if macro == "^":
        if intel64 and rexw:
            return "q", (REX_W_USED,)
        return ("l" if dflag else "w"), (0x66,)
    if macro == "LQ" or macro == "!LQ":
        if macro == "!LQ" and mode != 64:
            return "", ()
        return ("q", (REX_W_USED,)) if rexw else (long, ())
    if macro == "XY" or macro == "XZ":
        return {16: "x", 32: "y", 64: "z" if macro == "XZ" else ""}.get(
            vector_length(insn), ""), ()
    return "", ()


def drop_used_prefix_words(insn: Instruction, words: list[str], used: tuple) -> None:
    """Take out of `words` the prefix words of what a -M suffix letter consumed: the word
    of the active (last) 66 or 67 when the decoder left it unused, and a REX prefix left
    unused that holds nothing but W."""
    unused = insn.unused_prefixes
    for p in used:
        if p == REX_W_USED:
            rex = insn.prefixes[-1] if insn.prefixes else 0
            word = _REX_NAMES[rex & 0xF]
            if 0x48 <= rex <= 0x4F and rex in unused and word in words and (
                    rex == 0x48 or _rex_used_without_w(insn)):
                del words[len(words) - 1 - words[::-1].index(word)]
        elif unused.count(p) == insn.prefixes.count(p) and unused.count(p):
            word = size_prefix_name(p, insn.mode)
            if word in words:
                del words[len(words) - 1 - words[::-1].index(word)]


def _rex_used_without_w(insn: Instruction) -> bool:
    """Whether the operands use the REX prefix's other bits (R, X, B): the same bytes with
    REX.W clear decode with that REX used.  (objdump prints a REX prefix unless every bit
    of it is used.)"""
    raw = bytearray(insn.bytes)
    raw[len(insn.prefixes) - 1] &= ~0x08
    return raw[len(insn.prefixes) - 1] not in decode(bytes(raw), 0, 0, int(insn.mode)
                                                     ).unused_prefixes


def _rex_w(insn: Instruction) -> bool:
    """objdump's REX_W in 64-bit code: a REX.W right before the opcode, or VEX/XOP/EVEX.W."""
    prefixes = insn.prefixes
    if prefixes and 0x48 <= prefixes[-1] <= 0x4F:
        return True
    raw = insn.bytes
    n = len(prefixes)
    if n + 2 >= len(raw):
        return False
    b = raw[n]
    if b == 0xC4 or b == 0x62 or (b == 0x8F and raw[n + 1] & 0x1F >= 8):
        return raw[n + 2] & 0x80 != 0
    return False


def vector_length(insn: Instruction) -> int:
    """The vector length in bytes (VEX.L / EVEX.L'L) as the widest vector operand shows it
    (the converts objdump marks with x/y/z narrow: the source is the wide one)."""
    length = 0
    bcst = insn.evex[2] if insn.evex is not None else 0
    for op in insn.operands:
        if type(op) is Reg and op.cls in ("xmm", "ymm", "zmm"):
            length = max(length, _VECTOR_BYTES[op.cls])
        elif type(op) is Mem:       # (a broadcast element, {1toN}: N of them)
            length = max(length, op.size * bcst if bcst > 0 else op.size)
    return length


_VECTOR_BYTES = {"xmm": 16, "ymm": 32, "zmm": 64}


def vsib_marks(insn: Instruction, att: bool) -> tuple[list[int], bool]:
    """objdump's "/(bad)" on gathers and scatters (SDM: their vector registers must differ;
    EVEX ones need a mask and no {z}): the operands (Intel order) marked right after their
    text, and whether the first operand is marked after its mask.  (objdump checks an EVEX
    gather's index only in AT&T syntax, where the memory text starts empty.)"""
    ops = insn.operands
    marked = []
    if insn.evex is None:       # VEX: destination, VSIB index and mask register all differ
        if len(ops) == 3 and type(ops[0]) is Reg and type(ops[2]) is Reg:
            idx = ops[1].index if type(ops[1]) is Mem else None
            nums = (ops[0].num, idx.num if type(idx) is Reg else -1, ops[2].num)
            marked = [i for i in range(3) if nums[i] in nums[:i] + nums[i + 1:]]
        return marked, False
    if att and len(ops) > 1 and type(ops[0]) is Reg and type(ops[1]) is Mem and \
            type(ops[1].index) is Reg and ops[1].index.num == ops[0].num:
        marked.append(1)        # a gather's index is not its destination
    return marked, bool(insn.evex[1] or not insn.evex[0])


def layout(words: list[str], operands: list[str], comment: str = "") -> str:
    """objdump's line: mnemonic (with prefix words) padded to 6, a space, operands."""
    head = " ".join(words)
    if not operands:
        return head + comment
    return f"{head:<6} {','.join(operands)}{comment}"


PrintAddress = Callable[[int], str]
#: An address-dependent text: (text before, text after the address, address - core.address,
#: address mask); see `at_address`.
AddressedText = tuple[str, str, int, int]

# How a displacement/immediate/target value is printed (see fill()).
H_SIGNED, H_SIGNED_PLUS, H_MASK, H_PLUS_MASK, H_ABS16, H_HEX, H_ADDRESS, H_FAR_ATT, \
    H_FAR_INTEL = range(9)


def fill(style: int, arg: int, v, pa: PrintAddress | None) -> str:
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


MemParts = tuple[str, int, int, str]    # text before, value style, style arg, text after


def mem_text(parts: MemParts, disp: int) -> str:
    """A memory operand's text from its parts (see att/intel `_mem_parts`)."""
    pre, style, arg, post = parts
    return pre + (fill(style, arg, disp, None) if style >= 0 else "") + post


def value_holes(core, mem_parts: Callable[[Mem], MemParts], star: str, imm_prefix: str,
                far_style: int) -> list[tuple]:
    """Where each displacement/immediate/target value of a family goes in its text:
    (operand index, text before, style, style arg, text after), one per value."""
    holes = []
    for _kind, j, *_ in core.fields or ():
        op = core.operands[j]
        t = type(op)
        if t is Mem:
            pre, style, arg, post = mem_parts(op)
            holes.append((j, star + pre, style, arg, post))
        elif t is Imm:
            holes.append((j, imm_prefix, H_HEX, 0, ""))
        elif t is Rel:
            holes.append((j, "", H_ADDRESS, 0, ""))
        else:
            holes.append((j, "", far_style, 0, ""))
    return holes


# A value hole as a %-conversion, and whether the value is masked to the address size first.
_PERCENT = {H_SIGNED: ("%#x", False), H_SIGNED_PLUS: ("%+#x", False), H_HEX: ("%#x", False),
            H_MASK: ("%#x", True), H_PLUS_MASK: ("+%#x", True)}


class Frame:
    """How one instruction (and its family) prints, before any value is filled in.

    `words` are the prefix words and mnemonic, `texts` the operand texts in Intel order,
    `order` the operand indices in printing order, `holes` where each family member's values
    go (see `value_holes`), `comment` whether a "# address" comment follows.  A frame is
    `simple` when no AVX-512 decoration depends on the operands (then a `Template` applies).
    """

    __slots__ = ("words", "texts", "order", "comment", "simple", "holes")

    def __init__(self, words, texts, order, comment, simple, holes=()) -> None:
        self.words = words
        self.texts = texts
        self.order = order
        self.comment = comment
        self.simple = simple
        self.holes = holes


#: A simple Frame compiled into %-formats before and after the address (a branch target or
#: the RIP-relative comment): (before, before_args, after, after_args, addressed,
#: address_mask).  Each side's args say how to pick its %-arguments from a core's values:
#: None (no values), a slice (start, stop, step) of the values, or per argument (value
#: index, mask or 0, style or -1 for a %-conversion).  A plain tuple of strings and ints:
#: the garbage collector does not need to scan it.
Template = tuple[str, tuple | None, str, tuple | None, bool, int]


def compile_template(frame: Frame, mode: int) -> Template:
    """The Template of a simple frame (see `template_text`)."""
    hole_at = {h[0]: (k, h) for k, h in enumerate(frame.holes)}
    head = " ".join(frame.words)
    sides: list[list] = [[f"{head:<6} " if frame.order else head, []]]
    for n, i in enumerate(frame.order):
        side = sides[-1]
        if n:
            side[0] += ","
        if i not in hole_at:
            side[0] += frame.texts[i].replace("%", "%%")
            continue
        k, (_j, pre, style, arg, post) = hole_at[i]
        side[0] += pre.replace("%", "%%")
        if style == H_ADDRESS:
            sides.append(["", []])
        elif style in _PERCENT:
            spec, masked = _PERCENT[style]
            side[0] += spec
            side[1].append((k, arg if masked else 0, -1))
        else:
            side[0] += "%s"
            side[1].append((k, arg, style))
        sides[-1][0] += post.replace("%", "%%")
    if frame.comment:
        sides[-1][0] += "        # "
        sides.append(["", []])
    return (*_side(*sides[0]), *_side(*sides[-1]), len(sides) == 2, MASK[mode])


def template_text(template: Template, values: tuple, delta: int) -> str | AddressedText:
    """The text of a member of the template's family (a plain string unless it depends on
    the address: `delta` is its target minus its address) from its values, without building
    operand objects."""
    before, args, after, after_args, addressed, address_mask = template
    if args is None:
        pass
    elif len(args) == 3 and type(args[0]) is int:       # a slice of the values
        before %= values[args[0]:args[1]:args[2]]
    else:
        before %= _arguments(args, values)
    if not addressed:
        return before
    args = after_args
    if args is None:
        pass
    elif len(args) == 3 and type(args[0]) is int:
        after %= values[args[0]:args[1]:args[2]]
    else:
        after %= _arguments(args, values)
    return before, after, delta, address_mask


def _side(fmt: str, args: list[tuple[int, int, int]]) -> tuple[str, tuple | None]:
    """A template side: its format and how to pick its arguments (see Template)."""
    if not args:
        return fmt % (), None
    ks = [k for k, _mask, _style in args]
    plain = all(mask == 0 and style < 0 for _k, mask, style in args)
    if plain and len(ks) == 1:
        return fmt, (ks[0], ks[0] + 1, 1)
    if plain and len(ks) == 2 and abs(ks[1] - ks[0]) == 1:
        step = ks[1] - ks[0]
        return fmt, (ks[0], ks[1] + step if ks[1] + step >= 0 else None, step)
    return fmt, tuple(args)


def _arguments(args: tuple, values: tuple) -> tuple:
    out = []
    for k, mask, style in args:
        v = values[k]
        out.append((v & mask if mask else v) if style < 0 else fill(style, mask, v, None))
    return tuple(out)


def at_address(text: AddressedText, address: int, print_address: PrintAddress | None) -> str:
    """An address-dependent text for the instruction at `address`."""
    before, after, delta, mask = text
    target = (address + delta) & mask
    if print_address is None:
        return f"{before}{target:#x}{after}"
    return before + print_address(target) + after


class Syntax:
    """The formatting machinery shared by AT&T and Intel, given one syntax's parts.

    `frame(insn, pa)` makes the Frame of an instruction (prefix words, mnemonic, operand
    texts, value holes), `operands(insn, texts)` the operand texts as printed (order,
    AVX-512 decorations) where the frame is not simple.  Text is memoised per decoded core
    in `texts` (this formatter's own cache, keyed by the core: the isa objects carry no
    formatter state); a family's `Template` (False if its frame is not simple) is kept for
    its first core in `templates`.
    """

    def __init__(self, att: bool, frame: Callable[[Instruction, PrintAddress], Frame],
                 operands: Callable[[Instruction, list], list[str]], amd64: bool = False
                 ) -> None:
        self.att = att
        self.amd64 = amd64          # objdump -M amd64: forms flagged amd64-bad are (bad)
        self.frame = frame
        self.operands = operands
        self.register_prefix = "%" if att else ""
        self.texts: dict = {}       # core -> its text, or a family's texts by bytes
        self.templates: dict = {}   # family head core -> Template, or False
        self.kept = 0           # family members' texts kept (see _TEXT_LIMIT)

    def text_function(self) -> Callable[[Instruction, PrintAddress | None], str]:
        """A formatter over this syntax's text cache, as `format_att` is over AT&T's: the
        text of the instruction's core, or of its bytes in the core's family, else
        `remember`; an addressed text completed with `print_address`."""
        texts_get = self.texts.get
        remember = self.remember

        def format_text(insn: Instruction, print_address: PrintAddress | None = None) -> str:
            memo = texts_get(insn.core)
            if type(memo) is dict:
                text = memo.get(insn.bytes) or remember(insn, memo)
            else:
                text = memo or remember(insn)
            return text if type(text) is str else at_address(text, insn.address, print_address)

        return format_text

    def remember(self, insn: Instruction, texts: dict | None = None) -> str | AddressedText:
        """The text of an instruction whose bytes were not formatted before, kept: for its
        core, or for a family member in its family's `texts` (bytes -> text).  A member's
        text is its family's Template filled with its values where the frame is simple."""
        core = insn.core
        if texts is None:
            if len(self.texts) >= _CORE_LIMIT:     # (the decoder's memo starts over too)
                self.texts.clear()
                self.templates.clear()
                self.kept = 0
            if not core.readers:        # no family, or one whose members hold no values
                text = self._render_whole(insn)
                self.texts[core] = text
                return text
            texts = {}                  # the first member of a family: compile its frame
            frame = self.frame(objdump_view(Instruction(core.address, core)), _mark)
            self.templates[core] = compile_template(frame, core.mode) if frame.simple \
                else False
            self.texts[core] = texts
        template = self.templates.get(core, False)
        raw = insn.bytes
        if template:
            address = insn.address
            values, target = core.read(raw, address)
            text = template_text(template, values, 0 if target is None else target - address)
        else:
            text = self._render_whole(insn)
        if self.kept < _TEXT_LIMIT:
            self.kept += 1
            texts[raw] = text
        return text

    def _render_whole(self, insn: Instruction) -> str | AddressedText:
        if insn.core.reloc is None:
            return self.render(insn, default_print_address)
        before, _, after = self.render(insn, _mark).partition("\0")
        return before, after, insn.reloc_target - insn.address, MASK[insn.core.mode]

    def render(self, insn: Instruction, pa: PrintAddress) -> str:
        """The full text of one instruction (also (bad), prefixes alone, truncated)."""
        kind = insn.kind
        if kind == "insn" and ("objdump-bad" in insn.core.spec.objdump_flags or self.amd64
                               and "amd64-bad" in insn.core.spec.objdump_flags):
            return " ".join(prefix_words(insn, self.att) + ["(bad)"])  # e.g. SALC (D6)
        if kind == "insn":
            insn = objdump_view(insn)
            frame = self.frame(insn, pa)
            comment = ""
            if frame.comment:
                comment = f"        # {pa(insn.reloc_target)}"
            return layout(frame.words, self.operands(insn, frame.texts), comment)
        if kind == "truncated":
            return f".byte {insn.bytes[0]:#x}"
        words = prefix_words(insn, self.att) + ([insn.mnemonic] if kind == "bad" else [])
        if kind == "bad" and insn.core.reloc is not None:    # a RIP-relative operand read
            return " ".join(words) + f"        # {pa(insn.reloc_target)}"
        evex = insn.evex
        if evex is not None and (evex[0] or evex[3]):  # objdump keeps the EVEX mask and
            ops = []                                    # the rounding it found unused
            if evex[0]:
                ops.append(f"{{{self.register_prefix}k{evex[0]}}}" + ("{z}" if evex[1] else ""))
            if evex[3]:
                ops.append(f"{{{evex[3]}}}")
            return layout(words, ops[::-1] if self.att else ops)
        return " ".join(words)


_TEXT_LIMIT = 1 << 20     # family members' texts kept per syntax; more are formatted anew
_CORE_LIMIT = 1 << 21     # cores whose texts are kept before the cache starts over


def _mark(addr: int) -> str:
    return "\0"
