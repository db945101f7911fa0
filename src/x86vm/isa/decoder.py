"""Table-driven x86 decoder: bytes -> `Decoded` (SDM Vol. 2 ch. 2 and Appendix A).

The public entry points (`decode`, `decode_all`) live in cache.py, which memoises this
decoder; `decode_uncached` here always decodes from scratch.

Every opcode decision is a lookup in the tables compiled from ``opcodes.map``; the decoder
only implements the encoding rules shared by all instructions, in phases over one
`Decoding` record (as the Linux kernel's arch/x86/lib/insn.c fills its ``struct insn``):

1. `_prefixes`: legacy prefixes and REX (SDM §2.1.1, §2.2.1);
2. `_vex_escape` / `_opcode`: a VEX/XOP (§2.3.5) or EVEX (§2.7.1) prefix and its opcode,
   or the opcode bytes and escapes (0F, 0F 38, 0F 3A) -- the table slot;
3. `_select_form`: the ModRM cell, the mandatory prefix / VEX.pp column, the W/L
   alternative, EVEX.b; early (bad);
4-8 in operand_decode.py: sizes (§2.2.1.2), ModRM/SIB/displacement (§2.1.5), immediates
(§2.1.4), operands in map order, the result: mnemonic, prefixes used, `Decoded`.
`decode_uncached` runs them in order.

Invalid encodings decode to objdump's ``(bad)``; bytes running past the buffer to objdump's
truncated form (``.byte 0x..``); nothing raises.  No state outlives a call.
"""

from __future__ import annotations

from functools import partial

from .badforms import (
    _bad,
    _bad_sib_missing,
    _badop,
    _evex_bad,
    _evex_bad_form,
    _fallback_form,
    _fwait,
    _only66,
    _prefix_only,
    _ptable,
    _rex_unshown,
    suffix_takes_66,
)
from .instruction import Decoded
from .modes import sized_mode
from .operand_decode import (
    build_result,
    decode_address,
    decode_immediates,
    decode_operands,
    decode_sizes,
)
from .readers import MAX_LENGTH, ROUNDING, Truncated, sib_missing
from .tables import FALLTHROUGH, LATE, W_LATE, Tables, load_tables

# prefix kinds
P_SEG, P_OSZ, P_ASZ, P_REP, P_LOCK, P_REX, P_FWAIT = 1, 2, 3, 4, 5, 6, 7
SEG_PREFIX = {0x26: 0, 0x2E: 1, 0x36: 2, 0x3E: 3, 0x64: 4, 0x65: 5}
PREFIX_KIND = [0] * 256
for _b in SEG_PREFIX:
    PREFIX_KIND[_b] = P_SEG
PREFIX_KIND[0x66], PREFIX_KIND[0x67] = P_OSZ, P_ASZ
PREFIX_KIND[0xF2] = PREFIX_KIND[0xF3] = P_REP
PREFIX_KIND[0xF0] = P_LOCK
PREFIX_KIND[0x9B] = P_FWAIT     # FWAIT: a prefix of FNSTSW & co. (-> FSTSW), else itself
PREFIX_KIND64 = list(PREFIX_KIND)
for _b in range(0x40, 0x50):
    PREFIX_KIND64[_b] = P_REX

_TABLES: dict[int, Tables] = load_tables()
_VEX_MAPS = {1: "vex0f", 2: "vex0f38", 3: "vex0f3a"}
_XOP_MAPS = {8: "xop8", 9: "xop9", 10: "xopa"}
_EVEX_MAPS = {1: "evex0f", 2: "evex0f38", 3: "evex0f3a", 5: "evex-map5", 6: "evex-map6"}
_new = object.__new__
_ESCAPES = frozenset((0x62, 0xC4, 0xC5, 0x8F))     # EVEX, VEX, XOP (or BOUND, LES, LDS, POP)


def set_tables(tables: dict[int, Tables]) -> None:
    """Decode with other compiled tables (cache.use_tables also drops the memo)."""
    global _TABLES
    _TABLES = tables


