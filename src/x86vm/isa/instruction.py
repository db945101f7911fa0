"""`Instruction`: the plain-data result of decoding one x86 instruction.

An `Instruction` is an address plus a shared, immutable `Decoded` core: identical bytes
decode once and every occurrence shares the core (see decoder.py).  Relative targets are
stored in the core for the address it was first decoded at and moved along on access.
"""

from __future__ import annotations

from operator import attrgetter

from .operands import Mem, Rel

_MASK = {16: 0xFFFFFFFF, 32: 0xFFFFFFFF, 64: 0xFFFFFFFFFFFFFFFF}


class Core:
    """What every decoded core stores itself: where it was decoded, its bytes, its
    displacement/immediate `values` and absolute `target` (see Decoded), and `memo1`,
    `memo2`, free for consumers (the formatters keep their text there)."""

    __slots__ = ("address", "length", "bytes", "family", "values", "target", "memo1", "memo2")


class Decoded(Core):
    """Everything about an instruction that does not depend on where it sits.

    `operands` are in Intel (SDM) order: destination first.  `prefixes` are all prefix bytes
    in order; `unused_prefixes` the ones this instruction does not consume (objdump prints
    them as words: ``data16``, ``cs``, ``rex.W``, ``repz``...).  `spec` is the map form
    (mnemonic id and attributes); it is None for ``(bad)`` and truncated bytes.
    `kind` is "insn", "bad" (objdump's ``(bad)``), "prefix" (prefixes only) or
    "truncated" (``.byte 0x..``).  `reloc` is the index of an operand holding an absolute
    address computed for `address` (a Rel, or a RIP-relative Mem), else None.
    A decoded core that starts a family (cache.py) also has `fields` (where its values sit
    in the bytes) and `values`; `memo3`, `memo4` are free for consumers (the formatters keep
    a family's compiled frame there).
    """

    __slots__ = ("operands", "memo3", "memo4", "mnemonic", "att_mnemonic", "prefixes",
                 "unused_prefixes", "operand_size", "address_size", "spec", "mode", "kind",
                 "evex", "pseudo_prefix", "reloc", "fields", "reloc_mem")

    def __init__(self, address, length, raw, mnemonic, att_mnemonic, operands, prefixes,
                 unused_prefixes, operand_size, address_size, spec, mode, kind="insn",
                 evex=None, pseudo_prefix=None):
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
        self.memo1 = self.memo2 = self.memo3 = self.memo4 = None     # consumers' caches
        self.family = None      # the core of the first instruction with the same shape
        self.fields = None      # family cores: (kind, operand index, ...) per value
        self.values = None      # ... and the displacement/immediate/target values
        self.target = None      # absolute address in operand `reloc`, for `address`
        self.reloc_mem = False  # operand `reloc` is RIP-relative memory (else a Rel)


def _family(name: str) -> property:
    return property(attrgetter("family." + name), doc=f"As the family template's {name}.")


class Member(Core):
    """A core decoded from a plan: its own bytes and values, the rest from its family.

    Only the `Core` slots are stored; everything else reads through to the family template
    (same shape, same text apart from the values).  Members are made for each decode and
    not kept (the cache keeps their values as plain tuples, which the garbage collector
    does not need to scan); identical bytes give equal members.
    """

    __slots__ = ()
    mnemonic = _family("mnemonic")
    att_mnemonic = _family("att_mnemonic")
    prefixes = _family("prefixes")
    unused_prefixes = _family("unused_prefixes")
    operand_size = _family("operand_size")
    address_size = _family("address_size")
    spec = _family("spec")
    mode = _family("mode")
    kind = _family("kind")
    evex = _family("evex")
    pseudo_prefix = _family("pseudo_prefix")
    reloc = _family("reloc")
    reloc_mem = _family("reloc_mem")
    fields = _family("fields")

    @property
    def operands(self) -> tuple:
        """Operands in Intel order: the family's, with this member's values."""
        from .cache import materialize
        return materialize(self)


def _core(name: str) -> property:
    return property(attrgetter("core." + name), doc=f"See Decoded.{name}.")


class Instruction:
    """One decoded instruction at `address` (ARCHITECTURE.md "Instruction is plain data")."""

    __slots__ = ("address", "core")

    def __init__(self, address: int, core: Core) -> None:
        self.address = address
        self.core = core

    length = _core("length")
    bytes = _core("bytes")
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
    def operands(self) -> tuple:
        """Operands in Intel order; relative targets are absolute for this address."""
        core = self.core
        j = core.reloc
        if j is None or self.address == core.address:
            return core.operands
        ops = list(core.operands)          # the core's, with the target moved here
        op = ops[j]
        moved = (op.target + self.address - core.address) & _MASK[core.mode]
        if type(op) is Rel:
            ops[j] = Rel(moved)
        else:
            ops[j] = Mem(op.size, op.seg, op.base, op.index, op.scale, op.disp, op.disp_size,
                         op.addr_size, moved, op.moffs)
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
    def target(self) -> int | None:
        """Absolute target of a relative branch, else None."""
        core = self.core
        if core.reloc is None or core.reloc_mem:
            return None
        return (core.target + self.address - core.address) & _MASK[core.mode]

    @property
    def reloc_target(self) -> int | None:
        """The absolute address in the address-dependent operand (branch target or
        RIP-relative memory address), else None."""
        core = self.core
        if core.reloc is None:
            return None
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
        ops = self.core.operands
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
