"""`Instruction`: the plain-data result of decoding one x86 instruction.

An `Instruction` is an address, its bytes and a shared, immutable `Decoded` core: the core
of the first instruction decoded with the same bytes -- or, for a family (same prefixes,
opcode, ModRM and SIB: see cache.py), with the same shape, whose displacement/immediate
values the instruction reads from its own bytes.  Relative targets are stored in the core
for the address it was decoded at and moved along on access.
"""

from __future__ import annotations

from operator import attrgetter

from .operands import Far, Imm, Mem, Rel
from .tables import op_enum

_INVALID = op_enum().INVALID

#: What relative addresses wrap at, by mode (objdump: 32 bits outside 64-bit mode).
ADDRESS_MASK = {16: 0xFFFFFFFF, 32: 0xFFFFFFFF, 64: 0xFFFFFFFFFFFFFFFF}
_MASK = ADDRESS_MASK
_from_bytes = int.from_bytes

# Where a displacement/immediate value sits in the bytes (Decoded.fields: kind, operand
# index, byte offset, size, how -- see decoder.py).
F_DISP, F_IMM, F_REL, F_MOFFS, F_FAR = range(5)


class Decoded:
    """Everything about an instruction that does not depend on where it sits.

    `operands` are in Intel (SDM) order: destination first.  `prefixes` are all prefix bytes
    in order; `unused_prefixes` the ones this instruction does not consume (objdump prints
    them as words: ``data16``, ``cs``, ``rex.W``, ``repz``...).  `spec` is the map form
    (mnemonic id and attributes); it is None for ``(bad)`` and truncated bytes.
    `kind` is "insn", "bad" (objdump's ``(bad)``), "prefix" (prefixes only) or
    "truncated" (``.byte 0x..``).  `reloc` is the index of an operand holding an absolute
    address (`target`) computed for `address` (a Rel, or a RIP-relative Mem), else None; a
    (bad) whose RIP-relative operand objdump read before it gave up (3DNow! with an unknown
    suffix) has no operands but `reloc` 0 and the `target` objdump's comment shows.
    A core that heads a family (cache.py) has `fields` (where its values sit in the bytes),
    `values` and `readers` (how to read any member's values: see `read`).
    The decoder also says how the memo may keep the core: `shape` (the bytes that fix its
    length and meaning, 0: do not memoise) and `plan` (where its displacement/immediate
    values sit, or None: memoise it by its exact bytes); see cache.py.
    """

    __slots__ = ("address", "length", "bytes", "operands", "shape", "plan", "op", "imm_template",
                 "mnemonic", "att_mnemonic", "prefixes", "unused_prefixes", "operand_size",
                 "address_size", "spec", "mode", "kind", "evex", "pseudo_prefix", "reloc",
                 "fields", "values", "readers", "target", "reloc_mem")

    def __init__(self, address, length, raw, mnemonic, att_mnemonic, operands, prefixes,
                 unused_prefixes, operand_size, address_size, spec, mode, kind="insn",
                 evex=None, pseudo_prefix=None, op=_INVALID, imm_template=None, shape=0,
                 plan=None):
        self.address = address
        self.length = length
        self.bytes = raw
        self.mnemonic = mnemonic
        self.att_mnemonic = att_mnemonic
        self.operands = operands
        self.prefixes = prefixes
        self.unused_prefixes = unused_prefixes
        self.operand_size = operand_size
        self.address_size = address_size
        self.spec = spec
        self.mode = mode
        self.kind = kind
        self.evex = evex            # EVEX: (mask k, zeroing, broadcast N, rounding text)
        self.pseudo_prefix = pseudo_prefix  # "{evex}" when VEX would encode it (objdump)
        self.reloc = None
        self.op = op           # the operation id (ops.py)
        self.imm_template = imm_template    # (intel, att) name with "{}" for objdump's
        self.shape = shape      # memo: bytes that fix its length (0: do not memoise)
        self.plan = plan        # ... and where its values sit (None: exact bytes only)
        self.fields = None      # family heads: (kind, operand index, ...) per value
        self.values = None      # ... the displacement/immediate/target values
        self.readers = None     # ... and how to read them (see `read`)
        self.target = None      # absolute address in operand `reloc`, for `address`
        self.reloc_mem = False  # operand `reloc` is RIP-relative memory (else a Rel)

    # ---- named constructors of the results that are not one instruction ----
    @classmethod
    def bad(cls, address: int, raw: bytes, prefixes: tuple, unused: tuple, mode: int
            ) -> Decoded:
        """objdump's "(bad)": `raw` is what it spans, `unused` the prefixes printed as words."""
        return cls(address, len(raw), raw, "(bad)", "(bad)", (), prefixes, unused, mode, mode,
                   None, mode, "bad")

    @classmethod
    def prefix_only(cls, address: int, raw: bytes, prefixes: tuple, mode: int) -> Decoded:
        """Prefixes that objdump prints on their own line (no instruction follows them):
        `prefixes` printed as words over the bytes `raw`."""
        return cls(address, len(raw), raw, "", "", (), prefixes, prefixes, mode, mode, None,
                   mode, "prefix")

    @classmethod
    def truncated(cls, address: int, byte: int, mode: int) -> Decoded:
        """One byte of an instruction the code ends inside (objdump: ``.byte 0x..``)."""
        return cls(address, 1, bytes((byte,)), ".byte", ".byte", (Imm(byte, 1),), (), (),
                   mode, mode, None, mode, "truncated")

    def head_family(self) -> None:
        """Make this core the head of a family whose values sit where its `plan` says."""
        fields = self.plan
        self.readers = tuple(_reader(f) for f in fields)
        self.fields = fields
        self.values = self.read(self.bytes, self.address)[0]

    def read(self, raw: bytes, address: int) -> tuple[tuple, int | None]:
        """The values of a family member with bytes `raw` at `address`, and the absolute
        address of its relative operand (branch target, RIP-relative memory) or None.

        Each reader is (kind, start, end, signed, scale, mask): the value is the
        little-endian integer raw[start:end], times `scale` (EVEX disp8*N), masked to
        `mask` if nonzero (an immediate sign-extended to its operand size).
        """
        readers = self.readers
        if len(readers) == 1 and readers[0][0] == F_REL:       # the most common family
            _kind, start, end, _signed, _scale, _mask = readers[0]
            target = (address + self.length + _from_bytes(raw[start:end], "little",
                                                          signed=True)) & _MASK[self.mode]
            return (target,), target
        values = []
        target = None
        for kind, start, end, signed, scale, mask in readers:
            v = _from_bytes(raw[start:end], "little", signed=signed)
            if kind == F_REL:
                v = target = (address + self.length + v) & _MASK[self.mode]
            elif kind == F_DISP:
                if scale != 1:
                    v *= scale
                if self.reloc_mem:
                    target = (address + self.length + v) & _MASK[self.mode]
            elif mask:
                v &= mask
            elif kind == F_FAR:
                v = (_from_bytes(raw[end:end + 2], "little"), v)
            values.append(v)
        return tuple(values), target

    def member_operands(self, values: tuple, target: int | None) -> tuple:
        """Operand objects of a family member: this core's, with the member's values."""
        ops = list(self.operands)
        for (kind, j, _at, n, _how), v in zip(self.fields, values, strict=True):
            op = ops[j]
            if kind == F_DISP:
                ops[j] = op.moved(v, target if self.reloc_mem else None)
            elif kind == F_IMM:
                ops[j] = Imm(v, op.size)
            elif kind == F_REL:
                ops[j] = Rel(v)
            elif kind == F_MOFFS:
                ops[j] = op.moved(v, None)
            else:
                ops[j] = Far(v[0], v[1], n)
        return tuple(ops)