class Decoding:
    """What the phases have found so far about one instruction (insn.c's struct insn).

    Prefix positions are indices into `prefixes` (-1: absent); `rex` holds the REX bits in
    force (a VEX/XOP/EVEX prefix replaces them); `pos` is the next byte to read.
    `decode_uncached` fills in what a phase may read before another writes it (no __init__:
    its call would cost a tenth of a decode); `_vex`/`_evex` set the fields only VEX/EVEX
    forms read.
    """

    __slots__ = (
        "data", "offset", "end", "address", "mode", "tables", "pos", "prefixes",
        "seg_i", "osz_i", "asz_i", "rep_i", "lock_i", "rex", "rex_i", "fwait_i", "fsgs",
        "rex_replaced", "dflip", "aflip", "intel64",    # other default sizes, Intel64
        "att_suffix",                                   # objdump -M suffix (modes.py)
        # VEX/XOP/EVEX
        "vex", "evex", "vl", "vvvv", "vraw", "rhi", "xhi", "vbad", "lookahead", "pp",
        "ebit", "vvvv_set", "rc", "w", "bcst_n",   # vraw: the 4 vvvv bits objdump checks in
                                                # any mode; lookahead: bytes past the opcode
                                                # objdump reads though not its own
        # opcode and form
        "opcode", "modrm", "bad", "consumed", "opcode_end", "late", "shape",
        # sizes, memory, operands
        "osz", "asz", "osi", "si", "seg", "seg_used", "reg_form", "rex_used", "mem",
        "rex_byte_reg", "lock_cr8", "disp_at", "disp_signed", "values", "fields", "rel",
        "unheld")


def decode_uncached(data, offset: int = 0, address: int = 0, mode: int = 64) -> Decoded:
    """Decode one instruction from scratch (never raises for any bytes): the phases in
    order, each of which may end the decoding with a result."""
    d = _new(Decoding)
    d.data = data
    d.offset = d.pos = offset
    d.end = len(data)       # (an instruction longer than MAX_LENGTH is checked last)
    d.address = address
    if mode > 64:           # other default sizes, Intel64 (modes.decoder_mode): SizedMode
        d.dflip, d.aflip, d.intel64 = mode & 0x100 != 0, mode & 0x200 != 0, mode & 0x400 != 0
        d.att_suffix = mode & 0x800 != 0
        d.tables = _TABLES[mode & 0xFF]
        mode = sized_mode(mode)
    else:
        d.dflip = d.aflip = d.intel64 = d.att_suffix = False
        d.tables = _TABLES[mode]
    d.mode = mode
    d.prefixes = []
    d.seg_i = d.osz_i = d.asz_i = d.rep_i = d.lock_i = d.rex_i = d.fwait_i = -1
    d.rex = d.fsgs = 0
    # (rex_replaced is set once a VEX/XOP/EVEX prefix has been read: objdump then replaces
    # the REX bits it kept, so a truncated instruction behind a REX byte prints ".byte 0x4.";
    # only _truncated reads it, unset means False)
    d.vex = False           # (_vex/_evex set vl, vvvv, vraw, rhi, xhi, lookahead...)
    d.evex = None           # EVEX: [mask k, zeroing, broadcast, rounding]
    d.consumed = -1         # the mandatory prefix that selected the form
    d.late = False          # objdump rejects this form only after reading its operands
    d.rel = None            # a relative branch operand
    d.unheld = False        # bytes were read that no operand holds
    try:
        b = d.opcode = data[offset]
        if (PREFIX_KIND64 if mode == 64 else PREFIX_KIND)[b]:
            done = _prefixes(d)                                             # 1
            if done is not None:
                return done
        slot = _vex_escape(d) if d.opcode in _ESCAPES else _opcode(d)       # 2
        if type(slot) is Decoded:
            return slot
        spec = _select_form(d, slot)                                        # 3
        if type(spec) is Decoded:
            return spec
        decode_sizes(d, spec)                                               # 4
        if 0 <= d.modrm < 0xC0 and spec.has_mem_op:
            decode_address(d, spec)                                         # 5
        else:
            d.mem = None
        if spec.value_ops:
            decode_immediates(d, spec)                                      # 6
        else:
            d.values = ()
        operands = decode_operands(d, spec)                                 # 7
        if type(operands) is Decoded:
            return operands
        return build_result(d, spec, operands)                              # 8
    except (Truncated, IndexError):
        return _truncated(d)


