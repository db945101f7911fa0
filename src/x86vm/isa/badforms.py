"""What objdump prints for bytes that are not one valid instruction, and when it decides.

`(bad)` with or without the prefix words before it, the EVEX mask and a rounding marked bad
it still shows, an operand printed as "(bad)" (its BadOp), prefixes or FWAIT alone, and the
rules for *when* objdump gives up: some forms are rejected before their operands are read,
others after (then an operand cut off by the end of the code makes the instruction
truncated, ``.byte 0x..``).  decoder.py calls these; they hold no state.
"""

from __future__ import annotations

from .instruction import Decoded
from .operands import BAD_OPERAND, MMX, Imm, Reg
from .readers import OSI, ROUNDING, VEC, Truncated, gpr, read
from .tables import C_GPR, C_MMX, FALLTHROUGH, K_IMM, K_REG, K_RM, K_VVVV, LATE


def _bad(data, offset, pos, address, mode, prefixes, consumed) -> Decoded:
    """objdump's "(bad)" ending at `pos`, with the prefix words of every prefix but
    `consumed` (the mandatory prefix that selected the missing form, or a tuple of the
    prefixes the operands read before objdump gave up); consumed == -2: a (bad)
    objdump decides after the operands, printed without prefix words."""
    if consumed == -2:
        unused = ()
    elif type(consumed) is tuple:       # several consumed prefixes
        unused = tuple(p for i, p in enumerate(prefixes) if i not in consumed)
    else:
        unused = tuple(p for i, p in enumerate(prefixes) if i != consumed)
    return Decoded.bad(address, bytes(data[offset:pos]), tuple(prefixes), unused, mode)


def _bad_sib_missing(*_args) -> Decoded:
    """The (bad) of a form whose SIB byte the buffer lacks: objdump reads it first."""
    raise Truncated


def _only66(choice) -> bool:
    """objdump's PREFIX_DATA forms (a 66 column only): without 66, objdump still reads the
    operands of the 66 form and then prints "(bad)" alone."""
    return choice.p66 is not None and choice.plain is None and choice.pf3 is None and \
        choice.pf2 is None


def suffix_takes_66(form, rex_w: int, modrm: int) -> bool:
    """Whether, with objdump -M suffix in AT&T syntax, the size letter of `form`'s template
    (its ``suffix=`` macro) reads a 66 prefix, which then counts as used: i386-dis.c putop's
    S, P, @, G, ^ without REX.W, D on a register, C always."""
    if form is None or type(form) is tuple or form.suffix_macro is None:
        return False
    macro = form.suffix_macro
    return macro == "C" or not rex_w and (macro in ("S", "P", "@", "G", "^")
                                          or macro == "D" and modrm >= 0xC0)


def _ptable(form) -> bool:
    """A 66 form (or W alternatives) objdump selects through a prefix table."""
    return (form[0] if type(form) is tuple else form).ptable


def _fallback_form(choice):
    """The line's form objdump decodes where this column has none (before a late "(bad)", or
    when it ignores VEX.pp): plain, else 66."""
    plain = choice.plain
    return plain if plain is not None and plain is not LATE and plain is not FALLTHROUGH \
        else choice.p66


def _evex_bad_form(data, offset, pos, address, mode, prefixes, _consumed, *, evex, plain,
                   ebit, rc) -> Decoded:
    """`_bad` for an EVEX instruction whose form objdump's tables reject."""
    return _evex_bad(data, offset, pos, address, mode, prefixes, evex, plain, ebit, rc)


def _evex_bad(data, offset, pos, address, mode, prefixes, evex, plain, ebit, rc) -> Decoded:
    """An EVEX form objdump finds no entry for: "(bad)" with its prefix words, the mask and,
    for EVEX.b with a register ModRM, the rounding marked bad; "(bad)" alone when objdump's
    later checks reject it first (vvvv in use, {z} without a mask: `plain`)."""
    if plain or evex[1] and not evex[0]:
        return _bad(data, offset, pos, address, mode, prefixes, -2)
    bad = _bad(data, offset, pos, address, mode, prefixes, -1)
    rounding = ROUNDING[rc][:2] + "-bad" if ebit and pos < len(data) and data[pos] >= 0xC0 \
        else None
    bad.evex = (evex[0], evex[1], 0, rounding)
    return bad


def _rex_unshown(rex_i: int, byte1: int, w: int = 0) -> int:
    """A VEX/EVEX/XOP escape with an invalid map (or EVEX.U clear): objdump prints a REX
    prefix before it only when the REX bits it read from the escape -- the inverted R/X/B,
    and for EVEX.U also W (`w`) -- are not all clear (index of the prefix to hide)."""
    return rex_i if rex_i >= 0 and not (~byte1 >> 5) & 7 and not w else -1


