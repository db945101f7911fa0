"""Compile the parsed opcode map into the decoder's lookup tables (built once at import).

Each map becomes a 256-entry list of `Slot`s.  A slot says whether a ModRM byte follows and,
per ModRM value, which `Choice` applies (groups, mem/reg splits, x87 register forms).  A
choice picks a `Spec` by mandatory prefix (SDM Vol. 2 §2.1.2 / Table A-3 columns).  A `Spec`
is the precomputed decode plan of one instruction form: its operand plans, immediate layout
and attributes, so decoding does table lookups only.
"""

from __future__ import annotations

import functools
import os
import re

from .maploader import (
    ARCHITECTURE_FLAGS,
    EXECUTION_FLAGS,
    OBJDUMP_FLAGS,
    Entry,
    Form,
    MapError,
    OpcodeMap,
    parse_map,
)
from .ops import OpIds, make_op_enum, op_name

# operand plan kinds
K_RM, K_REG, K_Z, K_IMM, K_REL, K_MOFFS, K_FAR, K_STR_X, K_STR_Y, K_FIXED, K_ONE, K_SEGREG, \
    K_ACC, K_STI, K_ST, K_FLAGS, K_VVVV, K_IS4, K_IMM4 = range(19)

# register classes
C_GPR, C_SEG, C_CR, C_DR, C_MMX, C_XMM, C_ST, C_K, C_TR, C_BND, C_TMM = range(11)

#: operand size in bytes per operand-size mode (index 0, 1, 2 = 16-, 32-, 64-bit), SDM A.2.2;
#: vector sizes also by vector length: index + 3 * (0: 128, 1: 256, 2: 512 bits)
_SIZE3 = {
    "b": (1, 1, 1), "w": (2, 2, 2), "d": (4, 4, 4), "q": (8, 8, 8), "v": (2, 4, 8),
    "z": (2, 4, 4), "y": (4, 4, 8), "p": (4, 6, 6), "s": (0, 0, 0), "t": (10, 10, 10),
    "a": (4, 8, 8), "dq": (16, 16, 16), "x": (16, 16, 16), "ps": (16, 16, 16),
    "pd": (16, 16, 16), "ss": (4, 4, 4), "sd": (8, 8, 8), "sh": (2, 2, 2), "": (0, 0, 0),
    "x87env": (0, 0, 0), "x87state": (0, 0, 0), "bs": (1, 1, 1), "qq": (32, 32, 32),
    "kb": (1, 1, 1), "kw": (2, 2, 2), "kd": (4, 4, 4), "kq": (8, 8, 8),
    "vxd": (4, 4, 4), "vxq": (8, 8, 8), "vhq": (8, 8, 8),    # VSIB: element size
    "bnd": (16, 16, 16), "as": (0, 0, 0),      # MPX bound register; "as": address size
    "tmm": (0, 0, 0),                           # AMX tile register (1 KiB, never sized)
    "qo": (8, 8, 16),                           # cmpxchg8b/16b: 8 bytes, 16 with REX.W
}
_VECTOR = {"x": (16, 32, 64), "xh": (8, 16, 32), "xq": (4, 8, 16), "xe": (2, 4, 8),
           "xdup": (8, 32, 64)}
SIZE_BYTES = {k: v * 3 for k, v in _SIZE3.items()}
SIZE_BYTES.update({k: (a,) * 3 + (b,) * 3 + (c,) * 3 for k, (a, b, c) in _VECTOR.items()})
OSIZE_DEPENDENT = frozenset("v z p a".split())

_RM_CLASS = {"E": C_GPR, "M": None, "R": C_GPR, "Q": C_MMX, "N": C_MMX, "W": C_XMM,
             "U": C_XMM}
_REG_CLASS = {"T": C_TR, "K": C_K, "G": C_GPR, "P": C_MMX, "V": C_XMM, "S": C_SEG, "C": C_CR,
              "D": C_DR}
_FIXED_GPR = {"AL": (0, "b"), "CL": (1, "b"), "AX": (0, "w"), "rAX": (0, "v"),
              "eAX": (0, "z"), "EAX": (0, "d"), "ECX": (1, "d"), "EDX": (2, "d"),
              "EBX": (3, "d"), "aAX": (0, "")}       # aAX: accumulator of the address size
