"""Linear → physical translation, the software TLB, and guest memory access.

Paging (SDM Vol. 3A ch. 4; the levels of each mode are cpu/paging.py's data): 32-bit (4 KiB /
4 MiB pages), PAE (4 KiB / 2 MiB), 4-level and 5-level (4 KiB / 2 MiB / 1 GiB; 48- and 57-bit
canonical linear addresses), with U/S, R/W (CR0.WP), NX (EFER.NXE), SMEP/SMAP, protection keys
(PKRU for user pages, IA32_PKRS for supervisor pages; 4-level paging only, §4.6.2),
accessed/dirty bits, and #PF with the architectural error code (§4.7) and CR2.

The TLB maps a linear page to ``(buffer, delta, physical page)`` so that the host offset of a
linear address ``la`` is ``la + delta``: a hit costs one dict lookup. There are separate TLBs
for reads and writes; a page that holds translated code never enters the write TLB, so every
write to it takes the slow path, which invalidates the blocks it overwrites (self-modifying
code). Physical addresses no RAM backs are MMIO: a read raises :class:`NeedsRead` (replayed
when the instruction runs again), a write is queued in ``pending`` and the block stops after
the instruction.
"""

from __future__ import annotations

import struct

from x86vm.cpu.errors import GP, PF, CpuFault, NeedsRead
from x86vm.cpu.paging import LEVELS, access_width, canonical
from x86vm.cpu.state import (
    CR0_PG,
    CR0_WP,
    CR4_LA57,
    CR4_PAE,
    CR4_PKE,
    CR4_PKS,
    CR4_PSE,
    CR4_SMAP,
    CR4_SMEP,
    EFER_LMA,
    EFER_NXE,
    MSR_IA32_PKRS,
    RFLAGS_AC,
)

PAGE = 4096
TLB_ENTRIES = 16384
"""Entries each software TLB holds before it is emptied (an x86 TLB may drop any entry at any
time, SDM Vol. 3 §4.10.2): a guest touching ever new linear pages cannot grow it forever."""
# page-fault error code bits (SDM Vol. 3A §4.7)
PF_P, PF_W, PF_U, PF_RSVD, PF_I, PF_PK = 1, 2, 4, 8, 16, 32
# access kinds (the same bits as the error code)
READ, WRITE, FETCH = 0, PF_W, PF_I

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_UNPACK = {2: _U16.unpack_from, 4: _U32.unpack_from, 8: _U64.unpack_from}
_PACK = {2: _U16.pack_into, 4: _U32.pack_into, 8: _U64.pack_into}
_ADDR = (1 << 52) - 1
# each mode's walk: (shift, entry size, index mask, PS maps a page) per level
_WALKS = {mode: tuple((lv.shift, lv.entry_size, (1 << lv.index_bits) - 1, lv.large)
                      for lv in levels) for mode, levels in LEVELS.items()}


class RamRegion:
    __slots__ = ("gpa", "end", "buffer", "readonly")

    def __init__(self, gpa: int, end: int, buffer, readonly: bool = False) -> None:
        self.gpa, self.end, self.buffer, self.readonly = gpa, end, buffer, readonly


class Ram:
    """Guest RAM: regions with ``gpa``, ``end`` and ``buffer`` (the machine's own region
    list, read live, so RAM added later is seen), or (start, end, buffer) tuples. The CPU
    reads the buffers directly."""

    def __init__(self, regions: list) -> None:
        if regions and isinstance(regions[0], tuple):
            regions = [RamRegion(*r) for r in regions]
        self.regions = regions

    def find(self, pa: int) -> tuple[object, int] | None:
        """(buffer, offset of ``pa`` in it) or None for an address no RAM backs."""
        for r in self.regions:
            if r.gpa <= pa < r.end:
                return r.buffer, pa - r.gpa
        return None

    def find_writable(self, pa: int) -> tuple[object, int] | None:
        """Like :meth:`find`, but None for ROM too: a guest write there leaves as MMIO."""
        for r in self.regions:
            if r.gpa <= pa < r.end:
                return None if r.readonly else (r.buffer, pa - r.gpa)
        return None


