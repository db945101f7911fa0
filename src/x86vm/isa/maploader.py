"""Parse and validate ``opcodes.map`` (SDM Vol. 2 Appendix A notation; grammar in docs/isa.md).

The loader only turns text into checked records; `tables.py` compiles them into the
decoder's lookup tables.  Any malformed line raises `MapError("opcodes.map:LINE: reason")`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAP_NAMES = ("one-byte", "0f", "0f38", "0f3a", "vex0f", "vex0f38", "vex0f3a", "evex0f",
             "evex0f38", "evex0f3a", "evex-map5", "evex-map6", "xop8", "xop9", "xopa")
PREFIX_COLUMNS = ("66", "F3", "F2")

#: The flags a form may carry, in three published vocabularies (docs/isa.md "Flags").
#: Architecture: how the form is encoded and decoded (SDM superscripts, VEX/EVEX W/L
#: constraints, broadcast and disp8*N, addressing restrictions).
ARCHITECTURE_FLAGS = frozenset("""
    i64 o64 d64 f64 W0 W1 L0 L1 L1+ L2 asz rexw-name mod-ignored b2 b4 b8 bw er sae
    n1 n2 n4 n8 sib norip noa16 distinct near64 farw
""".split())
#: Execution: what the instruction does with its operands and prefixes (branch kind,
#: privilege, memory access, LOCK/REP/HLE/BND/NOTRACK acceptance, FWAIT twin).
EXECUTION_FLAGS = frozenset("""
    jmp jcc call ret loop priv nw wo nomem lock rep repz hle hle! hler bnd notrack fwait
""".split())
#: objdump formatting: how GNU objdump 2.40 prints or rejects the form (suffixes, operand
#: order, pseudo prefixes, its BadOp and late checks) -- nothing a CPU needs.
OBJDUMP_FLAGS = frozenset("""
    sfx sfx! sfxm sfxw sfx32 sfxl sfxC sfxxy sfxxyz sfxm64 asfx att-noreverse att-rc1
    intel-noops badop vex-pseudo evex-pseudo noevex oword Wlate Wany ptable nobcst bcstw
    movsxd pfxignored pad6 objdump-bad sysv386 amd64-bad swap-s pre-suffix
""".split())
#: objdump's size-letter macros under ``-M suffix`` (i386-dis.c putop with SUFFIX_ALWAYS),
#: a form's ``suffix=M`` (AT&T) and ``intel-suffix=M`` (Intel syntax) flags; docs/isa.md.
SUFFIX_MACROS = frozenset("B S D P @ Z F G C ^ LQ !LQ XY XZ".split())
KNOWN_FLAGS = ARCHITECTURE_FLAGS | EXECUTION_FLAGS | OBJDUMP_FLAGS
_SUFFIX_FLAGS = frozenset((name, m) for name in ("suffix", "intel-suffix") for m in SUFFIX_MACROS)

#: Fixed operands: registers named outright, and the constant 1 of the shift group.
FIXED_OPERANDS = frozenset("""
    AL CL DX AX rAX eAX aAX EAX EBX ECX EDX ES CS SS DS FS GS ST XMM0 1
""".split())

#: Addressing methods (SDM A.2.1) plus Z = register in opcode bits 2:0, and STi = x87 st(i).
METHODS = frozenset("A B C D E F G H I J K L M N O P Q R S T U V W X Y Z".split())
SIZES = frozenset("""
    b w d q v z y p s t a dq qq x ps pd ss sd sh bs bx x87env x87state xh xq xe xdup
    kb kw kd kq vxd vxq vhq bnd as tmm lo qo
