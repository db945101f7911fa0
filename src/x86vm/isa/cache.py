"""Memoised decoding: the public `decode` / `decode_all` (see decoder.py for the decoder).

Real code repeats itself: python3.11's .text has 698k instructions but 193k distinct byte
strings and about 17k distinct "shapes" (prefixes + opcode + ModRM + SIB).  A per-mode trie
over the shape bytes leads to the `Decoded` core of the first instruction of that shape.
When that core heads a family (its displacement/immediate fields are known: `readers`),
every instruction of the shape shares it and reads its own values from its own bytes, so
decoding a known shape is one trie walk, and new byte strings cost nothing more.  Other
shapes (e.g. an immediate that names the mnemonic) are looked up by their exact bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import decoder
from .instruction import Decoded, Instruction
from .tables import Tables

_new_object = object.__new__
_SHAPE_LIMIT = 1 << 20      # shapes kept before the caches start over
_CORE_LIMIT = 1 << 20       # exact-bytes cores kept before the caches start over
_counts = [0, 0]            # shapes, exact-bytes cores kept
_TRIES: dict[int, dict] = {16: {}, 32: {}, 64: {}}
#: per mode: exact bytes -> their core, for shapes whose core heads no family
_CORES: dict[int, dict] = {16: {}, 32: {}, 64: {}}
#: (a mode with other default sizes, modes.decoder_mode, gets its own on first use)


def use_tables(tables: dict[int, Tables]) -> None:
    """Switch the decoder to other compiled tables (e.g. the map plus an extension)."""
    decoder.set_tables(tables)
    _forget()


def trie_root(mode: int) -> dict:
    """The memo trie of a mode (shape bytes -> `Decoded` core), for a caller that walks it
    itself (the listing's sweep); the dict stays the same object when the memo starts over.
    A core it reaches heads a family when its `readers` are set (its bytes are then
    ``data[offset:offset + core.length]``), else it stands for its exact bytes only."""
    return _TRIES.get(mode) or _new_mode(mode)


def _forget() -> None:
    for mode in list(_TRIES):
        _TRIES[mode].clear()
        _CORES[mode].clear()
    _counts[:] = [0, 0]


def _new_mode(mode: int) -> dict:
    """The trie of a mode with other default sizes (modes.decoder_mode), made on first use."""
    if not (mode & 0xFF in (16, 32, 64) and mode >> 12 == 0):
        raise ValueError(f"unknown decoder mode {mode:#x}")
    _CORES.setdefault(mode, {})
    return _TRIES.setdefault(mode, {})


def decode(data: bytes, offset: int = 0, address: int = 0, mode: int = 64) -> Instruction:
    """Decode the instruction at data[offset:]; `address` is its virtual address.

    Never raises for any bytes: invalid encodings give kind "bad", bytes ending before the
    instruction does give kind "truncated" (both with objdump's length).  Memoised like
    `decode_all` for `bytes` data.
    """
    if type(data) is not bytes:     # bytearray, memoryview: decode without the caches
        return Instruction(address, decoder.decode_uncached(data, offset, address, mode))
    node = _TRIES.get(mode) or _new_mode(mode)
    i = offset
    try:
        while type(node) is dict:
            node = node[data[i]]
            i += 1
    except (KeyError, IndexError):
        return Instruction(address, _decode_and_remember(data, offset, address, mode))
    raw = data[offset:offset + node.length]
    if node.readers is None or len(raw) != node.length:
        core = _exact(raw, data, offset, address, mode)
        return Instruction(address, core, core.bytes)
    return Instruction(address, node, raw if node.readers else node.bytes)


def decode_all(data: bytes, address: int = 0, mode: int = 64) -> Iterator[Instruction]:
    """Decode consecutive instructions covering all of `data` (objdump's linear sweep).

    Same as `decode` at each next offset, with the trie walk inlined.
    """
    if type(data) is not bytes:
        data = bytes(data)
    root = _TRIES.get(mode) or _new_mode(mode)
    new = _new_object
    dict_type = dict
    offset, end = 0, len(data)
    while offset < end:
        try:
            node = root[data[offset]]
            i = offset + 1
            while type(node) is dict_type:
                node = node[data[i]]
                i += 1
            stop = offset + node.length
            readers = node.readers
            if readers is None or stop > end:
                node = _exact(data[offset:stop], data, offset, address + offset, mode)
                raw = node.bytes
            else:               # a family: its own bytes, unless they hold no values
                raw = data[offset:stop] if readers else node.bytes
        except (KeyError, IndexError):
            node = _decode_and_remember(data, offset, address + offset, mode)
            raw = node.bytes
        insn = new(Instruction)     # Instruction(address + offset, node, raw), made faster
        insn.address = address + offset
        insn.core = node
        insn.bytes = raw
        yield insn
        offset += node.length


def _exact(raw: bytes, data: bytes, offset: int, address: int, mode: int) -> Decoded:
    """The core of exactly these bytes (a shape that heads no family), decoded once."""
    core = _CORES[mode].get(raw)
    if core is None:
        core = _decode_and_remember(data, offset, address, mode)
    return core


def _decode_and_remember(data: bytes, offset: int, address: int, mode: int) -> Decoded:
    core = decoder.decode_uncached(data, offset, address, mode)
    shape = core.shape
    if shape:
        _remember(data[offset:offset + shape], core, mode)
    return core


def _remember(shape: bytes, insn: Decoded, mode: int) -> None:
    """Add a decoded instruction to the per-mode trie (or the exact-bytes cores)."""
    if insn.reloc is not None and (mode & 0xFF == 16 or insn.operand_size == 16):
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
    head = node.get(shape[-1])
    if head is None:
        if insn.plan is not None:
            insn.head_family()      # (complete before another thread can find it)
            node[shape[-1]] = insn
            return
        node[shape[-1]] = insn
        head = insn
    if type(head) is Decoded and head.readers is None and head.length == insn.length and \
            _counts[1] < _CORE_LIMIT:
        _counts[1] += 1
        _CORES[mode][insn.bytes] = insn
