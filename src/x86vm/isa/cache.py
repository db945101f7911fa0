"""Memoised decoding: the public `decode` / `decode_all` (see decoder.py for the decoder).

Real code repeats itself: python3.11's .text has 698k instructions but 193k distinct byte
strings and about 17k distinct "shapes" (prefixes + opcode + ModRM + SIB).  A per-mode trie
over the shape bytes leads to a `_Plan`: the decoded template of the first instruction of
that shape and where its displacement/immediate fields sit.  Identical bytes then share one
decoded core; other bytes of the shape copy the template with their own field values (the
operand objects are built from them on first use, `materialize`).
"""

from __future__ import annotations

from collections.abc import Iterator

from . import decoder
from .decoder import F_DISP, F_FAR, F_IMM, F_MOFFS, F_REL
from .instruction import Decoded, Instruction, Member
from .operands import Far, Imm, Mem, Rel
from .tables import Tables

_ADDR_MASK = {16: 0xFFFFFFFF, 32: 0xFFFFFFFF, 64: 0xFFFFFFFFFFFFFFFF}
_new_member = object.__new__
_CACHE_LIMIT = 1 << 20      # decoded shapes kept before the caches start over
_PER_PLAN_LIMIT = 4096      # exact-byte templates kept per shape
_CACHED = 0
_TRIES: dict[int, dict] = {16: {}, 32: {}, 64: {}}


def use_tables(tables: dict[int, Tables]) -> None:
    """Switch the decoder to other compiled tables (e.g. the map plus an extension)."""
    decoder.set_tables(tables)
    for mode in (16, 32, 64):
        _TRIES[mode].clear()


def decode(data: bytes, offset: int = 0, address: int = 0, mode: int = 64) -> Instruction:
    """Decode the instruction at data[offset:]; `address` is its virtual address.

    Never raises for any bytes: invalid encodings give kind "bad", bytes ending before the
    instruction does give kind "truncated" (both with objdump's length).

    Decoding is memoised: a trie over the bytes that fix the length and the meaning
    (prefixes, opcode, ModRM, SIB) leads to a `_Plan`; the exact bytes then find a decoded
    template (re-based to `address`), or the plan fills a copy of its template with the
    displacement and immediate values read from the bytes.
    """
    if type(data) is not bytes:     # bytearray, memoryview: decode without the caches
        return _decode_and_remember(data, offset, address, mode)
    node = _TRIES[mode]
    i = offset
    try:
        while True:
            node = node[data[i]]
            i += 1
            if type(node) is _Plan:
                break
    except (KeyError, IndexError, TypeError):
        return _decode_and_remember(data, offset, address, mode)
    raw = data[offset:offset + node.length]
    core = node.cores.get(raw)
    if core is not None:
        return Instruction(address, core)
    if node.fields is None or len(raw) != node.length or type(raw) is not bytes:
        return _decode_and_remember(data, offset, address, mode)
    core = _from_plan(node, raw, address, mode)
    if len(node.cores) < _PER_PLAN_LIMIT:
        node.cores[raw] = core
    return Instruction(address, core)


class _Plan:
    """What one shape (prefixes+opcode+ModRM+SIB bytes) decodes to, minus field values."""

    __slots__ = ("length", "template", "fields", "cores")

    def __init__(self, template: Decoded, fields) -> None:
        self.length = template.length
        self.template = template
        self.fields = fields
        self.cores = {template.bytes: template}


def _decode_and_remember(data, offset, address, mode) -> Instruction:
    core = decoder.decode_uncached(data, offset, address, mode)
    shape = decoder.SHAPE[0]
    if shape and type(data) is bytes:
        _remember(data[offset:offset + shape], core, mode)
    return Instruction(address, core)