class MmuMixin:
    """Memory access for :class:`x86vm.cpu.core.Cpu` (which provides the registers)."""

    def _init_mmu(self, ram: Ram) -> None:
        self.ram = ram
        self.tlb_r: dict[int, tuple] = {}
        self.tlb_w: dict[int, tuple] = {}
        self.code_pages: dict[int, list] = {}   # physical page → blocks translated from it
        self.pending: list[tuple] = []          # (kind, address, size, data) writes to hand out
        self.replay: list[int] = []             # values of reads the monitor completed
        self.replay_pos = 0
        self.on_code_write = None               # callback(ppn, start, end) → invalidate
        self._bind_fast_paths()

    # -- the fast paths the translated blocks call ---------------------------------------

    def _bind_fast_paths(self) -> None:
        tlb_r_get = self.tlb_r.get
        tlb_w_get = self.tlb_w.get
        slow_read = self.read_slow
        slow_write = self.write_slow
        u16, u32, u64 = _U16.unpack_from, _U32.unpack_from, _U64.unpack_from
        p16, p32, p64 = _U16.pack_into, _U32.pack_into, _U64.pack_into

        def rd1(la):
            e = tlb_r_get(la >> 12)
            if e is not None:
                return e[0][la + e[1]]
            return slow_read(la, 1)

        def rd2(la):
            e = tlb_r_get(la >> 12)
            if e is not None and la & 0xFFF != 0xFFF:
                return u16(e[0], la + e[1])[0]
            return slow_read(la, 2)

        def rd4(la):
            e = tlb_r_get(la >> 12)
            if e is not None and la & 0xFFF < 0xFFD:
                return u32(e[0], la + e[1])[0]
            return slow_read(la, 4)

        def rd8(la):
            e = tlb_r_get(la >> 12)
            if e is not None and la & 0xFFF < 0xFF9:
                return u64(e[0], la + e[1])[0]
            return slow_read(la, 8)

        def wr1(la, v):
            e = tlb_w_get(la >> 12)
            if e is not None:
                e[0][la + e[1]] = v
            else:
                slow_write(la, 1, v)

        def wr2(la, v):
            e = tlb_w_get(la >> 12)
            if e is not None and la & 0xFFF != 0xFFF:
                p16(e[0], la + e[1], v)
            else:
                slow_write(la, 2, v)

        def wr4(la, v):
            e = tlb_w_get(la >> 12)
            if e is not None and la & 0xFFF < 0xFFD:
                p32(e[0], la + e[1], v)
            else:
                slow_write(la, 4, v)

        def wr8(la, v):
            e = tlb_w_get(la >> 12)
            if e is not None and la & 0xFFF < 0xFF9:
                p64(e[0], la + e[1], v)
            else:
                slow_write(la, 8, v)

        self.rd = {1: rd1, 2: rd2, 4: rd4, 8: rd8}
        self.wr = {1: wr1, 2: wr2, 4: wr4, 8: wr8}

    def read_mem(self, la: int, size: int) -> int:
        """Read ``size`` bytes at linear ``la`` (any size: 10 and 16 are split)."""
        if size in self.rd:
            return self.rd[size](la)
        value = 0
        for i in range(0, size, 8):
            n = min(8, size - i)
            value |= self.read_slow(la + i, n) << (8 * i)
        return value

    def write_mem(self, la: int, size: int, value: int) -> None:
        if size in self.wr:
            self.wr[size](la, value)
            return
        for i in range(0, size, 8):
            n = min(8, size - i)
            self.write_slow(la + i, n, (value >> (8 * i)) & ((1 << (8 * n)) - 1))

    # -- slow paths ---------------------------------------------------------------------

    def _lin_mask(self, la: int) -> int:
        return la & 0xFFFFFFFFFFFFFFFF if self.efer & EFER_LMA else la & 0xFFFFFFFF

    def read_slow(self, la: int, size: int) -> int:
        la = self._lin_mask(la)
        first = PAGE - (la & 0xFFF)
        if first < size:  # split at the page boundary: two accesses, in address order
            lo = self.read_slow(la, first)
            return lo | (self.read_slow(la + first, size - first) << (8 * first))
        pa, cacheable = self.translate(la, READ)
        if self.watch_pages and la >> 12 in self.watch_pages:   # a debugger watches it
            self.watch_access(la, size, False)
            cacheable = False
        found = self.ram.find(pa)
        if found is None:
            return self.mmio_read(pa, size)
        buf, off = found
        if cacheable and self.ram.find(pa | 0xFFF) is not None:
            if len(self.tlb_r) >= TLB_ENTRIES:
                self.tlb_r.clear()
            self.tlb_r[la >> 12] = (buf, (off & ~0xFFF) - (la & ~0xFFF), pa >> 12)
        if size == 1:
            return buf[off]
        if size in _UNPACK:
            return _UNPACK[size](buf, off)[0]
        return int.from_bytes(buf[off:off + size], "little")   # a piece of a split access

    def write_slow(self, la: int, size: int, value: int) -> None:
        la = self._lin_mask(la)
        first = PAGE - (la & 0xFFF)
        if first < size:
            # both pages are checked before either is written (no partial store on #PF)
            self.translate(la, WRITE)
            self.translate(la + first, WRITE)
            self.write_slow(la, first, value & ((1 << (8 * first)) - 1))
            self.write_slow(la + first, size - first, value >> (8 * first))
            return
        pa, cacheable = self.translate(la, WRITE)
        watched = self.watch_pages and la >> 12 in self.watch_pages
        if watched:
            cacheable = False
        found = self.ram.find_writable(pa)
        if found is None:
            self.pending.append(("mmio", pa, size, value))
            if watched:
                self.watch_access(la, size, True)
            return
        buf, off = found
        ppn = pa >> 12
        if ppn in self.code_pages:
            self.on_code_write(ppn, pa & 0xFFF, (pa & 0xFFF) + size)
        elif cacheable and self.ram.find_writable(pa | 0xFFF) is not None:
            if len(self.tlb_w) >= TLB_ENTRIES:
                self.tlb_w.clear()
            self.tlb_w[la >> 12] = (buf, (off & ~0xFFF) - (la & ~0xFFF), ppn)
        if size == 1:
            buf[off] = value
        elif size in _PACK:
            _PACK[size](buf, off, value)
        else:
            buf[off:off + size] = value.to_bytes(size, "little")
        if watched:   # a data breakpoint is a trap: after the write (SDM Vol. 3B §18.2.4)
            self.watch_access(la, size, True)

    def mmio_read(self, pa: int, size: int) -> int:
        """A read no RAM backs: the replayed value, or stop the instruction for the monitor."""
        if self.replay_pos < len(self.replay):
            value = self.replay[self.replay_pos]
            self.replay_pos += 1
            return value
        raise NeedsRead(pa, size)

    def port_read(self, port: int, size: int, count: int = 1) -> int:
        """``count`` elements of ``size`` bytes from ``port`` (little-endian, as one int)."""
        if self.replay_pos < len(self.replay):
            value = self.replay[self.replay_pos]
            self.replay_pos += 1
            return value
        raise NeedsRead(port, size, port=True, count=count)

    def ram_written(self, pa: int, length: int) -> None:
        """Someone else (a device, a loader) wrote guest-physical ``[pa, pa + length)``:
        drop the translated code it overwrites."""
        code_pages = self.code_pages
        if not code_pages:
            return
        end = pa + length
        for ppn in range(pa >> 12, ((end - 1) >> 12) + 1):
            if ppn in code_pages:
                lo = max(pa, ppn << 12) - (ppn << 12)
                hi = min(end, (ppn + 1) << 12) - (ppn << 12)
                self.on_code_write(ppn, lo, hi)

    def protect_code_page(self, ppn: int) -> None:
        """Drop write-TLB entries of physical page ``ppn`` (it now holds translated code)."""
        for k in [k for k, e in self.tlb_w.items() if e[2] == ppn]:
            del self.tlb_w[k]

    def flush_tlb(self) -> None:
        self.tlb_r.clear()
        self.tlb_w.clear()

    def flush_page(self, la: int) -> None:
        self.tlb_r.pop(la >> 12, None)
        self.tlb_w.pop(la >> 12, None)

    # -- physical access (page tables, descriptor tables through paging are linear) ---------

    def phys_read(self, pa: int, size: int) -> int:
        found = self.ram.find(pa)
        if found is None or self.ram.find(pa + size - 1) is None:
            return (1 << (8 * size)) - 1  # unbacked page-table memory reads as all ones
        buf, off = found
        return int.from_bytes(buf[off:off + size], "little")

    def phys_write(self, pa: int, size: int, value: int) -> None:
        found = self.ram.find_writable(pa)
        if found is None or self.ram.find_writable(pa + size - 1) is None:
            return
        buf, off = found
        buf[off:off + size] = value.to_bytes(size, "little")

    # -- the page walk -------------------------------------------------------------------

    def translate(self, la: int, access: int, user: bool | None = None) -> tuple[int, bool]:
        """Physical address of linear ``la`` for ``access`` (READ/WRITE/FETCH), and whether
        the translation may be cached in the TLB for the current privilege level."""
        if not self.cr0 & CR0_PG:
            return la & 0xFFFFFFFF if not self.efer & EFER_LMA else la, True
        if user is None:
            user = self.cpl == 3
        code = access | (PF_U if user else 0)
        cr4, efer = self.cr4, self.efer
        nxe = efer & EFER_NXE
        rw = us = 1
        nx = 0
        entries = []          # (physical address of the entry, entry, size)
        if efer & EFER_LMA:
            if not canonical(la, access_width(cr4)):   # #GP(0) (SDM Vol. 3A §4.5)
                raise CpuFault(GP, 0, f"non-canonical address {la:#x}")
            table = self.cr3 & 0x000FFFFFFFFFF000
            levels = _WALKS["5-level" if cr4 & CR4_LA57 else "4-level"]
        elif cr4 & CR4_PAE:
            pdpte_at = (self.cr3 & 0xFFFFFFE0) + ((la >> 30) & 3) * 8
            pdpte = self.phys_read(pdpte_at, 8)
            if not pdpte & 1:
                self._page_fault(la, code)
            if pdpte & 0x1E6 or (pdpte >> 52) & 0x7FF:
                self._page_fault(la, code | PF_P | PF_RSVD)
            table = pdpte & 0x000FFFFFFFFFF000
            levels = _WALKS["PAE"][1:]
        else:
            table = self.cr3 & 0xFFFFF000
            levels = _WALKS["32-bit"]
        page_size_shift = 12
        for depth, (shift, esize, index_mask, large) in enumerate(levels):
            at = table + ((la >> shift) & index_mask) * esize
            e = self.phys_read(at, esize)
            if not e & 1:
                self._page_fault(la, code)
            if esize == 8 and nxe == 0 and e >> 63:
                self._page_fault(la, code | PF_P | PF_RSVD)
            entries.append((at, e, esize))
            rw &= e >> 1
            us &= e >> 2
            if esize == 8 and nxe:
                nx |= e >> 63
            last = depth == len(levels) - 1
            if not last and e & 0x80:   # PS: a large page at this level
                if esize == 4:
                    if not cr4 & CR4_PSE:
                        table = e & 0xFFFFF000
                        continue
                    base = (e & 0xFFC00000) | ((e & 0x1FE000) << 19)
                    page_size_shift = 22
                elif not large:     # PS in a PML5E or PML4E is reserved
                    self._page_fault(la, code | PF_P | PF_RSVD)
                else:
                    page_size_shift = shift
                    base = e & 0x000FFFFFFFFFF000 & ~((1 << shift) - 1)
                break
            if last:
                base = e & (0x000FFFFFFFFFF000 if esize == 8 else 0xFFFFF000)
                break
            table = e & (0x000FFFFFFFFFF000 if esize == 8 else 0xFFFFF000)
        # permissions (SDM Vol. 3A §4.6)
        fault = False
        if user:
            if not us or (access == WRITE and not rw):
                fault = True
        else:
            if access == WRITE and not rw and self.cr0 & CR0_WP:
                fault = True
            if us and access == FETCH and cr4 & CR4_SMEP:
                fault = True
            if (us and access != FETCH and cr4 & CR4_SMAP and not self.fl & RFLAGS_AC
                    and not self.implicit_access):
                fault = True
        if access == FETCH and nx:
            fault = True
        if fault:
            err = code | PF_P
            if access == FETCH and not (nxe or cr4 & CR4_SMEP):
                err &= ~PF_I
            self._page_fault(la, err)
        if access != FETCH and cr4 & (CR4_PKE | CR4_PKS) and efer & EFER_LMA:
            self._check_protection_key(la, code, user, us, entries[-1][1])
        # accessed and dirty bits
        for i, (at, e, esize) in enumerate(entries):
            new = e | 0x20
            if i == len(entries) - 1 and access == WRITE:
                new |= 0x40
            if new != e:
                self.phys_write(at, esize, new)
        offset = la & ((1 << page_size_shift) - 1)
        pa = (base | offset) & _ADDR
        # cacheable for this CPL only if a later access of the same kind would pass
        if access == WRITE:
            cacheable = True
        elif access == READ:
            cacheable = True
        else:
            cacheable = False
        if user and not self.cpl == 3:
            cacheable = False
        if not user and us and cr4 & CR4_SMAP:
            cacheable = False
        # a read-TLB entry must not allow a later write; writes only use tlb_w
        return pa, cacheable

    def _check_protection_key(self, la: int, code: int, user: bool, us: int,
                              leaf: int) -> None:
        """Protection keys (SDM Vol. 3A §4.6.2): the key is bits 62:59 of the leaf entry;
        PKRU (CR4.PKE) governs user pages, IA32_PKRS (CR4.PKS) supervisor pages. AD forbids
        every data access; WD forbids user-mode writes, and supervisor-mode writes when
        CR0.WP = 1. Instruction fetches are not checked. A fault is #PF with PK (bit 5)."""
        if us:
            if not self.cr4 & CR4_PKE:
                return
            rights = self.pkru
        else:
            if not self.cr4 & CR4_PKS:
                return
            rights = self.msrs.get(MSR_IA32_PKRS, 0)
        rights = (rights >> (((leaf >> 59) & 0xF) * 2)) & 3
        if not rights:
            return
        if rights & 1 or (code & PF_W and (user or self.cr0 & CR0_WP)):
            self._page_fault(la, code | PF_P | PF_PK)

    def _page_fault(self, la: int, code: int) -> None:
        if not self.efer & EFER_NXE and not self.cr4 & CR4_SMEP:
            code &= ~PF_I
        self.cr2 = la
        raise CpuFault(PF, code & 0x3F)

    # -- helpers for system tables and interpreters -----------------------------------------

    def read_sys(self, la: int, size: int) -> int:
        """An implicit supervisor read (descriptor tables, TSS, IDT): one page walk per page
        the access touches (through the TLB at CPL 0, where it is the same access)."""
        if self.cpl == 0 and not self.cr4 & CR4_SMAP:
            return self.read_mem(self._lin_mask(la), size)
        self.implicit_access = True
        try:
            value = 0
            done = 0
            while done < size:
                at = self._lin_mask(la + done)
                n = min(size - done, PAGE - (at & 0xFFF))
                pa, _ = self.translate(at, READ, user=False)
                value |= self.phys_read(pa, n) << (8 * done)
                done += n
            return value
        finally:
            self.implicit_access = False

    def write_sys(self, la: int, size: int, value: int) -> None:
        if self.cpl == 0 and not self.cr4 & CR4_SMAP:
            self.write_mem(self._lin_mask(la), size, value)
            return
        self.implicit_access = True
        try:
            done = 0
            while done < size:
                at = self._lin_mask(la + done)
                n = min(size - done, PAGE - (at & 0xFFF))
                pa, _ = self.translate(at, WRITE, user=False)
                self.phys_write(pa, n, (value >> (8 * done)) & ((1 << (8 * n)) - 1))
                done += n
        finally:
            self.implicit_access = False

    def fetch_page(self, la: int) -> tuple[int, object, int]:
        """For the translator: (physical address, buffer, offset) of code at ``la``."""
        la = self._lin_mask(la)
        pa, _ = self.translate(la, FETCH)
        found = self.ram.find(pa)
        if found is None:
            raise CpuFault(PF if self.cr0 & CR0_PG else 13, 0, "code fetch outside RAM")
        return pa, found[0], found[1]