def _truncated(d: Decoding) -> Decoded:
    """The code ends inside the instruction: objdump prints its first byte alone."""
    b = d.data[d.offset]
    kinds = PREFIX_KIND64 if d.mode == 64 else PREFIX_KIND
    if kinds[b] and not (kinds[b] == P_REX and getattr(d, "rex_replaced", False)):
        return Decoded.prefix_only(d.address, bytes((b,)), (b,), d.mode)
    return Decoded.truncated(d.address, b, d.mode)


def asz_toggle(d: Decoding) -> int:
    """0 if the address size is the mode's other one (a 67 prefix, or none with the
    default flipped: modes.ADDR_FLIP), else -1 -- what `d.asz_i` says in the plain modes."""
    return 0 if (d.asz_i >= 0) != d.aflip else -1


def osz_toggle(d: Decoding) -> int:
    """0 if the operand size is the mode's other one (66, or none with DATA_FLIP), else -1."""
    return 0 if (d.osz_i >= 0) != d.dflip else -1


# ---- phase 1: prefixes ----

def _prefixes(d: Decoding) -> Decoded | None:
    """Legacy prefixes and REX (decode_uncached calls this when the first byte is one);
    `d.opcode` is the first byte after them.  Returns a result when the prefixes are all
    there is (objdump's prefix-only lines, FWAIT alone)."""
    data, offset, end, mode = d.data, d.offset, d.end, d.mode
    kinds = PREFIX_KIND64 if mode == 64 else PREFIX_KIND
    pos = offset
    prefixes = d.prefixes
    rex = fsgs = 0
    seg_i = osz_i = asz_i = rep_i = lock_i = rex_i = fwait_i = -1
    while True:
        b = data[pos]
        k = kinds[b]
        if not k:
            break
        if rex:     # a REX followed by another prefix ends a prefix-only instruction
            return _prefix_only(data, offset, pos, d.address, mode, prefixes)
        if k == P_FWAIT:
            if fwait_i < 0:
                fwait_i = len(prefixes)
        elif k == P_REX:
            rex, rex_i = b, len(prefixes)
        else:
            rex = 0
            if k == P_SEG:
                seg_i = len(prefixes)
                if b >= 0x64:
                    fsgs = b
            elif k == P_OSZ:
                osz_i = len(prefixes)
            elif k == P_ASZ:
                asz_i = len(prefixes)
            elif k == P_REP:
                rep_i = len(prefixes)
            elif k == P_LOCK:
                lock_i = len(prefixes)
        prefixes.append(b)
        pos += 1
        if pos >= end:
            raise Truncated
        if k == P_FWAIT and len(prefixes) > 1 and not 0xD8 <= data[pos] <= 0xDF:
            # objdump: a FWAIT after other prefixes (FWAIT too) ends the prefix run; without
            # an x87 escape next it is FWAIT with the other prefixes before it
            others = [p for p in prefixes if p != 0x9B]
            return _fwait(data, offset, len(others), d.address, mode, others + [0x9B],
                          d.tables)
        if pos - offset == MAX_LENGTH - 1 and fwait_i < 0:   # objdump: 14 prefixes end it
            return _prefix_only(data, offset, pos, d.address, mode, prefixes)
    d.rex, d.fwait_i, d.pos, d.opcode = rex, fwait_i, pos, b
    d.seg_i, d.osz_i, d.asz_i, d.rep_i, d.lock_i, d.rex_i, d.fsgs = \
        seg_i, osz_i, asz_i, rep_i, lock_i, rex_i, fsgs
    d.lock_cr8 = False      # LOCK made MOV CRn CR(n+8) (read only with a LOCK prefix)
    if fwait_i >= 0 and not 0xD8 <= b <= 0xDF:     # FWAIT prefixes only x87 escapes
        return _fwait(data, offset, fwait_i, d.address, mode, prefixes, d.tables)
    return None