def _badop(data, offset, address, mode, prefixes, consumed, spec, modrm, rex, osz_i, end,
           vvvv=0, vl=0, evex=None) -> Decoded:
    """objdump's BadOp: the wrong-form ModRM operand prints "(bad)" and decoding resumes
    right after the first opcode byte (later operands, e.g. an imm8, are read from there).
    EVEX (`evex`: the mask fields, EVEX.b's rounding + 1 with a register ModRM, EVEX.R', a
    V' that outside 64-bit mode makes vvvv "(bad)", EVEX.b): vector registers by the vector
    length, the mask, an unused rounding as "{rX-bad}", a wrong EVEX.W's "{bad}" letter,
    "{evex}" as on the instruction."""
    pos = offset + len(prefixes) + 1
    osz = 16 if osz_i >= 0 else (32 if mode != 16 else 16)
    if mode == 16 and osz_i >= 0:
        osz = 32
    if mode == 64 and rex & 8 and spec.uses_w:
        osz = 64
    si = OSI[osz]
    operands = []
    for op in spec.ops:
        if op[0] == K_RM:
            operands.append(BAD_OPERAND)
        elif op[0] == K_REG:
            num = (modrm >> 3) & 7
            if op[1] == C_GPR:
                operands.append(gpr(op[2][si], num | ((rex & 4) << 1), rex))
            elif op[1] == C_MMX:
                operands.append(MMX[num])
            else:
                operands.append(VEC[op[2][si + 3 * vl]][num | (rex & 4) << 1
                                                        | (evex[2] if evex else 0)])
        elif op[0] == K_VVVV and op[1] == C_GPR:
            operands.append(BAD_OPERAND if vl else gpr(op[2][si], vvvv, rex))
        elif op[0] == K_VVVV:
            operands.append(BAD_OPERAND if evex and evex[3] else VEC[op[2][si + 3 * vl]][vvvv])
        elif op[0] == K_IMM:
            n = op[1][si]
            operands.append(Imm(read(data, pos, n, end), n))
            pos += n
    names, att_names = spec.names[si], spec.att_names[si]
    unused = tuple(p for i, p in enumerate(prefixes) if i != consumed)
    if evex and spec.vex_w is not None and spec.vex_w != rex >> 3 & 1 and spec.wbad >= 0:
        names, att_names = _bad_letter(names, spec.wbad), _bad_letter(att_names, spec.wbad)
    insn = Decoded(address, pos - offset, bytes(data[offset:pos]), names, att_names,
                   tuple(operands), tuple(prefixes), unused, osz, mode, spec, mode)
    if evex:
        mask, rc = evex[0], evex[1]
        insn.evex = (mask[0], mask[1], 0, rc and ROUNDING[rc - 1][:2] + "-bad")
        if spec.evex_pseudo[si] and not (mask[0] or evex[4] or vl == 2 or vvvv & 0x10) and not any(
                type(o) is Reg and o.num >= 16 for o in operands):
            insn.pseudo_prefix = "{evex}"
    return insn


def _bad_letter(name: str, i: int) -> str:
    """objdump's "{bad}" for the mnemonic letter at `i` (an EVEX.W of the other form); a part
    named by the immediate ("{}") keeps its distance from the end: objdump inserts it last."""
    new = name[:i] + "{bad}" + name[i + 1:]
    at = name.find("{}")
    if at < 0:
        return new
    new = new.replace("{}", "", 1)
    cut = len(new) - (len(name) - at - 2)
    return new[:cut] + "{}" + new[cut:]


def _prefix_only(data, offset, pos, address, mode, prefixes) -> Decoded:
    """objdump ends an instruction at a REX prefix that another prefix follows; it prints
    and counts the prefixes it keeps (FWAIT is not among them)."""
    p = tuple(b for b in prefixes if b != 0x9B)
    return Decoded.prefix_only(address, bytes(data[offset:offset + len(p)]), p, mode)


def _fwait(data, offset, fwait_i, address, mode, prefixes, tables) -> Decoded:
    """A 9B byte that prefixes no FN* instruction is FWAIT on its own."""
    end = offset + fwait_i + 1
    spec = tables.maps["one-byte"][0x9B].choice.plain
    before = tuple(prefixes[:fwait_i])
    insn = Decoded(address, end - offset, bytes(data[offset:end]), "fwait", "fwait", (),
                   before + (0x9B,), before, mode, mode, spec, mode)
    insn.op = spec.op_ids[1]
    return insn