""".split())

_OPERAND_RE = re.compile(r"^(?:(?P<method>[A-Z])(?P<size>[a-z0-9]*)|STi)$")
_KEY_RE = re.compile(r"^(?:(?P<lo>[0-9a-f]{2})(?:-(?P<hi>[0-9a-f]{2}))?|/(?P<reg>[0-7]))"
                     r"(?: (?P<qual>mem|reg|rexb))?$")
_HEADER_RE = re.compile(r"^\[(?P<kind>map|group) (?P<name>[A-Za-z0-9_-]+)"
                        r"(?P<opts>(?: [a-z-]+)*)\]$")
GROUP_OPTIONS = frozenset(["modrm-opcode"])
#: a CPUID feature: a name, "MMX/SSE2" (the mm-register form / the others), or "AVX|AVX2"
#: (VEX.L=0 / VEX.L=1)
_FEATURE_RE = re.compile(r"^[A-Z0-9_]+(?:[/|][A-Z0-9_]+)?$")


class MapError(ValueError):
    """A malformed opcode-map line: the message reads ``FILE:LINE: reason``."""


@dataclass(frozen=True)
class Form:
    """One alternative of a map line: an instruction, a group/escape reference, or (bad)."""

    kind: str                      # "insn" | "group" | "escape" | "bad"
    mnemonic: str = ""             # Intel spelling; "a~b~c" = by operand size 16~32~64
    att_mnemonic: str = ""         # AT&T spelling when it differs (same "~" rule)
    operands: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    target: str = ""               # group or map name for "group"/"escape"
    line: int = 0


@dataclass
class Entry:
    """A keyed line: opcode (or ModRM) range, optional mem/reg qualifier, prefix columns."""

    lo: int | None
    hi: int | None
    reg: int | None
    qual: str | None
    columns: dict[str | None, Form]
    line: int


@dataclass
class OpcodeMap:
    lists: dict[str, list[str]] = field(default_factory=dict)
    maps: dict[str, list[Entry]] = field(default_factory=dict)
    groups: dict[str, list[Entry]] = field(default_factory=dict)
    group_options: dict[str, frozenset[str]] = field(default_factory=dict)
    #: CPUID features: by instruction name (``@cpuid FEATURE name...``) and the default of a
    #: map or group (``@cpuid-section NAME FEATURE``); see docs/isa.md "CPUID features"
    cpuid_names: dict[str, str] = field(default_factory=dict)
    cpuid_sections: dict[str, str] = field(default_factory=dict)
    filename: str = "opcodes.map"


def _check_operand(text: str, where: str) -> None:
    for alt in text.split("/"):
        if alt in FIXED_OPERANDS:
            continue
        m = _OPERAND_RE.match(alt)
        if not m:
            raise MapError(f"{where}: bad operand {text!r}")
        if alt == "STi":
            continue
        method, size = m.group("method"), m.group("size")
        if method not in METHODS:
            raise MapError(f"{where}: unknown addressing method {method!r} in {text!r}")
        if size and size not in SIZES and size != "bs":
            raise MapError(f"{where}: unknown operand size {size!r} in {text!r}")
        if not size and method not in "MAFXYZ":
            raise MapError(f"{where}: operand {text!r} needs a size")


def _parse_form(text: str, where: str, line: int, lists: dict[str, list[str]]) -> Form:
    text = text.strip()
    if not text:
        raise MapError(f"{where}: empty form")
    if text == "(bad)" or text == "-":
        return Form("bad", line=line)
    if text == "=":
        return Form("fallthrough", line=line)
    if text == "!":
        return Form("late", line=line)
    flags: frozenset[str] = frozenset()
    m = re.search(r"\(([^()]*)\)\s*$", text)
    if m:
        flags = frozenset(m.group(1).split())
        unknown = sorted(f for f in flags - KNOWN_FLAGS
                         if not (f.startswith("cpuid=") and _FEATURE_RE.match(f[6:]))
                         and f.partition("=")[::2] not in _SUFFIX_FLAGS)
        if unknown:
            raise MapError(f"{where}: unknown flag {unknown[0]!r}")
        text = text[: m.start()].strip()
    quoted = None
    if text.startswith('"'):
        end = text.find('"', 1)
        if end < 0:
            raise MapError(f"{where}: unterminated quoted mnemonic")
        quoted, text = text[1:end], "QUOTED" + text[end + 1:]
    words = text.split()
    if words[0] in ("group", "escape"):
        if len(words) not in (2, 3):
            raise MapError(f"{where}: expected '{words[0]} NAME [operands]'")
        if words[0] == "escape" and words[1] not in MAP_NAMES:
            raise MapError(f"{where}: unknown map {words[1]!r}")
        operands = tuple(words[2].split(",")) if len(words) == 3 else ()
        for op in operands:
            _check_operand(op, where)
        return Form(words[0], operands=operands, flags=flags, target=words[1], line=line)
    if len(words) > 2:
        raise MapError(f"{where}: expected 'mnemonic operands (flags)', got {text!r}")
    mnemonic = words[0]
    if quoted is not None:
        return Form("insn", quoted, quoted, tuple(words[1].split(",")) if len(words) == 2
                    else (), flags, line=line)
    if not re.match(r"^[a-z0-9_{}~/.]+$", mnemonic.replace("!", "", 1)) or \
            mnemonic.endswith("!") or "W0" not in flags and "W1" not in flags and "!" in mnemonic:
        raise MapError(f"{where}: bad mnemonic {mnemonic!r}")
    intel, _, att = mnemonic.partition("/")
    for name in (intel, att):
        for placeholder in re.findall(r"\{([^}]*)\}", name):
            if placeholder not in lists:
                raise MapError(f"{where}: unknown name list {{{placeholder}}}")
        if name and name.count("~") not in (0, 2):
            raise MapError(f"{where}: size alternatives need three names a~b~c")
    operands = tuple(words[1].split(",")) if len(words) == 2 else ()
    for op in operands:
        _check_operand(op, where)
    if "{" in mnemonic and (not operands or operands[-1] != "Ib"):
        raise MapError(f"{where}: a {{list}} mnemonic needs a final Ib operand")
    return Form("insn", intel, att, operands, flags, line=line)


def parse_map(text: str, filename: str = "opcodes.map") -> OpcodeMap:
    """Parse map text into records; raise MapError naming the first bad line."""
    result = OpcodeMap(filename=filename)
    section: list[Entry] | None = None
    seen: dict[tuple, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{filename}:{number}"
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@cpuid"):
            words = line.split()
            if words[0] == "@cpuid-section" and len(words) == 3 and \
                    _FEATURE_RE.match(words[2]):
                result.cpuid_sections[words[1]] = words[2]
                continue
            if words[0] != "@cpuid" or len(words) < 3 or not _FEATURE_RE.match(words[1]):
                raise MapError(f"{where}: expected '@cpuid FEATURE name...' or "
                               f"'@cpuid-section SECTION FEATURE'")
            for name in words[2:]:
                if name in result.cpuid_names:
                    raise MapError(f"{where}: {name!r} already has CPUID feature "
                                   f"{result.cpuid_names[name]}")
                result.cpuid_names[name] = words[1]
            continue
        if line.startswith("@list"):
            words = line.split()
            if len(words) < 3:
                raise MapError(f"{where}: expected '@list NAME name...'")
            result.lists[words[1]] = words[2:]     # "*=x": spelling for unnamed values
            continue
        if line.startswith("["):
            m = _HEADER_RE.match(line)
            if not m:
                raise MapError(f"{where}: bad section header {line!r}")
            kind, name = m.group("kind"), m.group("name")
            table = result.maps if kind == "map" else result.groups
            if kind == "map" and name not in MAP_NAMES:
                raise MapError(f"{where}: unknown map {name!r} (expected one of "
                               f"{', '.join(MAP_NAMES)})")
            if name in table and kind == "group":
                raise MapError(f"{where}: duplicate section {name!r}")
            opts = frozenset(m.group("opts").split())
            if opts - GROUP_OPTIONS or (opts and kind == "map"):
                raise MapError(f"{where}: unknown section option in {line!r}")
            if kind == "group":
                result.group_options[name] = opts
            section = table.setdefault(name, [])    # a repeated [map X] extends map X
            continue
        if section is None:
            raise MapError(f"{where}: entry before any [map]/[group] section")
        key, sep, rest = line.partition(":")
        if not sep:
            raise MapError(f"{where}: expected 'KEY: FORM'")
        m = _KEY_RE.match(key.strip())
        if not m:
            raise MapError(f"{where}: bad key {key.strip()!r}")
        lo = int(m.group("lo"), 16) if m.group("lo") else None
        hi = int(m.group("hi"), 16) if m.group("hi") else lo
        reg = int(m.group("reg")) if m.group("reg") else None
        if lo is not None and hi < lo:
            raise MapError(f"{where}: empty range {key.strip()!r}")
        if reg is not None and section in result.maps.values():
            raise MapError(f"{where}: /N keys belong in a [group]")
        columns: dict[str | None, Form] = {}
        for i, alt in enumerate(rest.split("|")):
            alt = alt.strip()
            pfx = None
            pm = re.match(r"^(66|F3|F2):\s*(.*)$", alt)
            if pm:
                pfx, alt = pm.group(1), pm.group(2)
            elif i > 0:
                raise MapError(f"{where}: column {i + 1} needs a prefix (66, F3 or F2)")
            if pfx in columns:
                raise MapError(f"{where}: duplicate prefix column {pfx}")
            columns[pfx] = _parse_form(alt, where, number, result.lists)
        if any(f.kind == "late" for f in columns.values()) and not any(
                f.kind in ("insn", "group") for p, f in columns.items() if p in (None, "66")):
            raise MapError(f"{where}: a '!' column needs a plain or 66 form to read")
        for form in columns.values():
            if form.flags & {"Wlate", "Wany"} and not form.flags & {"W0", "W1"}:
                raise MapError(f"{where}: Wlate/Wany need a W0 or W1 constraint")
        modes = frozenset().union(*(f.flags for f in columns.values())) & {
            "i64", "o64", "L0", "L1", "L1+", "L2", "W0", "W1"}
        qual = m.group("qual")
        if reg is None and section is not None and any(section is t for t in result.maps.values()):
            for opcode in range(lo, hi + 1):       # one definition per opcode (and mode, W/L)
                related = {None: (None, "mem", "reg"), "mem": ("mem", None),
                           "reg": ("reg", None), "rexb": ("rexb",)}[qual]
                for q in related:
                    other = seen.get((id(section), opcode, q, modes))
                    if other is not None:
                        raise MapError(f"{where}: opcode {opcode:02x} already defined at "
                                       f"line {other}")
                seen[(id(section), opcode, qual, modes)] = number
        else:
            dup_key = (id(section), lo, hi, reg, qual, modes)
            if dup_key in seen:
                raise MapError(f"{where}: duplicate key {key.strip()!r}")
            seen[dup_key] = number
        section.append(Entry(lo, hi, reg, m.group("qual"), columns, number))
    _check_references(result)
    return result


def _check_references(omap: OpcodeMap) -> None:
    for entries in list(omap.maps.values()) + list(omap.groups.values()):
        for entry in entries:
            for form in entry.columns.values():
                where = f"{omap.filename}:{form.line}"
                if form.kind == "group" and form.target not in omap.groups:
                    raise MapError(f"{where}: unknown group {form.target!r}")
                if form.kind == "escape" and form.target not in omap.maps:
                    raise MapError(f"{where}: unknown map {form.target!r}")
    if "one-byte" not in omap.maps:
        raise MapError(f"{omap.filename}:1: no [map one-byte] section")