# ---- phase 2: VEX/XOP/EVEX prefix, opcode ----

def _vex_escape(d: Decoding):
    """A 62/C4/C5/8F byte: an EVEX, VEX or XOP prefix and its opcode (the table slot), or
    in 16/32-bit code the one-byte instruction it also is (BOUND, LES, LDS, POP)."""
    data, pos, mode = d.data, d.pos, d.mode
    b = d.opcode
    if b == 0x62 and (mode == 64 or data[pos + 1] >= 0xC0):
        return _evex(d)
    if (b == 0xC4 or b == 0xC5 or b == 0x8F and data[pos + 1] & 0x38) and (
            mode == 64 or b == 0x8F or data[pos + 1] >= 0xC0):
        return _vex(d)
    return _opcode(d)


def _evex(d: Decoding):
    """EVEX prefix (SDM §2.7.1): 62 P0 P1 P2, then the opcode."""
    data, offset, pos, end, mode = d.data, d.offset, d.pos, d.end, d.mode
    prefixes = d.prefixes
    p0 = data[pos + 1]
    p1 = data[pos + 2]
    p2 = data[pos + 3]
    if pos + 4 >= end:                   # objdump reads 62 P0 P1 P2 and the opcode
        raise Truncated
    mm = p0 & 0xF
    if mm not in _EVEX_MAPS:             # objdump stops right after the 62
        return _bad(data, offset, pos + 1, d.address, mode, prefixes,
                    _rex_unshown(d.rex_i, p0))
    if not p1 & 4:                       # EVEX.U must be 1 (objdump has read EVEX.W)
        return _bad(data, offset, pos + 2, d.address, mode, prefixes,
                    _rex_unshown(d.rex_i, p0, p1 & 0x80))
    d.rex_replaced = True
    if pos + 5 >= end:                   # ... then the ModRM of any opcode
        raise Truncated
    d.vex = True
    rex = 0x40 | ((~p0 >> 5) & 7) | ((p1 >> 4) & 8)
    rhi = (~p0 >> 0) & 0x10          # EVEX.R' -> register bit 4
    xhi = (~p0 >> 2) & 0x10          # EVEX.X  -> bit 4 of a vector r/m register
    d.vraw = (~p1 >> 3) & 0xF
    vvvv = d.vraw | ((~p2 << 1) & 0x10)
    d.vbad = False
    d.bcst_n = d.lookahead = 0
    if mode != 64:
        d.vbad = not p2 & 8
        vvvv &= 7
        rex &= ~7
        rhi = xhi = 0
    d.rex, d.rhi, d.xhi, d.vvvv = rex, rhi, xhi, vvvv
    d.pp = p1 & 3
    evex = d.evex = [p2 & 7, p2 >> 7, 0, None]      # mask k, zeroing, broadcast, rounding
    vl = d.vl = (p2 >> 5) & 3
    ebit = d.ebit = (p2 >> 4) & 1
    b = d.opcode = data[pos + 4]
    pos = d.pos = pos + 5
    table = d.tables.maps.get(_EVEX_MAPS[mm])
    slot = table[b] if table is not None else None
    if sib_missing(data, pos, end, mode, asz_toggle(d)):
        raise Truncated         # objdump reads the SIB byte before it decides (bad)
    vvvv_set = d.vvvv_set = ~p1 & 0x78  # EVEX.vvvv in any mode (V' aside) decides objdump's
    if slot is None:                    # prefix words and mask on a (bad)
        return _evex_bad(data, offset, pos, d.address, mode, prefixes, evex, vvvv_set,
                         ebit, vl)
    if vl == 3 and (not ebit or data[pos] < 0xC0):     # L'L=3 means rounding only
        return _evex_bad(data, offset, pos, d.address, mode, prefixes, evex, vvvv_set,
                         ebit, vl)
    return slot


