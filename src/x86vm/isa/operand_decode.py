"""The decoder's later phases: sizes, ModRM/SIB/displacement, immediates, operands, result.

decoder.py reads the prefixes, the VEX/XOP/EVEX prefix and the opcode, and selects the map
form; its `decode_uncached` then runs these phases on the same `Decoding` record:

4. `decode_sizes`: operand and address size (SDM §2.2.1.2, Table 2-4; VEX.W), the segment
   override in force (§3.7.4.1; 64-bit mode keeps only FS/GS);
5. `decode_address`: the memory operand of ModRM/SIB/displacement (§2.1.5, Tables 2-1..2-3; EVEX
   disp8*N is applied with the operand, §2.7.5);
6. `decode_immediates`: immediates, relative offsets, moffs, far pointers, the /is4 byte
   (§2.1.4: they follow the displacement), in map order;
7. `decode_operands`: the operand objects in map (Intel) order;
8. `build_result`: the mnemonic, the prefixes the instruction used (objdump prints the others
   as words), and the `Decoded` with what the memo needs (`shape`, `plan`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .badforms import _bad, _bad_letter
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
    GPR8_LEGACY,
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
)
from .readers import MAX_LENGTH, VEC, Truncated, gpr, read
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
    K_ACC,
    K_FAR,
    K_FIXED,
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
    SFX_NODEFAULT,
    Spec,
)

if TYPE_CHECKING:
    from .decoder import Decoding

_CLASS_REGS = {C_SEG: SEG, C_CR: CR, C_DR: DR, C_MMX: MMX, C_XMM: XMM, C_K: KREG, C_TR: TR,
               C_BND: BND, C_TMM: TMM}
_SEG_PREFIX = {0x26: 0, 0x2E: 1, 0x36: 2, 0x3E: 3, 0x64: 4, 0x65: 5}
_RIZ = {64: RIZ, 32: EIZ}
_from_bytes = int.from_bytes
_new = object.__new__


# ---- phase 4: sizes and segment ----

def decode_sizes(d: Decoding, spec: Spec) -> None:
    mode, rex, osz_i, asz_i, vex = d.mode, d.rex, d.osz_i, d.asz_i, d.vex
    if d.dflip:             # other default sizes (modes.py): as if 66/67 were toggled
        osz_i = -1 if osz_i >= 0 else 0
    if d.aflip:
        asz_i = -1 if asz_i >= 0 else 0
    rex_used = 0
    reg_form = d.reg_form = d.modrm >= 0xC0 or not spec.osz_reg_only
    if vex:
        # VEX.W selects W-named forms in every mode; general registers stay 32-bit outside
        # 64-bit mode
        osz = 64 if rex & 8 and spec.uses_w and (mode == 64 or "gpr" not in spec.classes) \
            else 32
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
            d.osz_i = -1
        elif osz_i >= 0:
            osz = 16
        else:
            osz = 64 if spec.d64 else 32
        if d.intel64 and ("near64" in spec.flags or rex & 8 and "farw" in spec.flags):
            osz = 64    # Intel64: near branches ignore 66, REX.W far pointers are m16:64
            if rex & 8 and "farw" in spec.flags:
                rex_used = 8
        elif d.dflip and osz == 64 and d.osz_i >= 0 and not rex & 8 and spec.d64 and (
                spec.rel_z or spec.sfx == SFX_NODEFAULT and not spec.indirect
                and not _size_shown(d, spec)):
            osz = 32    # -M data16 and 66: objdump's near branch takes rel32 ("calll"),
                        # pushf/leave/enter print "l" and use the 66
        elif d.dflip and osz == 16 and d.osz_i < 0 and "f64" in spec.flags and \
                not spec.branch:
            osz = 64    # -M data16 alone: vmread/vmwrite & co. stay 64-bit
        asz = 32 if asz_i >= 0 and not spec.noa16 else 64   # MPX: 67 ignored (objdump)
        if d.aflip and spec.moffs:      # objdump: a moffs is 64-bit unless a 67 is there
            asz = 32 if d.asz_i >= 0 else 64
    elif mode == 32:
        osz = 16 if osz_i >= 0 else 32
        asz = 16 if asz_i >= 0 else 32
    else:
        osz = 32 if osz_i >= 0 else 16
        asz = 32 if asz_i >= 0 else 16
    osi = osz >> 5                      # OSI[osz]: 16, 32, 64 -> 0, 1, 2
    d.osz, d.asz, d.osi, d.rex_used = osz, asz, osi, rex_used
    d.si = osi + 3 * d.vl if vex else osi
    d.seg_used = False
    if d.seg_i < 0:
        d.seg = None
        return
    seg = None
    s = _SEG_PREFIX[d.prefixes[d.seg_i]]
    if spec.notrack and (s == 3 or 0x3E in d.prefixes) and not (mode == 64 and d.osz_i >= 0):
        d.seg_i = -1            # 3E on an indirect branch is NOTRACK (CET); objdump: any 3E,
                                # the last segment prefix prints "notrack", no override
    elif mode != 64 or s >= 4:
        seg = SEG[s].name
    elif d.fsgs:                # 64-bit: CS/DS/ES/SS do not override an FS/GS
        seg = SEG[_SEG_PREFIX[d.fsgs]].name
    d.seg = seg


def _size_shown(d: Decoding, spec: Spec) -> bool:
    """A general register or memory operand of the operand size is among the operands
    (push %rax, push (%rsi): objdump sizes them 64-bit; its AT&T text names the 66 by a
    suffix, att.py)."""
    return any(op[0] == K_Z or op[0] == K_RM and op[1] == C_GPR for op in spec.ops)


# ---- phase 5: ModRM, SIB, displacement ----

def decode_address(d: Decoding, spec: Spec) -> None:
    """The memory operand of a ModRM byte with mod != 11 (decode_uncached calls this only
    then, for a form with a memory operand; its size and EVEX scaling come with the
    operand)."""
    modrm, asz, mode = d.modrm, d.asz, d.mode
    if spec.needs_sib and (asz == 16 or modrm & 7 != 4) or spec.noa16 and asz == 16:
        d.mem = None    # VSIB/AMX need a SIB byte: objdump prints "(bad)" and reads no more;
        return          # MPX has no 16-bit addressing: its "(bad)", no displacement read
    data, pos, end, rex = d.data, d.pos, d.end, d.rex
    mod = modrm >> 6
    rm = modrm & 7
    base = index = None
    scale = 1
    disp = 0
    disp_size = 0
    rip = False
    rex_used = d.rex_used
    if asz == 16:
        if mod == 0 and rm == 6:
            disp = read(data, pos, 2, end)
            disp_size = 2
            pos += 2
        else:
            base, index = ADDR16[rm]
    else:
        regs = GPR[8] if asz == 64 else GPR[4]
        if rm == 4:
            sib = data[pos]
            if pos >= end:
                raise Truncated
            pos += 1
            d.shape = pos
            scale = 1 << (sib >> 6)
            idx = ((sib >> 3) & 7) | ((rex & 2) << 2)
            if rex & 2:
                rex_used |= 2
            if spec.vsib is not None:           # VSIB: a vector index register
                index = BAD_INDEX if d.vbad else VEC[spec.vsib[d.si]][
                    idx | (d.vvvv & 0x10 if d.evex is not None and not spec.uses_vvvv
                           else 0)]
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
            if pos + 4 > end:
                raise Truncated
            disp = _from_bytes(data[pos:pos + 4], "little", signed=True)
            pos += 4
    if mod == 1:
        disp = data[pos]        # (IndexError past the end: truncated)
        if disp & 0x80:
            disp -= 0x100
        disp_size = 1
        pos += 1
    elif mod == 2:
        n = 2 if asz == 16 else 4
        if pos + n > end:
            raise Truncated
        disp = _from_bytes(data[pos:pos + n], "little", signed=True)
        disp_size = n
        pos += n
    seg = d.seg
    mem = _new(Mem)             # Mem.__init__ inlined (the hot path; same fields)
    # (default_segment inlined: SS with an rBP/rSP base, else DS; RIP has no base)
    mem.segment = seg or ("ss" if base is not None and base.num in (4, 5) else "ds")
    mem.size = 0
    mem.base = base
    mem.index = index
    mem.scale = scale
    mem.disp = disp
    mem.disp_size = disp_size
    mem.addr_size = asz
    mem.target = True if rip else None
    mem.moffs = mem.implicit = False
    mem.override = seg is not None
    d.seg_used = seg is not None
    d.disp_at = pos - d.offset - disp_size
    d.disp_signed = not (asz == 16 and mod == 0)
    d.rex_used = rex_used
    d.pos = pos
    if not (rip and spec.norip):
        d.mem = mem
    else:                       # MPX: no RIP-relative form, objdump's "(bad)" (and the
        d.mem = None            # displacement it read is in no operand)
        d.unheld = True


# ---- phase 6: immediates ----

def decode_immediates(d: Decoding, spec: Spec) -> None:
    """The value fields after the displacement, in map order: (value, byte offset, size)."""
    data, pos, end, si, offset = d.data, d.pos, d.end, d.si, d.offset
    values = []
    for op in spec.value_ops:
        k = op[0]
        if k == K_IMM or k == K_REL:
            n = op[1][si]
        elif k == K_MOFFS:
            n = d.asz >> 3
        elif k == K_FAR:                # offset, then the 16-bit selector
            n = 2 if d.osz == 16 else 4
            values.append((read(data, pos, n, end), pos - d.offset, n,
                           read(data, pos + n, 2, end)))    # (rare: the call is fine)
            pos += n + 2
            continue
        else:                           # the /is4 byte: a register in imm8[7:4]
            n = 1
        if pos + n > end:               # (readers.read inlined)
            raise Truncated
        values.append((_from_bytes(data[pos:pos + n], "little"), pos - offset, n, 0))
        pos += n
    d.values = values
    d.pos = pos


# ---- phase 7: operands ----

def decode_operands(d: Decoding, spec: Spec):
    """The operands in map (Intel) order, and the fields a family reads its values from;
    a 3DNow! suffix naming no instruction is objdump's BadOp (a result)."""
    if not spec.ops:
        d.fields = ()
        d.rex_byte_reg = False
        return []
    modrm, rex, si, asz, osz, mode = d.modrm, d.rex, d.si, d.asz, d.osz, d.mode
    evex, mem, seg = d.evex, d.mem, d.seg
    if d.vex:
        rhi, xhi = d.rhi, d.xhi     # EVEX.R' and EVEX.X: register bit 4
    else:
        rhi = xhi = 0
    rex_used = d.rex_used
    rex_byte_reg = False
    values = iter(d.values)
    is4 = 0
    operands: list = []
    fields: list = []       # (kind, operand index, byte offset, size, how): values from bytes
    d.fields = fields
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
                    operands.append(GPR8_LEGACY[num] if size == 1 and not rex  # (gpr())
                                    else GPR[size][num])
                elif cls == C_XMM:
                    operands.append(VEC[op[2][si]][num | xhi])
                else:
                    regs = _CLASS_REGS[cls]
                    operands.append(regs[num & (len(regs) - 1)])    # k8+, bnd4+: (bad)
                if rex & 1 and cls != C_MMX:    # objdump: an mm register ignores REX.B
                    rex_used |= 1
            elif mem is None:       # VSIB without SIB, MPX rip (with EVEX.b: unsized)
                operands.append(BadMemory(0 if evex is not None and d.ebit else op[3][si],
                                          seg))
                d.seg_used = seg is not None
            else:
                m = mem
                m.size = op[3][si]
                scale_n = 1
                if evex is not None:
                    if evex[2] < 0:     # EVEX.b on a form without broadcast: unsized
                        m.size = 0
                    elif evex[2]:
                        m.size = evex[2]
                        evex[2] = d.bcst_n or (op[3][si] // evex[2])    # {1toN}
                    if m.disp_size == 1:        # compressed disp8*N ({bad}: unsized)
                        scale_n = spec.disp8_n or (m.size << d.w if m.size == 2 and
                                                   evex[2] > 0 else m.size) or op[3][si]
                        m.disp *= scale_n       # (FP16: by EVEX.W)
                if m.disp_size:
                    fields.append((F_DISP, len(operands), d.disp_at, m.disp_size,
                                   scale_n if d.disp_signed else 0))
                operands.append(m)
        elif k == K_REG:
            num = ((modrm >> 3) & 7)
            cls = op[1]
            if cls == C_GPR:
                num |= (rex & 4) << 1
                size = op[2][si] or asz >> 3        # "as": the address size
                if size == 1 and rex and 4 <= num < 8:
                    rex_byte_reg = True
                operands.append(BAD_OPERAND if rhi else GPR8_LEGACY[num]      # EVEX.R'
                                if size == 1 and not rex else GPR[size][num])
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
                operands.append(VEC[op[2][si]][num])
            elif cls == C_K:
                operands.append(KREG[num | (rex & 4) << 1 | rhi])      # k8+: (bad)
            else:
                num |= (rex & 4) << 1
                if rex & 4:
                    rex_used |= 4
                if cls == C_CR and d.lock_i >= 0 and mode != 64:
                    num |= 8            # AMD: LOCK MOV CRn is CR(n+8) outside 64-bit mode
                    d.lock_cr8 = True
                operands.append(_CLASS_REGS[cls][num])
        elif k == K_IMM:
            value, at, n, _ = next(values)
            wide = osz == 64 or d.dflip and osz == 32 and spec.d64 and mode == 64
            # (-M data16 + 66: objdump's "pushl" shows its immediate sign-extended to 64)
            fields.append((F_IMM, len(operands), at, n,
                           (8 if wide else osz >> 3) if op[2] == 1 else 8 if op[2] == 2
                           and wide else 0))
            if spec.imm_opcode:     # 3DNow!: the byte after the operands is an opcode
                imm_list = spec.imm_list
                if value < len(imm_list) and imm_list[value] != "-":
                    continue
                if spec.badop:
                    d.rex_used = rex_used
                    return _unknown_suffix(d)
                operands.append(Imm(value, n))
                continue
            if op[2] == 1:       # Ibs: sign-extend to the operand size
                size = 8 if wide else osz >> 3
                if value & 0x80:
                    value = (value - 0x100) & ((1 << (8 * size)) - 1)
                operands.append(Imm(value, size))
            elif op[2] == 2 and wide:
                if value & 0x80000000:
                    value |= 0xFFFFFFFF00000000
                operands.append(Imm(value, 8))
            else:
                operands.append(Imm(value, n))
        elif k == K_ACC:
            size = op[2][si] if op[2] is not None else asz >> 3
            operands.append(gpr(size, op[1], rex))
        elif k == K_Z:
            num = (d.opcode & 7) | ((rex & 1) << 3)
            size = op[1][si]
            if size == 1 and rex and 4 <= num < 8:
                rex_byte_reg = True
            if rex & 1:
                rex_used |= 1
            operands.append(GPR8_LEGACY[num] if size == 1 and not rex else GPR[size][num])
        elif k == K_REL:
            disp, at, n, _ = next(values)
            if disp >= 1 << (8 * n - 1) and not (n == 2 and mode == 16):
                disp -= 1 << (8 * n)    # (objdump zero-extends rel16 in 16-bit code)
            fields.append((F_REL, len(operands), at, n, 0))
            d.rel = Rel(disp)           # (made absolute in build_result)
            operands.append(d.rel)
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
            disp, at, n, _ = next(values)
            fields.append((F_MOFFS, len(operands), at, n, 0))
            operands.append(Mem(op[1][si], seg or "ds", None, None, 1, disp, n, asz,
                                moffs=True, override=seg is not None))
            d.seg_used = seg is not None
        elif k == K_STR_X or k == K_STR_Y:
            regs = GPR[asz >> 3]
            if k == K_STR_X:
                s = seg if seg is not None else "ds"
                d.seg_used = d.seg_i >= 0
            else:
                s = "es"
            operands.append(Mem(op[1][si], s, regs[op[2]], None, 1, 0, 0, asz,
                                override=k == K_STR_X and seg is not None, implicit=True))
        elif k == K_FAR:
            off, at, n, sel = next(values)
            fields.append((F_FAR, len(operands), at, n, 0))
            operands.append(Far(sel, off, n))
        elif k == K_VVVV:
            cls = op[1]
            if cls == C_XMM:
                operands.append(BAD_OPERAND if d.vbad else VEC[op[2][si]][d.vvvv])
            elif cls == C_GPR:              # objdump: no general register with VEX.L=1
                operands.append(BAD_OPERAND if d.vl else GPR[op[2][si]][d.vvvv])
            else:
                regs = _CLASS_REGS[cls]
                operands.append(regs[d.vvvv & (len(regs) - 1)])
        elif k == K_IS4:
            is4 = next(values)[0]
            operands.append(VEC[op[2][si]][(is4 >> 4) & (15 if mode == 64 else 7)])
        elif k == K_IMM4:
            operands.append(Imm(is4 & 0xF, 1))
    d.rex_used = rex_used
    d.rex_byte_reg = rex_byte_reg
    return operands


def _unknown_suffix(d: Decoding) -> Decoded:
    """3DNow! with a suffix byte naming no instruction: objdump's BadOp, "(bad)" over the
    prefixes and 0F, without the prefixes (and REX bits) its operands already used; a
    RIP-relative operand still gets its "# address" comment."""
    prefixes, mem = d.prefixes, d.mem
    used = (d.consumed,)
    if mem is not None:
        used += (d.seg_i if d.seg_used else -1,
                 -1 if _addr32_shown(mem, d.mode) else d.asz_i)
    rex_i = d.rex_i
    if rex_i >= 0 and rex_i == len(prefixes) - 1 and 0 < prefixes[rex_i] & 0xF == d.rex_used:
        used += (rex_i,)
    bad = _bad(d.data, d.offset, d.offset + len(prefixes) + 1, d.address, d.mode, prefixes,
               used)
    if mem is not None and mem.target is not None:
        bad.reloc, bad.reloc_mem = 0, True
        bad.target = (d.address + bad.length + mem.disp) & ADDRESS_MASK[d.mode]
    return bad


# ---- phase 8: the result ----

def build_result(d: Decoding, spec: Spec, operands: list) -> Decoded:
    data, offset, address, mode = d.data, d.offset, d.address, d.mode
    prefixes, mem, evex, osz, asz, osi = d.prefixes, d.mem, d.evex, d.osz, d.asz, d.osi
    vex = d.vex
    if spec.distinct and (operands[0].num == d.vvvv or any(
            type(o) is Reg and o.num == operands[0].num for o in operands[1:])):
        operands[0] = BAD_OPERAND   # objdump: the destination must differ from the sources
        if evex[2] == -1 and d.w:   # ... and the scalar one did not stop EVEX.b's {1toN}
            evex[2] = -(2 << d.vl)
    if d.intel64 and (d.osz_i >= 0) != d.dflip and "movsxd" in spec.flags:
        source = operands[1]    # Intel64 (objdump -M intel64): 16-bit operand size (66,
                                # or none with -M data16): a word source
        if type(source) is Reg:
            operands[1] = GPR[2][source.num]
        else:
            source.size = 2
    pos = d.pos
    length = pos - offset
    rel = d.rel
    if rel is not None:
        if osz == 16 and spec.rel_z and d.osz_i >= 0:   # rel16 via 66: IP wraps at 64K
            rel.target = (address + length + rel.target) & 0xFFFF
        elif osz == 16 and spec.rel_z:      # objdump: wrap within the next insn's 64K
            rel.target = ((address + length + rel.target) & 0xFFFF) | (
                (address + length) & ~0xFFFF)
        else:
            rel.target = (address + length + rel.target) & ADDRESS_MASK[mode]
    if mem is not None and mem.target is not None:
        mem.target = (address + length + mem.disp) & ADDRESS_MASK[mode]
        mem.base = RIP if asz == 64 else EIP

    # mnemonic
    name, att_name, op = spec.naming[asz >> 5 if spec.asz_names else osi]  # (asz >> 5: OSI)
    if vex and spec.vex_w is not None and spec.vex_w != d.rex >> 3 & 1 and spec.wbad >= 0:
        name = _bad_letter(name, spec.wbad)     # EVEX.W of the other form: objdump marks
        att_name = _bad_letter(att_name, spec.wbad)     # one letter {bad}
    imm_template = None
    imm_list = spec.imm_list
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

    unused = _unused_prefixes(d, spec) if prefixes else ()
    if length > MAX_LENGTH:     # SDM §2.3.11: at most 15 bytes; objdump's (bad) at 15
        return Decoded.bad(address, bytes(data[offset:offset + MAX_LENGTH]), tuple(prefixes),
                           unused, mode)
    if d.late:
        return _bad(data, offset, d.opcode_end, address, mode, prefixes, -2)
    raw = data[offset:pos]
    if type(raw) is not bytes:
        raw = bytes(raw)
    # what the memo needs: the bytes that fix the length, and where the values sit (no
    # plan: an immediate names the mnemonic, an /is4 register, or bytes no field holds --
    # a displacement read for a "(bad)" operand)
    insn = _new(Decoded)        # Decoded.__init__ inlined (the hot path; same fields)
    insn.address = address
    insn.length = length
    insn.bytes = raw
    insn.mnemonic = name
    insn.att_mnemonic = att_name
    insn.operands = tuple(operands)
    insn.prefixes = tuple(prefixes) if prefixes else ()
    insn.unused_prefixes = unused
    insn.operand_size = osz
    insn.address_size = asz
    insn.spec = spec
    insn.mode = mode
    insn.kind = "insn"
    insn.evex = insn.pseudo_prefix = insn.reloc = insn.target = None
    insn.op = op
    insn.imm_template = imm_template
    insn.shape = d.shape - offset
    insn.plan = tuple(d.fields) if spec.plannable and not d.unheld else None
    insn.fields = insn.values = insn.readers = None
    insn.reloc_mem = False
    if rel is not None:
        insn.reloc = operands.index(rel)
        insn.target = rel.target
    elif mem is not None and mem.target is not None and mem in operands:
        insn.reloc = operands.index(mem)
        insn.target = mem.target
        insn.reloc_mem = True
    if not vex:
        return insn
    if spec.vex_pseudo and evex is None:
        insn.pseudo_prefix = "{vex}"
    if evex is not None:
        if spec.evex_pseudo[osi] and not (evex[0] or evex[2] or evex[3] or d.vl == 2 or
                                          d.vbad or d.vvvv & 0x10) and \
                not any(type(o) is Reg and o.num >= 16 and o.cls in ("xmm", "ymm")
                        for o in operands):
            insn.pseudo_prefix = "{evex}"
        insn.evex = tuple(evex)
    return insn


def _unused_prefixes(d: Decoding, spec: Spec) -> tuple:
    """The prefixes this instruction did not consume (objdump prints them as words)."""
    prefixes, mem, mode = d.prefixes, d.mem, d.mode
    consumed, fwait_i, rex_i, asz_i = d.consumed, d.fwait_i, d.rex_i, d.asz_i
    if rex_i == 0 and len(prefixes) == 1 and not d.vex:     # a REX alone (the common case)
        p = prefixes[0]
        return (p,) if (p & 0xF) != d.rex_used or (
            (p & 0xF) == 0 and not d.rex_byte_reg) else ()
    rep_shown = spec.prefix_ignored
    if rep_shown:
        consumed = -1
    asz_used = False            # (worked out only when there is a 67)
    if asz_i < 0 or mem is not None and _addr32_shown(mem, mode):
        pass
    elif spec.noa16 and mode == 64:
        pass                    # MPX addresses are 64-bit: a 67 prints as addr32
    else:
        asz_used = mem is not None or spec.string_op or spec.uses_asz or (
            spec.asz_names and not spec.moffs)
    unused = []
    last = len(prefixes) - 1
    for i, p in enumerate(prefixes):
        if i == consumed or fwait_i >= 0 and (i == fwait_i or p == 0x9B):
            continue            # (an FWAIT before an x87 form: `Instruction.wait`)
        if i == rex_i and i == last and not d.vex:
            if (p & 0xF) != d.rex_used or ((p & 0xF) == 0 and not d.rex_byte_reg):
                unused.append(p)
            continue
        if i == d.lock_i and d.lock_cr8:
            continue
        if i == d.seg_i and d.seg_used:
            continue
        if i == d.osz_i and not rep_shown and (d.reg_form and spec.uses_66 and d.osz != 64 or
                                              d.modrm >= 0xC0 and "movsxd" in spec.flags):
            continue            # (objdump's MOVSXD_Fixup: with REX.W, in register form)
        if i == asz_i and asz_used:
            continue
        unused.append(p)
    return tuple(unused) if unused else ()


def _addr32_shown(mem: Mem, mode: int) -> bool:
    """objdump: a 32-bit displacement-only address outside 64-bit code (a 67 in 16-bit code,
    or in 32-bit code with ``-M addr16``) still prints addr32; in 32-bit code a SIB
    without base or index uses it."""
    return mem.addr_size == 32 and mode != 64 and mem.base is None and (
        mem.index is None or mode == 16 and mem.index is EIZ)