_SEGS = {"ES": 0, "CS": 1, "SS": 2, "DS": 3, "FS": 4, "GS": 5}

BRANCH_FLAGS = ("jmp", "jcc", "call", "ret", "loop")
SFX_NONE, SFX_NOREG, SFX_ALWAYS, SFX_RMMEM, SFX_NODEFAULT, SFX_LEGACY, SFX_XY, SFX_LONG, \
    SFX_DATA, SFX_XYZ, SFX_RMMEM64 = range(11)


W_EARLY, W_LATE, W_ANY = 0, 1, 2     # Spec.w_rule


def _flag_value(flags: frozenset[str], name: str) -> str | None:
    """The value of a ``name=value`` flag, or None."""
    return next((f[len(name):] for f in flags if f.startswith(name)), None)


class Spec:
    """Decode plan of one instruction form (one column of one map line)."""

    __slots__ = ("names", "att_names", "ops", "flags", "branch", "sfx", "d64", "i64", "o64",
                 "uses_w", "uses_66", "needs_mem", "needs_reg", "imm_list", "asz_names",
                 "line", "notrack", "bnd", "rep", "priv", "reads", "writes", "has_mem_op",
                 "size_ops", "indirect", "moffs", "fwait", "rel_z", "mod_ignored",
                 "osz_reg_only", "hle", "vex_l", "vex_w", "uses_vvvv", "bcst", "rounding",
                 "evex_pseudo", "badop", "imm_default", "uses_asz", "classes", "vex_pseudo",
                 "vsib", "disp8_n", "needs_sib", "norip", "noa16", "wbad", "w_rule",
                 "ptable", "bcst_vl", "nobcst", "bcst_q", "distinct", "rexw_z", "op_names",
                 "op_ids", "imm_opcode", "imm_op_names", "imm_op_ids", "architecture_flags",
                 "execution_flags", "objdump_flags", "lock", "register_sizes", "value_ops",
                 "string_op", "is4", "cpuid", "prefix_ignored", "plannable", "naming",
                 "suffix_macro", "intel_suffix_macro", "swap_s")

    def __init__(self, form: Form, lists: dict[str, list[str]]) -> None:
        f = form.flags
        self.line = form.line
        self.flags = f           # all of them; by vocabulary (maploader):
        self.architecture_flags = f & ARCHITECTURE_FLAGS
        self.execution_flags = f & EXECUTION_FLAGS
        self.objdump_flags = f & OBJDUMP_FLAGS
        self.lock = "lock" in f  # LOCK allowed (with a memory destination: SDM LOCK)
        # "vadds!s": objdump prints the letter after "!" as "{bad}" when EVEX.W is the other
        # one (its %XS/%XD/%XH templates), instead of rejecting the encoding
        self.wbad = re.sub(r"\{[^}]*\}", "{}", form.mnemonic).find("!")
        self.names = _names(form.mnemonic.replace("!", ""))
        self.att_names = _names((form.att_mnemonic or form.mnemonic).replace("!", ""))
        self.asz_names = "asz" in f
        placeholder = re.search(r"\{([^}]*)\}", form.mnemonic)
        self.imm_list = lists[placeholder.group(1)] if placeholder else None
        self.imm_default = ""
        if self.imm_list and self.imm_list[-1].startswith("*="):
            self.imm_default = self.imm_list[-1][2:]
            self.imm_list = self.imm_list[:-1]
        # the immediate byte is an opcode suffix (3DNow!: the whole mnemonic is a list),
        # else it stays an operand and names a predicate only in objdump's text
        self.imm_opcode = bool(re.fullmatch(r"\{[^}]*\}", form.mnemonic))
        self.op_names = tuple(op_name(n.replace("{}", self.imm_default))
                              for n in _names(form.mnemonic.replace("!", "")))
        self.imm_op_names = tuple(op_name(n) if n != "-" else "" for n in self.imm_list) \
            if self.imm_opcode else ()
        self.op_ids: tuple = (0, 0, 0)      # (Tables: by operand size, like `names`)
        # (Tables) (name, AT&T name, operation id) by size index: the decoder's one lookup
        self.naming: tuple = tuple(zip(self.names, self.att_names, self.op_ids, strict=True))
        self.imm_op_ids: tuple = ()
        self.ops = tuple(_compile_operand(op) for op in form.operands)
        # per operand (as decoded: "F" operands are not), a register's size in bytes by
        # size index (operand size 16/32/64, + 3 per vector length), else None
        # the decoder's immediates phase: the operands whose values follow the displacement
        self.value_ops = tuple(op for op in self.ops
                               if op[0] in (K_IMM, K_REL, K_MOFFS, K_FAR, K_IS4))
        self.string_op = any(op[0] in (K_STR_X, K_STR_Y) for op in self.ops)
        self.is4 = any(op[0] == K_IS4 for op in self.ops)
        # the memo may read its values from a family member's bytes (no immediate names the
        # mnemonic, no /is4 register)
        self.plannable = self.imm_list is None and not self.is4
        self.cpuid: tuple | None = None     # (Tables) the CPUID feature by operand size
        self.register_sizes = tuple(
            op[2] if op[0] in (K_REG, K_RM, K_VVVV, K_IS4) else None
            for op in self.ops if op[0] != K_FLAGS)
        self.branch = next((b for b in BRANCH_FLAGS if b in f), None)
        self.sfx = (SFX_NOREG if "sfx" in f else SFX_ALWAYS if "sfx!" in f
                    else SFX_RMMEM if "sfxm" in f else SFX_NODEFAULT if "sfxw" in f
                    else SFX_LEGACY if "sfx32" in f else SFX_XY if "sfxxy" in f
                    else SFX_XYZ if "sfxxyz" in f else SFX_RMMEM64 if "sfxm64" in f
                    else SFX_LONG if "sfxl" in f else SFX_DATA if "sfxC" in f
                    else SFX_NONE)
        # objdump -M suffix (its SUFFIX_ALWAYS): the size-letter macro of the form's template
        # in AT&T and in Intel syntax (i386-dis.c putop; None: no letter), and whether its
        # register form is the swapped encoding objdump marks ".s" (its *_swap_mode operands)
        self.suffix_macro = _flag_value(f, "suffix=")
        self.intel_suffix_macro = _flag_value(f, "intel-suffix=")
        self.swap_s = "swap-s" in f
        self.d64 = "d64" in f or "f64" in f
        self.i64 = "i64" in f
        self.o64 = "o64" in f
        sizes = [s for op in form.operands for s in _op_sizes(op)]
        self.uses_66 = (any(s in OSIZE_DEPENDENT for s in sizes) or "sfxw" in f or "sfx32" in f
                        or "sfxC" in f or ("~" in form.mnemonic and not self.asz_names
                                           and "rexw-name" not in f))
        self.uses_asz = any(op == "aAX" or op.endswith("as") for op in form.operands)
        self.classes = tuple(_op_class(op) for op in form.operands)
        self.uses_w = (not self.d64) and not (self.branch and "p" in sizes) and (
            any(s in ("v", "y") for s in sizes) or "rexw-name" in f or "sfxl" in f
            or "sfxw" in f or ("~" in form.mnemonic and not self.asz_names))
        # z-sized operands alone (ins/outs/in/out): REX.W makes them 32-bit and beats 66
        self.rexw_z = not self.uses_w and not self.d64 and "z" in sizes
        self.needs_mem = any(op[0] == K_RM and op[4] and not op[5] for op in self.ops)
        self.needs_reg = any(op[0] == K_RM and op[5] and not op[4] for op in self.ops) \
            and "mod-ignored" not in f
        self.has_mem_op = any(op[0] in (K_RM, K_STR_X, K_STR_Y) for op in self.ops)
        # operands whose register form makes the AT&T size suffix unnecessary
        self.size_ops = tuple(i for i, op in enumerate(self.ops)
                              if (op[0] in (K_RM, K_REG) and op[1] == C_GPR)
                              or op[0] == K_Z or (op[0] == K_ACC and not op[3]))
        self.indirect = self.branch in ("jmp", "call") and any(
            op[0] == K_RM for op in self.ops)
        self.moffs = any(op[0] == K_MOFFS for op in self.ops)
        self.rel_z = any(op[0] == K_REL and op[1] == SIZE_BYTES["z"] for op in self.ops)
        self.fwait = "fwait" in f
        # vector length: L0/L1/L2 exactly, L1+ = any but 128 bits (-1)
        self.vex_l = 0 if "L0" in f else 1 if "L1" in f else 2 if "L2" in f else \
            -1 if "L1+" in f else None
        self.vex_w = 0 if "W0" in f else 1 if "W1" in f else None
        # objdump and the other EVEX.W: rejects it before the operands (W_EARLY, its W
        # tables), after them (Wlate: its ps/pd "pX" forms), or ignores it (Wany)
        self.w_rule = W_LATE if "Wlate" in f else W_ANY if "Wany" in f else W_EARLY
        # objdump selects this 66 form by a prefix table: another pp is rejected before the
        # operands (else a 66-only form is rejected after them)
        self.ptable = "ptable" in f
        # a full-vector memory operand (objdump's x_mode: a source, or an Mx destination, not
        # a Wx store): objdump prints EVEX.b there as {1toN} by EVEX.W even when the form has
        # no broadcast
        self.bcst_vl = any(op == "Mx" or i > 0 and op == "Wx"
                           for i, op in enumerate(form.operands))
        self.nobcst = "nobcst" in f         # ... but with EVEX.W=0 {bad} (moves, expand)
        # other memory operands: EVEX.b with EVEX.W=1 prints {1toN} (AT&T) by the vector
        # length, except on objdump's quadword operands (q_mode, ymmq_mode; not "bcstw") and
        # after a scalar register destination (Vss/Vsd/Vsh, its XMScalar): {bad}
        mem_at = next((i for i, op in enumerate(self.ops) if op[0] == K_RM), 0)
        self.bcst_q = any(op.split("/")[-1] in ("Wq", "Mq", "Wxdup") for op in form.operands) \
            and "bcstw" not in f or any(op in ("Vss", "Vsd", "Vsh")
                                        for op in form.operands[:mem_at])
        self.uses_vvvv = any(op[0] == K_VVVV for op in self.ops)
        # objdump's DistinctDest: a destination equal to a source register prints "(bad)"
        self.distinct = "distinct" in f
        self.bcst = 4 if "b4" in f else 8 if "b8" in f else 2 if "b2" in f else \
            -1 if "bw" in f else 0
        self.rounding = "er" if "er" in f else "sae" if "sae" in f else None
        # compressed disp8 scale (SDM §2.7.5) when it is the element, not the operand, size
        self.disp8_n = next((int(n[1]) for n in ("n1", "n2", "n4", "n8") if n in f), 0)
        # per operand-size name: an EVEX form with a VEX twin prints "{evex}" (set below)
        self.evex_pseudo = (False, False, False)
        self.vex_pseudo = "vex-pseudo" in f
        # VSIB (SDM §2.3.12): the SIB index is a vector register of this size per L
        vsib = [op[2] for op in form.operands if op in ("Mvxd", "Mvxq", "Mvhq")]
        self.vsib = None
        if vsib:                    # index size by vector length: whole (x) or half (h)
            self.vsib = tuple(v for v in _VECTOR["x" if vsib[0] == "x" else "xh"]
                              for _ in range(3))     # "{vex}": an EVEX twin has the same name
        self.badop = "badop" in f       # wrong ModRM form: operand "(bad)" (objdump BadOp)
        self.needs_sib = self.vsib is not None or "sib" in f    # memory only with a SIB
        self.norip = "norip" in f       # no RIP-relative memory form (MPX)
        self.noa16 = "noa16" in f       # MPX: 16-bit addressing "(bad)"; 64-bit ignores 67
        self.mod_ignored = "mod-ignored" in f
        # objdump's PREFIX_IGNORED: the F2/F3 column that selected this form, and any
        # 66/F2/F3, still print as prefix words (66 still sets the operand size)
        self.prefix_ignored = "pfxignored" in f
        self.hle = "hle!" if "hle!" in f else "hle" if "hle" in f else \
            "hler" if "hler" in f else None
        # "Mw/Rv": only the register form depends on the operand size (SDM MOV Sreg)
        self.osz_reg_only = any(op[0] == K_RM and op[2] != op[3] for op in self.ops) and \
            not any(s in OSIZE_DEPENDENT or s == "y"
                    for op in form.operands if "/" not in op for s in _op_sizes(op))
        self.notrack = "notrack" in f
        self.bnd = "bnd" in f
        self.rep = "rep" in f or "repz" in f
        self.priv = "priv" in f
        self.writes = "nw" not in f and "nomem" not in f
        self.reads = "nomem" not in f      # sources are read; "wo": destination is not

    def __repr__(self) -> str:
        return f"Spec({self.names[1]}@{self.line})"