def _vex(d: Decoding):
    """VEX (C4/C5, SDM §2.3.5) or AMD XOP (8F with ModRM.reg != 0) prefix, then the opcode."""
    data, offset, pos, end, mode = d.data, d.offset, d.pos, d.end, d.mode
    prefixes = d.prefixes
    b = d.opcode
    if b == 0x8F:
        if data[pos + 1] & 0x18 != 0x08:    # map outside 8..15: decided by the ModRM
            if sib_missing(data, pos + 1, end, mode, asz_toggle(d)):
                raise Truncated
            return _bad(data, offset, pos + 1, d.address, mode, prefixes, -1)
        if pos + 3 >= end:      # objdump reads 8F, both XOP bytes and the opcode
            raise Truncated
        if data[pos + 1] & 0x1F not in _XOP_MAPS:
            return _bad(data, offset, pos + 1, d.address, mode, prefixes,
                        _rex_unshown(d.rex_i, data[pos + 1]))
        d.rex_replaced = True
        if pos + 4 >= end:      # ... and then the ModRM
            raise Truncated
        if sib_missing(data, pos + 4, end, mode, asz_toggle(d)):
            raise Truncated    # objdump reads the SIB byte before it decides (bad)
        if data[pos + 2] & 3:           # no XOP encoding uses an implied prefix
            return _bad(data, offset, pos + 4, d.address, mode, prefixes,
                        -2 if ~data[pos + 2] & 0x78 else -1)
    d.vex = True
    b1 = data[pos + 1]
    if pos + (2 if b == 0xC5 else 3) >= end:    # objdump reads up to the opcode first
        raise Truncated
    if b == 0xC5:
        mmmmm = 1
        b2 = b1
        rex = 0x40 | ((~b1 >> 5) & 4)
        pos += 2
    else:
        b2 = data[pos + 2]
        mmmmm = b1 & 0x1F
        rex = 0x40 | ((~b1 >> 5) & 7) | ((b2 >> 4) & 8)
        pos += 3
    if b == 0x8F:
        vex_map = _XOP_MAPS[mmmmm]
    elif mmmmm in _VEX_MAPS:
        vex_map = _VEX_MAPS[mmmmm]
    else:
        return _bad(data, offset, offset + len(prefixes) + 1, d.address, mode, prefixes,
                    _rex_unshown(d.rex_i, b1))
    d.rex_replaced = True
    vvvv = d.vraw = (~b2 >> 3) & 0xF
    if mode != 64:
        vvvv &= 7
        rex &= ~1               # objdump keeps XOP.R and XOP.X outside 64-bit mode (xmm8+,
                                # an index %r11d); a VEX there has R and X clear anyway
    d.rex, d.vvvv = rex, vvvv
    d.vbad = False
    d.rhi = d.xhi = d.lookahead = 0
    d.vl = (b2 >> 2) & 1
    d.pp = b2 & 3
    b = d.opcode = data[pos]
    pos = d.pos = pos + 1
    if b == 0x77 and vex_map == "vex0f":
        if b1 < 0xC0 and b1 & 7 == 4:
            d.lookahead = 2     # C5 whose byte 1 reads as a ModRM with SIB: objdump
            if pos + 2 > end:   # wants two more bytes after 0F 77 (probed on 2.40)
                raise Truncated
    elif pos >= end:
        raise Truncated         # objdump reads a ModRM after every VEX opcode but 0F 77
    return d.tables.maps[vex_map][b]


def _opcode(d: Decoding):
    """The opcode bytes of a legacy instruction through its escapes: the table slot."""
    data, pos = d.data, d.pos
    maps = d.tables.maps
    slot = maps["one-byte"][d.opcode]
    pos += 1
    while slot is not None and slot.escape is not None:
        b = d.opcode = data[pos]
        pos += 1
        slot = maps[slot.escape][b]
    d.pos = pos
    return slot


# ---- phase 3: form selection ----

