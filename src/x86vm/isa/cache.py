"""Memoised decoding: the public `decode` / `decode_all` (see decoder.py for the decoder).

Real code repeats itself: python3.11's .text has 698k instructions but 193k distinct byte
strings and about 17k distinct "shapes" (prefixes + opcode + ModRM + SIB).  A per-mode trie
over the shape bytes leads to a `_Plan`: the decoded template of the first instruction of
that shape (the family) and how to read its displacement/immediate fields.  Identical bytes
then share one core; other bytes of the shape become a `Member` that stores only its bytes,
its field values and its target (operand objects are built from them on first use,
`materialize`).
"""

from __future__ import annotations

from collections.abc import Iterator

from . import decoder
from .decoder import F_DISP, F_FAR, F_IMM, F_MOFFS, F_REL
from .instruction import Core, Decoded, Instruction, Member
from .operands import Far, Imm, Mem, Rel
from .tables import Tables

_ADDR_MASK = {16: 0xFFFFFFFF, 32: 0xFFFFFFFF, 64: 0xFFFFFFFFFFFFFFFF}
_new_object = object.__new__
_from_bytes = int.from_bytes
_SHAPE_LIMIT = 1 << 20      # shapes kept before the caches start over
_MEMBER_LIMIT = 1 << 20     # member entries kept (all plans together) before they start over
_counts = [0, 0]            # shapes, member entries kept
_TRIES: dict[int, dict] = {16: {}, 32: {}, 64: {}}
#: per mode: exact bytes -> their Decoded core, Member, or a member's values (see _keep)
_CORES: dict[int, dict] = {16: {}, 32: {}, 64: {}}


def use_tables(tables: dict[int, Tables]) -> None:
    """Switch the decoder to other compiled tables (e.g. the map plus an extension)."""
    decoder.set_tables(tables)
    _forget()


def _forget() -> None:
    for mode in (16, 32, 64):
        _TRIES[mode].clear()
        _CORES[mode].clear()
    _counts[:] = [0, 0]


class _Plan:
    """What one shape (prefixes+opcode+ModRM+SIB bytes) decodes to, minus field values.

    `readers` say how to read each value from the bytes: (kind, start, end, signed, scale,
    mask) -- the value is the little-endian integer raw[start:end], times `scale` (EVEX
    disp8*N), masked to `mask` if nonzero (an immediate sign-extended to its operand size);
    None when the template's values cannot be re-read (no member is made then).
    """

    __slots__ = ("length", "template", "readers", "address_mask", "reloc_mem")

    def __init__(self, template: Decoded, fields, mode: int) -> None:
        self.length = template.length
        self.template = template
        self.address_mask = _ADDR_MASK[mode]
        self.reloc_mem = template.reloc_mem
        self.readers = None if fields is None else tuple(_reader(f) for f in fields)


def _reader(field: tuple) -> tuple:
    kind, _j, at, n, how = field
    if kind == F_DISP:                  # `how`: signed, times the disp8*N factor (0: unsigned)
        return kind, at, at + n, how != 0, how or 1, 0
    if kind == F_IMM:                   # `how`: sign-extend to this many bytes (0: do not)
        return kind, at, at + n, how != 0, 1, (1 << (8 * how)) - 1 if how else 0
    return kind, at, at + n, kind == F_REL, 1, 0


def _read_values(plan: _Plan, raw: bytes, address: int) -> tuple[int, tuple, int | None]:
    """A member's entry: (`address`, the field values of `raw`, a byte string of the plan's
    shape, and the absolute address of its relative operand: branch target or RIP-relative
    memory)."""
    values = []
    target = None
    for kind, start, end, signed, scale, mask in plan.readers:
        v = _from_bytes(raw[start:end], "little", signed=signed)
        if kind == F_REL:
            v = target = (address + plan.length + v) & plan.address_mask
        elif kind == F_DISP:
            if scale != 1:
                v *= scale
            if plan.reloc_mem:
                target = (address + plan.length + v) & plan.address_mask
        elif mask:
            v &= mask
        elif kind == F_FAR:
            v = (_from_bytes(raw[end:end + 2], "little"), v)
        values.append(v)
    return address, tuple(values), target