def _op_class(op: str) -> str:
    """Coarse operand class used to match an EVEX form with its VEX twin."""
    if op[:1] in "EGRB" and op not in ("ES", "GS"):
        return "gpr"
    if op[:1] == "I":
        return "imm"
    return "other"


def _names(text: str) -> tuple[str, str, str]:
    text = re.sub(r"\{[^}]*\}", "{}", text)
    if "~" in text:
        a, b, c = text.split("~")
        return (a, b, c)
    return (text, text, text)


def _op_sizes(op: str) -> list[str]:
    out = []
    for alt in op.split("/"):
        m = re.match(r"^[A-Z]([a-z0-9]*)$", alt)
        if m and alt not in ("AL", "CL", "DX", "AX", "ES", "CS", "SS", "DS", "FS", "GS", "ST"):
            out.append(m.group(1))
    if op in ("rAX",):
        out.append("v")
    if op in ("aAX", "EAX", "EBX", "ECX", "EDX"):
        return []
    if op == "eAX":
        out.append("z")
    return out


def _compile_operand(op: str) -> tuple:
    """Operand text -> plan tuple (kind, ...); see the K_* kinds above."""
    if op == "1":
        return (K_ONE,)
    if op in _FIXED_GPR:
        num, size = _FIXED_GPR[op]
        if op == "aAX":
            return (K_ACC, num, None, False)
        return (K_ACC, num, SIZE_BYTES[size], op == "CL")
    if op in _SEGS:
        return (K_FIXED, "seg", _SEGS[op])
    if op == "DX":
        return (K_FIXED, "port", 0)
    if op == "XMM0":
        return (K_FIXED, "xmm0", 0)
    if op == "ST":
        return (K_ST,)
    if op == "STi":
        return (K_STI,)
    if "/" in op:       # "Mw/Rv": memory form size / register form size
        mem, reg = op.split("/")
        if mem[0] != "M":
            mem, reg = reg, mem
        return (K_RM, _RM_CLASS[reg[0]], SIZE_BYTES[reg[1:]], SIZE_BYTES[mem[1:]], True, True)
    method, size = op[0], op[1:]
    sizes = SIZE_BYTES.get(size, SIZE_BYTES["b"])
    if method == "H":
        return (K_VVVV, C_K if size.startswith("k") else C_TMM if size == "tmm" else C_XMM,
                sizes)
    if method == "B":
        return (K_VVVV, C_GPR, sizes)
    if method == "L":
        return (K_IS4, C_XMM, sizes)
    if method in _RM_CLASS:
        allow_mem = method in "EMQW"
        allow_reg = method in "ERQNWU"
        cls = C_K if size.startswith("k") else C_BND if size == "bnd" else \
            C_TMM if size == "tmm" else _RM_CLASS[method]
        return (K_RM, cls, sizes, sizes, allow_mem, allow_reg)
    if method in _REG_CLASS:
        cls = C_K if size.startswith("k") else C_BND if size == "bnd" else \
            C_TMM if size == "tmm" else _REG_CLASS[method]
        return (K_REG, cls, sizes)
    if method == "Z":
        return (K_Z, sizes)
    if method == "I" and size == "lo":
        return (K_IMM4,)                            # imm8[3:0] of the /is4 byte
    if method == "I":
        if size == "bs":
            return (K_IMM, SIZE_BYTES["b"], 1)      # imm8 sign-extended to the operand size
        return (K_IMM, SIZE_BYTES[size] if size != "v" else (2, 4, 8) * 3,
                2 if size == "z" else 0)            # Iz: imm32 sign-extended to 64 bits
    if method == "J":
        return (K_REL, sizes)
    if method == "O":
        return (K_MOFFS, sizes)
    if method == "A":
        return (K_FAR,)
    if op == "Xbx":     # xlat: ds:[rBX + AL]
        return (K_STR_X, SIZE_BYTES["b"], 3)
    if method == "X":
        return (K_STR_X, sizes, 6)
    if method == "Y":
        return (K_STR_Y, sizes, 7)
    if method == "F":
        return (K_FLAGS,)
    raise MapError(f"operand {op!r} not supported by the decoder")


