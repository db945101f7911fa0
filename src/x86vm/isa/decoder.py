"""Table-driven x86 decoder: bytes -> `Decoded` (SDM Vol. 2 ch. 2 and Appendix A).

The public entry points (`decode`, `decode_all`) live in cache.py, which memoises this
decoder; `decode_uncached` here always decodes from scratch.

Every opcode decision is a lookup in the tables compiled from ``opcodes.map``; this module
only implements the encoding rules shared by all instructions: prefixes and REX (§2.1-2.2),
ModRM/SIB/displacement (§2.1.5, Tables 2-1..2-3), immediates, and mandatory-prefix selection.
Invalid encodings decode to objdump's ``(bad)``; bytes running past the buffer to objdump's
truncated form (``.byte 0x..``); nothing raises.
"""

from __future__ import annotations

from functools import partial

from .badforms import (
    _OSI,
    _ROUNDING,
    _VEC,
    _bad,
    _bad_letter,
    _bad_sib_missing,
    _badop,
    _evex_bad,
    _evex_bad_form,
    _fallback_form,
    _fwait,
    _gpr,
    _only66,
    _prefix_only,
    _ptable,
    _read,
    _rex_unshown,
    _sib_missing,
    _Truncated,
)
from .instruction import ADDRESS_MASK, F_DISP, F_FAR, F_IMM, F_MOFFS, F_REL, Decoded
from .operands import (
    ADDR16,
    BAD_INDEX,
    BAD_OPERAND,
    BND,
    CR,
    DR,
    EIP,
    EIZ,
    EIZ_ABSOLUTE,
    GPR,
    KREG,
    MMX,
    PORT_DX,
    RIP,
    RIZ,
    SEG,
    SHIFT_ONE,
    ST,
    TMM,
    TR,
    XMM,
    BadMemory,
    Far,
    Imm,
    Mem,
    Reg,
    Rel,
    default_segment,
)
from .tables import (
    C_BND,
    C_CR,
    C_DR,
    C_GPR,
    C_K,
    C_MMX,
    C_SEG,
    C_TMM,
    C_TR,
    C_XMM,
    FALLTHROUGH,
    K_ACC,
    K_FAR,
    K_FIXED,
    K_FLAGS,
    K_IMM,
    K_IMM4,
    K_IS4,
    K_MOFFS,
    K_ONE,
    K_REG,
    K_REL,
    K_RM,
    K_ST,
    K_STI,
    K_STR_X,
    K_STR_Y,
    K_VVVV,
    K_Z,
    LATE,
    W_LATE,
    Tables,
    load_tables,
)

# prefix kinds
P_SEG, P_OSZ, P_ASZ, P_REP, P_LOCK, P_REX, P_FWAIT = 1, 2, 3, 4, 5, 6, 7
_SEG_PREFIX = {0x26: 0, 0x2E: 1, 0x36: 2, 0x3E: 3, 0x64: 4, 0x65: 5}
PREFIX_KIND = [0] * 256
for _b in _SEG_PREFIX:
    PREFIX_KIND[_b] = P_SEG
PREFIX_KIND[0x66], PREFIX_KIND[0x67] = P_OSZ, P_ASZ
PREFIX_KIND[0xF2] = PREFIX_KIND[0xF3] = P_REP
PREFIX_KIND[0xF0] = P_LOCK
PREFIX_KIND[0x9B] = P_FWAIT     # FWAIT: a prefix of FNSTSW & co. (-> FSTSW), else itself
PREFIX_KIND64 = list(PREFIX_KIND)
for _b in range(0x40, 0x50):
    PREFIX_KIND64[_b] = P_REX
MAX_LENGTH = 15

_TABLES: dict[int, Tables] = load_tables()
_VEX_MAPS = {1: "vex0f", 2: "vex0f38", 3: "vex0f3a"}
_XOP_MAPS = {8: "xop8", 9: "xop9", 10: "xopa"}
_EVEX_MAPS = {1: "evex0f", 2: "evex0f38", 3: "evex0f3a", 5: "evex-map5", 6: "evex-map6"}
_CLASS_REGS = {C_SEG: SEG, C_CR: CR, C_DR: DR, C_MMX: MMX, C_XMM: XMM, C_K: KREG, C_TR: TR,
               C_BND: BND, C_TMM: TMM}


def set_tables(tables: dict[int, Tables]) -> None:
    """Decode with other compiled tables (cache.use_tables also drops the memo)."""
    global _TABLES
    _TABLES = tables


def decode_uncached(data, offset: int = 0, address: int = 0, mode: int = 64) -> Decoded:
    """Decode one instruction from scratch (never raises for any bytes)."""
    # rex_replaced[0]: set once a VEX/XOP/EVEX prefix has been read: objdump then replaces
    # the REX bits it kept, so a truncated instruction behind a REX byte prints ".byte 0x4."
    # instead of "rex.*"
    rex_replaced = [False]
    try:
        return _decode(data, offset, address, mode, rex_replaced)
    except (_Truncated, IndexError):
        return _truncated(data, offset, address, mode, rex_replaced[0])