def _select_form(d: Decoding, slot):
    """The map form of the instruction: the ModRM cell, then the mandatory prefix (SDM
    Table A-3 columns; objdump: the last F2/F3 wins, then 66) or VEX.pp, then the W/L
    alternative; EVEX.b as rounding or broadcast.  Returns the Spec, or a (bad) result."""
    data, offset, pos, end, mode = d.data, d.offset, d.pos, d.end, d.mode
    prefixes = d.prefixes
    vex, evex = d.vex, d.evex
    nobad = -2 if vex and d.vraw else -1    # (bad) without prefix words (objdump)
    if slot is None:
        fwait_i = d.fwait_i
        if (vex or pos - offset - len(prefixes) == 3) and sib_missing(data, pos, end, mode,
                                                                      asz_toggle(d)):
            raise Truncated         # 0F 38/3A, VEX: objdump fetches the ModRM of any opcode
        if fwait_i >= 0:
            return _fwait(data, offset, fwait_i, d.address, mode, prefixes, d.tables)
        return _bad(data, offset, pos, d.address, mode, prefixes, nobad)
    modrm = -1
    bad = _bad if evex is None else partial(_evex_bad_form, evex=evex, plain=d.vvvv_set,
                                            ebit=d.ebit, rc=d.vl)
    if slot.modrm:
        modrm = data[pos]
        choice = slot.by_modrm[modrm]
        if modrm < 0xC0 and modrm & 7 == 4 and pos + 1 >= end and (
                mode == 64 or (mode == 32) == (asz_toggle(d) < 0)):   # (sib_missing inlined)
            bad = _bad_sib_missing  # objdump reads the SIB byte before it decides (bad)
    else:
        choice = slot.choice
    if d.rex & 1 and slot.rexb_choice is not None:
        choice = slot.rexb_choice
    if choice is None:          # (FWAITs before an invalid x87 form are part of the (bad))
        return bad(data, offset, pos + slot.modrm_opcode, d.address, mode, prefixes,
                   tuple(i for i, p in enumerate(prefixes) if p == 0x9B) if d.fwait_i >= 0
                   else nobad)

    d.opcode_end = pos
    if vex:
        spec = _vex_form(d, choice, modrm)
        if spec is None:
            return bad(data, offset, pos, d.address, mode, prefixes, nobad)
    elif choice.columns:
        spec = _prefix_column(d, choice, modrm)
        if spec is None:
            return bad(data, offset, pos, d.address, mode, prefixes, d.consumed)
    else:
        spec = choice.plain
        if spec is None:
            return bad(data, offset, pos, d.address, mode, prefixes, d.consumed)

    if spec.mod_ignored:
        modrm |= 0xC0
    d.modrm = modrm
    if modrm >= 0:
        if (spec.needs_mem and modrm >= 0xC0) or (spec.needs_reg and modrm < 0xC0):
            if spec.badop and bad is not _bad_sib_missing:
                if d.late:          # objdump prints the operand as "(bad)", then rejects
                    return _bad(data, offset, d.opcode_end, d.address, mode, prefixes, -2)
                return _badop(data, offset, d.address, mode, prefixes, d.consumed, spec,
                              modrm, d.rex, osz_toggle(d), end, d.vvvv if vex else 0,
                              d.vl if vex else 0,
                              evex and (evex, d.ebit and modrm >= 0xC0 and d.rc + 1, d.rhi,
                                        d.vbad, d.ebit))
            return bad(data, offset, pos, d.address, mode, prefixes,
                       d.consumed if not vex else nobad)
        pos += 1
    d.pos = pos
    # the bytes that fix the length: prefixes, opcode, ModRM (and what objdump looks ahead)
    d.shape = pos + d.lookahead if vex else pos
    return spec


