"""Operation ids generated from the opcode map: one per architectural operation.

Every instruction name in ``opcodes.map`` becomes a member of the `Op` enumeration (an
`IntEnum`, so a CPU can dispatch on it through a list or a dict); all encodings of one
operation share it -- ``add`` from 00, 01, 04, 80 /0 and 83 /0 is `Op.ADD`, and the forms of
SDM "MOV" are all `Op.MOV` (the operands say which).  A name is the Intel mnemonic, upper
case, with:

- an immediate-named part (``cmp{sse_cc}ps``) left as the SDM writes it: `Op.CMPPS`,
  `Op.PCLMULQDQ`, `Op.VCMPPS` (the predicate is the immediate operand);
- a name chosen by operand size (``cbw~cwde~cdqe``) one operation per name: `Op.CBW`,
  `Op.CWDE`, `Op.CDQE` (the SDM's mnemonics; a CPU may handle them together);
- objdump-only spellings mapped back to the SDM (`ALIASES`: ``movabs`` is `Op.MOV`), a
  quoted name's remark dropped (``fneni(8087 only)``: `Op.FNENI`), ``-`` and ``.`` as ``_``;
- a 3DNow! suffix byte (the whole mnemonic is a list: ``{amd3dnow}``) an opcode byte, one
  operation per name (`Op.PFADD`).

`Op.INVALID` (0) is the id of ``(bad)``, prefixes alone and truncated bytes.  The members are
numbered in name order; a map extension (`cache.use_tables`) with new names numbers them
after the last member, as plain ints.
"""

from __future__ import annotations

import enum
import re

from .maploader import OpcodeMap

#: objdump's spellings that are not SDM mnemonics -> the SDM operation
ALIASES = {"movabs": "mov"}
INVALID_NAMES = frozenset(["(bad)", ""])


def op_name(mnemonic: str) -> str:
    """The operation name of one (size-selected) Intel mnemonic of the map, or ''."""
    name = re.sub(r"\(.*\)$", "", mnemonic.replace("!", "")).strip()
    if name in INVALID_NAMES:
        return ""
    name = ALIASES.get(name, name)
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def form_names(mnemonic: str, lists: dict[str, list[str]], default: str = "") -> list[str]:
    """The operation names a form's Intel mnemonic can give (every size alternative; every
    list entry when the whole mnemonic is a list)."""
    whole = re.fullmatch(r"\{([^}]*)\}", mnemonic)
    if whole:
        return [op_name(n) for n in lists[whole.group(1)] if n != "-" and "=" not in n]
    names = []
    for alt in mnemonic.split("~"):
        names.append(op_name(re.sub(r"\{[^}]*\}", default, alt)))
    return names


def map_op_names(omap: OpcodeMap) -> list[str]:
    """Every operation name of a parsed map, sorted."""
    names = set()
    entries = [e for es in omap.maps.values() for e in es]
    entries += [e for es in omap.groups.values() for e in es]
    for entry in entries:
        for form in entry.columns.values():
            if form.kind != "insn":
                continue
            default = ""
            placeholder = re.search(r"\{([^}]*)\}", form.mnemonic)
            if placeholder:
                last = omap.lists[placeholder.group(1)][-1]
                default = last[2:] if last.startswith("*=") else ""
            names.update(form_names(form.mnemonic, omap.lists, default))
    names.discard("")
    return sorted(names)


class OpIds:
    """Name -> id for one loaded map: the `Op` members, then names only an extension has."""

    def __init__(self, enum_type: type[enum.IntEnum]) -> None:
        self.enum = enum_type
        self.extra: dict[str, int] = {}

    def id(self, name: str) -> int:
        if not name:
            return self.enum.INVALID
        member = self.enum.__members__.get(name)
        if member is not None:
            return member
        if name not in self.extra:
            self.extra[name] = len(self.enum.__members__) + len(self.extra)
        return self.extra[name]


def make_op_enum(names: list[str]) -> type[enum.IntEnum]:
    """The `Op` enumeration of these names (INVALID = 0, then in order from 1).

    Made the way the standard library makes its large enums (``enum._simple_enum``, 3.11+):
    the same IntEnum as the functional API's, a sixth of the cost (35 ms of every
    ``x86vm`` start-up went into ``IntEnum("Op", ...)`` for its 1,683 members)."""
    simple_enum = getattr(enum, "_simple_enum", None)
    if simple_enum is None:
        return enum.IntEnum("Op", ["INVALID", *names], start=0, module=__name__)
    body = {name: value for value, name in enumerate(["INVALID", *names])}
    body.update(__module__=__name__, __qualname__="Op")
    return simple_enum(enum.IntEnum)(type("Op", (), body))
