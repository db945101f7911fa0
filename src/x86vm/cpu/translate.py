"""Basic blocks → Python source → ``exec``: the translator and its block cache.

A block is the run of instructions from one address to the first branch, system instruction
or page end (at most :data:`MAX_BLOCK` instructions). Each instruction is decoded once with
:func:`x86vm.isa.decode` and turned into a few lines of Python by the generator registered
for it in :data:`x86vm.cpu.semantics.GENERATORS` (keyed by :func:`op_key`); the lines of a
block become one function ``block(cpu) -> instructions retired``. Blocks are cached by
physical address and mode and found by linear address through a second dict that is dropped
whenever the mapping or the mode changes. A write to a page that holds translated code
(the page never enters the write TLB) drops the blocks it overlaps.

When an instruction raises (a fault, or a read the monitor must do) the block stores the
index of the instruction in ``cpu.bi``; ``block.rips[cpu.bi]`` is its address, and the
instructions before it have retired.
"""

from __future__ import annotations

from x86vm.cpu.errors import CpuFault
from x86vm.isa import decode

MAX_BLOCK = 48
M64 = 0xFFFFFFFFFFFFFFFF


def op_key(insn) -> str:
    """The key of an instruction in the semantics table (one place: switching to the
    decoder's operation id is a change here)."""
    return insn.mnemonic


MAX_BLOCKS = 32768
"""Translated blocks (and linear-address lookups) kept before the whole cache is flushed, as
QEMU's tb_flush does when its code buffer is full: a guest that enters code at ever new
addresses cannot grow the monitor without bound."""


class Translator:
    """Per-vCPU block cache and code generator driver."""

    def __init__(self, cpu) -> None:
        from x86vm.cpu import semantics

        self.cpu = cpu
        self.semantics = semantics
        self.blocks: dict[tuple, object] = {}     # (pa, mode key, single) → block
        self.lcache: dict[int, object] = {}       # linear address → block (current mode)
        self.namespace = semantics.namespace(cpu)
        self.translated = 0
        lcache_get = self.lcache.get
        translate_at = self.translate_at

        def lookup(la):
            blk = lcache_get(la)
            if blk is None:
                blk = translate_at(la)
            return blk

        self.lookup = lookup

    def flush_lookup(self) -> None:
        self.lcache.clear()

    def flush_page(self, la: int) -> None:
        """INVLPG: forget the linear lookups of blocks on (or running into) page ``la``."""
        page = la >> 12
        lcache = self.lcache
        for key in [k for k in lcache if (k >> 12) == page or (k >> 12) == page - 1]:
            del lcache[key]

    def flush_all(self) -> None:
        """Forget every translated block (the cache is full); code pages become plain RAM."""
        self.blocks.clear()
        self.lcache.clear()
        self.cpu.code_pages.clear()

    def mode_changed(self) -> None:
        self.lcache.clear()

    def invalidate(self, ppn: int, start: int, end: int) -> None:
        """Guest code on physical page ``ppn`` bytes [start, end) was overwritten."""
        blocks = self.cpu.code_pages.get(ppn)
        if not blocks:
            self.cpu.code_pages.pop(ppn, None)
            return
        keep = []
        dropped = False
        for blk in blocks:
            lo, hi = blk.span[ppn]
            if lo < end and start < hi:
                self.blocks.pop(blk.key, None)
                dropped = True
            else:
                keep.append(blk)
        if dropped:
            self.lcache.clear()
            # the running block may be one of them: stop it after the writing instruction
            self.cpu.pending.append(("smc", ppn, 0, 0))
        if keep:
            self.cpu.code_pages[ppn] = keep
        else:
            del self.cpu.code_pages[ppn]

    def single(self, la: int):
        """A one-instruction block at ``la`` (to finish an instruction after a read)."""
        return self._get(la, single=True)

    def translate_at(self, la: int):
        blk = self._get(la, single=False)
        if not getattr(blk, "faulting", False):
            if len(self.lcache) >= MAX_BLOCKS:
                self.lcache.clear()
            self.lcache[la] = blk
        return blk

    def _get(self, la: int, single: bool):
        cpu = self.cpu
        rip = cpu.rip
        try:
            pa, buf, off = cpu.fetch_page(la)
        except CpuFault as exc:
            return _raiser(exc, rip)
        key = (pa, rip, cpu.mode_key, single)
        blk = self.blocks.get(key)
        if blk is not None:
            return blk
        try:
            blk = self._translate(la, rip, pa, buf, off, single)
        except CpuFault as exc:
            return _raiser(exc, rip)
        if len(self.blocks) >= MAX_BLOCKS:
            self.flush_all()
        blk.key = key
        self.blocks[key] = blk
        for ppn in blk.span:
            lst = cpu.code_pages.get(ppn)
            if lst is None:
                cpu.code_pages[ppn] = [blk]
                cpu.protect_code_page(ppn)
            else:
                lst.append(blk)
        return blk

    def _code_bytes(self, la: int, buf, off: int) -> tuple[bytes, int, int | None]:
        """Bytes from ``la`` to its page end, plus up to 15 of the next page when that page
        can be fetched (its physical page number, else None)."""
        n = 4096 - (la & 0xFFF)
        code = bytes(buf[off:off + n])
        next_ppn = None
        try:
            pa2, buf2, off2 = self.cpu.fetch_page(la + n)
            code += bytes(buf2[off2:off2 + 15])
            next_ppn = pa2 >> 12
        except CpuFault:
            pass
        return code, n, next_ppn

    def _translate(self, la: int, rip: int, pa: int, buf, off: int, single: bool):
        cpu = self.cpu
        bits = cpu.code_bits
        code, in_page, next_ppn = self._code_bytes(la, buf, off)
        insns = []
        pos = 0
        ipmask = 0xFFFF if bits == 16 else (0xFFFFFFFF if bits == 32 else M64)
        limit = 1 if single else MAX_BLOCK
        while len(insns) < limit and pos < in_page:
            insn = decode(code, pos, address=(rip + pos) & ipmask, mode=bits)
            if insn.kind == "truncated" and pos + insn.length >= len(code):
                if not insns:     # the instruction runs into a page that cannot be fetched
                    cpu.fetch_page(la + in_page)
                    raise CpuFault(13, 0, "instruction too long")
                break
            insns.append(insn)
            pos += insn.length
            if self.semantics.ends_block(insn):
                break
        span = {pa >> 12: ((pa & 0xFFF), min(4096, (pa & 0xFFF) + pos))}
        if pos > in_page and next_ppn is not None:
            span[next_ppn] = (0, pos - in_page)
        blk = self.semantics.compile_block(insns, cpu, self.namespace, ipmask)
        blk.span = span
        blk.code = code[:pos]          # its bytes (instruction tracing shows them)
        if cpu.trace_block is not None:
            cpu.trace_block(la, pos, len(insns))
        self.translated += 1
        return blk


def _raiser(exc: CpuFault, rip: int):
    """A stand-in block for code that cannot be fetched: it raises the fetch's fault."""

    def block(cpu):
        cpu.bi = 0
        raise exc

    block.rips = [rip]
    block.faulting = True
    return block