def decode(data: bytes, offset: int = 0, address: int = 0, mode: int = 64) -> Instruction:
    """Decode the instruction at data[offset:]; `address` is its virtual address.

    Never raises for any bytes: invalid encodings give kind "bad", bytes ending before the
    instruction does give kind "truncated" (both with objdump's length).  Memoised like
    `decode_all` for `bytes` data.
    """
    if type(data) is not bytes:     # bytearray, memoryview: decode without the caches
        return Instruction(address, decoder.decode_uncached(data, offset, address, mode))
    node = _TRIES[mode]
    i = offset
    try:
        while type(node) is not _Plan:
            node = node[data[i]]
            i += 1
    except (KeyError, IndexError):
        return Instruction(address, _decode_and_remember(data, offset, address, mode))
    raw = data[offset:offset + node.length]
    core = _CORES[mode].get(raw)
    if core is None or type(core) is tuple:
        core = _member(node, raw, core, data, offset, address, mode)
    return Instruction(address, core)


def decode_all(data: bytes, address: int = 0, mode: int = 64) -> Iterator[Instruction]:
    """Decode consecutive instructions covering all of `data` (objdump's linear sweep).

    Same as `decode` at each next offset, with its memo lookup inlined.
    """
    if type(data) is not bytes:
        data = bytes(data)
    root = _TRIES[mode]
    cores = _CORES[mode]
    plan_type = _Plan
    new = _new_object
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
            raw = data[offset:offset + node.length]
            core = cores.get(raw)
            if core is None or type(core) is tuple:
                core = _member(node, raw, core, data, offset, address + offset, mode)
        except (KeyError, IndexError):
            core = _decode_and_remember(data, offset, address + offset, mode)
        insn = new(Instruction)         # Instruction(address + offset, core), made faster
        insn.address = address + offset
        insn.core = core
        yield insn
        offset += core.length


def _member(plan: _Plan, raw: bytes, entry: tuple | None, data: bytes, offset: int,
            address: int, mode: int) -> Core:
    """The core of bytes `raw` of the plan's shape that have no core yet: a `Member` made
    from the values kept for them (`entry`) or read now; else a fresh decode."""
    if entry is None:               # new bytes of a known shape: read the values
        if plan.readers is None or len(raw) != plan.length:
            return _decode_and_remember(data, offset, address, mode)
        entry = _read_values(plan, raw, address)
    core = _new_object(Member)
    core.address, core.values, core.target = entry
    core.length = plan.length
    core.bytes = raw
    core.family = plan.template
    core.memo1 = core.memo2 = None
    cores = _CORES[mode]
    if raw in cores:                # seen twice: keep the member (and the formatters' memo)
        cores[raw] = core
    elif _counts[1] < _MEMBER_LIMIT:    # seen once: keep its values only (a plain tuple,
        _counts[1] += 1                 # which the garbage collector does not scan)
        cores[raw] = entry
    return core


def _decode_and_remember(data: bytes, offset: int, address: int, mode: int) -> Core:
    core = decoder.decode_uncached(data, offset, address, mode)
    shape = decoder.SHAPE[0]
    if shape:
        _remember(data[offset:offset + shape], core, mode)
    return core


def _remember(shape: bytes, insn: Decoded, mode: int) -> None:
    """Add a decoded instruction to the per-mode trie of plans."""
    if insn.reloc is not None and (mode == 16 or insn.operand_size == 16):
        return                      # objdump's 16-bit wrap rules: always decode afresh
    _counts[0] += 1
    if _counts[0] > _SHAPE_LIMIT:
        _forget()
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
        plan = node[shape[-1]] = _Plan(insn, fields, mode)
        _CORES[mode][insn.bytes] = insn
        if fields is not None:
            insn.family = insn
            insn.fields = fields
            insn.values = _read_values(plan, insn.bytes, insn.address)[1]
    elif type(plan) is _Plan and plan.length == insn.length and _counts[1] < _MEMBER_LIMIT:
        _counts[1] += 1
        _CORES[mode][insn.bytes] = insn


def materialize(core: Core) -> tuple:
    """Operand objects of a family member: the template's, with this member's values."""
    t = core.family
    ops = list(t.operands)
    for (kind, j, _at, n, _how), v in zip(t.fields, core.values, strict=True):
        op = ops[j]
        if kind == F_DISP:
            target = core.target if t.reloc_mem else None
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