def _prefix_column(d: Decoding, choice, modrm: int):
    """A legacy form by mandatory prefix: the last F2/F3, else 66, else none (objdump)."""
    spec = None
    prefixes = d.prefixes
    if d.rep_i >= 0:
        col = choice.pf3 if prefixes[d.rep_i] == 0xF3 else choice.pf2
        if col is not FALLTHROUGH:
            d.consumed = d.rep_i
            spec = col
    if d.consumed < 0:
        if d.osz_i >= 0:
            col = choice.p66
            if col is FALLTHROUGH:
                spec = choice.plain
            else:
                spec = col
                d.consumed = d.osz_i
        else:
            spec = choice.plain
    if spec is LATE and d.att_suffix and d.consumed == d.osz_i >= 0 and \
            suffix_takes_66(choice.plain, d.rex & 8, modrm):
        return choice.plain     # (its size letter reads the 66: a used prefix)
    if spec is LATE or (spec is None or spec is FALLTHROUGH) and _only66(choice):
        d.late = True
        return _fallback_form(choice)
    if spec is None or spec is FALLTHROUGH:
        return None
    return spec


def _vex_form(d: Decoding, choice, modrm: int):
    """A VEX/XOP/EVEX form by VEX.pp, then its W and L alternative; EVEX.b's rounding or
    broadcast.  None: objdump's (bad) before the operands."""
    evex = d.evex
    pp = d.pp
    spec = (choice.plain, choice.p66, choice.pf3, choice.pf2)[pp] if choice.columns \
        else (choice.plain if pp == 0 else None)
    if spec is LATE or spec is None and _only66(choice) and not (
            evex is not None and _ptable(choice.p66)):
        spec = _fallback_form(choice)
        d.late = True
    elif spec is FALLTHROUGH:   # objdump ignores VEX.pp for this form
        spec = _fallback_form(choice)
    rc = d.rc = vl = d.vl
    ebit = d.ebit if evex is not None else 0
    if ebit and modrm >= 0xC0:
        vl = 2                  # EVEX.b with registers: L'L is rounding; 512 bits
    w = d.w = d.rex >> 3 & 1
    if type(spec) is tuple:
        spec = next((s for s in spec if (s.vex_w is None or s.vex_w == w)
                     and (s.vex_l is None or s.vex_l == vl or s.vex_l < 0 < vl)), None) \
            or next((s for s in spec if (s.wbad >= 0 or s.w_rule) and evex is not None
                     and (s.vex_l is None or s.vex_l == vl or s.vex_l < 0 < vl)), None)
    d.vl = vl
    if spec is None or spec is FALLTHROUGH or (
            spec.vex_w is not None and spec.vex_w != w and (
                spec.wbad < 0 and not spec.w_rule or evex is None)) or (
            spec.vex_l is not None and spec.vex_l != vl and not spec.vex_l < 0 < vl):
        return None
    if d.vraw and not spec.uses_vvvv:
        d.late = True           # objdump: an unused VEX.vvvv must be 1111 (EVEX.V' aside)
    if spec.w_rule == W_LATE and spec.vex_w is not None and spec.vex_w != w:
        d.late = True           # objdump's "pX" forms check EVEX.W after the operands
    if evex is not None and ebit:
        if modrm >= 0xC0:            # EVEX.b with registers: rounding control / SAE
            if spec.rounding == "er":
                evex[3] = ROUNDING[rc]
            elif spec.rounding == "sae":
                evex[3] = "sae"
            else:
                evex[3] = ROUNDING[rc][:2] + "-bad"
            d.vl = 2
        elif spec.bcst:
            evex[2] = 2 if spec.bcst == 2 else 4 << w       # FP16: 2, else by EVEX.W
            if w and (spec.bcst != 2 or not spec.bcst_vl):
                d.bcst_n = 2 << vl      # objdump: {1toN} by the vector length
        elif spec.bcst_vl and not spec.nobcst:
            evex[2] = 4 << w            # objdump broadcasts any full-vector source by W
        else:       # "{bad}"; with W1 AT&T {1toN} by the vector length (-N)
            evex[2] = -(2 << vl) if w and not spec.bcst_q else -1
    if evex is not None and evex[1] and not evex[0]:
        d.late = True               # objdump: {z} needs a mask
    return spec
