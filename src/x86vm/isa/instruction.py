"""`Instruction`: the plain-data result of decoding one x86 instruction."""

from __future__ import annotations

from .operands import Mem, Rel


class Instruction:
    """One decoded instruction (ARCHITECTURE.md "Instruction is plain data").

    `operands` are in Intel (SDM) order: destination first.  `prefixes` are all prefix bytes
    in order; `unused_prefixes` the ones this instruction does not consume (objdump prints
    them as words: ``data16``, ``cs``, ``rex.W``, ``repz``...).  `spec` is the map form
    (mnemonic id and attributes); it is None for ``(bad)`` and truncated bytes.
    `kind` is "insn", "bad" (objdump's ``(bad)``) or "truncated" (``.byte 0x..``).
    """

    __slots__ = ("address", "length", "bytes", "mnemonic", "att_mnemonic", "operands",
                 "prefixes", "unused_prefixes", "operand_size", "address_size", "spec",
                 "mode", "kind", "evex", "pseudo_prefix")

    def __init__(self, address, length, raw, mnemonic, att_mnemonic, operands, prefixes,
                 unused_prefixes, operand_size, address_size, spec, mode, kind="insn"):
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
        self.evex = None            # EVEX: (mask k, zeroing, broadcast N, rounding text)
        self.pseudo_prefix = None   # "{evex}" when a VEX encoding would do (objdump)

    # ---- attributes the CPU and tools need (derived from the map form) ----
    @property
    def branch_kind(self) -> str | None:
        """None, 'jmp', 'jcc', 'call', 'ret' or 'loop'."""
        return self.spec.branch if self.spec is not None else None

    @property
    def privileged(self) -> bool:
        return self.spec is not None and self.spec.priv

    @property
    def target(self) -> int | None:
        """Absolute target of a relative branch, else None."""
        for op in self.operands:
            if type(op) is Rel:
                return op.target
        return None

    @property
    def memory_operand(self) -> Mem | None:
        for op in self.operands:
            if type(op) is Mem:
                return op
        return None

    @property
    def reads_memory(self) -> bool:
        spec = self.spec
        if spec is None or not spec.reads:
            return False
        ops = self.operands
        return any(type(op) is Mem for op in ops[1:]) or (
            bool(ops) and type(ops[0]) is Mem and "wo" not in spec.flags)

    @property
    def writes_memory(self) -> bool:
        spec = self.spec
        if spec is None or not spec.writes:
            return False
        ops = self.operands
        return bool(ops) and type(ops[0]) is Mem

    def __repr__(self) -> str:
        return (f"Instruction({self.address:#x}, {self.bytes.hex(' ')}, {self.mnemonic}, "
                f"{self.operands})")