def _reader(field: tuple) -> tuple:
    kind, _j, at, n, how = field
    if kind == F_DISP:                  # `how`: signed, times the disp8*N factor (0: unsigned)
        return kind, at, at + n, how != 0, how or 1, 0
    if kind == F_IMM:                   # `how`: sign-extend to this many bytes (0: do not)
        return kind, at, at + n, how != 0, 1, (1 << (8 * how)) - 1 if how else 0
    return kind, at, at + n, kind == F_REL, 1, 0


def _core(name: str) -> property:
    return property(attrgetter("core." + name), doc=f"See Decoded.{name}.")


class Instruction:
    """One decoded instruction at `address` (ARCHITECTURE.md "Instruction is plain data").

    `core` is the shared Decoded core; `bytes` the instruction's own bytes (a family member
    differs from its core in the displacement/immediate values they hold).
    """

    __slots__ = ("address", "core", "bytes")

    def __init__(self, address: int, core: Decoded, raw: bytes | None = None) -> None:
        self.address = address
        self.core = core
        self.bytes = core.bytes if raw is None else raw

    length = _core("length")
    mnemonic = _core("mnemonic")
    att_mnemonic = _core("att_mnemonic")
    prefixes = _core("prefixes")
    unused_prefixes = _core("unused_prefixes")
    operand_size = _core("operand_size")
    address_size = _core("address_size")
    spec = _core("spec")
    mode = _core("mode")
    kind = _core("kind")
    evex = _core("evex")
    pseudo_prefix = _core("pseudo_prefix")

    @property
    def op(self) -> int:
        """The operation id (an `Op` member: one per architectural operation, the same for
        all its encodings; `Op.INVALID` for (bad), prefixes alone, truncated bytes and forms
        objdump prints with a "(bad)" operand)."""
        return self.core.op

    @property
    def wait(self) -> bool:
        """An FWAIT (9B) prefixes this x87 instruction: the CPU waits first (SDM FWAIT; FSTSW
        is 9B + FNSTSW)."""
        core = self.core
        return 0x9B in core.prefixes and 0x9B not in core.unused_prefixes and \
            core.kind == "insn"

    @property
    def member(self) -> bool:
        """A family member whose values differ from its core's (read from `bytes`)."""
        core = self.core
        return core.readers is not None and self.bytes != core.bytes

    @property
    def values(self) -> tuple | None:
        """The displacement/immediate/target values (family members), else None."""
        core = self.core
        return core.read(self.bytes, self.address)[0] if self.member else core.values

    @property
    def operands(self) -> tuple:
        """Operands in Intel order; relative targets are absolute for this address."""
        core = self.core
        if self.member:
            return core.member_operands(*core.read(self.bytes, self.address))
        j = core.reloc
        if j is None or self.address == core.address or not core.operands:
            return core.operands
        ops = list(core.operands)          # the core's, with the target moved here
        op = ops[j]
        moved = (op.target + self.address - core.address) & _MASK[core.mode]
        if type(op) is Rel:
            ops[j] = Rel(moved)
        else:
            ops[j] = op.moved(op.disp, moved)
        return tuple(ops)

    # ---- attributes the CPU and tools need (derived from the map form) ----
    @property
    def branch_kind(self) -> str | None:
        """None, 'jmp', 'jcc', 'call', 'ret' or 'loop'."""
        spec = self.core.spec
        return spec.branch if spec is not None else None

    @property
    def privileged(self) -> bool:
        spec = self.core.spec
        return spec is not None and spec.priv

    @property
    def cpuid_feature(self) -> str:
        """The CPUID feature the form needs (map data: docs/isa.md "CPUID features"), e.g.
        "SSE2", "AVX2", "FPU"; "" for the base architecture and for (bad)."""
        core = self.core
        spec = core.spec
        if spec is None or spec.cpuid is None:
            return ""
        size = core.address_size if spec.asz_names else core.operand_size
        feature = spec.cpuid[{16: 0, 32: 1, 64: 2}[size]]
        if "|" in feature:              # by VEX.L: the 256-bit form needs the second
            low, high = feature.split("|")
            return high if any(getattr(o, "cls", "") == "ymm" or type(o) is Mem and
                               o.size == 32 for o in core.operands) else low
        return feature

    @property
    def lock_allowed(self) -> bool:
        """A LOCK prefix is allowed: the form accepts it (map flag ``lock``) and its
        destination is memory (SDM LOCK: else #UD)."""
        spec = self.core.spec
        ops = self.core.operands
        return spec is not None and spec.lock and bool(ops) and type(ops[0]) is Mem

    @property
    def target(self) -> int | None:
        """Absolute target of a relative branch, else None."""
        return None if self.core.reloc_mem else self.reloc_target

    @property
    def reloc_target(self) -> int | None:
        """The absolute address in the address-dependent operand (branch target or
        RIP-relative memory address), else None."""
        core = self.core
        if core.reloc is None:
            return None
        if self.member:
            return core.read(self.bytes, self.address)[1]
        if core.address == self.address:
            return core.target
        return (core.target + self.address - core.address) & _MASK[core.mode]

    @property
    def memory_operand(self) -> Mem | None:
        for op in self.operands:
            if type(op) is Mem:
                return op
        return None

    @property
    def reads_memory(self) -> bool:
        """A memory operand is read: any source, or a destination not marked write-only."""
        spec = self.core.spec
        if spec is None or not spec.reads:
            return False
        ops = self.core.operands        # the kinds of operand are the same in a family
        return any(type(op) is Mem for op in ops[1:]) or (
            bool(ops) and type(ops[0]) is Mem and "wo" not in spec.flags)

    @property
    def writes_memory(self) -> bool:
        spec = self.core.spec
        if spec is None or not spec.writes:
            return False
        ops = self.core.operands
        return bool(ops) and type(ops[0]) is Mem

    def __repr__(self) -> str:
        return (f"Instruction({self.address:#x}, {self.bytes.hex(' ')}, {self.mnemonic}, "
                f"{self.operands})")