def _remember(shape: bytes, insn: Decoded, mode: int) -> None:
    """Add a decoded instruction to the per-mode trie of plans."""
    if insn.reloc is not None and (mode == 16 or insn.operand_size == 16):
        return                      # objdump's 16-bit wrap rules: always decode afresh
    global _CACHED
    _CACHED += 1
    if _CACHED > _CACHE_LIMIT:
        for m in (16, 32, 64):
            _TRIES[m].clear()
        _CACHED = 0
    node = _TRIES[mode]
    for b in shape[:-1]:
        nxt = node.get(b)
        if nxt is None:
            nxt = node[b] = {}
        elif type(nxt) is not dict:
            return
        node = nxt
    plan = node.get(shape[-1])
    if plan is None:
        fields = decoder.FIELDS[0]
        node[shape[-1]] = _Plan(insn, fields)
        if fields is not None:
            insn.family = insn
            insn.fields = fields
            insn.dynamic = tuple(sorted({f[1] for f in fields}))
    elif type(plan) is _Plan and plan.length == insn.length:
        if len(plan.cores) < _PER_PLAN_LIMIT:
            plan.cores[insn.bytes] = insn


def _from_plan(plan: _Plan, raw: bytes, address: int, mode: int) -> Decoded:
    """A family member of the plan's template: its values read from `raw`; operand objects
    are built from them on first use (`materialize`)."""
    t = plan.template
    length = t.length
    values = []
    target = None
    for kind, _j, at, n, how in plan.fields:
        v = int.from_bytes(raw[at:at + n], "little")
        if kind == F_DISP:
            if how:                                  # signed, times the disp8*N factor
                if v >> (8 * n - 1):
                    v -= 1 << (8 * n)
                v *= how
            if t.reloc_mem:
                target = (address + length + v) & _ADDR_MASK[mode]
        elif kind == F_IMM:
            if how and v >> (8 * n - 1):             # sign-extend to `how` bytes
                v = (v - (1 << (8 * n))) & ((1 << (8 * how)) - 1)
        elif kind == F_REL:
            if v >> (8 * n - 1):
                v -= 1 << (8 * n)
            v = target = (address + length + v) & _ADDR_MASK[mode]
        elif kind == F_FAR:
            v = (int.from_bytes(raw[at + n:at + n + 2], "little"), v)
        values.append(v)
    core = _new_member(Member)
    core.address = address
    core.length = length
    core.bytes = raw
    core.values = tuple(values)
    core.target = target
    core.family = t
    core._operands = core.memo1 = core.memo2 = core.memo3 = core.memo4 = None
    return core


def materialize(core: Decoded) -> tuple:
    """Operand objects of a family member: the template's, with this member's values."""
    t = core.family
    ops = list(t.operands)
    for (kind, j, _at, n, _how), v in zip(core.fields, core.values, strict=True):
        op = ops[j]
        if kind == F_DISP:
            target = core.target if core.reloc_mem else None
            ops[j] = Mem(op.size, op.seg, op.base, op.index, op.scale, v, op.disp_size,
                         op.addr_size, target, op.moffs)
        elif kind == F_IMM:
            ops[j] = Imm(v, op.size)
        elif kind == F_REL:
            ops[j] = Rel(v)
        elif kind == F_MOFFS:
            ops[j] = Mem(op.size, op.seg, None, None, 1, v, n, op.addr_size, None, True)
        else:
            ops[j] = Far(v[0], v[1], n)
    return tuple(ops)


def decode_all(data: bytes, address: int = 0, mode: int = 64) -> Iterator[Instruction]:
    """Decode consecutive instructions covering all of `data` (objdump's linear sweep).

    Same as calling `decode` at each next offset; the memoised path is inlined here.
    """
    if type(data) is not bytes:
        data = bytes(data)
    root = _TRIES[mode]
    plan_type = _Plan
    offset, end = 0, len(data)
    while offset < end:
        node = root
        i = offset
        try:
            while True:
                node = node[data[i]]
                i += 1
                if type(node) is plan_type:
                    break
            core = node.cores.get(data[offset:offset + node.length])
        except (KeyError, IndexError):
            core = None
        if core is None:
            insn = decode(data, offset, address + offset, mode)
            yield insn
            offset += insn.core.length
        else:
            yield Instruction(address + offset, core)
            offset += core.length