def _truncated(data, offset, address, mode, rex_replaced) -> Decoded:
    b = data[offset]
    kinds = PREFIX_KIND64 if mode == 64 else PREFIX_KIND
    raw = bytes(data[offset:offset + 1])
    if kinds[b] and not (kinds[b] == P_REX and rex_replaced):
        return Decoded(address, 1, raw, "", "", (), (b,), (b,), mode, mode, None, mode,
                           "prefix")
    return Decoded(address, 1, raw, ".byte", ".byte", (Imm(b, 1),), (), (), mode, mode,
                   None, mode, "truncated")


def _decode(data, offset, address, mode, rex_replaced):
    end = len(data)     # (an instruction longer than MAX_LENGTH is checked at the end)
    tables = _TABLES[mode]
    kinds = PREFIX_KIND64 if mode == 64 else PREFIX_KIND
    pos = offset
    prefixes = []
    seg_i = osz_i = asz_i = rep_i = lock_i = -1
    rex = 0
    rex_i = fwait_i = -1
    fsgs = 0
    while True:
        b = data[pos]
        k = kinds[b]
        if not k:
            break
        if rex:     # a REX followed by another prefix ends a prefix-only instruction
            return _prefix_only(data, offset, pos, address, mode, prefixes)
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
            raise _Truncated
        if k == P_FWAIT and len(prefixes) > 1 and not 0xD8 <= data[pos] <= 0xDF:
            # objdump: a FWAIT after other prefixes (FWAIT too) ends the prefix run; without
            # an x87 escape next it is FWAIT with the other prefixes before it
            others = [p for p in prefixes if p != 0x9B]
            return _fwait(data, offset, len(others), address, mode, others + [0x9B], tables)
        if pos - offset == MAX_LENGTH - 1 and fwait_i < 0:   # objdump: 14 prefixes end it
            return _prefix_only(data, offset, pos, address, mode, prefixes)

    if fwait_i >= 0 and not 0xD8 <= b <= 0xDF:     # FWAIT prefixes only x87 escapes
        return _fwait(data, offset, fwait_i, address, mode, prefixes, tables)

    # ---- VEX prefix (SDM §2.3.5): C4/C5, in 16/32-bit mode only when ModRM.mod would be 11 ----
    vex = False
    evex = None
    vl = 0
    vvvv = vraw = 0     # vraw: the 4 vvvv bits objdump checks, also outside 64-bit mode
    rhi = xhi = 0
    vbad = False        # EVEX.V' clear outside 64-bit mode: objdump's (bad) register
    lookahead = 0       # bytes past the opcode that objdump reads though they are not its
    if b == 0x62 and (mode == 64 or data[pos + 1] >= 0xC0):
        # ---- EVEX prefix (SDM §2.7.1): 62 P0 P1 P2 ----
        p0 = data[pos + 1]
        p1 = data[pos + 2]
        p2 = data[pos + 3]
        if pos + 4 >= end:                   # objdump reads 62 P0 P1 P2 and the opcode
            raise _Truncated
        mm = p0 & 0xF
        if mm not in _EVEX_MAPS:             # objdump stops right after the 62
            return _bad(data, offset, pos + 1, address, mode, prefixes,
                        _rex_unshown(rex_i, p0))
        if not p1 & 4:                       # EVEX.U must be 1 (objdump has read EVEX.W)
            return _bad(data, offset, pos + 2, address, mode, prefixes,
                        _rex_unshown(rex_i, p0, p1 & 0x80))
        rex_replaced[0] = True
        if pos + 5 >= end:                   # ... then the ModRM of any opcode
            raise _Truncated
        vex = True
        rex = 0x40 | ((~p0 >> 5) & 7) | ((p1 >> 4) & 8)
        rhi = (~p0 >> 0) & 0x10          # EVEX.R' -> register bit 4
        xhi = (~p0 >> 2) & 0x10          # EVEX.X  -> bit 4 of a vector r/m register
        vraw = (~p1 >> 3) & 0xF
        vvvv = vraw | ((~p2 << 1) & 0x10)
        if mode != 64:
            vbad = not p2 & 8
            vvvv &= 7
            rex &= ~7
            rhi = xhi = 0
        pp = p1 & 3
        evex = [p2 & 7, p2 >> 7, 0, None]      # mask k, zeroing, broadcast, rounding
        vl = (p2 >> 5) & 3
        ebit = (p2 >> 4) & 1
        b = data[pos + 4]
        pos += 5
        table = tables.maps.get(_EVEX_MAPS[mm])
        slot = table[b] if table is not None else None
        if _sib_missing(data, pos, end, mode, asz_i):
            raise _Truncated        # objdump reads the SIB byte before it decides (bad)
        vvvv_set = ~p1 & 0x78       # EVEX.vvvv in any mode (V' aside) decides objdump's
        if slot is None:            # prefix words and mask on a (bad)
            return _evex_bad(data, offset, pos, address, mode, prefixes, evex, vvvv_set,
                             ebit, vl)
        if vl == 3 and (not ebit or data[pos] < 0xC0):     # L'L=3 means rounding only
            return _evex_bad(data, offset, pos, address, mode, prefixes, evex, vvvv_set,
                             ebit, vl)
    elif (b == 0xC4 or b == 0xC5 or b == 0x8F and data[pos + 1] & 0x38) and (
            mode == 64 or b == 0x8F or data[pos + 1] >= 0xC0):
        # ---- VEX (C4/C5) or AMD XOP (8F with ModRM.reg != 0) prefix ----
        if b == 0x8F:
            if data[pos + 1] & 0x18 != 0x08:    # map outside 8..15: decided by the ModRM
                if _sib_missing(data, pos + 1, end, mode, asz_i):
                    raise _Truncated
                return _bad(data, offset, pos + 1, address, mode, prefixes, -1)
            if pos + 3 >= end:      # objdump reads 8F, both XOP bytes and the opcode
                raise _Truncated
            if data[pos + 1] & 0x1F not in _XOP_MAPS:
                return _bad(data, offset, pos + 1, address, mode, prefixes,
                            _rex_unshown(rex_i, data[pos + 1]))
            rex_replaced[0] = True
            if pos + 4 >= end:      # ... and then the ModRM
                raise _Truncated
            if _sib_missing(data, pos + 4, end, mode, asz_i):
                raise _Truncated    # objdump reads the SIB byte before it decides (bad)
            if data[pos + 2] & 3:           # no XOP encoding uses an implied prefix
                return _bad(data, offset, pos + 4, address, mode, prefixes,
                            -2 if ~data[pos + 2] & 0x78 else -1)
        vex = True
        b1 = data[pos + 1]
        if pos + (2 if b == 0xC5 else 3) >= end:    # objdump reads up to the opcode first
            raise _Truncated
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
            return _bad(data, offset, offset + len(prefixes) + 1, address, mode, prefixes,
                        _rex_unshown(rex_i, b1))
        rex_replaced[0] = True
        vvvv = vraw = (~b2 >> 3) & 0xF
        if mode != 64:
            vvvv &= 7
            rex &= ~3               # objdump keeps VEX/XOP.R outside 64-bit mode (xmm8+)
        vl = (b2 >> 2) & 1
        pp = b2 & 3
        b = data[pos]
        pos += 1
        if b == 0x77 and vex_map == "vex0f":
            if b1 < 0xC0 and b1 & 7 == 4:
                lookahead = 2       # C5 whose byte 1 reads as a ModRM with SIB: objdump
                if pos + 2 > end:   # wants two more bytes after 0F 77 (probed on 2.40)
                    raise _Truncated
        elif pos >= end:
            raise _Truncated        # objdump reads a ModRM after every VEX opcode but 0F 77
        slot = tables.maps[vex_map][b]
    else:
        # ---- opcode and table walk ----
        slot = tables.maps["one-byte"][b]
        pos += 1
        while slot is not None and slot.escape is not None:
            b = data[pos]
            pos += 1
            slot = tables.maps[slot.escape][b]
    nobad = -2 if vex and vraw else -1      # (bad) without prefix words (objdump)
    if slot is None:
        if (vex or pos - offset - len(prefixes) == 3) and _sib_missing(data, pos, end, mode,
                                                                       asz_i):
            raise _Truncated        # 0F 38/3A, VEX: objdump fetches the ModRM of any opcode
        if fwait_i >= 0:
            return _fwait(data, offset, fwait_i, address, mode, prefixes, tables)
        return _bad(data, offset, pos, address, mode, prefixes, nobad)
    modrm = -1
    bad = _bad if evex is None else partial(_evex_bad_form, evex=evex, plain=vvvv_set,
                                            ebit=ebit, rc=vl)
    if slot.modrm:
        modrm = data[pos]
        choice = slot.by_modrm[modrm]
        if _sib_missing(data, pos, end, mode, asz_i):
            bad = _bad_sib_missing  # objdump reads the SIB byte before it decides (bad)
    else:
        choice = slot.choice
    if rex & 1 and slot.rexb_choice is not None:
        choice = slot.rexb_choice
    if choice is None:          # (an FWAIT before an invalid x87 form is part of the (bad))
        return bad(data, offset, pos + slot.modrm_opcode, address, mode, prefixes,
                   fwait_i if fwait_i >= 0 else nobad)

    # ---- mandatory prefix (SDM Table A-3 columns; objdump: last F2/F3 wins, then 66) ----
    consumed = -1
    opcode_end = pos
    late = False        # objdump rejects this form only after reading its operands
    if vex:
        spec = (choice.plain, choice.p66, choice.pf3, choice.pf2)[pp] if choice.columns \
            else (choice.plain if pp == 0 else None)
        if spec is LATE or spec is None and _only66(choice) and not (
                evex is not None and _ptable(choice.p66)):
            spec = _fallback_form(choice)
            late = True
        elif spec is FALLTHROUGH:   # objdump ignores VEX.pp for this form
            spec = _fallback_form(choice)
        rc = vl
        if evex is not None and ebit and modrm >= 0xC0:
            vl = 2                  # EVEX.b with registers: L'L is rounding; 512 bits
        w = rex >> 3 & 1
        if type(spec) is tuple:
            spec = next((s for s in spec if (s.vex_w is None or s.vex_w == w)
                         and (s.vex_l is None or s.vex_l == vl or s.vex_l < 0 < vl)), None) \
                or next((s for s in spec if (s.wbad >= 0 or s.w_rule) and evex is not None
                         and (s.vex_l is None or s.vex_l == vl or s.vex_l < 0 < vl)), None)
        if spec is None or spec is FALLTHROUGH or (
                spec.vex_w is not None and spec.vex_w != w and (
                    spec.wbad < 0 and not spec.w_rule or evex is None)) or (
                spec.vex_l is not None and spec.vex_l != vl and not spec.vex_l < 0 < vl):
            return bad(data, offset, pos, address, mode, prefixes, nobad)
        if vraw and not spec.uses_vvvv:
            late = True             # objdump: an unused VEX.vvvv must be 1111 (EVEX.V' aside)
        if spec.w_rule == W_LATE and spec.vex_w is not None and spec.vex_w != w:
            late = True             # objdump's "pX" forms check EVEX.W after the operands
        bcst_n = 0
        if evex is not None and ebit:
            if modrm >= 0xC0:            # EVEX.b with registers: rounding control / SAE
                if spec.rounding == "er":
                    evex[3] = _ROUNDING[rc]
                elif spec.rounding == "sae":
                    evex[3] = "sae"
                else:
                    evex[3] = _ROUNDING[rc][:2] + "-bad"
                vl = 2
            elif spec.bcst:
                evex[2] = 2 if spec.bcst == 2 else 4 << w       # FP16: 2, else by EVEX.W
                if w and (spec.bcst != 2 or not spec.bcst_vl):
                    bcst_n = 2 << vl        # objdump: {1toN} by the vector length
            elif spec.bcst_vl and not spec.nobcst:
                evex[2] = 4 << w            # objdump broadcasts any full-vector source by W
            else:       # "{bad}"; with W1 AT&T {1toN} by the vector length (-N)
                evex[2] = -(2 << vl) if w and not spec.bcst_q else -1
        if evex is not None and evex[1] and not evex[0]:
            late = True             # objdump: {z} needs a mask
    elif choice.columns:
        spec = None
        if rep_i >= 0:
            col = choice.pf3 if prefixes[rep_i] == 0xF3 else choice.pf2
            if col is not FALLTHROUGH:
                consumed = rep_i
                spec = col
        if consumed < 0:
            if osz_i >= 0:
                col = choice.p66
                if col is FALLTHROUGH:
                    spec = choice.plain
                else:
                    spec = col
                    consumed = osz_i
            else:
                spec = choice.plain
        if spec is LATE or (spec is None or spec is FALLTHROUGH) and _only66(choice):
            spec = _fallback_form(choice)
            late = True
        elif spec is None or spec is FALLTHROUGH:
            return bad(data, offset, pos, address, mode, prefixes, consumed)
    else:
        spec = choice.plain
        if spec is None:
            return bad(data, offset, pos, address, mode, prefixes,
                        consumed if not vex else nobad)

    if spec.mod_ignored:
        modrm |= 0xC0
    if modrm >= 0:
        if (spec.needs_mem and modrm >= 0xC0) or (spec.needs_reg and modrm < 0xC0):
            if spec.badop and bad is not _bad_sib_missing:
                if late:            # objdump prints the operand as "(bad)", then rejects
                    return _bad(data, offset, opcode_end, address, mode, prefixes, -2)
                return _badop(data, offset, address, mode, prefixes, consumed, spec, modrm,
                              rex, osz_i, end, vvvv, vl,
                              evex and (evex, ebit and modrm >= 0xC0 and rc + 1, rhi, vbad,
                                        ebit))
            return bad(data, offset, pos, address, mode, prefixes,
                        consumed if not vex else nobad)
        pos += 1
    shape = pos + lookahead     # bytes that fix the length: prefixes, opcode, ModRM (+SIB)

    # ---- operand and address size (SDM §2.2.1.2, Table 2-4) ----
    rex_used = 0
    reg_form = modrm >= 0xC0 or not spec.osz_reg_only
    if vex:
        # VEX.W selects W-named forms in every mode; general registers stay 32-bit outside
        # 64-bit mode
        osz = 64 if rex & 8 and spec.uses_w and (mode == 64 or "gpr" not in spec.classes) \
            else 32
        if mode == 16 and osz == 32 and not rex & 8:
            osz = 32
        asz = (32 if asz_i >= 0 else 64) if mode == 64 else (
            (16 if asz_i >= 0 else 32) if mode == 32 else (32 if asz_i >= 0 else 16))
        rex_used = rex & 0xF
    elif mode == 64:
        if rex & 8 and spec.uses_w and reg_form:
            osz = 64
            rex_used = 8
        elif rex & 8 and spec.d64:      # REX.W beats 66 for near branches, stack ops
            osz = 64
        elif rex & 8 and spec.rexw_z:   # ... and makes z-sized operands 32-bit (objdump:
            osz = 32                    # the 66 prints as data16, REX.W as unused)
            osz_i = -1
        elif osz_i >= 0:
            osz = 16
        else:
            osz = 64 if spec.d64 else 32
        asz = 32 if asz_i >= 0 and not spec.noa16 else 64   # MPX: 67 ignored (objdump)
    elif mode == 32:
        osz = 16 if osz_i >= 0 else 32
        asz = 16 if asz_i >= 0 else 32
    else:
        osz = 32 if osz_i >= 0 else 16
        asz = 32 if asz_i >= 0 else 16
    osi = _OSI[osz]
    si = osi + 3 * vl
    seg = None
    seg_used = False
    if seg_i >= 0:
        s = _SEG_PREFIX[prefixes[seg_i]]
        if spec.notrack and s == 3 and not (mode == 64 and osz_i >= 0):
            seg_i = -1              # 3E on an indirect branch is NOTRACK (CET)
        elif mode != 64 or s >= 4:
            seg = SEG[s].name
        elif fsgs:                  # 64-bit: CS/DS/ES/SS do not override an FS/GS
            seg = SEG[_SEG_PREFIX[fsgs]].name

    # ---- memory operand from ModRM/SIB/displacement ----
    mem = None
    rex_byte_reg = False
    lock_cr8 = False
    if spec.needs_sib and 0 <= modrm < 0xC0 and (asz == 16 or modrm & 7 != 4):
        pass        # VSIB/AMX need a SIB byte: objdump prints "(bad)" and reads no more
    elif spec.noa16 and asz == 16 and 0 <= modrm < 0xC0:
        pass        # MPX has no 16-bit addressing: objdump's "(bad)", no displacement read
    elif modrm >= 0 and modrm < 0xC0 and spec.has_mem_op:
        mod = modrm >> 6
        rm = modrm & 7
        base = index = None
        scale = 1
        disp = 0
        disp_size = 0
        rip = False
        if asz == 16:
            if mod == 0 and rm == 6:
                disp = _read(data, pos, 2, end)
                disp_size = 2
                pos += 2
            else:
                base, index = ADDR16[rm]
        else:
            regs = GPR[8] if asz == 64 else GPR[4]
            if rm == 4:
                sib = data[pos]
                if pos >= end:
                    raise _Truncated
                pos += 1
                shape = pos
                scale = 1 << (sib >> 6)
                idx = ((sib >> 3) & 7) | ((rex & 2) << 2)
                if rex & 2:
                    rex_used |= 2
                if spec.vsib is not None:           # VSIB: a vector index register
                    index = BAD_INDEX if vbad else _VEC[spec.vsib[si]][
                        idx | (vvvv & 0x10 if evex is not None and not spec.uses_vvvv else 0)]
                elif idx != 4:
                    index = regs[idx]
                elif scale != 1 or (sib & 7) != 4 and ((sib & 7) != 5 or mod != 0
                                                       or asz == 32 and mode != 16):
                    index = _RIZ[asz]       # objdump shows an explicit "no index" SIB
                bnum = sib & 7
                if bnum == 5 and mod == 0:
                    disp_size = 4
                    rex_used |= rex & 1
                    if index is EIZ and mode == 64:
                        index = EIZ_ABSOLUTE
                else:
                    base = regs[bnum | ((rex & 1) << 3)]
                    if rex & 1:
                        rex_used |= 1
            elif rm == 5 and mod == 0:
                disp_size = 4
                if mode == 64:
                    rip = True
                    rex_used |= rex & 1
            else:
                base = regs[rm | ((rex & 1) << 3)]
                if rex & 1:
                    rex_used |= 1
            if disp_size == 4:
                disp = _read(data, pos, 4, end)
                pos += 4
                if disp & 0x80000000:
                    disp -= 1 << 32
        if mod == 1:
            disp = _read(data, pos, 1, end)
            if disp & 0x80:
                disp -= 0x100
            disp_size = 1
            pos += 1
        elif mod == 2:
            n = 2 if asz == 16 else 4
            disp = _read(data, pos, n, end)
            if disp >= 1 << (8 * n - 1):
                disp -= 1 << (8 * n)
            disp_size = n
            pos += n
        mem = Mem(0, seg or ("ds" if rip else default_segment(base)), base, index, scale, disp,
                  disp_size, asz, True if rip else None, False, seg is not None)
        seg_used = seg is not None
        disp_at = pos - offset - disp_size
        disp_signed = not (asz == 16 and mod == 0)
        if rip and spec.norip:
            mem = None              # MPX: no RIP-relative form, objdump's "(bad)"

    # ---- operands in map order ----
    operands = []
    fields = []         # (kind, operand index, byte offset, size, how): values from bytes
    rel = None
    str_op = False
    imm_list = spec.imm_list
    no_plan = imm_list is not None
    for op in spec.ops:
        k = op[0]
        if k == K_RM:
            if modrm >= 0xC0:
                num = (modrm & 7) | ((rex & 1) << 3)
                cls = op[1]
                if cls == C_GPR:
                    size = op[2][si] or asz >> 3        # "as": the address size
                    if size == 1 and rex and 4 <= num < 8:
                        rex_byte_reg = True
                    operands.append(_gpr(size, num, rex))
                elif cls == C_XMM:
                    operands.append(_VEC[op[2][si]][num | xhi])
                else:
                    regs = _CLASS_REGS[cls]
                    operands.append(regs[num & (len(regs) - 1)])    # k8+, bnd4+: (bad)
                if rex & 1 and cls != C_MMX:    # objdump: an mm register ignores REX.B
                    rex_used |= 1
            elif mem is None:       # VSIB without SIB, MPX rip (with EVEX.b: unsized)
                operands.append(BadMemory(0 if evex is not None and ebit else op[3][si], seg))
                seg_used = seg is not None
            else:
                m = mem
                m.size = op[3][si]
                scale_n = 1
                if evex is not None:
                    if evex[2] < 0:     # EVEX.b on a form without broadcast: unsized
                        m.size = 0
                    elif evex[2]:
                        m.size = evex[2]
                        evex[2] = bcst_n or (op[3][si] // evex[2])    # {1toN}
                    if m.disp_size == 1:        # compressed disp8*N ({bad}: unsized)
                        scale_n = spec.disp8_n or (m.size << w if m.size == 2 and evex[2] > 0
                                                   else m.size) or op[3][si]   # FP16 by W
                        m.disp *= scale_n
                if m.disp_size:
                    fields.append((F_DISP, len(operands), disp_at, m.disp_size,
                                   scale_n if disp_signed else 0))
                operands.append(m)
        elif k == K_REG:
            num = ((modrm >> 3) & 7)
            cls = op[1]
            if cls == C_GPR:
                num |= (rex & 4) << 1
                size = op[2][si] or asz >> 3        # "as": the address size
                if size == 1 and rex and 4 <= num < 8:
                    rex_byte_reg = True
                operands.append(BAD_OPERAND if rhi else _gpr(size, num, rex))  # EVEX.R' set
                if rex & 4:
                    rex_used |= 4
            elif cls == C_SEG:
                operands.append(SEG[num])
            elif cls == C_MMX:
                operands.append(MMX[num])
            elif cls == C_XMM:
                num |= ((rex & 4) << 1) | rhi
                if rex & 4:
                    rex_used |= 4
                operands.append(_VEC[op[2][si]][num])
            elif cls == C_K:
                operands.append(KREG[num | (rex & 4) << 1 | rhi])      # k8+: (bad)
            else:
                num |= (rex & 4) << 1
                if rex & 4:
                    rex_used |= 4
                if cls == C_CR and lock_i >= 0 and mode != 64:
                    num |= 8            # AMD: LOCK MOV CRn is CR(n+8) outside 64-bit mode
                    lock_cr8 = True
                operands.append(_CLASS_REGS[cls][num])
        elif k == K_IMM:
            n = op[1][si]
            value = _read(data, pos, n, end)
            pos += n
            fields.append((F_IMM, len(operands), pos - n - offset, n,
                           osz >> 3 if op[2] == 1 else 8 if op[2] == 2 and osz == 64 else 0))
            if spec.imm_opcode:     # 3DNow!: the byte after the operands is an opcode
                if value < len(imm_list) and imm_list[value] != "-":
                    continue
                if spec.badop:      # 3DNow!: an unknown suffix is objdump's BadOp, after
                    used = (consumed,)  # the operands used a segment and address size
                    if mem is not None:
                        used += (seg_i if seg_used else -1,
                                 -1 if _addr32_shown(mem, mode) else asz_i)
                    if rex_i >= 0 and rex_i == len(prefixes) - 1 and \
                            0 < prefixes[rex_i] & 0xF == rex_used:
                        used += (rex_i,)    # ... and the REX bits of its address
                    bad = _bad(data, offset, offset + len(prefixes) + 1, address, mode,
                               prefixes, used)
                    if mem is not None and mem.target is not None:
                        bad.reloc, bad.reloc_mem = 0, True      # objdump still comments
                        bad.target = (address + bad.length + mem.disp) & ADDRESS_MASK[mode]
                    return bad
                operands.append(Imm(value, n))
                continue
            if op[2] == 1:       # Ibs: sign-extend to the operand size
                size = osz >> 3
                if value & 0x80:
                    value = (value - 0x100) & ((1 << (8 * size)) - 1)
                operands.append(Imm(value, size))
            elif op[2] == 2 and osz == 64:
                if value & 0x80000000:
                    value |= 0xFFFFFFFF00000000
                operands.append(Imm(value, 8))
            else:
                operands.append(Imm(value, n))
        elif k == K_ACC:
            size = op[2][si] if op[2] is not None else asz >> 3
            operands.append(_gpr(size, op[1], rex))
        elif k == K_Z:
            num = (b & 7) | ((rex & 1) << 3)
            size = op[1][si]
            if size == 1 and rex and 4 <= num < 8:
                rex_byte_reg = True
            if rex & 1:
                rex_used |= 1
            operands.append(_gpr(size, num, rex))
        elif k == K_REL:
            n = op[1][si]
            disp = _read(data, pos, n, end)
            pos += n
            if disp >= 1 << (8 * n - 1) and not (n == 2 and mode == 16):
                disp -= 1 << (8 * n)    # (objdump zero-extends rel16 in 16-bit code)
            fields.append((F_REL, len(operands), pos - n - offset, n, 0))
            rel = Rel(disp)
            operands.append(rel)
        elif k == K_ONE:
            operands.append(SHIFT_ONE)
        elif k == K_FIXED:
            if op[1] == "seg":
                operands.append(SEG[op[2]])
            elif op[1] == "port":
                operands.append(PORT_DX)
            else:
                operands.append(XMM[0])
        elif k == K_STI:
            operands.append(ST[1 + (modrm & 7)])
        elif k == K_ST:
            operands.append(ST[0])
        elif k == K_MOFFS:
            n = asz >> 3
            disp = _read(data, pos, n, end)
            pos += n
            fields.append((F_MOFFS, len(operands), pos - n - offset, n, 0))
            m = Mem(op[1][si], seg or "ds", None, None, 1, disp, n, asz, moffs=True,
                    override=seg is not None)
            seg_used = seg is not None
            operands.append(m)
        elif k == K_STR_X or k == K_STR_Y:
            str_op = True
            regs = GPR[asz >> 3]
            if k == K_STR_X:
                s = seg if seg is not None else "ds"
                seg_used = seg_i >= 0
            else:
                s = "es"
            operands.append(Mem(op[1][si], s, regs[op[2]], None, 1, 0, 0, asz,
                                override=k == K_STR_X and seg is not None, implicit=True))
        elif k == K_FAR:
            n = 2 if osz == 16 else 4
            off = _read(data, pos, n, end)
            sel = _read(data, pos + n, 2, end)
            fields.append((F_FAR, len(operands), pos - offset, n, 0))
            pos += n + 2
            operands.append(Far(sel, off, n))
        elif k == K_VVVV:
            cls = op[1]
            if cls == C_XMM:
                operands.append(BAD_OPERAND if vbad else _VEC[op[2][si]][vvvv])
            elif cls == C_GPR:              # objdump: no general register with VEX.L=1
                operands.append(BAD_OPERAND if vl else GPR[op[2][si]][vvvv])
            else:
                regs = _CLASS_REGS[cls]
                operands.append(regs[vvvv & (len(regs) - 1)])
        elif k == K_IS4:
            no_plan = True
            is4 = _read(data, pos, 1, end)
            pos += 1
            operands.append(_VEC[op[2][si]][(is4 >> 4) & (15 if mode == 64 else 7)])
        elif k == K_IMM4:
            operands.append(Imm(data[pos - 1] & 0xF, 1))
        elif k == K_FLAGS:
            pass
    if spec.distinct and (operands[0].num == vvvv or any(
            type(o) is Reg and o.num == operands[0].num for o in operands[1:])):
        operands[0] = BAD_OPERAND   # objdump: the destination must differ from the sources
        if evex[2] == -1 and w:     # ... and the scalar one did not stop EVEX.b's {1toN}
            evex[2] = -(2 << vl)
    length = pos - offset
    if rel is not None:
        if osz == 16 and spec.rel_z and mode != 16:     # rel16 via 66: IP wraps at 64K
            rel.target = (address + length + rel.target) & 0xFFFF
        elif osz == 16 and spec.rel_z:      # objdump: wrap within the next insn's 64K
            rel.target = ((address + length + rel.target) & 0xFFFF) | (
                (address + length) & ~0xFFFF)
        else:
            rel.target = (address + length + rel.target) & ADDRESS_MASK[mode]
    if mem is not None and mem.target is not None:
        mem.target = (address + length + mem.disp) & ADDRESS_MASK[mode]
        mem.base = RIP if asz == 64 else EIP

    # ---- mnemonic ----
    names = spec.names
    att = spec.att_names
    if spec.asz_names:
        i = _OSI[asz]
        name, att_name = names[i], att[i]
    else:
        name, att_name = names[osi], att[osi]
    if vex and spec.vex_w is not None and spec.vex_w != rex >> 3 & 1 and spec.wbad >= 0:
        name = _bad_letter(name, spec.wbad)     # EVEX.W of the other form: objdump marks
        att_name = _bad_letter(att_name, spec.wbad)     # one letter {bad}
    if fwait_i >= 0:            # FWAIT + FNSTSW: FSTSW (SDM: "FSTSW ... 9B DD /7"); the
        consumed2 = fwait_i     # 9B is a consumed prefix (`Instruction.wait`)
    else:
        consumed2 = -1
    op = spec.op_ids[_OSI[asz] if spec.asz_names else osi]
    imm_template = None
    if imm_list is not None:
        value = data[pos - 1]
        if spec.imm_opcode and value < len(imm_list) and imm_list[value] != "-":
            name = name.replace("{}", imm_list[value])
            att_name = att_name.replace("{}", imm_list[value])
            op = spec.imm_op_ids[value]
        else:               # the SDM's name; objdump names the predicate (imm_template)
            imm_template = (name, att_name)
            name = name.replace("{}", spec.imm_default)
            att_name = att_name.replace("{}", spec.imm_default)

    # ---- which prefixes this instruction consumed (the rest print as words) ----
    unused = []
    asz_used = mem is not None or str_op or spec.uses_asz or (spec.asz_names and not spec.moffs)
    if mem is not None and _addr32_shown(mem, mode):
        asz_used = False
    elif spec.noa16 and mode == 64:
        asz_used = False        # MPX addresses are 64-bit: a 67 prints as addr32
    for i, p in enumerate(prefixes):
        if i == consumed or i == consumed2 or (p == 0x9B and consumed2 >= 0):
            continue
        if i == rex_i and i == len(prefixes) - 1 and not vex:
            if (p & 0xF) != rex_used or ((p & 0xF) == 0 and not rex_byte_reg):
                unused.append(p)
            continue
        if i == lock_i and lock_cr8:
            continue
        if i == seg_i and seg_used:
            continue
        if i == osz_i and (reg_form and spec.uses_66 and osz != 64 or
                           modrm >= 0xC0 and "movsxd" in spec.flags):
            continue                # (objdump's MOVSXD_Fixup: with REX.W, in register form)
        if i == asz_i and asz_used:
            continue
        unused.append(p)
    if length > MAX_LENGTH:     # SDM §2.3.11: at most 15 bytes; objdump's (bad) at 15
        return Decoded(address, MAX_LENGTH, bytes(data[offset:offset + MAX_LENGTH]), "(bad)",
                       "(bad)", (), tuple(prefixes), tuple(unused), mode, mode, None, mode,
                       "bad")
    if late:
        return _bad(data, offset, opcode_end, address, mode, prefixes, -2)
    insn = Decoded(address, length, bytes(data[offset:pos]), name, att_name,
                   tuple(operands), tuple(prefixes), tuple(unused), osz, asz, spec, mode)
    insn.op = op
    insn.imm_template = imm_template
    if rel is not None:
        insn.reloc = operands.index(rel)
        insn.target = rel.target
    elif mem is not None and mem.target is not None and mem in operands:
        insn.reloc = operands.index(mem)
        insn.target = mem.target
        insn.reloc_mem = True
    insn.shape = shape - offset
    if not no_plan and insn.shape + sum(f[3] + (2 if f[0] == F_FAR else 0)
                                        for f in fields) < length:
        no_plan = True      # bytes no field holds (a displacement read for a "(bad)")
    insn.plan = None if no_plan else tuple(fields)
    if spec.vex_pseudo and evex is None and vex:
        insn.pseudo_prefix = "{vex}"
    if evex is not None:
        if spec.evex_pseudo[osi] and not (evex[0] or evex[2] or evex[3] or vl == 2 or vbad
                                          or vvvv & 0x10) and \
                not any(type(o) is Reg and o.num >= 16 and o.cls in ("xmm", "ymm")
                        for o in operands):
            insn.pseudo_prefix = "{evex}"
        insn.evex = tuple(evex)
    return insn


_RIZ = {64: RIZ, 32: EIZ}


def _addr32_shown(mem: Mem, mode: int) -> bool:
    """objdump: a 32-bit displacement-only address in 16-bit code still prints addr32."""
    return mode == 16 and mem.base is None and (mem.index is None or mem.index is EIZ)