class Choice:
    """Mandatory-prefix selection for one (opcode, ModRM) cell."""

    __slots__ = ("plain", "p66", "pf3", "pf2", "columns")

    def __init__(self, plain, p66=None, pf3=None, pf2=None, columns=False) -> None:
        self.plain, self.p66, self.pf3, self.pf2, self.columns = plain, p66, pf3, pf2, columns


FALLTHROUGH = "="      # column value: ignore this prefix, use the next choice
LATE = "!"             # column value: objdump reads the operands of the line's other form
                       # (plain, else 66), then prints "(bad)" (its PREFIX_OPCODE check)
_COLUMN_MARKS = {"fallthrough": FALLTHROUGH, "late": LATE}


class Slot:
    """One opcode in a map: an escape, a fixed choice, or a choice per ModRM byte."""

    __slots__ = ("escape", "modrm", "choice", "by_modrm", "rexb_choice", "modrm_opcode")

    def __init__(self) -> None:
        self.modrm_opcode = False     # x87: an undefined ModRM still counts in the length
        self.escape = None
        self.modrm = False
        self.choice = None
        self.by_modrm = None
        self.rexb_choice = None


class Tables:
    """All decode tables compiled from one opcode map."""

    def __init__(self, omap: OpcodeMap, mode: int = 64, op_ids: OpIds | None = None) -> None:
        self.omap = omap
        self.op_ids = op_ids or OpIds(op_enum())
        self.mode = mode
        self.lists = omap.lists
        self._spec_cache: dict = {}
        self._merged: dict = {}         # (old, new) -> merged Choice: cells share one object
        self._cells: dict = {}          # column specs -> Choice (group/prefix-mixed cells)
        self._feature = ""              # the CPUID feature of the section being built
        self._by_name = True            # ... and whether @cpuid names apply in it
        self._vex_lines = self._lines(("vex0f", "vex0f38", "vex0f3a"))
        self._evex_lines = self._lines(("evex0f", "evex0f38", "evex0f3a"))
        self.maps: dict[str, list[Slot | None]] = {name: [None] * 256 for name in omap.maps}
        for name, entries in omap.maps.items():
            self._build_map(name, entries)
        for spec in self._spec_cache.values():
            spec.op_ids = tuple(self.op_ids.id(n) for n in spec.op_names)
            spec.imm_op_ids = tuple(self.op_ids.id(n) for n in spec.imm_op_names)
            spec.naming = tuple(zip(spec.names, spec.att_names, spec.op_ids, strict=True))
        vex_names = {(n, s.classes) for k, s in self._spec_cache.items()
                     if k[-1] in self._vex_lines and not s.vex_pseudo for n in s.names}
        for key, spec in self._spec_cache.items():
            if key[-1] in self._evex_lines and not (
                    spec.ops and spec.ops[0][0] == K_REG and spec.ops[0][1] == C_K) and \
                    "noevex" not in spec.flags:     # per name: vpsrad has a twin, vpsraq not
                spec.evex_pseudo = tuple((n, spec.classes) in vex_names or "evex-pseudo" in
                                         spec.flags for n in spec.names)

    def _lines(self, maps) -> set[int]:
        """Line numbers of the entries of these maps and of the groups they use."""
        lines = set()
        for name in maps:
            for e in self.omap.maps.get(name, ()):
                lines.add(e.line)
                for form in e.columns.values():
                    if form.kind == "group":
                        lines.update(g.line for g in self.omap.groups[form.target])
        return lines

    # -- building -----------------------------------------------------------------
    def _spec(self, form: Form, inherited: Form | None = None):
        if form.kind == "bad":
            return None
        if inherited is not None and (inherited.operands or inherited.flags):
            form = Form(form.kind, form.mnemonic, form.att_mnemonic,
                        form.operands or inherited.operands,
                        form.flags | inherited.flags, form.target, form.line)
        key = (form.mnemonic, form.att_mnemonic, form.operands, form.flags, form.line)
        spec = self._spec_cache.get(key)
        if spec is None:
            try:
                spec = self._spec_cache[key] = Spec(form, self.lists)
            except MapError as exc:
                raise MapError(f"{self.omap.filename}:{form.line}: {exc}") from None
            spec.cpuid = self._cpuid(spec)
        return spec

    def _cpuid(self, spec: Spec) -> tuple[str, str, str]:
        """A form's CPUID feature per operand size: its own ``cpuid=`` flag, else its name's
        ``@cpuid`` line (not in EVEX maps, whose names repeat VEX ones), else its section's
        default ("": the base architecture)."""
        own = next((f[6:] for f in spec.flags if f.startswith("cpuid=")), None)
        mmx = any(op[0] in (K_REG, K_RM, K_VVVV) and op[1] == C_MMX for op in spec.ops)
        out = []
        for name in spec.op_names:
            feature = own or (self._by_name and self.omap.cpuid_names.get(name.lower())) \
                or self._feature
            if "/" in feature:          # the mm-register form / the others
                feature = feature.split("/")[0 if mmx else 1]
            out.append(feature)
        return tuple(out)

    def _choice(self, columns: dict, inherited: Form | None = None) -> Choice:
        def col(pfx):
            form = columns.get(pfx)
            if form is None:
                return None
            return _COLUMN_MARKS.get(form.kind) or self._spec(form, inherited)
        if set(columns) == {None}:
            return Choice(col(None))
        return Choice(col(None), col("66"), col("F3"), col("F2"), columns=True)

    def _build_map(self, name: str, entries: list[Entry]) -> None:
        table = self.maps[name]
        self._feature = self.omap.cpuid_sections.get(name, "")
        self._by_name = not name.startswith("evex")     # @cpuid names: VEX/legacy ones
        for entry in entries:
            if not self._in_mode(entry):
                continue
            for opcode in range(entry.lo, entry.hi + 1):
                slot = table[opcode] or Slot()
                table[opcode] = slot
                forms = list(entry.columns.values())
                if forms[0].kind == "escape":
                    slot.escape = forms[0].target
                    continue
                if forms[0].kind == "group" and len(forms) == 1:
                    slot.modrm = True
                    slot.by_modrm = self._group_table(forms[0], entry.line)
                    slot.modrm_opcode = "modrm-opcode" in self.omap.group_options.get(
                        forms[0].target, ())
                    continue
                if any(f.kind == "group" for f in forms):
                    slot.modrm = True
                    slot.by_modrm = self._mixed_table(entry)
                    continue
                choice = self._choice(entry.columns)
                if entry.qual == "rexb":
                    slot.rexb_choice = choice
                    continue
                specs = [choice.plain, choice.p66, choice.pf3, choice.pf2]
                needs_modrm = any(isinstance(s, Spec) and _has_modrm(s) for s in specs)
                if entry.qual in ("mem", "reg"):
                    slot.modrm = True
                    if slot.by_modrm is None:
                        slot.by_modrm = [None] * 256
                    for modrm in range(256):
                        if (modrm >= 0xC0) == (entry.qual == "reg"):
                            slot.by_modrm[modrm] = self._merge(slot.by_modrm[modrm], choice)
                elif needs_modrm:
                    slot.modrm = True
                    old = slot.by_modrm or [None] * 256
                    slot.by_modrm = [self._merge(c, choice) for c in old]
                else:
                    slot.choice = self._merge(slot.choice, choice)

    def _mixed_table(self, entry: Entry) -> list[Choice | None]:
        """Prefix columns where some column is a ModRM group (e.g. F3 0F 1E)."""
        per_column = {}
        for pfx, form in entry.columns.items():
            if form.kind == "group":
                per_column[pfx] = [c.plain if c else None
                                   for c in self._group_table(form, entry.line)]
            else:
                per_column[pfx] = [self._choice({None: form}).plain] * 256
        cells = []
        for modrm in range(256):
            get = {p: col[modrm] for p, col in per_column.items()}
            key = (get.get(None), get.get("66"), get.get("F3"), get.get("F2"))
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = Choice(*key, columns=True)
            cells.append(cell)
        return cells

    def _merge(self, old: Choice | None, new: Choice | None) -> Choice | None:
        """`_merge`, once per pair: the 256 cells of a slot share the merged choices."""
        key = (old, new)
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = _merge(old, new)
        return merged

    def _in_mode(self, entry: Entry) -> bool:
        flags = frozenset().union(*(f.flags for f in entry.columns.values()))
        if self.mode == 64:
            return "i64" not in flags
        return "o64" not in flags

    def _group_table(self, ref: Form, line: int) -> list[Choice | None]:
        outer = self._feature
        self._feature = self.omap.cpuid_sections.get(ref.target, outer)
        try:
            return self._group_cells(ref, line)
        finally:
            self._feature = outer

    def _group_cells(self, ref: Form, line: int) -> list[Choice | None]:
        entries = self.omap.groups[ref.target]
        cells: list[Choice | None] = [None] * 256
        # precedence: /N (both) < /N mem|reg < full ModRM byte; lines with the same key and
        # other W/L constraints are alternatives of one cell
        origin: list = [None] * 256
        for entry in sorted(entries, key=lambda e: (e.reg is None, e.qual is not None)):
            if not self._in_mode(entry):
                continue
            choice = self._choice(entry.columns, ref)
            key = (entry.reg, entry.qual, entry.lo, entry.hi)
            for modrm in range(256):
                if entry.reg is not None:
                    if (modrm >> 3) & 7 != entry.reg:
                        continue
                    if entry.qual == "mem" and modrm >= 0xC0:
                        continue
                    if entry.qual == "reg" and modrm < 0xC0:
                        continue
                elif not (entry.lo <= modrm <= entry.hi):
                    continue
                cells[modrm] = _merge(cells[modrm], choice) if origin[modrm] == key else choice
                origin[modrm] = key
        return cells


def _has_modrm(spec: Spec) -> bool:
    return any(op[0] in (K_RM, K_REG, K_STI) for op in spec.ops)


def _merge(old, new):
    """Combine two choices for the same cell that differ in VEX.W/VEX.L constraints."""
    if old is None:
        return new
    if new is None:
        return old
    def both(a, b):
        if a is None or b is None:
            return b if a is None else a
        if a is FALLTHROUGH or a is LATE:
            return b
        if b is FALLTHROUGH or b is LATE:
            return a
        return (a if isinstance(a, tuple) else (a,)) + (b if isinstance(b, tuple) else (b,))
    return Choice(both(old.plain, new.plain), both(old.p66, new.p66), both(old.pf3, new.pf3),
                  both(old.pf2, new.pf2), columns=old.columns or new.columns)


MAP_PATH = os.path.join(os.path.dirname(__file__), "opcodes.map")


def load_tables(path: str = MAP_PATH, extra: str = "") -> dict[int, Tables]:
    """Load opcodes.map (plus optional extra map text appended); compile it per mode."""
    if path == MAP_PATH and not extra:      # each mode on first use, from a cache file
        from .table_cache import shipped_tables
        return shipped_tables()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    omap = parse_map(text + ("\n" + extra if extra else ""), os.path.basename(path))
    op_ids = OpIds(op_enum())
    return {mode: Tables(omap, mode, op_ids) for mode in (16, 32, 64)}


@functools.cache
def _shipped_map() -> OpcodeMap:
    with open(MAP_PATH, encoding="utf-8") as f:
        return parse_map(f.read(), os.path.basename(MAP_PATH))


@functools.cache
def op_enum():
    """`Op`: the operation ids of the shipped map (see ops.py)."""
    from .table_cache import op_names  # the names cached with the tables
    return make_op_enum(op_names())
